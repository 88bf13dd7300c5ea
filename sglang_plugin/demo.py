"""`tts-planner demo`: the whole product on a laptop, no GPU. A SIMULATED SGLang server (sglang_plugin.sim) starts in
this process on a MATH-500 sample shipped in the package (demo_data/math500_sample.jsonl: 20 problems per level,
each answered at the success rate Qwen2.5-Math-1.5B-Instruct measured on it), then the same problems run through
the batch runner: once planned by the adaptive planner at `budget` samples per problem, once as one chain of
thought each (the unit of spend), then with one strategy for every problem (the one the `plan` command's uniform
baseline picks at the adaptive run's measured spend) at sizes around that spend. The table compares adaptive with
the uniform strategy interpolated to exactly the adaptive run's compute (FLOPs, reward-model reads included;
tokens when a model's size is unknown): the larger size on a share of the problems, the smaller on the rest, so
both spend the same. When no size tried reaches the adaptive spend, the table says so instead."""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from planner.difficulty import BINS
from planner.logs import logger
from planner.planning.allocation import Budget, uniform
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY
from planner.prediction.model_store import load_model
from sglang_plugin.runs.batch import RunReport, run_batch
from sglang_plugin.runs.settings import RunSettings
from sglang_plugin.runs.summary import RunSummary, Tally
from sglang_plugin.sim.server import SimServer

SAMPLE = "math500_sample.jsonl"
INPUT_FIELDS = ("unique_id", "problem", "answer", "subject", "level")
SCORERS = ("none", "orm", "math_shepherd")
MAX_UNIFORM_RUNS = 4  # uniform runs in all (one chain of thought first), to bracket the adaptive run's spend
# Largest uniform size the demo runs: 32 samples of 100 problems take about 12 s on the simulator (2 cores), which
# keeps the demo under a minute.
MAX_UNIFORM_SIZE = 32

log = logger(__name__)


def sample_path() -> Path:
    return Path(str(resources.files("sglang_plugin") / "demo_data" / SAMPLE))


@dataclass(frozen=True)
class UniformRun:
    """One uniform run: `strategy` at `size` for every problem (size 1 is one chain of thought)."""

    strategy: str
    size: int
    report: RunReport

    @property
    def label(self) -> str:
        return f"{self.strategy}@{self.size}"


@dataclass(frozen=True)
class Spend:
    """The axis the demo compares on: FLOPs per problem when every model's size is known, else tokens."""

    unit: str  # "flops" or "tokens"

    def of(self, summary: RunSummary, tally: Tally) -> float:
        if self.unit == "flops":
            return float(summary.flops_per_problem(tally))
        return tally.tokens_per_problem

    @staticmethod
    def for_runs(reports: list[RunReport]) -> Spend:
        known = all(r.summary.flops_per_problem(r.summary.total) is not None for r in reports)
        return Spend("flops" if known else "tokens")


@dataclass(frozen=True)
class Matched:
    """The uniform strategy at the adaptive run's spend: `high` on `share` of the problems, `low` on the rest (the
    same run twice when the adaptive spend lies outside the sizes tried, `reached` then False)."""

    low: UniformRun
    high: UniformRun
    share: float
    reached: bool

    def mix(self, value: Callable[[UniformRun], float | None]) -> float | None:
        a, b = value(self.low), value(self.high)
        return None if a is None or b is None else (1.0 - self.share) * a + self.share * b


def match_spend(runs: list[UniformRun], spend: Spend, target: float) -> Matched:
    """Linear interpolation between the two sizes whose spends bracket `target` (per problem)."""
    ordered = sorted(runs, key=lambda r: spend.of(r.report.summary, r.report.summary.total))
    cost = [spend.of(r.report.summary, r.report.summary.total) for r in ordered]
    if target <= cost[0]:
        return Matched(ordered[0], ordered[0], 0.0, target >= cost[0] * (1 - 1e-9))
    for i in range(1, len(ordered)):
        if target <= cost[i]:
            share = (target - cost[i - 1]) / (cost[i] - cost[i - 1]) if cost[i] > cost[i - 1] else 1.0
            return Matched(ordered[i - 1], ordered[i], share, True)
    return Matched(ordered[-1], ordered[-1], 0.0, False)


