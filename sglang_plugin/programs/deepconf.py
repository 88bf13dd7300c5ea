"""DeepConf: parallel sampling filtered by the traces' own confidence (Fu et al., "Deep Think with Confidence",
arXiv 2508.15260), on SGLang. No reward model: each trace is one streamed request returning the top-k logprobs
of every token, and its confidence (planner.confidence) is tracked as it arrives.

- offline: N traces run to the end; the most confident `keep_share` of them vote, weighted by their confidence.
- online: a few warm-up traces run to the end and set the stop threshold (the score above which the most
  confident `keep_share` of them lie; by default the 90th percentile, DeepConf-low, as in DeepConf's online
  reference code). The rest run in waves of the warm-up's size; a trace whose current group confidence falls
  below the threshold is stopped at once (the request aborted on the server, its tokens so far counted, its
  answer never read). The voters are the warm-up traces at or above the threshold and every later trace that
  was not stopped (as in DeepConf's online reference code). Sampling stops at N traces, or as soon as a
  confidence-weighted vote gives one answer `deepconf_consensus` of the weight (DeepConf's adaptive sampling,
  0.95 there): the voters' vote, or that of every answered trace (a stopped one has none), warm-up traces below
  the threshold included, since a whole trace agreeing is evidence whatever its rank: a problem whose warm-up
  agrees costs only its warm-up. The voters' vote is also settled when its leader still leads after the traces
  yet to come with probability `deepconf_consensus` (planner.belief.lead). The vote is checked each time a trace
  ends, not only between waves: once it is settled, the traces still running (warm-up ones included) are cut
  like stopped ones ("cancelled", their tokens counted). The settled vote is the answer, so a run never stops
  for one answer and then gives another.
- online, priced (`deepconf_min_gain`): after the warm-up, sampling also stops ("priced out") once the traces
  still to come are not expected to add accuracy worth their tokens: the adaptive solver's belief
  (programs/belief.py: the predicted pass@1 as prior, the traces' answers and confidence as evidence) values
  every number of further traces up to N (planner.belief.value), and each is priced min_gain / sqrt(N) (the
  form of the adaptive solver's price of a sample) times this problem's trace length over the policy's tokens
  per sample. On a problem whose traces disagree and run long, it stops after the warm-up and a few cut traces
  where the vote alone would run all N (hard problems are most of DeepConf@8's tokens: see README). Its answer
  is the voters' vote, as always.

Why an eighth of N warm-up traces (at least 2): the warm-up runs to the end at full price, so at small N it
bounds the savings (a quarter of N alone costs a quarter of majority@N's tokens); DeepConf itself warms up
with 16 of 512 traces.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from planner.adaptive import simulated, worth_sampling
from planner.belief.evidence import ConfidenceEvidence
from planner.belief.lead import lead_holds
from planner.belief.value import VoteState, sampling_gains
from planner.confidence import TraceConfidence, kept, stop_threshold
from planner.records import DeepConfTrace
from sglang_plugin.programs.belief import Belief
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun


def warmup_size(n: int, configured: int | None) -> int:
    """Warm-up traces: the configured number, else an eighth of N (at least 2), never more than N."""
    return min(n, configured if configured is not None else max(2, math.ceil(n / 8)))


def deepconf(run: SearchRun) -> Selection:
    search, n = run.config.search, run.budget
    keep = search.keep_share
    if search.deepconf_mode == "offline":
        traces = run.spawn(n)
        run.stream_rollouts(traces)
        answered = run.answered(traces)
        voting = [answered[i] for i in kept([b.confidence for b in answered], keep)]
        _record(run, DeepConfTrace("offline", len(traces), 0, 0, len(voting), False, 0, 0))
        return _vote(run, voting, {"n": n, "mode": "offline", "kept": len(voting)})
    warm = warmup_size(n, search.deepconf_warmup)
    traces = run.spawn(warm)
    vote = OnlineVote(run, n, warm, search.deepconf_consensus, search.deepconf_min_gain)
    run.stream_rollouts(traces, settled=vote.settles(traces))
    scores = [b.confidence for b in traces
              if b.confidence is not None and b.finish_reason not in ("failed", "cancelled")]
    vote.threshold = stop_threshold(scores, keep) if scores else None
    while len(traces) < n and not vote.settled(traces):
        wave = run.spawn(min(warm, n - len(traces)))
        traces = traces + wave
        run.stream_rollouts(wave, stop=vote.stop if vote.threshold is not None else None,
                            settled=vote.settles(traces))
    ended = Counter(b.finish_reason for b in traces)
    spent: Counter = Counter()
    for b in traces:
        spent[b.finish_reason] += b.tokens
    settled = vote.settled(traces)
    voters = settled or vote.voters(traces)
    _record(run, DeepConfTrace("online", len(traces), ended["stopped"], ended["cancelled"], len(voters),
                               settled is not None and not vote.priced_out, spent["stopped"], spent["cancelled"],
                               warm, vote.threshold, vote.priced_out))
    return _vote(run, voters, {"n": n, "mode": "online", "warmup": warm, "traces": len(traces)})


class OnlineVote:
    """The vote of an online run of N traces: who votes, and whether it is settled before all N are in."""

    def __init__(self, run: SearchRun, n: int, warmup: int, consensus: float | None,
                 min_gain: float | None = None) -> None:
        self.run, self.n, self.warmup, self.consensus, self.min_gain = run, n, warmup, consensus, min_gain
        self.threshold: float | None = None
        self.priced_out = False  # sampling stopped because the traces to come were not worth their tokens
        self._valued: tuple[VoteState, list[float]] | None = None  # the last belief state and its gains

    def stop(self, trace: TraceConfidence) -> bool:
        """Whether a later trace is cut: its group confidence fell below the warm-up's threshold."""
        return self.threshold is not None and trace.fell_below(self.threshold)

    def settles(self, traces: list[Branch]) -> Callable[[], bool]:
        """Asked each time one of `traces` ends: whether their vote is settled, so the rest need not run on."""
        return lambda: self.settled(traces) is not None

    def voters(self, traces: list[Branch]) -> list[Branch]:
        """The answered traces at or above the threshold (later ones that were not stopped all are); every
        answered trace when there is no threshold or none is."""
        answered = self.run.answered(traces)
        if self.threshold is None:
            return answered
        above = [b for b in answered if b.confidence is not None and b.confidence >= self.threshold]
        return above or answered

    def settled(self, traces: list[Branch]) -> list[Branch] | None:
        """The traces whose vote ends the run before N: the voters, or every answered trace when their vote is
        settled; the voters when the traces to come are priced out; None when sampling goes on."""
        remaining = self.n - sum(1 for b in traces if b.finished)
        voters = self.voters(traces)
        if self.consensus is not None:
            later = [b for b in traces[self.warmup:] if b.finished and b.finish_reason != "cancelled"]
            cut = sum(1 for b in later if b.finish_reason == "stopped")
            if self._settled(voters, (remaining, len(later) - cut, cut) if remaining > 0 else None):
                return voters
            answered = self.run.answered(traces)
            if self._settled(answered):
                return answered
        if self.priced_out or (remaining > 0 and self.threshold is not None and not self._worth(traces, remaining)):
            self.priced_out = True
            return voters
        return None

    def _worth(self, traces: list[Branch], remaining: int) -> bool:
        """Whether the traces to come are expected to add accuracy worth their tokens (always, without a
        min_gain): valued by the belief in the traces that ran to their end, each further trace priced
        min_gain / sqrt(N) times this problem's trace length over the policy's tokens per sample. A run without
        a prediction gets one here, and its result carries it."""
        if self.min_gain is None:
            return True
        ended = [b for b in traces if b.finished and b.finish_reason not in ("stopped", "cancelled", "failed")]
        if not ended:
            return True
        run = self.run
        planning = run.planning or Planning()
        config = planning.adaptive
        if run.prediction is None:
            run.prediction = planning.prediction(run.problem, run.served)
        evidence = config.confidence_for(run.scorer is not None, run.policy.thinking is not None)
        belief = Belief(run, ended, config.prior(run.prediction.pass_at_1), None, config.alpha, evidence)
        per_sample = planning.table_for(run.served, run.scorer, run.config.search).cost.tokens_per_sample
        length = sum(b.tokens for b in ended) / len(ended) / max(per_sample, 1.0)
        price = self.min_gain / math.sqrt(self.n) * length
        return worth_sampling(self._gains(belief.state, remaining, evidence), price)

    def _gains(self, state: VoteState, remaining: int, evidence: ConfidenceEvidence | None) -> list[float]:
        """What 1 to `remaining` more traces are expected to add. Valued once per belief state: a cut trace
        leaves the state as it was and only shortens the horizon, and the simulation's draws for a shorter
        horizon are the same (a fixed seed), so the first valuation serves every later one."""
        if self._valued is None or self._valued[0] != state or len(self._valued[1]) < remaining:
            self._valued = (state, list(sampling_gains(state, range(1, remaining + 1), simulated(evidence))))
        return self._valued[1][:remaining]

    def _settled(self, group: list[Branch], to_come: tuple[int, int, int] | None = None) -> bool:
        """At least two traces, and either one answer holds `consensus` of the confidence-weighted vote
        (DeepConf's adaptive sampling) or, for the voters (`to_come`: the traces yet to come, and how many later
        traces voted and were cut so far), the leader still leads once they are in with probability `consensus`
        (planner.belief.lead; each trace's weight counted as the mean weight). Only the voters: traces to come
        vote only above the threshold, so every answered trace's shares would not be theirs."""
        if len(group) < 2:
            return False
        votes = self.run.vote(group, _weights(group))
        total = sum(v.score for v in votes)
        if not votes or total <= 0:
            return False
        if votes[0].score / total >= self.consensus:
            return True
        unit = total / len(group)
        return to_come is not None and lead_holds([v.score / unit for v in votes], *to_come) >= self.consensus


def _record(run: SearchRun, trace: DeepConfTrace) -> None:
    """Add the trace to the run's plan (which the frame sets before the body runs)."""
    if run.plan is not None:
        run.plan = replace(run.plan, deepconf=trace)


def _weights(branches: list[Branch]) -> list[float]:
    return [b.confidence if b.confidence is not None else 0.0 for b in branches]


def _vote(run: SearchRun, voting: list[Branch], size: dict) -> Selection:
    votes = run.vote(voting, _weights(voting))
    chosen = None
    if votes:
        winners = [run.branches[i] for i in votes[0].branches]
        chosen = max(winners, key=lambda b: (b.confidence or 0.0, -b.id))
    return Selection(chosen, votes, size)
