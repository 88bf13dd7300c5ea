"""`tts-planner report`: what a run bought for what it spent, and whether the predictor's pass@1 held up.

Reads result files (one line per problem, as `tts-planner run` and `tts-planner calibrate` write them) and
optional per-sample outcome records, then writes, into one folder:

- `accuracy_vs_cost.png`: accuracy against mean tokens per problem, one series per method (adaptive, and
  each uniform strategy across its sizes), one panel per difficulty bin and one for all problems;
- `calibration.png`: predicted pass@1 against the pass@1 observed on the same problems, binned;
- `report.md`: the numbers behind both plots, beside them.

A file holds one or more runs ("arms"): adaptive lines form one arm, and every other line falls in the arm
of its strategy and size (`majority@8`), so a calibration sweep's log reports each point of its grid. A run
is labeled by its file name, plus the arm when a file holds several. Within a run, a problem that appears
more than once (files concatenated by hand) counts once, by its last line. An adaptive line's strategy is
the rule that chose its answer (`plan.chosen_by`).

Observed pass@1 comes from independent samples only: outcome records of the sampling strategies (each
branch of cot, majority, best_of_n or weighted_vote is one sample from the policy; an adaptive run's records
are its probe and rounds, labeled with the strategy that drew them), and the answers of cot runs. Branches
of beam search, DVTS and the particle filter are selected by a reward model, so they are not samples of
pass@1 and are left out. Without any independent sample the plot falls back to the final
answers' correctness, and says so.

This module does not import sglang; matplotlib is imported only to draw.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from planner.difficulty import BINS, difficulty_bin
from planner.errors import InputError, PlannerError
from planner.files import atomic_path
from planner.jsonl import read_jsonl

ACCURACY_PNG = "accuracy_vs_cost.png"
CALIBRATION_PNG = "calibration.png"
REPORT_MD = "report.md"
# Branches of these strategies are independent samples of the policy at the run's temperature.
SAMPLING_STRATEGIES = frozenset({"cot", "majority", "best_of_n", "weighted_vote"})
OUTCOMES_SUFFIX = ".outcomes.jsonl"
STATUSES = ("ok", "failed")
PANELS = ("all",) + BINS
Z95 = 1.959964


@dataclass(frozen=True)
class ResultLine:
    """The fields of one result line the report reads (contract 2 of the runner)."""

    line: int
    problem_id: str
    status: str
    strategy: str | None  # executed; for adaptive lines the rule that chose the answer
    size: int | None
    adaptive: bool
    budget: float | None
    correct: bool | None
    tokens: float
    pass_at_1: float | None
    difficulty: str | None
    expected_accuracy: float | None
    expected_cost: float | None

    @property
    def bin(self) -> str | None:
        if self.difficulty is not None:
            return self.difficulty
        return difficulty_bin(self.pass_at_1) if self.pass_at_1 is not None else None


@dataclass
class Run:
    """The lines of one arm of one file, a problem's last line only."""

    path: str
    arm: str
    method: str  # the series it is drawn in: "adaptive", a strategy name, or "mixed"
    lines: list[ResultLine]
    superseded: int = 0  # earlier lines of a problem that appears more than once
    label: str = ""

    @property
    def budget(self) -> float | None:
        budgets = {line.budget for line in self.lines}
        return budgets.pop() if len(budgets) == 1 else None


@dataclass(frozen=True)
class OutcomeTally:
    """Independent samples of one problem: how many, and how many were right."""

    correct: int
    samples: int


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
    expected_accuracy: float | None
    expected_cost: float | None

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


# ------------------------------------------------------------------------------------------------ reading

def read_results(path: str | os.PathLike) -> list[Run]:
    """The runs of one result file; every bad line raises an InputError naming file, line and field."""
    name = str(path)
    arms: dict[str, dict[str, ResultLine]] = defaultdict(dict)
    methods: dict[str, str] = {}
    repeats: Counter[str] = Counter()
    count = 0
    for number, record in read_jsonl(path):
        count += 1
        line = parse_result_line(record, name, number)
        arm, method = _arm_of(line)
        if line.problem_id in arms[arm]:
            repeats[arm] += 1
        arms[arm][line.problem_id] = line
        methods[arm] = method
    if count == 0:
        raise InputError("no result lines (the file is empty)", path=name)
    return [Run(name, arm, methods[arm], list(lines.values()), repeats[arm]) for arm, lines in arms.items()]