@dataclass
class DemoResult:
    folder: Path
    adaptive: RunReport
    uniform: list[UniformRun]
    spend: Spend
    matched: Matched
    wall_time: float


def family_sizes(table: StrategyTable, strategy: str) -> list[int]:
    """The sizes a uniform strategy runs at; size 1 is one chain of thought (voting on one sample is that)."""
    return sorted({1} | set(table.sizes(strategy)))


def next_size(sizes: list[int], measured: dict[int, float], target: float) -> int | None:
    """The next size to run so that measured spends bracket `target` between sizes as close as they can be, or
    None when no untried size lies between the nearest measured ones on either side.

    Spend grows about linearly with size, so the guess extrapolates through the two measured sizes nearest the
    target (through the origin from one; size 1, a chain of thought, only when nothing else is measured): a bracket
    in few runs even when the adaptive run spends many times a small uniform run's compute.
    """
    low = [n for n, c in measured.items() if c <= target]
    high = [n for n, c in measured.items() if c >= target]
    lo, hi = max(low, default=0), min(high, default=math.inf)
    untried = [n for n in sizes if lo < n < hi and n not in measured]
    if not untried:
        return None
    pts = sorted((n for n in measured if n > 1), key=lambda n: abs(measured[n] - target))[:2] or [1]
    if len(pts) == 2 and measured[pts[0]] != measured[pts[1]]:
        (n0, c0), (n1, c1) = ((n, measured[n]) for n in pts)
        guess = n0 + (target - c0) * (n1 - n0) / (c1 - c0)
    else:
        guess = pts[0] * target / measured[pts[0]]
    if not high:
        return next((n for n in untried if n >= guess), untried[-1])
    if not low:
        return next((n for n in reversed(untried) if n <= guess), untried[0])
    return min(untried, key=lambda n: abs(n - guess))


def reaching(table: StrategyTable, samples: float) -> list[str]:
    """The strategies whose largest demo size spends at least `samples` chains of thought by the table's prices,
    so their runs can bracket the adaptive spend (all of them when none can: the table then says so)."""
    pricing = table.pricing()
    unit = pricing.of(table.expected_cost("cot", 1))
    eligible = []
    for name in table.strategies:
        sizes = [n for n in table.sizes(name) if n <= MAX_UNIFORM_SIZE]
        if name != "cot" and sizes and pricing.of(table.expected_cost(name, sizes[-1])) >= samples * unit:
            eligible.append(name)
    return ["cot", *eligible] if eligible else list(table.strategies)


