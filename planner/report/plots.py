"""The report's plots, drawn with matplotlib's object API (no pyplot: no global state, no display)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from planner.errors import PlannerError
from planner.extras import install_hint
from planner.files import atomic_path
from planner.report.inputs import Run
from planner.report.numbers import PANELS, Calibration, Summary


def matplotlib_drawing():
    """matplotlib's Figure and Agg canvas (no pyplot: no global state, no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlannerError("the report draws with matplotlib, which is not installed: "
                           + install_hint("report")) from exc
    return Figure, FigureCanvasAgg


def save(drawing, path: Path, draw: Callable) -> None:
    figure_class, canvas_class = drawing
    figure = figure_class(figsize=(11, 8), layout="constrained")
    canvas_class(figure)
    draw(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


# Fewer judged problems than this: the point is drawn hollow and without its interval (a Wilson interval over a
# handful of problems spans most of [0, 1] and drowns the panel), and the calibration bin is not trusted.
MIN_INTERVAL_PROBLEMS = 10
MIN_CALIBRATION_PROBLEMS = 5
TAG_FONT = 7


def _series(runs: Sequence[Run], rows: Sequence[Summary], panel: str,
            cost: Callable[[Summary], float]) -> dict[str, list[tuple[Summary, Run]]]:
    by_label = {r.label: r for r in runs}
    series: dict[str, list[tuple[Summary, Run]]] = defaultdict(list)
    for row in rows:
        if row.panel == panel and row.judged:
            series[row.method].append((row, by_label[row.label]))
    return {m: sorted(points, key=lambda p: cost(p[0])) for m, points in series.items()}


def _point_tag(run: Run) -> str:
    if run.method == "adaptive":
        return f"B={run.budget:g}" if run.budget is not None else run.label
    return run.arm.split("@", 1)[1] if "@" in run.arm else run.label


def _short(value: float) -> str:
    """A tick label a reader takes in at a glance: 200, 1.5k, 2M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _cost_axis(ax, low: float, high: float) -> None:
    """Log scale with 1-2-5 ticks (fewer over many decades) when the costs span more than 4x, else a linear scale
    with about six ticks; labels are short numbers and minor ticks are unlabeled, so labels never collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    formatter = FuncFormatter(lambda v, _: _short(v))
    if high / low > 4:
        decades = np.log10(high / low)
        subs = (1.0,) if decades > 3 else (1.0, 3.0) if decades > 1.5 else (1.0, 2.0, 5.0)
        ax.set_xscale("log")
        ax.set_xlim(low / 1.25, high * 1.25)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(1, 10)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        pad = max((high - low) * 0.12, high * 0.04)
        ax.set_xlim(max(0.0, low - pad), high + pad)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(formatter)


class _Tags:
    """Point labels placed where they overlap no label already placed in the panel (else left out: report.md
    holds every number)."""

    def __init__(self, ax, figure) -> None:
        self.ax = ax
        box = ax.get_position()
        width, height = figure.get_size_inches() * 72.0
        self.size = (box.width * width, box.height * height)  # the panel in points
        self.placed: list[tuple[float, float, float, float]] = []

    def add(self, text: str, x: float, y: float, color: str) -> None:
        to_axes = self.ax.transScale + self.ax.transLimits
        fx, fy = to_axes.transform((x, y))
        px, py = fx * self.size[0], fy * self.size[1]
        w, h = 0.62 * TAG_FONT * len(text), TAG_FONT + 1
        for dx, dy in ((5, 3), (5, -h - 3), (-5 - w, 3), (-5 - w, -h - 3), (-w / 2, 7), (-w / 2, -h - 8)):
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in self.placed):
                self.placed.append(box)
                self.ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=TAG_FONT,
                                 color=color)
                return


