"""`tts-planner report` on real result files: real PNGs, markdown numbers that match the inputs, labels,
calibration sources, and errors that name file, line and field."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import markdown_tables, png_size, result_line, uniform_run, write_lines
from conftest import report_problems as problems

from planner.difficulty import difficulty_bin
from planner.errors import InputError, PlannerError
from planner.report import make_report, read_results
from planner.report.numbers import wilson
from sglang_plugin.cli.main import main

ITEMS = problems(60)


def _expected(lines: list[dict], panel: str) -> dict:
    inside = [x for x in lines if panel == "all" or x["prediction"]["difficulty"] == panel]
    judged = [x["correct"] for x in inside if "correct" in x]
    return {"problems": len(inside), "correct": sum(judged), "accuracy": sum(judged) / len(judged),
            "tokens": float(np.mean([x["cost"]["tokens"] for x in inside]))}


@pytest.fixture
def runs(tmp_path):
    """An adaptive run and two uniform majority runs over the same 60 problems, with outcome records beside
    the adaptive one."""
    uniform = {size: uniform_run(tmp_path / f"majority{size}.jsonl", ITEMS, "majority", size, seed=size)
               for size in (4, 8)}
    adaptive = [result_line(pid, p, "majority" if p >= 0.1 else "cot", 8 if 0.1 <= p < 0.5 else 3 if p >= 0.1 else 1,
                            (i % 3 != 0) if p >= 0.1 else False, 900 + 10 * i, adaptive=True, budget=4)
                for i, (pid, p) in enumerate(ITEMS)]
    write_lines(tmp_path / "adaptive.jsonl", adaptive)
    records = [{"problem_id": pid, "problem": f"Problem {pid}", "policy": "Qwen/Qwen2.5-Math-1.5B-Instruct",
                "strategy": "majority", "branch": b, "answer": "7", "correct": b < round(4 * p), "format_version": 2}
               for pid, p in ITEMS for b in range(4)]
    write_lines(tmp_path / "adaptive.jsonl.outcomes.jsonl", records)
    return tmp_path, {"adaptive": adaptive, "majority4": uniform[4], "majority8": uniform[8]}


def test_writes_real_pngs_and_markdown_whose_numbers_match_the_inputs(runs):
    folder, lines = runs
    paths = [folder / f"{name}.jsonl" for name in lines]
    files = make_report(paths, folder / "out")
    for png in (files.accuracy_png, files.calibration_png):
        width, height = png_size(png)
        assert width >= 600 and height >= 400
        assert png.stat().st_size > 20_000
    text = files.markdown.read_text(encoding="utf-8")
    assert "accuracy_vs_cost.png" in text and "calibration.png" in text
    accuracy_table = markdown_tables(text)[1]
    seen = set()
    for row in accuracy_table:
        expected = _expected(lines[row["run"]], row["bin"])
        assert int(row["problems"]) == expected["problems"]
        assert int(row["correct"]) == expected["correct"]
        assert float(row["accuracy"]) == pytest.approx(expected["accuracy"], abs=5e-5)
        assert float(row["mean tokens"]) == pytest.approx(expected["tokens"], abs=0.05)
        low, high = wilson(expected["correct"], expected["problems"])
        assert row["95% CI"] == f"{low:.3f}-{high:.3f}"
        seen.add((row["run"], row["bin"]))
    bins_present = {difficulty_bin(p) for _, p in ITEMS}
    assert seen == {(run, panel) for run in lines for panel in {"all"} | bins_present}
    methods = {row["run"]: row["method"] for row in accuracy_table}
    assert methods == {"adaptive": "adaptive", "majority4": "majority", "majority8": "majority"}


def test_adaptive_mix_counts_the_rule_that_chose_each_answer(runs):
    folder, lines = runs
    files = make_report([folder / "adaptive.jsonl"], folder / "out")
    mix = markdown_tables(files.markdown.read_text(encoding="utf-8"))[2]
    for row in mix:
        chosen = [x for x in lines["adaptive"] if x["prediction"]["difficulty"] == row["bin"]
                  and x["strategy"] == row["strategy"]]
        assert int(row["problems"]) == len(chosen)
        assert float(row["accuracy"]) == pytest.approx(sum(x["correct"] for x in chosen) / len(chosen), abs=5e-5)
    assert sum(int(row["problems"]) for row in mix) == len(ITEMS)


def test_calibration_uses_outcome_records_beside_the_results(runs):
    folder, _ = runs
    files = make_report([folder / "adaptive.jsonl"], folder / "out", calibration_bins=5)
    text = files.markdown.read_text(encoding="utf-8")
    table = markdown_tables(text)[-1]
    observed = {pid: round(4 * p) / 4 for pid, p in ITEMS}
    for row in table:
        low, high = (float(v) for v in row["predicted pass@1"].split("-"))
        inside = [(pid, p) for pid, p in ITEMS if low <= p < high or (high == 1.0 and p == 1.0)]
        assert int(row["problems"]) == len(inside)
        assert int(row["observations"]) == 4 * len(inside)
        assert float(row["mean predicted"]) == pytest.approx(np.mean([p for _, p in inside]), abs=5e-5)
        assert float(row["mean observed"]) == pytest.approx(np.mean([observed[pid] for pid, _ in inside]), abs=5e-5)
    assert sum(int(row["problems"]) for row in table) == len(ITEMS)
    assert "share of correct independent samples" in text


def test_calibration_falls_back_to_cot_answers_then_to_final_answers(tmp_path):
    cot = [result_line(pid, p, "cot", 1, i % 2 == 0, 700) for i, (pid, p) in enumerate(ITEMS)]
    files = make_report([write_lines(tmp_path / "cot.jsonl", cot)], tmp_path / "a", calibration_bins=2)
    text = files.markdown.read_text(encoding="utf-8")
    assert "share of correct independent samples" in text
    rows = markdown_tables(text)[-1]
    assert sum(int(r["observations"]) for r in rows) == len(ITEMS)
    low_half = [x["correct"] for x in cot if x["prediction"]["pass_at_1"] < 0.5]
    assert float(rows[0]["mean observed"]) == pytest.approx(np.mean(low_half), abs=5e-5)

    beam = [result_line(pid, p, "beam_search", 8, i % 4 == 0, 7000) for i, (pid, p) in enumerate(ITEMS)]
    files = make_report([write_lines(tmp_path / "beam.jsonl", beam)], tmp_path / "b")
    text = files.markdown.read_text(encoding="utf-8")
    assert "not pass@1" in text
    assert sum(int(r["observations"]) for r in markdown_tables(text)[-1]) == len(ITEMS)


def test_a_file_with_several_arms_splits_them_and_a_retried_problem_counts_once(tmp_path):
    lines = [result_line(pid, p, "majority", size, True, 500 * size) for pid, p in ITEMS[:10] for size in (4, 8)]
    retried = result_line(ITEMS[0][0], ITEMS[0][1], "majority", 4, False, 123, status="failed")
    path = write_lines(tmp_path / "sweep.jsonl", lines + [retried])
    runs = {run.arm: run for run in read_results(path)}
    assert set(runs) == {"majority@4", "majority@8"}
    assert runs["majority@4"].superseded == 1 and len(runs["majority@4"].lines) == 10
    files = make_report([path], tmp_path / "out")
    table = markdown_tables(files.markdown.read_text(encoding="utf-8"))[1]
    row = next(r for r in table if r["run"] == "sweep:majority@4" and r["bin"] == "all")
    assert (row["correct"], row["failed"]) == ("9", "1")
    assert float(row["mean tokens"]) == pytest.approx((9 * 2000 + 123) / 10, abs=0.05)


def test_only_samples_of_sampling_strategies_count_as_pass_at_1_observations(tmp_path):
    sampled = result_line("a", 0.3, "majority", 8, True, 4000, adaptive=True)
    searched = result_line("b", 0.3, "beam_search", 16, True, 9000, adaptive=True)
    path = write_lines(tmp_path / "adaptive.jsonl", [sampled, searched])
    records = [{"problem_id": pid, "problem": "x", "policy": "p", "strategy": strategy, "branch": b, "answer": "7",
                "correct": pid == "b" or b < 3, "format_version": 2}
               for pid, strategy in (("a", "majority"), ("b", "beam_search")) for b in range(4)]
    outcomes = write_lines(tmp_path / "adaptive.jsonl.outcomes.jsonl", records)
    files = make_report([path, outcomes], tmp_path / "out")
    text = files.markdown.read_text(encoding="utf-8")
    assert text.count(str(outcomes)) == 1
    (row,) = markdown_tables(text)[-1]
    assert (row["problems"], row["observations"], row["mean observed"]) == ("1", "4", "0.7500")
    mix = markdown_tables(text)[2]
    assert {r["strategy"] for r in mix} == {"majority", "beam_search"}


COST = ('"cost": {"prompt_tokens": 3, "completion_tokens": 2, "cached_tokens": 0, "reward_tokens": 0, "requests": 1, '
        '"wall_time": 0.1, "tokens": 5}')
V = '"format_version": 2'


@pytest.mark.parametrize("content, line, field", [
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", {COST}, "correct": true, {V}}}\nnot json\n', 2, None),
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", "correct": true, {V}}}\n', 1, "cost"),
    (f'{{"problem_id": "a", "answer": "1", "status": "done", {COST}, {V}}}\n', 1, "status"),
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", {COST.replace("5}", "6}")}, {V}}}\n', 1, "cost.tokens"),
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", {COST}, "correct": "yes", {V}}}\n', 1, "correct"),
    (f'\n{{"problem_id": "a", "answer": "1", "status": "ok", {COST}, {V}, "prediction": {{"pass_at_1": 1.5, '
     '"difficulty": "easy"}}\n', 2, "prediction.pass_at_1"),
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", {COST}, {V}, "plan": {{"strategy": "cot", "size": 0}}}}\n',
     1, "plan.size"),
    (f'{{"problem_id": "a", "answer": "1", "status": "ok", {COST}}}\n', 1, "format_version"),
])
def test_bad_result_lines_name_file_line_and_field(tmp_path, content, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        make_report([path], tmp_path / "out")
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), line, field)
    assert not (tmp_path / "out" / "report.md").exists()


def test_empty_files_outcome_records_as_results_and_unjudged_runs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty") as caught:
        make_report([empty], tmp_path / "out")
    assert caught.value.path == str(empty)

    record = {"problem_id": "a", "problem": "x", "policy": "p", "strategy": "cot", "branch": 0, "answer": "1",
              "correct": True, "format_version": 2}
    outcomes = write_lines(tmp_path / "o.jsonl", [record])
    with pytest.raises(InputError, match="--outcomes") as caught:
        make_report([outcomes], tmp_path / "out")
    assert (caught.value.path, caught.value.line) == (str(outcomes), 1)

    unjudged = [result_line(pid, p, "cot", 1, None, 700) for pid, p in ITEMS[:5]]
    with pytest.raises(InputError, match="reference 'answer'"):
        make_report([write_lines(tmp_path / "unjudged.jsonl", unjudged)], tmp_path / "out")

    good = write_lines(tmp_path / "good.jsonl", [result_line("a", 0.3, "cot", 1, True, 700)])
    bad_outcomes = write_lines(tmp_path / "bad_outcomes.jsonl", [{**record, "correct": 1}])
    with pytest.raises(InputError) as caught:
        make_report([good], tmp_path / "out", [bad_outcomes])
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(bad_outcomes), 1, "correct")


def test_cli_writes_the_report_and_reports_bad_input_without_a_traceback(runs):
    folder, _ = runs
    out = folder / "cli"
    result = CliRunner().invoke(main, ["report", str(folder / "adaptive.jsonl"), str(folder / "majority4.jsonl"),
                                       "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"accuracy_vs_cost.png", "calibration.png", "report.md"}
    assert f"wrote {out / 'report.md'}" in result.output

    bad = folder / "bad.jsonl"
    bad.write_text('{"problem_id": "a", "answer": null, "status": "ok", "format_version": 2}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(bad), "--output-dir", str(out)])
    assert result.exit_code == 1
    assert f"{bad}:1: field 'cost'" in result.output
    assert "Traceback" not in result.output


def test_missing_matplotlib_names_the_extra_to_install(runs, monkeypatch):
    folder, _ = runs
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(PlannerError, match=r'matplotlib, which is not installed: pip install ".*\[report\]"'):
        make_report([folder / "adaptive.jsonl"], folder / "out")


def test_report_never_imports_sglang(runs):
    folder, _ = runs
    code = ("import sys\nfrom planner.report import make_report\n"
            f"make_report([{str(folder / 'adaptive.jsonl')!r}], {str(folder / 'sub')!r})\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('sglang', 'sglang_plugin')], 'sglang imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (folder / "sub").iterdir()) == ["accuracy_vs_cost.png", "calibration.png",
                                                                   "report.md"]