def run_demo(folder: Path | None = None, *, problems: int = 100, budget: int = 8, scorer: str = "none",
             concurrency: int = 8, seed: int = 0, progress: bool = True) -> DemoResult:
    """Serve the sample from a simulated server, run adaptive at `budget` samples per problem, then one chain of
    thought per problem (the unit of spend), then the uniform strategy the planner picks at the adaptive run's
    measured spend, at sizes around it until they bracket it (at most MAX_UNIFORM_RUNS runs in all)."""
    started = time.perf_counter()
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="tts-planner-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()][:problems]
    source = folder / "problems.jsonl"
    source.write_text("".join(json.dumps({k: r[k] for k in INPUT_FIELDS}) + "\n" for r in records), encoding="utf-8")
    with SimServer(sample_path(), seed=seed) as server:
        log.info(f"SIMULATED SGLang server (no model, no GPU) at {server.url}: it answers each of {len(records)} "
                 f"MATH-500 problems at the success rate {DEFAULT_POLICY} measured on it (50 samples); "
                 + ("rewards are synthetic." if scorer != "none" else "no reward model."))
        common = dict(endpoint=server.url, input=source, concurrency=concurrency, progress=progress,
                      scorer=scorer, reward_endpoint=server.url if scorer != "none" else None)
        # Naming the reward model records it in each run's manifest, so `tts-planner report` can price it in FLOPs.
        common["reward_model"] = RunSettings(output=folder / "adaptive.jsonl", **common).reward_model_name
        settings = RunSettings(output=folder / "adaptive.jsonl", budget=budget, **common)
        table = StrategyTable.default(DEFAULT_POLICY, settings.reward_model_name)
        log.info(f"adaptive: the planner predicts each problem's difficulty, probes it, and spends {budget} samples "
                 "per problem on average where they buy the most")
        adaptive = run_batch(settings)

        def run_size(strategy: str, size: int) -> UniformRun:
            name = strategy if size > 1 else "cot"
            log.info(f"uniform: {name}@{size} for every problem")
            report = run_batch(RunSettings(output=folder / f"uniform-{name}@{size}.jsonl", strategy=name, size=size,
                                           **common))
            return UniformRun(name, size, report)

        runs = [run_size("cot", 1)]
        spend = Spend.for_runs([adaptive, runs[0].report])
        target = spend.of(adaptive.summary, adaptive.summary.total)
        samples = target / spend.of(runs[0].report.summary, runs[0].report.summary.total)
        pass_at_1 = load_model(DEFAULT_POLICY).predict([r["problem"] for r in records])
        best = uniform(pass_at_1, table, Budget(max(samples, 1.0)), max_size=MAX_UNIFORM_SIZE,
                       strategies=reaching(table, samples))[0]
        strategy = best.strategy if best.strategy != "cot" else "majority"
        log.info(f"the adaptive run spent {samples:.2f} chains of thought's {spend.unit} per problem; at that budget "
                 f"the planner's best uniform strategy up to size {MAX_UNIFORM_SIZE} is {strategy}")
        sizes = [n for n in family_sizes(table, strategy) if n <= MAX_UNIFORM_SIZE]
        measured = {1: spend.of(runs[0].report.summary, runs[0].report.summary.total)}
        size = best.size if best.size in sizes and best.size > 1 else next_size(sizes, measured, target)
        while size is not None and len(runs) < MAX_UNIFORM_RUNS:
            runs.append(run_size(strategy, size))
            measured[size] = spend.of(runs[-1].report.summary, runs[-1].report.summary.total)
            size = next_size(sizes, measured, target)
        spend = Spend.for_runs([adaptive] + [r.report for r in runs])
        target = spend.of(adaptive.summary, adaptive.summary.total)
    return DemoResult(folder, adaptive, runs, spend, match_spend(runs, spend, target), time.perf_counter() - started)


def _rows(header: list[str], rows: list[list[str]], first: int = 0) -> list[str]:
    """Right-aligned columns as wide as their widest cell (the first column left-aligned)."""
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    first = max(first, widths[0])
    return ["  ".join([row[0].ljust(first)] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])])
            for row in [header] + rows]


def _spend_text(spend: Spend, value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1e12:,.1f}" if spend.unit == "flops" else f"{value:,.0f}"


