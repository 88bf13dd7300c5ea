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
  agrees costs only its warm-up. The settled vote is the answer, so a run never stops for one answer and then
  gives another.

Why an eighth of N warm-up traces (at least 2): the warm-up runs to the end at full price, so at small N it
bounds the savings (a quarter of N alone costs a quarter of majority@N's tokens); DeepConf itself warms up
with 16 of 512 traces.
"""

from __future__ import annotations

import math

from planner.confidence import kept, stop_threshold
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
        return _vote(run, voting, {"n": n, "mode": "offline", "kept": len(voting)})
    warm = warmup_size(n, search.deepconf_warmup)
    traces = run.spawn(warm)
    run.stream_rollouts(traces)
    scores = [b.confidence for b in traces if b.confidence is not None and not b.failed]
    threshold = stop_threshold(scores, keep) if scores else None
    while len(traces) < n and not _settled_vote(run, traces, threshold, search.deepconf_consensus):
        wave = run.spawn(min(warm, n - len(traces)))
        run.stream_rollouts(wave, stop=None if threshold is None else lambda trace: trace.fell_below(threshold))
        traces += wave
    stopped = sum(1 for b in traces if b.finish_reason == "stopped")
    settled = _settled_vote(run, traces, threshold, search.deepconf_consensus)
    voters = settled or _voters(run, traces, threshold)
    size = {"n": n, "mode": "online", "warmup": warm, "traces": len(traces), "stopped": stopped,
            "voters": len(voters), "threshold": threshold, "settled": settled is not None}
    return _vote(run, voters, size)


def _voters(run: SearchRun, traces: list[Branch], threshold: float | None) -> list[Branch]:
    """The answered traces at or above the threshold (later ones that were not stopped all are); every answered
    trace when there is no threshold or none is."""
    answered = run.answered(traces)
    if threshold is None:
        return answered
    above = [b for b in answered if b.confidence is not None and b.confidence >= threshold]
    return above or answered


def _settled_vote(run: SearchRun, traces: list[Branch], threshold: float | None,
                  consensus: float | None) -> list[Branch] | None:
    """The traces whose vote is settled: the voters, else every answered trace; None when neither is."""
    for group in (_voters(run, traces, threshold), run.answered(traces)):
        if _settled(run, group, consensus):
            return group
    return None


def _weights(branches: list[Branch]) -> list[float]:
    return [b.confidence if b.confidence is not None else 0.0 for b in branches]


def _settled(run: SearchRun, voters: list[Branch], consensus: float | None) -> bool:
    """Whether at least two traces' confidence-weighted vote gives one answer `consensus` of the weight (never
    with no consensus set)."""
    if consensus is None or len(voters) < 2:
        return False
    votes = run.vote(voters, _weights(voters))
    total = sum(v.score for v in votes)
    return bool(votes) and total > 0 and votes[0].score / total >= consensus


def _vote(run: SearchRun, voting: list[Branch], size: dict) -> Selection:
    votes = run.vote(voting, _weights(voting))
    chosen = None
    if votes:
        winners = [run.branches[i] for i in votes[0].branches]
        chosen = max(winners, key=lambda b: (b.confidence or 0.0, -b.id))
    return Selection(chosen, votes, size)
