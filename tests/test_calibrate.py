"""`tts-planner calibrate`: a real sweep through the batch runner and the sglang frontend against the stand-in
server (16 MATH-500 problems of the demo sample, 13 predicted easy and 3 medium), checked against its own run
files; the planner loads what it writes, the fitted curves move toward the measured points, and a second run
resumes instead of measuring again."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ONE_RETRY as FAST
from conftest import logged, markdown_tables, png_size, sim_stats

from planner.cost import Cost
from planner.difficulty import difficulty_bin
from planner.errors import InputError, PlannerError
from planner.planning.table import StrategyTable, load_calibration
from planner.records import ResultLine
from planner.report import make_report
from sglang_plugin.calibrate import (
    Arm,
    CalibrateSettings,
    calibrate,
    calibration_document,
    describe_bins,
    measure,
    sweep_arms,
    weighted_error,
    write_calibration,
)
from sglang_plugin.cli.main import main
from sglang_plugin.runs.settings import RunSettings
from sglang_plugin.sim.server import SimServer

POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"
ORM = "Qwen/Qwen2.5-Math-RM-72B"
# The demo's MATH-500 sample: problem, answer and the measured pass rate of the policy the stand-in serves.
SAMPLE = Path(__file__).resolve().parents[1] / "sglang_plugin" / "demo_data" / "math500_sample.jsonl"


def write_problems(path: Path, count: int, extra: list[dict] = ()) -> None:
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:count]]
    records = [{k: r[k] for k in ("unique_id", "problem", "answer")} for r in records] + list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server():
    with SimServer(SAMPLE, seed=5) as sim:
        yield sim


def sweep(url: str, folder: Path, **changes) -> CalibrateSettings:
    run = RunSettings(endpoint=url, input=folder / "dev.jsonl", output=folder / "calibration.json",
                      reward_endpoint=url, transport=FAST, progress=False, retry_delay=0.0, concurrency=4)
    values = dict(strategies=("cot", "majority", "best_of_n"), sizes=(1, 2, 4), min_bin_problems=3)
    values.update(changes)
    return CalibrateSettings(run, folder / "calibration.json", **values)


@pytest.fixture(scope="module")
def swept(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrate")
    write_problems(folder / "dev.jsonl", 16)
    settings = sweep(server.url, folder)
    with logged() as messages:
        return settings, calibrate(settings), messages


def test_arms_run_cot_first_at_the_sizes_the_planner_offers():
    arms = sweep_arms(["majority", "beam_search", "dvts", "best_of_n"], [1, 2, 4, 8, 16], "Qwen/Qwen2.5-Math-PRM-7B")
    assert [a.name for a in arms] == [
        "cot@1", "majority@4", "majority@8", "majority@16", "beam_search@4~Qwen2.5-Math-PRM-7B",
        "beam_search@8~Qwen2.5-Math-PRM-7B", "beam_search@16~Qwen2.5-Math-PRM-7B", "dvts@8~Qwen2.5-Math-PRM-7B",
        "dvts@16~Qwen2.5-Math-PRM-7B", "best_of_n@2~Qwen2.5-Math-PRM-7B", "best_of_n@4~Qwen2.5-Math-PRM-7B",
        "best_of_n@8~Qwen2.5-Math-PRM-7B", "best_of_n@16~Qwen2.5-Math-PRM-7B"]
    with pytest.raises(InputError, match="reward model"):
        sweep_arms(["best_of_n"], [4], None)
    with pytest.raises(InputError, match="cannot drive beam_search"):
        sweep_arms(["beam_search"], [4], ORM)
    with pytest.raises(InputError, match="offers for majority"):
        sweep_arms(["majority"], [1, 2], None)
    with pytest.raises(InputError, match="unknown strategy bogus"):
        sweep_arms(["bogus"], [1], None)


def test_sweep_writes_a_file_the_planner_loads_with_points_from_the_runs(swept):
    settings, result, messages = swept
    assert messages[0].startswith("dev problems per predicted bin: easy 13, medium 3, hard 0; hard has fewer than 3")
    calibration = load_calibration(settings.output)
    assert calibration.points == result.calibration.points
    assert {pt.strategy for pt in calibration.points} == {"cot", "majority", "best_of_n"}
    folder = settings.runs_folder
    cot_lines = {x["problem_id"]: x for x in lines(folder / "cot@1.jsonl")}
    cold = {pid: x["cost"]["prompt_tokens"] - x["cost"]["cached_tokens"] for pid, x in cot_lines.items()}
    for arm in result.arms:
        arm_lines = lines(folder / f"{arm.name}.jsonl")
        assert len(arm_lines) == 16 and all(x["status"] == "ok" for x in arm_lines)
        for bin_name in ("easy", "medium"):
            inside = [x for x in arm_lines if difficulty_bin(x["prediction"]["pass_at_1"]) == bin_name]
            point = next(pt for pt in calibration.points
                         if (pt.strategy, pt.size, pt.bin) == (arm.strategy, arm.size, bin_name))
            assert point.problems == len(inside) == (13 if bin_name == "easy" else 3)
            assert point.accuracy == pytest.approx(np.mean([x["correct"] for x in inside]), abs=1e-6)
            assert sorted(point.pass_at_1) == sorted(x["prediction"]["pass_at_1"] for x in inside)
            added = [0 if arm.strategy == "cot" else min(cold[x["problem_id"]], x["cost"]["cached_tokens"])
                     for x in inside]
            assert point.tokens == pytest.approx(np.mean([x["cost"]["tokens"] + a for x, a in zip(inside, added)]),
                                                 abs=0.06)
            assert point.reward_model == (ORM if arm.strategy == "best_of_n" else None)
    measured = calibration.policies[POLICY]
    assert measured["prompt_tokens"] == pytest.approx(np.mean(list(cold.values())), abs=0.06)
    assert measured["tokens_per_sample"] == pytest.approx(
        np.mean([x["cost"]["completion_tokens"] for x in cot_lines.values()]), abs=0.06)


def test_calibrated_curves_and_costs_move_toward_the_measured_points(swept):
    settings, result, _ = swept
    assert weighted_error(result.fit, "calibrated") < weighted_error(result.fit, "default")
    for row in result.fit:
        assert abs(row["calibrated_tokens"] - row["tokens"]) < abs(row["default_tokens"] - row["tokens"]), row
    table = StrategyTable.default(POLICY, ORM, calibration=settings.output)
    assert all(source.startswith("calibrated on") for name, source in table.sources.items()
               if name in ("cot", "majority", "best_of_n"))
    assert result.table == table.format_best_by_bin()
    assert result.table.startswith(f"policy {POLICY} (small), reward model {ORM}")


def test_running_again_resumes_and_new_sizes_run_only_the_new_arms(server, swept):
    settings, first, _ = swept
    folder = settings.runs_folder
    before = {p.name: p.read_bytes() for p in folder.glob("*.jsonl")}
    requests = sim_stats(server)["requests"]
    again = calibrate(settings)
    assert sim_stats(server)["requests"] == requests
    assert again.calibration.points == first.calibration.points

    wider = replace(settings, sizes=(1, 2, 4, 8), output=settings.output.with_name("wider.json"),
                    runs_dir=folder)
    grown = calibrate(wider)
    assert sim_stats(server)["requests"] > requests
    assert {p.name: p.read_bytes() for p in folder.glob("*.jsonl") if p.name in before} == before
    new = {p.name for p in folder.glob("*.jsonl")} - set(before)
    assert new == {"majority@8.jsonl", "majority@8.jsonl.outcomes.jsonl", f"best_of_n@8~{ORM.split('/')[1]}.jsonl",
                   f"best_of_n@8~{ORM.split('/')[1]}.jsonl.outcomes.jsonl"}
    assert {(pt.strategy, pt.size) for pt in grown.calibration.points} - {
        (pt.strategy, pt.size) for pt in first.calibration.points} == {("majority", 8), ("best_of_n", 8)}


def test_cold_prompt_is_added_back_and_failed_runs_are_left_out():
    def line(pid, correct, tokens, prompt, cached, status="ok"):
        return ResultLine(pid, None, status, Cost(prompt, tokens - prompt + cached, cached), correct=correct)

    p = {"a": 0.8, "b": 0.7, "c": 0.3}
    cot = [line("a", True, 400, 120, 20), line("b", False, 500, 150, 30), line("c", True, 450, 130, 30)]
    majority = [line("a", True, 1500, 600, 590), line("b", True, 1600, 700, 50), line("c", False, 0, 0, 0, "failed")]
    measured = measure({Arm("cot", 1): cot, Arm("majority", 4): majority}, p, POLICY, min_bin_problems=1)
    points = {(pt["strategy"], pt["bin"]): pt for pt in measured.points}
    assert points[("cot", "easy")]["tokens"] == 450.0 and points[("cot", "easy")]["accuracy"] == 0.5
    # a: its cold prompt (100 tokens uncached by cot) was cached this time; b's was 120 but only 50 were cached
    assert points[("majority", "easy")]["tokens"] == (1500 + 100 + 1600 + 50) / 2
    assert ("majority", "medium") not in points
    assert measured.left_out == {"cot@1": 0, "majority@4": 1}
    assert measured.policies[POLICY] == {"tokens_per_sample": pytest.approx((300 + 380 + 350) / 3, abs=0.06),
                                         "prompt_tokens": pytest.approx((100 + 120 + 100) / 3, abs=0.06)}
    with pytest.raises(InputError, match="cot arm"):
        measure({Arm("majority", 4): majority}, p, POLICY, min_bin_problems=1)


def test_a_bin_with_too_few_problems_is_counted_and_not_fitted():
    """The issue: 40 dev problems fitted a medium curve to 3 problems, silently. Each bin's count is said, and a
    bin under the minimum gets no points (the planner keeps its defaults there)."""
    def line(pid, correct):
        return ResultLine(pid, None, "ok", Cost(100, 300), correct=correct)

    p = {f"e{i}": 0.8 for i in range(12)} | {f"m{i}": 0.3 for i in range(3)}
    runs = {Arm("cot", 1): [line(pid, pid.startswith("e")) for pid in p]}
    measured = measure(runs, p, POLICY)
    assert {pt["bin"] for pt in measured.points} == {"easy"} and measured.too_few == ("medium",)
    assert measured.bins == {"easy": 12, "medium": 3, "hard": 0}
    text = describe_bins(measured.bins, 10)
    assert text.startswith("dev problems per predicted bin: easy 12, medium 3, hard 0; medium, hard have fewer "
                           "than 10: no curve is fitted there")
    with pytest.raises(InputError, match=r"no predicted difficulty bin holds 20 dev problems \(easy 12, medium 3"):
        measure(runs, p, POLICY, min_bin_problems=20)


def test_an_invalid_calibration_is_never_written(tmp_path):
    measured = measure({Arm("cot", 1): [ResultLine("a", None, "ok", Cost(100, 300), correct=True)]}, {"a": 0.6},
                       POLICY, min_bin_problems=1)
    document = calibration_document(measured, {})
    document["points"][0]["bin"] = "medium"
    target = tmp_path / "calibration.json"
    with pytest.raises(InputError) as caught:
        write_calibration(document, target)
    assert caught.value.field == "points[0].pass_at_1[0]" and caught.value.path == str(target)
    assert list(tmp_path.iterdir()) == []


def test_dev_problems_need_reference_answers_and_a_down_server_is_named(server, tmp_path):
    write_problems(tmp_path / "dev.jsonl", 2, extra=[{"problem_id": "x", "problem": "What is 1+1?"}])
    with pytest.raises(InputError) as caught:
        calibrate(sweep(server.url, tmp_path))
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(tmp_path / "dev.jsonl"), 3, "answer")

    write_problems(tmp_path / "dev.jsonl", 2)
    with SimServer(SAMPLE) as gone:
        url = gone.url
    with pytest.raises(PlannerError, match=f"cannot reach the policy server at {url}"):
        calibrate(sweep(url, tmp_path))


def test_cli_calibrates_then_reports_on_the_runs(server, tmp_path):
    write_problems(tmp_path / "dev.jsonl", 8)
    output = tmp_path / "cal.json"
    command = ["calibrate", "--endpoint", server.url, "--input", str(tmp_path / "dev.jsonl"), "--strategies",
               "cot,majority", "--sizes", "1,4", "-o", str(output), "-j", "4"]
    refused = CliRunner().invoke(main, command)
    assert refused.exit_code == 1 and "no predicted difficulty bin holds 10 dev problems" in refused.output
    assert not (tmp_path / "cal.runs").exists()  # refused before any arm ran
    result = CliRunner().invoke(main, command + ["--min-bin-problems", "2"])
    assert result.exit_code == 0, result.output
    assert "dev problems per predicted bin: easy " in result.output
    assert f"wrote {output}" in result.output and "budget (samples)" in result.output
    assert json.loads(output.read_text(encoding="utf-8"))["format"] == "tts-planner-calibration"
    runs = sorted((tmp_path / "cal.runs").glob("*.jsonl"))
    files = make_report(runs, tmp_path / "report")
    assert png_size(files.accuracy_png)[0] >= 600
    table = markdown_tables(files.markdown.read_text(encoding="utf-8"))[1]
    assert {(r["run"], r["bin"]) for r in table if r["bin"] == "all"} == {("cot@1", "all"), ("majority@4", "all")}

    bad = CliRunner().invoke(main, ["calibrate", "--endpoint", server.url, "--input", str(tmp_path / "dev.jsonl"),
                                    "--strategies", "best_of_n"])
    assert bad.exit_code == 1 and "reward model" in bad.output


def test_plan_uses_the_reward_model_the_calibration_measured(swept, tmp_path):
    """The issue: `plan --calibration` silently dropped the file's reward model and planned cot and majority only."""
    settings, _, _ = swept
    examples = Path(__file__).resolve().parents[1] / "examples" / "problems.jsonl"
    common = ["plan", str(examples), "--calibration", str(settings.output), "-o", str(tmp_path / "plans.jsonl")]
    result = CliRunner().invoke(main, common + ["--budget", "400"])
    assert result.exit_code == 0, result.output
    assert f"note: planning with the reward model {ORM}, which {settings.output} measured" in result.output
    assert f"note: curves and costs of cot, majority, best_of_n fitted to {settings.output}" in result.output
    assert "best_of_n" in {line["plan"]["strategy"] for line in lines(tmp_path / "plans.jsonl")}
    without = CliRunner().invoke(main, common + ["--budget", "400", "--reward-model", "none"])
    assert without.exit_code == 0 and "planning with the reward model" not in without.output
    assert {line["plan"]["strategy"] for line in lines(tmp_path / "plans.jsonl")} <= {"cot", "majority"}
    other = CliRunner().invoke(main, common + ["--budget", "4", "--reward-model", "Qwen/Qwen2.5-Math-PRM-7B"])
    assert f"measured {ORM}, not Qwen/Qwen2.5-Math-PRM-7B" in other.output