def parse_result_line(record: dict, path: str, line: int) -> ResultLine:
    def fail(message: str, where: str) -> InputError:
        return InputError(message, path=path, line=line, field=where)

    if "cost" not in record and "branch" in record:
        raise InputError("this looks like a per-sample outcome record, not a result line; pass outcome "
                         "files with --outcomes", path=path, line=line)
    for key in ("problem_id", "status", "cost"):
        if key not in record:
            raise fail("missing (is this a result file from `tts-planner run`?)", key)
    problem_id = record["problem_id"]
    if isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)) or str(problem_id) == "":
        raise fail(f"expected a non-empty string, got {_show(problem_id)}", "problem_id")
    status = record["status"]
    if status not in STATUSES:
        raise fail(f"expected one of {', '.join(STATUSES)}, got {_show(status)}", "status")
    correct = record.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise fail(f"expected true or false, got {_show(correct)}", "correct")
    cost = record["cost"]
    if not isinstance(cost, dict):
        raise fail(f"expected an object, got {_show(cost)}", "cost")
    tokens = _number(cost.get("tokens"), fail, "cost.tokens", low=0.0)
    strategy = record.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise fail(f"expected a strategy name, got {_show(strategy)}", "strategy")
    plan = _object(record.get("plan"), fail, "plan")
    prediction = _object(record.get("prediction"), fail, "prediction")
    size = plan.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise fail(f"expected a positive integer, got {_show(size)}", "plan.size")
    p = prediction.get("pass_at_1")
    p = None if p is None else _number(p, fail, "prediction.pass_at_1", low=0.0, high=1.0)
    difficulty = prediction.get("difficulty")
    if difficulty is not None and difficulty not in BINS:
        raise fail(f"expected one of {', '.join(BINS)}, got {_show(difficulty)}", "prediction.difficulty")
    optional = {key: None if plan.get(key) is None else _number(plan[key], fail, f"plan.{key}", low=0.0)
                for key in ("expected_accuracy", "expected_cost", "budget")}
    adaptive = is_adaptive(plan)
    if adaptive and isinstance(plan.get("chosen_by"), str):
        strategy = plan["chosen_by"]
    return ResultLine(line, str(problem_id), status, strategy or plan.get("strategy"), size, adaptive,
                      optional["budget"], correct, tokens, p, difficulty, optional["expected_accuracy"],
                      optional["expected_cost"])


def is_adaptive(plan: dict) -> bool:
    """Adaptive solves say so in their plan (contract 1: `plan.adaptive`)."""
    return bool(plan.get("adaptive"))


def _arm_of(line: ResultLine) -> tuple[str, str]:
    if line.adaptive:
        return "adaptive", "adaptive"
    if line.strategy is None:
        return "unknown", "mixed"
    return (f"{line.strategy}@{line.size}" if line.size is not None else line.strategy), line.strategy


def _object(value, fail, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"expected an object or null, got {_show(value)}", where)
    return value


def _number(value, fail, where: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"expected a number, got {_show(value)}", where)
    if not low <= value <= high:
        raise fail(f"{value} is outside [{low}, {high}]", where)
    return float(value)


def _show(value) -> str:
    import json

    return json.dumps(value)[:40]


def read_outcomes(path: str | os.PathLike) -> dict[tuple[str, str], OutcomeTally]:
    """Per-sample outcome records (contract 3 of the runner) tallied by problem and strategy."""
    name = str(path)
    correct: Counter[tuple[str, str]] = Counter()
    samples: Counter[tuple[str, str]] = Counter()
    count = 0
    for number, record in read_jsonl(path):
        count += 1
        for key in ("problem_id", "strategy", "correct"):
            if key not in record:
                raise InputError("missing (is this an outcome file from `tts-planner run`?)", path=name,
                                 line=number, field=key)
        if not isinstance(record["correct"], bool):
            raise InputError(f"expected true or false, got {_show(record['correct'])}", path=name, line=number,
                             field="correct")
        key = (str(record["problem_id"]), str(record["strategy"]))
        samples[key] += 1
        correct[key] += record["correct"]
    if count == 0:
        raise InputError("no outcome records (the file is empty)", path=name)
    return {key: OutcomeTally(correct[key], samples[key]) for key in samples}


