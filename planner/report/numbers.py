"""The numbers behind the report: accuracy and cost per run and difficulty bin, how adaptive runs chose their
answers, and predicted against observed pass@1.

Observed pass@1 comes from independent samples only: outcome records (each sample of a strategy whose branches
are samples of the policy, and an adaptive run's probe and rounds, labeled with the strategy that drew them),
and the answers of cot runs. Branches of beam search, DVTS and the particle filter are selected by a reward
model, so they are not samples of pass@1 and are left out. Without any independent sample the calibration falls
back to the final answers' correctness, and says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.difficulty import BINS
from planner.report.inputs import OutcomeTally, ReportLine, Run
from planner.strategies import REGISTRY

PANELS = ("all",) + BINS
Z95 = 1.959964


@dataclass
class Summary:
    """One run on one panel (all problems, or one bin)."""

    label: str
    method: str
    panel: str
    problems: int
    judged: int  # lines with a `correct` field
    correct: int
    failed: int
    mean_tokens: float
    mean_flops: float | None  # None when any line's FLOPs are unknown (a model's size)
    expected_accuracy: float | None
    expected_cost: float | None
    mean_generated: float = 0.0
    mean_thinking: float | None = None  # None when no line says what it spent thinking

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.correct, self.judged) if self.judged else None



@dataclass
class CalibrationBin:
    low: float
    high: float
    problems: int
    samples: int
    mean_predicted: float
    mean_observed: float
    stderr: float


@dataclass
class Calibration:
    """Predicted against observed pass@1, per problem and binned."""

    source: str  # "samples" (independent samples) or "final answers" (fallback)
    predicted: np.ndarray
    observed: np.ndarray
    samples: np.ndarray
    bins: list[CalibrationBin] = field(default_factory=list)

    @property
    def mean_abs_error(self) -> float:
        """Mean |predicted - observed| over bins, weighted by problems (expected calibration error)."""
        total = sum(b.problems for b in self.bins)
        return sum(b.problems * abs(b.mean_predicted - b.mean_observed) for b in self.bins) / total

    @property
    def spearman(self) -> float | None:
        from scipy.stats import spearmanr

        if len(self.predicted) < 3 or np.ptp(self.predicted) == 0 or np.ptp(self.observed) == 0:
            return None
        return float(spearmanr(self.predicted, self.observed).statistic)



def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval: stays inside [0, 1] and is sane at k = 0 or k = n, unlike the normal one."""
    p = k / n
    scale = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return max(0.0, center - half), min(1.0, center + half)



def summarize(runs: Sequence[Run]) -> list[Summary]:
    """Per run, all problems and each difficulty bin that has any."""
    rows = []
    for run in runs:
        for panel in PANELS:
            lines = [x for x in run.lines if panel == "all" or x.bin == panel]
            if not lines:
                continue
            judged = [x for x in lines if x.correct is not None]
            expected = [x.expected_accuracy for x in lines if x.expected_accuracy is not None]
            cost = [x.expected_cost for x in lines if x.expected_cost is not None]
            flops = [x.flops for x in lines]
            rows.append(Summary(run.label, run.method, panel, len(lines), len(judged),
                                sum(x.correct for x in judged), sum(x.status == "failed" for x in lines),
                                float(np.mean([x.tokens for x in lines])),
                                None if None in flops else float(np.mean(flops)),
                                float(np.mean(expected)) if len(expected) == len(lines) else None,
                                float(np.mean(cost)) if len(cost) == len(lines) else None,
                                float(np.mean([x.generated for x in lines])),
                                float(np.mean([x.thinking or 0.0 for x in lines]))
                                if any(x.thinking is not None for x in lines) else None))
    return rows


def strategy_mix(runs: Sequence[Run]) -> list[dict]:
    """How adaptive runs chose their answers, per bin and rule."""
    rows = []
    for run in runs:
        if run.method != "adaptive":
            continue
        groups: dict[tuple[str, str], list[ReportLine]] = defaultdict(list)
        for line in run.lines:
            groups[(line.bin or "unknown", line.strategy or "none")].append(line)
        order = {name: i for i, name in enumerate(BINS + ("unknown",))}
        for (bin_name, strategy), lines in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
            judged = [x.correct for x in lines if x.correct is not None]
            rows.append({"label": run.label, "bin": bin_name, "strategy": strategy, "problems": len(lines),
                         "accuracy": sum(judged) / len(judged) if judged else None,
                         "mean_tokens": float(np.mean([x.tokens for x in lines]))})
    return rows


def independent_samples(outcomes: dict[tuple[str, str], OutcomeTally]) -> dict[str, OutcomeTally]:
    """Per problem, the outcome records of the sampling strategies (an adaptive run's records are its probe and
    rounds, labeled with the sampling strategy that drew them)."""
    pooled: dict[str, OutcomeTally] = {}
    for (problem, strategy), tally in outcomes.items():
        if strategy in REGISTRY and REGISTRY[strategy].independent_samples:
            old = pooled.get(problem, OutcomeTally(0, 0))
            pooled[problem] = OutcomeTally(old.correct + tally.correct, old.samples + tally.samples)
    return pooled


def calibration(runs: Sequence[Run], outcomes: dict[tuple[str, str], OutcomeTally],
                bins: int = 10) -> Calibration | None:
    """Each problem's predicted pass@1 against its observed share of correct independent samples, pooled
    over every input; problems without a prediction are left out. None when no problem qualifies."""
    predicted: dict[str, float] = {}
    cot: dict[str, list[bool]] = defaultdict(list)
    final: dict[str, list[bool]] = defaultdict(list)
    for run in runs:
        for line in run.lines:
            if line.pass_at_1 is None:
                continue
            predicted.setdefault(line.problem_id, line.pass_at_1)
            if line.correct is None:
                continue
            final[line.problem_id].append(line.correct)
            if line.strategy == "cot" and not line.adaptive and line.status == "ok":
                cot[line.problem_id].append(line.correct)
    samples = independent_samples(outcomes)
    tallies = {}
    for problem in predicted:
        if problem in samples:
            tallies[problem] = samples[problem]
        elif cot.get(problem):
            tallies[problem] = OutcomeTally(sum(cot[problem]), len(cot[problem]))
    source = "samples"
    if not tallies:
        source = "final answers"
        tallies = {p: OutcomeTally(sum(v), len(v)) for p, v in final.items()}
    if not tallies:
        return None
    problems = list(tallies)
    result = Calibration(source, np.array([predicted[p] for p in problems]),
                         np.array([tallies[p].correct / tallies[p].samples for p in problems]),
                         np.array([tallies[p].samples for p in problems]))
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, result.predicted, side="right") - 1, 0, bins - 1)
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        observed = result.observed[inside]
        spread = float(observed.std(ddof=1) / math.sqrt(observed.size)) if observed.size > 1 else 0.0
        result.bins.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), int(inside.sum()),
                                          int(result.samples[inside].sum()), float(result.predicted[inside].mean()),
                                          float(observed.mean()), spread))
    return result


