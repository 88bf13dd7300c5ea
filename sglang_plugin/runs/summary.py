"""The end-of-run summary, computed from the result lines themselves (so a resumed run reports the whole
output, not just its last session): accuracy where references exist, cost per problem in tokens and
FLOPs, prefix-cache hits, and the same per predicted difficulty bin; for DeepConf lines, how their traces
ended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from planner.cost import Cost
from planner.difficulty import BINS
from planner.records import DeepConfTrace, ResultLine


@dataclass
class Tally:
    problems: int = 0
    failed: int = 0
    partial: int = 0  # answered from fewer samples than planned
    with_reference: int = 0
    correct: int = 0
    failed_branches: int = 0
    branches: int = 0
    thinking_tokens: int = 0  # long-thinking policies: generated tokens spent thinking
    cost: Cost = field(default_factory=Cost)

    def add(self, line: ResultLine) -> None:
        self.problems += 1
        self.failed += line.status == "failed"
        self.partial += line.status == "partial"
        if line.correct is not None:
            self.with_reference += 1
            self.correct += line.correct
        self.branches += line.branches
        self.failed_branches += line.failed_branches
        self.thinking_tokens += line.thinking_tokens or 0
        self.cost = self.cost + line.cost

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.with_reference if self.with_reference else None

    @property
    def tokens_per_problem(self) -> float:
        return self.cost.tokens / self.problems if self.problems else 0.0


@dataclass
class DeepConfTally:
    """DeepConf lines: how their traces ended and what the cut ones cost."""

    problems: int = 0
    settled: int = 0
    priced_out: int = 0
    traces: int = 0
    stopped: int = 0
    cancelled: int = 0
    stopped_tokens: int = 0
    cancelled_tokens: int = 0
    completion_tokens: int = 0  # of these lines

    def add(self, trace: DeepConfTrace, completion_tokens: int) -> None:
        self.problems += 1
        self.settled += trace.settled
        self.priced_out += trace.priced_out
        self.traces += trace.traces
        self.stopped += trace.stopped
        self.cancelled += trace.cancelled
        self.stopped_tokens += trace.stopped_tokens
        self.cancelled_tokens += trace.cancelled_tokens
        self.completion_tokens += completion_tokens

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunSummary:
    total: Tally
    by_difficulty: dict[str, Tally]
    strategies: Counter
    stops: Counter  # adaptive lines: why each stopped
    adaptive_samples: int  # adaptive lines: samples drawn in all
    wall_time: float  # this session
    session_problems: int
    policy_params: float | None
    reward_params: float | None  # None: a reward model of unknown size
    deepconf: DeepConfTally = field(default_factory=DeepConfTally)

    def flops_per_problem(self, tally: Tally) -> float | None:
        if self.policy_params is None or not tally.problems:
            return None
        if self.reward_params is None and tally.cost.reward_tokens:
            return None
        return tally.cost.flops(self.policy_params, self.reward_params or 0.0) / tally.problems

    def to_dict(self) -> dict:
        total = self.total
        return {"problems": total.problems, "failed": total.failed, "partial": total.partial,
                "with_reference": total.with_reference,
                "correct": total.correct, "accuracy": total.accuracy, "tokens_per_problem": total.tokens_per_problem,
                "flops_per_problem": self.flops_per_problem(total), "cache_hit_share": total.cost.cache_hit_share,
                "cost": total.cost.to_dict(), "strategies": dict(self.strategies), "stops": dict(self.stops),
                "branches": total.branches, "failed_branches": total.failed_branches,
                "thinking_tokens": total.thinking_tokens,
                "adaptive_samples": self.adaptive_samples, "deepconf": self.deepconf.to_dict(),
                "wall_time": self.wall_time,
                "session_problems": self.session_problems}


def summarize(lines: Iterable[ResultLine], *, wall_time: float, session_problems: int,
              policy_params: float | None, reward_params: float | None = 0.0) -> RunSummary:
    total = Tally()
    by_difficulty = {name: Tally() for name in BINS}
    strategies: Counter = Counter()
    stops: Counter = Counter()
    samples = 0
    deepconf = DeepConfTally()
    for line in lines:
        total.add(line)
        if line.plan is not None and line.plan.deepconf is not None:
            deepconf.add(line.plan.deepconf, line.cost.completion_tokens)
        if line.difficulty in by_difficulty:
            by_difficulty[line.difficulty].add(line)
        trace = line.adaptive
        if trace is not None:
            stops[trace.stop_reason] += 1
            samples += trace.samples
            strategies[line.strategy] += 1
        elif line.strategy:
            strategies[f"{line.strategy}@{line.plan.size}" if line.plan is not None else line.strategy] += 1
    return RunSummary(total, {k: v for k, v in by_difficulty.items() if v.problems}, strategies, stops, samples,
                      wall_time, session_problems, policy_params, reward_params, deepconf)


def format_summary(summary: RunSummary) -> str:
    total = summary.total
    rate = summary.session_problems / summary.wall_time if summary.wall_time > 0 else 0.0
    lines = [(f"problems      {total.problems} written ({total.failed} failed, {total.partial} partial); "
              f"{summary.session_problems} in this session, {summary.wall_time:.1f} s wall time "
              f"({rate:.2f} problems/s)")]
    if total.failed_branches:
        lines.append(f"branches      {total.failed_branches} of {total.branches} failed (requests that gave up after "
                     f"their retries); {total.partial} problem(s) were answered from fewer samples than planned "
                     "(status partial)")
    if total.failed or total.partial:
        lines.append(f"redo          {total.failed} failed and {total.partial} partial problem(s): run the same "
                     "command with --retry-failed")
    if total.with_reference:
        lines.append(f"accuracy      {total.accuracy:.3f} ({total.correct}/{total.with_reference} with a reference "
                     "answer; failed problems count as wrong)")
    cost = total.cost
    per = max(total.problems, 1)
    uncached = cost.prompt_tokens - cost.cached_tokens
    lines.append(f"tokens        {total.tokens_per_problem:,.0f} per problem (generated "
                 f"{cost.completion_tokens / per:,.0f}, uncached prompt {uncached / per:,.0f}, reward model "
                 f"{cost.reward_tokens / per:,.0f})")
    if total.thinking_tokens:
        lines.append(f"thinking      {total.thinking_tokens / per:,.0f} generated tokens per problem spent thinking, "
                     f"{(cost.completion_tokens - total.thinking_tokens) / per:,.0f} answering")
    flops = summary.flops_per_problem(total)
    lines.append(f"FLOPs         {flops:.3g} per problem" if flops is not None
                 else "FLOPs         unknown (the policy's size is not known; give --policy-params)")
    lines.append(f"prefix cache  {cost.cache_hit_share:.1%} of prompt tokens were cache hits")
    if summary.strategies:
        common = ", ".join(f"{name} x{count}" for name, count in summary.strategies.most_common(6))
        more = len(summary.strategies) - 6
        lines.append(f"strategies    {common}" + (f" and {more} more" if more > 0 else ""))
    if summary.stops:
        adaptive = sum(summary.stops.values())
        reasons = ", ".join(f"{reason} x{count}" for reason, count in summary.stops.most_common())
        lines.append(f"adaptive      {summary.adaptive_samples / adaptive:.2f} samples per problem; stopped: {reasons}")
    deepconf = summary.deepconf
    if deepconf.problems:
        generated = max(deepconf.completion_tokens, 1)
        lines.append(f"deepconf      {deepconf.traces / deepconf.problems:.2f} traces per problem; "
                     f"{deepconf.stopped} stopped by confidence ({deepconf.stopped_tokens / generated:.1%} of the "
                     f"generated tokens), {deepconf.cancelled} cancelled once sampling stopped "
                     f"({deepconf.cancelled_tokens / generated:.1%}); {deepconf.settled} of {deepconf.problems} "
                     f"problems settled before N, {deepconf.priced_out} priced out")
    if summary.by_difficulty:
        lines.append("by predicted difficulty:")
        for name, tally in summary.by_difficulty.items():
            accuracy = f"accuracy {tally.accuracy:.3f}" if tally.accuracy is not None else "no references"
            lines.append(f"  {name:<7} {tally.problems:>6} problems  {accuracy}  {tally.tokens_per_problem:,.0f} "
                         "tokens/problem")
    return "\n".join(lines)
