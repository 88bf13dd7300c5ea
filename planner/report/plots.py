"""The report's plots, drawn with matplotlib's object API (no pyplot: no global state, no display)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from planner.errors import PlannerError
from planner.files import atomic_path
from planner.report.inputs import Run
from planner.report.numbers import PANELS, Calibration, Summary


def matplotlib_drawing():
    """matplotlib's Figure and Agg canvas (no pyplot: no global state, no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlannerError('the report draws with matplotlib, which is not installed: '
                           'pip install "tts-planner[report]"') from exc
    return Figure, FigureCanvasAgg


def save(drawing, path: Path, draw: Callable) -> None:
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