def _is_outcome_file(path: str | os.PathLike) -> bool:
    return Path(path).name.endswith(OUTCOMES_SUFFIX)


def outcome_files_beside(result_path: str | os.PathLike) -> list[Path]:
    """The outcome records `tts-planner run` writes next to a result file, if they are there."""
    path = Path(result_path)
    candidates = {path.with_name(path.name + OUTCOMES_SUFFIX), path.with_suffix(OUTCOMES_SUFFIX)}
    return sorted(c for c in candidates if c.is_file())


def label_runs(runs: list[Run]) -> None:
    """File name, plus the arm when a file holds several; the path when two files share a name."""
    by_file: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_file[run.path].append(run)
    stems = Counter(Path(p).stem for p in by_file)
    for path, file_runs in by_file.items():
        base = Path(path).stem if stems[Path(path).stem] == 1 else path
        for run in file_runs:
            run.label = base if len(file_runs) == 1 else f"{base}:{run.arm}"


# ------------------------------------------------------------------------------------------------ numbers

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
            rows.append(Summary(run.label, run.method, panel, len(lines), len(judged),
                                sum(x.correct for x in judged), sum(x.status == "failed" for x in lines),
                                float(np.mean([x.tokens for x in lines])),
                                float(np.mean(expected)) if len(expected) == len(lines) else None,
                                float(np.mean(cost)) if len(cost) == len(lines) else None))
    return rows


def strategy_mix(runs: Sequence[Run]) -> list[dict]:
    """How adaptive runs chose their answers, per bin and rule."""
    rows = []
    for run in runs:
        if run.method != "adaptive":
            continue
        groups: dict[tuple[str, str], list[ResultLine]] = defaultdict(list)
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
        if strategy in SAMPLING_STRATEGIES:
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


# ------------------------------------------------------------------------------------------------ writing

@dataclass
class ReportFiles:
    markdown: Path
    accuracy_png: Path
    calibration_png: Path | None


def make_report(result_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                outcome_paths: Iterable[str | os.PathLike] = (), calibration_bins: int = 10) -> ReportFiles:
    """Read the inputs, then write the plots and report.md (each atomically) into `output_dir`."""
    if not result_paths:
        raise InputError("give at least one result file")
    drawing = _matplotlib()
    outcome_paths = [Path(p) for p in outcome_paths] + [Path(p) for p in result_paths if _is_outcome_file(p)]
    result_paths = [p for p in result_paths if not _is_outcome_file(p)]
    if not result_paths:
        raise InputError("every file given is an outcome file (*.outcomes.jsonl); give the result files too")
    runs: list[Run] = []
    for path in result_paths:
        runs += read_results(path)
    label_runs(runs)
    outcome_files = list(dict.fromkeys([Path(p) for p in outcome_paths]
                                       + [p for r in result_paths for p in outcome_files_beside(r)]))
    outcomes: dict[tuple[str, str], OutcomeTally] = {}
    for path in outcome_files:
        for key, tally in read_outcomes(path).items():
            old = outcomes.get(key, OutcomeTally(0, 0))
            outcomes[key] = OutcomeTally(old.correct + tally.correct, old.samples + tally.samples)
    rows = summarize(runs)
    if not any(r.judged for r in rows):
        raise InputError("no result line has a 'correct' field, so there is no accuracy to report (the input "
                         "problems need a reference 'answer')", path=", ".join(str(p) for p in result_paths))
    calib = calibration(runs, outcomes, calibration_bins)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / REPORT_MD, out / ACCURACY_PNG, out / CALIBRATION_PNG if calib else None)
    _save(drawing, files.accuracy_png, lambda fig: draw_accuracy(fig, runs, rows))
    if calib is not None:
        _save(drawing, files.calibration_png, lambda fig: draw_calibration(fig, calib))
    text = markdown(runs, rows, strategy_mix(runs), calib, [str(p) for p in outcome_files], files)
    with atomic_path(files.markdown) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return files


