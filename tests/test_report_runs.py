"""`tts-planner report` on what `tts-planner run` really writes: an adaptive run and a uniform majority run of
the same 16 problems against the stand-in server, reported side by side."""

import numpy as np
import pytest
from conftest import SAMPLE, lines, markdown_tables, png_size, settings, write_problems

from planner.report import make_report
from planner.strategies import sampling_strategies
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import ThinkingParams


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    write_problems(folder / "problems.jsonl", 16)
    with SimServer(SAMPLE, seed=11) as sim:
        run_batch(settings(sim.url, folder, strategy=None, size=None, budget=4, output=folder / "adaptive.jsonl"))
        run_batch(settings(sim.url, folder, output=folder / "majority4.jsonl"))
    return folder


def test_report_of_an_adaptive_and_a_uniform_run(runs, tmp_path):
    files = make_report([runs / "adaptive.jsonl", runs / "majority4.jsonl"], tmp_path)
    assert png_size(files.accuracy_png)[0] >= 600 and png_size(files.calibration_png)[0] >= 600
    text = files.markdown.read_text(encoding="utf-8")
    inputs, accuracy, mix, calibration = markdown_tables(text)
    assert {(r["run"], r["method"]) for r in inputs} == {("adaptive", "adaptive"), ("majority4", "majority")}
    for row in accuracy:
        result = [x for x in lines(runs / f"{row['run']}.jsonl")
                  if row["bin"] == "all" or x["prediction"]["difficulty"] == row["bin"]]
        assert int(row["problems"]) == len(result)
        assert float(row["accuracy"]) == pytest.approx(np.mean([x["correct"] for x in result]), abs=5e-5)
        assert float(row["mean tokens"]) == pytest.approx(np.mean([x["cost"]["tokens"] for x in result]), abs=0.05)
        assert float(row["expected accuracy"]) == pytest.approx(
            np.mean([x["plan"]["expected_accuracy"] for x in result]), abs=5e-5)
    adaptive = lines(runs / "adaptive.jsonl")
    assert sum(int(r["problems"]) for r in mix) == len(adaptive)
    assert {r["strategy"] for r in mix} == {x["plan"]["adaptive"]["chosen_by"] for x in adaptive}
    records = [r for name in ("adaptive", "majority4") for r in lines(runs / f"{name}.jsonl.outcomes.jsonl")]
    assert sum(int(r["observations"]) for r in calibration) == sum(r["strategy"] in sampling_strategies()
                                                                    for r in records)
    assert sum(int(r["problems"]) for r in calibration) == 16


def test_report_of_a_thinking_run_shows_thinking_and_answer_tokens_apart(runs, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 6)
    short = ThinkingParams(easy_median_tokens=600, hard_median_tokens=2400)
    with SimServer(SAMPLE, seed=11, thinking=True, thinking_params=short) as sim:
        run_batch(settings(sim.url, tmp_path, output=tmp_path / "thinking.jsonl"))  # majority@4
    files = make_report([tmp_path / "thinking.jsonl", runs / "majority4.jsonl"], tmp_path / "report")
    inputs, accuracy, thinking, calibration = markdown_tables(files.markdown.read_text(encoding="utf-8"))
    assert {r["run"] for r in thinking} == {"thinking"}  # the plain run says nothing of thinking
    written = lines(tmp_path / "thinking.jsonl")
    for row in thinking:
        result = [x for x in written if row["bin"] == "all" or x["prediction"]["difficulty"] == row["bin"]]
        generated = np.mean([x["cost"]["completion_tokens"] for x in result])
        spent = np.mean([x["thinking_tokens"] for x in result])
        assert 0 < spent < generated
        assert float(row["generated"]) == pytest.approx(generated, abs=0.051)
        assert float(row["thinking"]) == pytest.approx(spent, abs=0.051)
        assert float(row["answering"]) == pytest.approx(generated - spent, abs=0.1)
