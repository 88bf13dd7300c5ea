"""The report's plots as a reader sees them: tick labels that never collide on narrow or wide cost ranges, enough
of them to read a value, point labels that do not overlap, a legend outside the data, no giant intervals for
tiny bins, FLOPs on the cost axis when the runs' model sizes are known, and a calibration plot that tiny bins do
not dominate. Figures are drawn with the real matplotlib and the PNGs written for a person to open."""

import json

import numpy as np
import pytest
from conftest import png_size, result_line, write_lines

from planner.report import make_report, read_results
from planner.report.inputs import label_runs
from planner.report.numbers import calibration, summarize
from planner.report.plots import draw_accuracy, draw_calibration, matplotlib_drawing

POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"


def figure_of(draw):
    figure_class, canvas_class = matplotlib_drawing()
    figure = figure_class(figsize=(11, 8), layout="constrained")
    canvas = canvas_class(figure)
    draw(figure)
    canvas.draw()
    return figure, canvas.get_renderer()


def accuracy_figure(paths):
    runs = [run for path in paths for run in read_results(path)]
    label_runs(runs)
    return figure_of(lambda fig: draw_accuracy(fig, runs, summarize(runs)))


def overlapping(boxes) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def tick_boxes(ax, renderer):
    return [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()
            and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]


def sweep(tmp_path, items, sizes, tokens_per_size, strategy="majority", reward_tokens=0):
    paths = []
    for size in sizes:
        records = [result_line(pid, p, strategy, size, (i + size) % 3 != 0, int(tokens_per_size(size)))
                   for i, (pid, p) in enumerate(items)]
        paths.append(write_lines(tmp_path / f"{strategy}@{size}.jsonl", records))
    return paths


ITEMS = [(f"p{i}", p) for i, p in enumerate(np.linspace(0.02, 0.98, 60).round(4))]


def test_narrow_cost_range_gets_linear_readable_ticks(tmp_path):
    """The issue: 1.3k to 1.6k tokens on a log axis printed '1.3x10^3 1.4x10^3 1.5x10^31.6x10^1.7x10...'."""
    paths = sweep(tmp_path, ITEMS, (3, 4, 5, 6), lambda n: 1000 + 100 * n)
    figure, renderer = accuracy_figure(paths)
    for ax in figure.axes:
        boxes = tick_boxes(ax, renderer)
        if not boxes:
            continue  # an empty bin's panel
        assert ax.get_xscale() == "linear" and len(boxes) >= 3 and not overlapping(boxes)
        assert all("10^" not in t.get_text() and "times" not in t.get_text() for t in ax.get_xticklabels())


def test_wide_cost_range_gets_log_ticks_that_do_not_collide(tmp_path):
    paths = sweep(tmp_path, ITEMS, (1, 4, 16, 64, 256), lambda n: 200 + 600 * n)
    figure, renderer = accuracy_figure(paths)
    panels = [ax for ax in figure.axes if tick_boxes(ax, renderer)]
    assert panels
    for ax in panels:
        boxes = tick_boxes(ax, renderer)
        assert ax.get_xscale() == "log" and len(boxes) >= 3 and not overlapping(boxes)


def test_point_labels_do_not_overlap_and_the_legend_is_outside_the_panels(tmp_path):
    """Two strategies at the same sizes and costs once printed '2 2' on top of each other."""
    paths = sweep(tmp_path, ITEMS, (2, 4, 8), lambda n: 300 * n, strategy="best_of_n")
    paths += sweep(tmp_path, ITEMS, (2, 4, 8), lambda n: 300 * n, strategy="weighted_vote")
    figure, renderer = accuracy_figure(paths)
    for ax in figure.axes:
        assert ax.get_legend() is None
        tags = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() != "no problems in this bin"]
        assert not overlapping(tags)
    assert len(figure.legends) == 1
    legend = figure.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in figure.axes)


def test_tiny_bins_get_no_interval_and_the_axis_follows_the_data(tmp_path):
    """The issue: a bin of a few problems drew a bar from 0 to 0.66."""
    few = [("a", 0.3), ("b", 0.35), ("c", 0.4)]  # three medium problems, two right in each run
    paths = []
    for size in (4, 8):
        records = [result_line(pid, p, "majority", size, pid != "c", 600 * size) for pid, p in few]
        paths.append(write_lines(tmp_path / f"majority@{size}.jsonl", records))
    figure, _ = accuracy_figure(paths)
    medium = next(ax for ax in figure.axes if ax.get_title().startswith("medium"))
    assert not [c for c in medium.containers if c.__class__.__name__ == "ErrorbarContainer"]
    low, high = medium.get_ylim()
    assert low > 0.5 and high < 0.8  # both points are at 2/3


def test_cost_axis_is_in_flops_when_sizes_are_known_and_in_tokens_otherwise(tmp_path):
    paths = sweep(tmp_path, ITEMS, (4, 8), lambda n: 600 * n)
    figure, _ = accuracy_figure(paths)
    assert figure.axes[0].get_xlabel().startswith("mean TFLOPs per problem")
    # a reward model read tokens, and the run does not say which one: FLOPs are unknown
    scored = []
    for pid, p in ITEMS:
        record = result_line(pid, p, "best_of_n", 4, True, 3000)
        record["cost"] = {**record["cost"], "reward_tokens": 500, "tokens": record["cost"]["tokens"] + 500}
        scored.append(record)
    path = write_lines(tmp_path / "scored.jsonl", scored)
    figure, _ = accuracy_figure([path])
    assert "FLOPs unknown" in figure.axes[0].get_xlabel()
    # the run's manifest names the reward model: FLOPs again, the reward model priced at its own size
    (tmp_path / "scored.jsonl.run.json").write_text(json.dumps({"settings": {
        "policy": POLICY, "reward_model": "Qwen/Qwen2.5-Math-RM-72B", "scorer": "orm"}}), encoding="utf-8")
    runs = read_results(path)
    line = runs[0].lines[0]
    assert line.flops == pytest.approx(2 * (1.54e9 * (line.tokens - 500) + 72.7e9 * 500))
    figure, _ = accuracy_figure([path])
    assert figure.axes[0].get_xlabel().startswith("mean TFLOPs per problem")


def test_calibration_plot_keeps_tiny_bins_out_of_the_way(tmp_path):
    lines = [result_line(f"p{i}", p, "cot", 1, i % 2 == 0, 400) for i, p in enumerate(np.linspace(0.55, 0.95, 40))]
    lines += [result_line("lonely", 0.05, "cot", 1, True, 400)]  # one problem in the lowest bin, observed 1.0
    path = write_lines(tmp_path / "cot.jsonl", lines)
    runs = read_results(path)
    label_runs(runs)
    calib = calibration(runs, {})
    figure, _ = figure_of(lambda fig: draw_calibration(fig, calib))
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "bin of fewer than 5 problems" in labels
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # legend beside the plot
    files = make_report([path], tmp_path / "report")
    assert png_size(files.calibration_png)[0] >= 600 and png_size(files.accuracy_png)[0] >= 600