def format_demo(result: DemoResult) -> str:
    """The comparison at equal spend, overall and per predicted difficulty, and what each run spent."""
    spend, matched = result.spend, result.matched
    unit = "TFLOPs/problem" if spend.unit == "flops" else "tokens/problem"
    axis = "compute (FLOPs, reward-model reads included)" if spend.unit == "flops" else \
        "tokens (a model's size is unknown, so no FLOPs)"
    a = result.adaptive.summary
    target = spend.of(a, a.total)
    short = "TFLOPs" if spend.unit == "flops" else "tokens"

    def line(label: str, summary: RunSummary, tally: Tally) -> list[str]:
        return [label, f"{tally.accuracy:.3f}", f"{tally.tokens_per_problem:,.0f}",
                _spend_text(spend, spend.of(summary, tally)) if spend.unit == "flops" else "-",
                f"{tally.cost.cache_hit_share:.1%}", f"{summary.wall_time:.1f}"]

    rows = [line("adaptive", a, a.total)]
    rows += [line(f"uniform {run.label}", run.report.summary, run.report.summary.total)
             for run in sorted(result.uniform, key=lambda r: r.size)]
    equal = matched.mix(lambda r: r.report.summary.total.accuracy)
    equal_tokens = matched.mix(lambda r: r.report.summary.total.tokens_per_problem)
    if matched.reached:
        if matched.low is matched.high:
            how = f"uniform {matched.low.label} spends exactly as much"
        else:
            how = (f"uniform {matched.high.label} on {matched.share:.0%} of problems and {matched.low.label} on the "
                   "rest, interpolated between the two runs")
        out = [f"Adaptive against uniform at equal {axis}: {how}, so both spend {_spend_text(spend, target)} "
               f"{unit}.", ""]
        rows.append(["uniform at equal spend", f"{equal:.3f}", f"{equal_tokens:,.0f}",
                     _spend_text(spend, target) if spend.unit == "flops" else "-", "", ""])
        rows.append(["adaptive - equal spend", f"{a.total.accuracy - equal:+.3f}",
                     f"{a.total.tokens_per_problem - equal_tokens:+,.0f}", "", "", ""])
    else:
        near = matched.low.report.summary
        ratio = target / spend.of(near, near.total)
        out = [f"Adaptive against uniform in {axis}: NOT at equal spend. No uniform size the demo runs (up to "
               f"{MAX_UNIFORM_SIZE}) reaches the adaptive run's {_spend_text(spend, target)} {unit}; the nearest, "
               f"{matched.low.label}, spends {1 / ratio:.2f}x as much" + (" (adaptive spends less)." if ratio < 1
                                                                        else f" (adaptive spends {ratio:.1f}x)."), ""]
        rows.append([f"adaptive - {matched.low.label}", f"{a.total.accuracy - equal:+.3f}",
                     f"{a.total.tokens_per_problem - equal_tokens:+,.0f}", "", "", ""])
    out += _rows(["", "accuracy", "tokens/problem", "TFLOPs/problem", "cache hits", "wall s"], rows)

    bins = []
    for name in BINS:
        mine = a.by_difficulty.get(name)
        if mine is None or any(name not in r.report.summary.by_difficulty for r in (matched.low, matched.high)):
            continue
        other = matched.mix(lambda r, b=name: r.report.summary.by_difficulty[b].accuracy)
        other_spend = matched.mix(lambda r, b=name: spend.of(r.report.summary, r.report.summary.by_difficulty[b]))
        bins.append([name, str(mine.problems), f"{mine.accuracy:.3f}", f"{other:.3f}",
                     _spend_text(spend, spend.of(a, mine)), _spend_text(spend, other_spend)])
    if bins:
        what = "uniform at equal spend overall" if matched.reached else f"uniform {matched.low.label}"
        out += ["", f"by predicted difficulty ({what}; per bin each spends what it spends):"]
        out += _rows(["", "problems", "adaptive acc", "uniform acc", f"adaptive {short}", f"uniform {short}"], bins)
    stops = a.stops
    if stops:
        drawn = a.adaptive_samples / sum(stops.values())
        out += ["", "adaptive stopped: " + ", ".join(f"{reason} x{count}" for reason, count in stops.most_common())
                + f"; {drawn:.2f} independent samples drawn per problem, and in all (reward-model reads and any "
                f"search included) the {unit.split('/')[0]} of {_sample_equivalents(result, target):.2f} "
                "chains of thought"]
    files = " ".join(str(result.folder / f) for f in ["adaptive.jsonl"] + [f"uniform-{r.label}.jsonl"
                                                                          for r in result.uniform])
    out += ["", "The server was SIMULATED: accuracies follow the policy's measured success rates, token counts come "
            "from the simulator's own tokenizer, and no model ran.",
            f"Results and outcome records are in {result.folder}; see them with",
            f"  tts-planner report {files}",
            f"Demo wall time {result.wall_time:.1f} s."]
    return "\n".join(out)


def _sample_equivalents(result: DemoResult, target: float) -> float:
    """The adaptive spend per problem over one chain of thought's (the cot run's, prompt included)."""
    s = result.uniform[0].report.summary
    return target / result.spend.of(s, s.total)