def draw_accuracy(figure, runs: Sequence[Run], rows: Sequence[Summary]) -> None:
    """Accuracy against mean cost per problem, a panel per bin; the cost is FLOPs when every run's model sizes
    are known, tokens otherwise, and the axis label says which."""
    axes = figure.subplots(2, 2).ravel()
    methods = sorted({r.method for r in runs}, key=lambda m: (m != "adaptive", m))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    judged = [r for r in rows if r.judged]
    in_flops = bool(judged) and all(r.mean_flops is not None for r in judged)

    def cost(row: Summary) -> float:
        return row.mean_flops / 1e12 if in_flops else row.mean_tokens

    label = ("mean TFLOPs per problem (2 x parameters per token, reward-model reads included)" if in_flops else
             "mean tokens per problem" + ("" if not judged or all(r.mean_flops is not None for r in judged) else
                                          " (FLOPs unknown: a model's size is not recorded)"))
    handles = {}
    for ax, panel in zip(axes, PANELS):
        series = _series(runs, rows, panel, cost)
        if not series:
            ax.text(0.5, 0.5, "no problems in this bin", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(_panel_title(panel, 0), fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        lows, highs, xs = [], [], []
        for method, points in series.items():
            color, star = colors[method], method == "adaptive"
            x = [cost(row) for row, _ in points]
            y = [row.accuracy for row, _ in points]
            xs += x
            (line,) = ax.plot(x, y, color=color, linewidth=2.2 if star else 1.2, marker="*" if star else "o",
                              markersize=12 if star else 6, zorder=3)
            handles.setdefault(method, line)
            for (row, _), xi, yi in zip(points, x, y):
                if row.judged >= MIN_INTERVAL_PROBLEMS:
                    low, high = row.interval
                    ax.errorbar([xi], [yi], yerr=[[max(0.0, yi - low)], [max(0.0, high - yi)]], color=color, capsize=2, linewidth=1,
                                zorder=2)
                    lows.append(low)
                    highs.append(high)
                else:
                    ax.plot([xi], [yi], marker="*" if star else "o", markersize=12 if star else 6,
                            markerfacecolor="white", markeredgecolor=color, zorder=4)
                lows.append(yi)
                highs.append(yi)
        _cost_axis(ax, min(xs), max(xs))
        bottom, top = max(0.0, min(lows) - 0.05), min(1.0, max(highs) + 0.05)
        ax.set_ylim(bottom - 0.01, top + 0.01)
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
        tags = _Tags(ax, figure)
        for method, points in series.items():
            for row, run in points:
                tags.add(_point_tag(run), cost(row), row.accuracy, colors[method])
        problems = max(row.problems for pts in series.values() for row, _ in pts)
        ax.set_title(_panel_title(panel, problems), fontsize=10)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("accuracy")
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="x", alpha=0.12)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6),
                      fontsize=9, frameon=False)
    figure.suptitle("Accuracy against cost per problem\nbars: 95% Wilson intervals; hollow: fewer than "
                    f"{MIN_INTERVAL_PROBLEMS} problems, no interval; labels: size N, or the adaptive budget B",
                    fontsize=10)


def _panel_title(panel: str, problems: int) -> str:
    names = {"all": "all problems", "easy": "easy (predicted pass@1 >= 0.5)",
             "medium": "medium (0.1 <= predicted pass@1 < 0.5)", "hard": "hard (predicted pass@1 < 0.1)"}
    return f"{names[panel]}, up to {problems} problems per run" if problems else names[panel]


def draw_calibration(figure, calib: Calibration) -> None:
    """Predicted against observed pass@1: every problem faintly, bin means sized by their problems; bins with fewer
    than MIN_CALIBRATION_PROBLEMS problems are hollow, unjoined and without error bars (one problem's observed
    rate says little about its bin)."""
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.scatter(calib.predicted, calib.observed, s=8, alpha=0.25, color="C0", label="one problem")
    trusted = [b for b in calib.bins if b.problems >= MIN_CALIBRATION_PROBLEMS]
    tiny = [b for b in calib.bins if b.problems < MIN_CALIBRATION_PROBLEMS]
    largest = max(b.problems for b in calib.bins)
    if trusted:
        x = [b.mean_predicted for b in trusted]
        y = [b.mean_observed for b in trusted]
        ax.errorbar(x, y, yerr=[b.stderr for b in trusted], fmt="none", ecolor="C3", capsize=3)
        ax.plot(x, y, color="C3", linewidth=1.2, alpha=0.7)
        ax.scatter(x, y, s=[30 + 170 * b.problems / largest for b in trusted], color="C3", zorder=3,
                   label="bin mean (area: problems)")
    if tiny:
        ax.scatter([b.mean_predicted for b in tiny], [b.mean_observed for b in tiny], s=30, facecolors="none",
                   edgecolors="grey", zorder=3, label=f"bin of fewer than {MIN_CALIBRATION_PROBLEMS} problems")
    for b in calib.bins:
        ax.annotate(f"n={b.problems}", (b.mean_predicted, b.mean_observed), textcoords="offset points",
                    xytext=(7, 4), fontsize=8, color="C3" if b.problems >= MIN_CALIBRATION_PROBLEMS else "grey")
    observed = ("observed pass@1 (share of correct independent samples)" if calib.source == "samples" else
                "observed final-answer accuracy (no independent samples in the inputs: not pass@1)")
    ax.set_xlabel("predicted pass@1")
    ax.set_ylabel(observed)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    rho = calib.spearman
    ax.set_title(f"Predicted against observed, {len(calib.predicted)} problems; weighted mean |error| "
                 f"{calib.mean_abs_error:.3f}" + (f", Spearman {rho:.3f}" if rho is not None else ""), fontsize=10)
