"""`tts-planner demo`: the whole product on a laptop, no GPU. A SIMULATED SGLang server (sglang_plugin.sim) starts in
this process on a MATH-500 sample shipped in the package (demo_data/math500_sample.jsonl: 20 problems per level,
each answered at the success rate Qwen2.5-Math-1.5B-Instruct measured on it), then the same problems run twice
through the batch runner at the same budget: once planned by the adaptive planner, once with the one strategy
and size that is best for the whole batch (the `plan` command's uniform baseline). The table compares what
each bought and spent."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from planner.difficulty import BINS
from planner.planning.allocation import Budget, uniform
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY
from planner.prediction.model_store import load_model
from sglang_plugin.runs.batch import RunReport, run_batch
from sglang_plugin.runs.settings import RunSettings
from sglang_plugin.sim.server import SimServer

SAMPLE = "math500_sample.jsonl"
INPUT_FIELDS = ("unique_id", "problem", "answer", "subject", "level")
SCORERS = ("none", "orm", "math_shepherd")


def sample_path() -> Path:
    return Path(str(resources.files("sglang_plugin") / "demo_data" / SAMPLE))


@dataclass
class DemoResult:
    folder: Path
    baseline: str  # e.g. "majority@4"
    adaptive: RunReport
    uniform: RunReport
    wall_time: float


def run_demo(folder: Path | None = None, *, problems: int = 100, budget: int = 8, scorer: str = "none",
             concurrency: int = 8, seed: int = 0, progress: bool = True,
             echo: Callable[[str], object] = print) -> DemoResult:
    """Serve the sample from a simulated server, run adaptive and uniform at `budget` samples per problem."""
    started = time.perf_counter()
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="tts-planner-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()][:problems]
    source = folder / "problems.jsonl"
    source.write_text("".join(json.dumps({k: r[k] for k in INPUT_FIELDS}) + "\n" for r in records), encoding="utf-8")
    with SimServer(sample_path(), seed=seed) as server:
        echo(f"SIMULATED SGLang server (no model, no GPU) at {server.url}: it answers each of {len(records)} MATH-500 "
             f"problems at the success rate {DEFAULT_POLICY} measured on it (50 samples); "
             + ("rewards are synthetic." if scorer != "none" else "no reward model."))
        common = dict(endpoint=server.url, input=source, budget=budget, concurrency=concurrency, progress=progress,
                      scorer=scorer, reward_endpoint=server.url if scorer != "none" else None)
        settings = RunSettings(output=folder / "adaptive.jsonl", **common)
        table = StrategyTable.default(DEFAULT_POLICY, settings.reward_model_name)
        pass_at_1 = load_model(DEFAULT_POLICY).predict([r["problem"] for r in records])
        best = uniform(pass_at_1, table, Budget(budget))[0]
        baseline = f"{best.strategy}@{best.size}"
        echo(f"adaptive: the planner predicts each problem's difficulty, probes it, and spends {budget} samples per "
             "problem on average where they buy the most")
        adaptive = run_batch(settings, echo=echo)
        echo(f"uniform: {baseline} for every problem, the best single strategy for the batch at the same budget")
        same = run_batch(RunSettings(output=folder / "uniform.jsonl", strategy=best.strategy, size=best.size, **common),
                         echo=echo)
    return DemoResult(folder, baseline, adaptive, same, time.perf_counter() - started)


def format_demo(result: DemoResult) -> str:
    rows = [("adaptive", result.adaptive), (f"uniform {result.baseline}", result.uniform)]
    out = [f"{'':<20}{'accuracy':>9}{'tokens/problem':>16}{'TFLOPs/problem':>16}{'cache hits':>12}{'wall s':>8}"]
    for label, report in rows:
        s = report.summary
        flops = s.flops_per_problem(s.total)
        out.append(f"{label:<20}{s.total.accuracy:>9.3f}{s.total.tokens_per_problem:>16,.0f}"
                   f"{(flops or 0) / 1e12:>16.2f}{s.total.cost.cache_hit_share:>12.1%}{s.wall_time:>8.1f}")
    a, u = result.adaptive.summary.total, result.uniform.summary.total
    saved = 1 - a.tokens_per_problem / u.tokens_per_problem if u.tokens_per_problem else 0.0
    share = f"{saved:.0%} fewer tokens" if saved >= 0 else f"{-saved:.0%} more tokens"
    out.append(f"{'difference':<20}{a.accuracy - u.accuracy:>+9.3f}"
               f"{a.tokens_per_problem - u.tokens_per_problem:>+16,.0f}   ({share})")
    out += ["", f"{'by predicted difficulty':<24}{'problems':>9}{'adaptive acc':>14}{'uniform acc':>13}"
                f"{'adaptive tok':>14}{'uniform tok':>13}"]
    for name in BINS:
        x, y = result.adaptive.summary.by_difficulty.get(name), result.uniform.summary.by_difficulty.get(name)
        if x is None or y is None:
            continue
        out.append(f"{name:<24}{x.problems:>9}{x.accuracy:>14.3f}{y.accuracy:>13.3f}{x.tokens_per_problem:>14,.0f}"
                   f"{y.tokens_per_problem:>13,.0f}")
    stops = result.adaptive.summary.stops
    if stops:
        out += ["", "adaptive stopped: " + ", ".join(f"{reason} x{count}" for reason, count in stops.most_common())
                + f" ({result.adaptive.summary.adaptive_samples / sum(stops.values()):.2f} samples per problem)"]
    out += ["", "The server was SIMULATED: accuracies follow the policy's measured success rates, token counts come "
            "from the simulator's own tokenizer, and no model ran.",
            f"Results and outcome records are in {result.folder}; see them with",
            f"  tts-planner report {result.folder / 'adaptive.jsonl'} {result.folder / 'uniform.jsonl'}",
            f"Demo wall time {result.wall_time:.1f} s."]
    return "\n".join(out)
