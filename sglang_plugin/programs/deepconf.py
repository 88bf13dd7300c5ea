"""DeepConf: parallel sampling filtered by the traces' own confidence (Fu et al., "Deep Think with Confidence",
arXiv 2508.15260), on SGLang. No reward model: each trace is one streamed request returning the top-k logprobs
of every token, and its confidence (planner.confidence) is tracked as it arrives.

- offline: N traces run to the end; the most confident `deepconf_keep` share of them vote, weighted by their
  confidence.
- online: a few warm-up traces run to the end and set the stop threshold (the score above which the most
  confident `deepconf_keep` share of them lie). The rest run in waves of that many; a trace whose current group
  confidence falls below the threshold is stopped at once (its stream closed, the request aborted on the
  server, its tokens so far counted). Sampling stops as soon as the confidence-weighted vote of the finished
  traces gives one answer at least `deepconf_consensus` of the weight, or at N traces. Finished traces vote
  weighted by their confidence.
"""

from __future__ import annotations

import math

from planner.confidence import kept, stop_threshold
from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun


def warmup_size(n: int, configured: int | None) -> int:
    """Warm-up traces: the configured number, else a quarter of N (at least 2), never more than N."""
    return min(n, configured if configured is not None else max(2, math.ceil(n / 4)))


def deepconf(run: SearchRun) -> Selection:
    search, n = run.config.search, run.budget
    if search.deepconf_mode == "offline":
        traces = run.spawn(n)
        run.stream_rollouts(traces)
        answered = run.answered(traces)
        voting = [answered[i] for i in kept([b.confidence for b in answered], search.deepconf_keep)]
        return _vote(run, voting, {"n": n, "mode": "offline", "kept": len(voting)})
    warm = warmup_size(n, search.deepconf_warmup)
    traces = run.spawn(warm)
    run.stream_rollouts(traces)
    scores = [b.confidence for b in traces if b.confidence is not None and not b.failed]
    threshold = stop_threshold(scores, search.deepconf_keep) if scores else None
    window = search.confidence_window
    while len(traces) < n and not _settled(run, traces, search.deepconf_consensus, warm):
        wave = run.spawn(min(warm, n - len(traces)))
        run.stream_rollouts(wave, stop=None if threshold is None else
                            lambda trace: trace.tokens >= window and trace.current < threshold)
        traces += wave
    stopped = sum(1 for b in traces if b.finish_reason == "stopped")
    size = {"n": n, "mode": "online", "warmup": warm, "traces": len(traces), "stopped": stopped,
            "threshold": threshold}
    return _vote(run, run.answered(traces), size)


def _weights(branches: list[Branch]) -> list[float]:
    return [b.confidence if b.confidence is not None else 0.0 for b in branches]


def _settled(run: SearchRun, traces: list[Branch], consensus: float, least: int) -> bool:
    """Whether the finished traces' confidence-weighted vote already gives one answer `consensus` of the weight."""
    answered = run.answered(traces)
    if len(answered) < least:
        return False
    votes = run.vote(answered, _weights(answered))
    total = sum(v.score for v in votes)
    return bool(votes) and total > 0 and votes[0].score / total >= consensus


def _vote(run: SearchRun, voting: list[Branch], size: dict) -> Selection:
    votes = run.vote(voting, _weights(voting))
    chosen = None
    if votes:
        winners = [run.branches[i] for i in votes[0].branches]
        chosen = max(winners, key=lambda b: (b.confidence or 0.0, -b.id))
    return Selection(chosen, votes, size)