def _matplotlib():
    """matplotlib's Figure and Agg canvas (no pyplot: no global state, no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlannerError('the report draws with matplotlib, which is not installed: '
                           'pip install "tts-planner[report]"') from exc
    return Figure, FigureCanvasAgg


def _save(drawing, path: Path, draw: Callable) -> None:
    figure_class, canvas_class = drawing
    figure = figure_class(figsize=(11, 8), layout="constrained")
    canvas_class(figure)
    draw(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def _series(runs: Sequence[Run], rows: Sequence[Summary], panel: str) -> dict[str, list[tuple[Summary, Run]]]:
    by_label = {r.label: r for r in runs}
    series: dict[str, list[tuple[Summary, Run]]] = defaultdict(list)
    for row in rows:
        if row.panel == panel and row.judged:
            series[row.method].append((row, by_label[row.label]))
    return {m: sorted(points, key=lambda p: p[0].mean_tokens) for m, points in series.items()}


def _point_tag(run: Run) -> str:
    if run.method == "adaptive":
        return f"B={run.budget:g}" if run.budget is not None else run.label
    return run.arm.split("@", 1)[1] if "@" in run.arm else run.label


def draw_accuracy(figure, runs: Sequence[Run], rows: Sequence[Summary]) -> None:
    axes = figure.subplots(2, 2).ravel()
    methods = sorted({r.method for r in runs}, key=lambda m: (m != "adaptive", m))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    tokens = [r.mean_tokens for r in rows if r.judged and r.mean_tokens > 0]
    log_x = bool(tokens) and max(tokens) / min(tokens) > 4
    for ax, panel in zip(axes, PANELS):
        series = _series(runs, rows, panel)
        for method, points in series.items():
            x = [row.mean_tokens for row, _ in points]
            y = [row.accuracy for row, _ in points]
            low = [max(0.0, row.accuracy - row.interval[0]) for row, _ in points]
            high = [max(0.0, row.interval[1] - row.accuracy) for row, _ in points]
            ax.errorbar(x, y, yerr=[low, high], color=colors[method], marker="o" if method != "adaptive" else "*",
                        markersize=6 if method != "adaptive" else 11, linewidth=2.2 if method == "adaptive" else 1.2,
                        capsize=2, label=method)
            for (row, run), xi, yi in zip(points, x, y):
                ax.annotate(_point_tag(run), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
        problems = max((row.problems for pts in series.values() for row, _ in pts), default=0)
        ax.set_title(_panel_title(panel, problems), fontsize=10)
        ax.set_xlabel("mean tokens per problem")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        if log_x and series:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no problems in this bin", ha="center", va="center", transform=ax.transAxes)
    figure.suptitle("Accuracy against cost: tokens are generated + uncached prompt + reward-model tokens; "
                    "bars are 95% Wilson intervals")


def _panel_title(panel: str, problems: int) -> str:
    names = {"all": "all problems", "easy": "easy (predicted pass@1 >= 0.5)",
             "medium": "medium (0.1 <= predicted pass@1 < 0.5)", "hard": "hard (predicted pass@1 < 0.1)"}
    return f"{names[panel]}, up to {problems} problems per run" if problems else names[panel]


def draw_calibration(figure, calib: Calibration) -> None:
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.scatter(calib.predicted, calib.observed, s=8, alpha=0.25, color="C0", label="one problem")
    x = [b.mean_predicted for b in calib.bins]
    y = [b.mean_observed for b in calib.bins]
    sizes = [20 + 180 * b.problems / max(b.problems for b in calib.bins) for b in calib.bins]
    ax.errorbar(x, y, yerr=[b.stderr for b in calib.bins], fmt="none", ecolor="C3", capsize=3)
    ax.scatter(x, y, s=sizes, color="C3", zorder=3, label="bin mean (size: problems)")
    for b in calib.bins:
        ax.annotate(str(b.problems), (b.mean_predicted, b.mean_observed), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    observed = ("observed pass@1 (share of correct independent samples)" if calib.source == "samples" else
                "observed final-answer accuracy (no independent samples in the inputs: not pass@1)")
    ax.set_xlabel("predicted pass@1")
    ax.set_ylabel(observed)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    rho = calib.spearman
    ax.set_title(f"Predicted against observed, {len(calib.predicted)} problems; weighted mean |error| "
                 f"{calib.mean_abs_error:.3f}" + (f", Spearman {rho:.3f}" if rho is not None else ""))


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def markdown(runs: Sequence[Run], rows: Sequence[Summary], mix: Sequence[dict], calib: Calibration | None,
             outcome_files: Sequence[str], files: ReportFiles) -> str:
    out = ["# tts-planner report", "", "## Inputs", ""]
    out += _table(("run", "file", "arm", "method", "problems", "failed", "superseded lines"),
                  ((r.label, r.path, r.arm, r.method, len(r.lines), sum(x.status == "failed" for x in r.lines),
                    r.superseded) for r in runs))
    if outcome_files:
        out += ["", "Outcome records: " + ", ".join(outcome_files)]
    out += ["", "## Accuracy against cost", "", f"![accuracy against cost]({files.accuracy_png.name})", "",
            "Accuracy is the share of judged lines (with a `correct` field) that are correct; tokens are "
            "`cost.tokens` averaged over every line, failed ones included. Expected values are the plan's.", ""]
    out += _table(("run", "method", "bin", "problems", "judged", "correct", "failed", "accuracy", "95% CI",
                   "mean tokens", "expected accuracy", "expected tokens"),
                  ((r.label, r.method, r.panel, r.problems, r.judged, r.correct, r.failed, _f(r.accuracy, 4),
                    "-" if r.interval is None else f"{r.interval[0]:.3f}-{r.interval[1]:.3f}",
                    _f(r.mean_tokens, 1), _f(r.expected_accuracy, 4), _f(r.expected_cost, 1)) for r in rows))
    if mix:
        out += ["", "## How the adaptive runs chose their answers", "",
                "Per bin, the rule that chose each answer (`plan.chosen_by`: the posterior's most probable "
                "answer, a planned strategy's rule, or a tree search).", ""]
        out += _table(("run", "bin", "strategy", "problems", "accuracy", "mean tokens"),
                      ((m["label"], m["bin"], m["strategy"], m["problems"], _f(m["accuracy"], 4),
                        _f(m["mean_tokens"], 1)) for m in mix))
    out += ["", "## Calibration of the predicted pass@1", ""]
    if calib is None:
        out += ["No result line carries a `prediction.pass_at_1` with an observed outcome: nothing to plot."]
    else:
        what = ("Observed pass@1 is each problem's share of correct independent samples (outcome records of "
                "cot, majority, best_of_n and weighted_vote branches, else its cot answers)."
                if calib.source == "samples" else
                "No independent samples in the inputs: observed is each problem's share of correct final "
                "answers over the runs, which is the strategies' accuracy, not pass@1.")
        rho = calib.spearman
        out += [f"![predicted against observed]({files.calibration_png.name})", "", what, "",
                f"{len(calib.predicted)} problems, {int(calib.samples.sum())} observations; weighted mean "
                f"|predicted - observed| over bins {calib.mean_abs_error:.4f}; Spearman "
                f"{_f(rho, 4)}.", ""]
        out += _table(("predicted pass@1", "problems", "observations", "mean predicted", "mean observed",
                       "std. error"),
                      ((f"{b.low:.1f}-{b.high:.1f}", b.problems, b.samples, f"{b.mean_predicted:.4f}",
                        f"{b.mean_observed:.4f}", f"{b.stderr:.4f}") for b in calib.bins))
    return "\n".join(out) + "\n"


@click.command("report")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RESULTS.jsonl...")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("report"),
              show_default=True, help="Folder for the PNG plots and report.md.")
@click.option("--outcomes", "outcome_paths", multiple=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Per-sample outcome records (repeatable); files named "
              "RESULTS.outcomes.jsonl beside a result file are read without asking.")
@click.option("--calibration-bins", type=click.IntRange(2, 50), default=10, show_default=True,
              help="Equal-width bins of predicted pass@1 in the calibration plot.")
def report_command(results: tuple[Path, ...], output_dir: Path, outcome_paths: tuple[Path, ...],
                   calibration_bins: int) -> None:
    """Plot accuracy against cost and predicted against observed pass@1 from result files.

    Each file (from `tts-planner run` or `tts-planner calibrate`) is labeled by its name; adaptive and uniform
    runs are drawn as separate series, per difficulty bin. report.md beside the plots holds every number.

    \b
    Example:
      tts-planner report adaptive.jsonl majority4.jsonl majority8.jsonl --output-dir report/
    """
    try:
        files = make_report(results, output_dir, outcome_paths, calibration_bins)
    except PlannerError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in (files.accuracy_png, files.calibration_png, files.markdown):
        if path is not None:
            click.echo(f"wrote {path}")
