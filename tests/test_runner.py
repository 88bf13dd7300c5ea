"""`tts-planner run` end to end against the stand-in server over loopback HTTP, through the real sglang frontend:
the result lines and outcome records it writes, its summary, bad input, and its refusal to mix runs."""

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from conftest import RECORDS, SAMPLE, lines, run_args, settings, write_problems

from planner.errors import InputError, PlannerError
from planner.grading import reference_answer, shared_grader
from sglang_plugin.cli.main import main
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.results import Judge

RESULT_FIELDS = ("problem_id", "answer", "correct", "plan", "prediction", "cost", "strategy", "status", "errors",
                 "branches", "failed_branches", "format_version")
from sglang_plugin.sim.server import SimServer


@pytest.fixture(scope="module")
def server():
    with SimServer(SAMPLE, seed=5) as sim:
        yield sim


@pytest.fixture(scope="module")
def cli_run(server, tmp_path_factory):
    """One CLI run of 24 problems, majority of 4; the files it wrote and its stdout."""
    tmp_path = tmp_path_factory.mktemp("run")
    inputs = write_problems(tmp_path / "problems.jsonl", 24)
    result = CliRunner().invoke(main, run_args(server.url, tmp_path, "--concurrency", "6"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {"inputs": inputs, "results": lines(tmp_path / "results.jsonl"),
            "outcomes": lines(tmp_path / "results.jsonl.outcomes.jsonl"), "stdout": result.stdout, "dir": tmp_path}


def test_every_problem_gets_exactly_one_line_with_the_contract_fields(cli_run):
    inputs, results = cli_run["inputs"], cli_run["results"]
    assert sorted(r["problem_id"] for r in results) == sorted(r["unique_id"] for r in inputs)
    by_id = {r["unique_id"]: r for r in inputs}
    for line in results:
        record = by_id[line["problem_id"]]
        assert set(RESULT_FIELDS) <= set(line)
        # The input record is kept; its reference answer moves to reference_answer.
        assert line["reference_answer"] == record["answer"]
        kept = ("unique_id", "problem", "level")
        assert {k: line[k] for k in kept} == {k: record[k] for k in kept}
        assert line["status"] == "ok" and line["errors"] == [] and line["branches"] == 4
        plan = line["plan"]
        assert line["strategy"] == "majority" and (plan["strategy"], plan["size"], plan["adaptive"]) == ("majority", 4,
                                                                                                       None)
        # The strategy table's expectation for this problem's predicted pass@1.
        assert 0.0 < plan["expected_accuracy"] <= 1.0 and plan["expected_cost"] > 0
        assert 0.0 <= line["prediction"]["pass_at_1"] <= 1.0
        assert line["prediction"]["policy"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"
        cost = line["cost"]
        assert cost["completion_tokens"] > 0 and 0 < cost["cached_tokens"] <= cost["prompt_tokens"]
        assert cost["tokens"] == cost["completion_tokens"] + cost["prompt_tokens"] - cost["cached_tokens"]
        assert isinstance(line["correct"], bool)
        if line["answer"] == record["answer"]:
            assert line["correct"]
        if line["answer"] is None:
            assert not line["correct"]


def test_outcome_records_are_the_samples_behind_each_answer(cli_run):
    results, outcomes = cli_run["results"], cli_run["outcomes"]
    by_problem: dict[str, list[dict]] = {}
    for record in outcomes:
        assert set(record) == {"problem_id", "problem", "policy", "strategy", "branch", "answer", "correct",
                               "format_version"}
        by_problem.setdefault(record["problem_id"], []).append(record)
    for line in results:
        samples = by_problem[line["problem_id"]]
        assert sorted(s["branch"] for s in samples) == [0, 1, 2, 3]
        assert all(s["problem"] == line["problem"] and s["strategy"] == "majority" for s in samples)
        # The majority answer is one of the samples, judged the same way in both files.
        if line["answer"] is not None:
            same = [s for s in samples if s["answer"] == line["answer"]]
            assert same and all(s["correct"] == line["correct"] for s in same)


def test_outcomes_follow_the_policys_measured_rates(cli_run):
    """The stand-in server solves each problem at its measured rate; 96 samples land near the mean rate."""
    rates = {r["unique_id"]: r["pass_rate"] for r in RECORDS}
    outcomes = cli_run["outcomes"]
    observed = sum(r["correct"] for r in outcomes) / len(outcomes)
    expected = sum(rates[r["problem_id"]] for r in outcomes) / len(outcomes)
    assert abs(observed - expected) < 0.15


def test_summary_reports_the_files_numbers(cli_run):
    results, stdout = cli_run["results"], cli_run["stdout"]
    correct = sum(r["correct"] for r in results)
    assert f"accuracy      {correct / len(results):.3f} ({correct}/{len(results)} with a reference answer" in stdout
    tokens = sum(r["cost"]["tokens"] for r in results) / len(results)
    assert f"tokens        {tokens:,.0f} per problem" in stdout
    assert "FLOPs" in stdout and "majority@4 x24" in stdout
    cached = sum(r["cost"]["cached_tokens"] for r in results) / sum(r["cost"]["prompt_tokens"] for r in results)
    assert f"prefix cache  {cached:.1%}" in stdout


def test_a_finished_run_resumes_to_nothing_and_keeps_its_lines(server, cli_run):
    before = (cli_run["dir"] / "results.jsonl").read_bytes()
    result = CliRunner().invoke(main, run_args(server.url, cli_run["dir"]), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 in this session" in result.stdout
    assert (cli_run["dir"] / "results.jsonl").read_bytes() == before


def test_other_settings_or_input_are_refused_naming_the_difference(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 3)
    run_batch(settings(server.url, tmp_path))
    with pytest.raises(PlannerError, match="belongs to another run: size was 4, now 8"):
        run_batch(settings(server.url, tmp_path, size=8))
    write_problems(tmp_path / "problems.jsonl", 4)
    with pytest.raises(PlannerError, match="input_sha256 was"):
        run_batch(settings(server.url, tmp_path))
    report = run_batch(settings(server.url, tmp_path, overwrite=True))
    assert report.session.written == 4 and len(lines(tmp_path / "results.jsonl")) == 4


def test_an_output_not_written_by_run_is_refused(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    (tmp_path / "results.jsonl").write_text('{"mine": 1}\n')
    with pytest.raises(PlannerError, match="was not written by `tts-planner run`"):
        run_batch(settings(server.url, tmp_path))
    assert (tmp_path / "results.jsonl").read_text() == '{"mine": 1}\n'


def test_two_runs_cannot_write_one_output(tmp_path):
    identity = {"input_sha256": "x", "settings": {}}
    with RunFiles(tmp_path / "r.jsonl", tmp_path / "o.jsonl", identity):
        with pytest.raises(PlannerError, match="another `tts-planner run` is writing"):
            RunFiles(tmp_path / "r.jsonl", tmp_path / "o.jsonl", identity)


def test_bad_input_names_file_line_and_field(server, tmp_path):
    good = write_problems(tmp_path / "problems.jsonl", 3)
    bad = [{"unique_id": "no-text", "answer": "1"}, dict(good[0]), {"problem": "What is 1+1?", "answer": ["2"]}]
    path = tmp_path / "problems.jsonl"
    path.write_text(path.read_text() + "".join(json.dumps(r) + "\n" for r in bad) + "{not json\n")
    with pytest.raises(InputError) as error:
        run_batch(settings(server.url, tmp_path))
    assert str(error.value).startswith(f"{path}:4: field 'problem': missing")
    result = CliRunner().invoke(main, run_args(server.url, tmp_path, "--skip-bad"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "skipped 4 bad line(s)" in result.stderr
    assert f"{path}:5: field 'unique_id': repeats id '{good[0]['unique_id']}' of line 1" in result.stderr
    assert f"{path}:6: field 'answer': expected text or a number" in result.stderr
    assert f"{path}:7: malformed JSON" in result.stderr
    assert Counter(r["problem_id"] for r in lines(tmp_path / "results.jsonl")) == Counter(
        r["unique_id"] for r in good)


def test_problems_without_ids_or_references(server, tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"question": RECORDS[0]["problem"]}) + "\n" + json.dumps({"id": 7, "problem": RECORDS[1][
        "problem"]}) + "\n")
    report = run_batch(settings(server.url, tmp_path))
    results = lines(tmp_path / "results.jsonl")
    assert sorted(r["problem_id"] for r in results) == ["7", "line-1"]
    assert all("correct" not in r for r in results)
    assert report.summary.total.with_reference == 0
    assert lines(tmp_path / "results.jsonl.outcomes.jsonl") == []  # no reference, no labels


def test_search_strategies_write_no_outcome_records(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    run_batch(settings(server.url, tmp_path, strategy="beam_search", size=4, reward_endpoint=server.url,
                       scorer="math_shepherd"))
    results = lines(tmp_path / "results.jsonl")
    assert [r["strategy"] for r in results] == ["beam_search"] * 2 and all(r["cost"]["reward_tokens"] > 0
                                                                           for r in results)
    assert lines(tmp_path / "results.jsonl.outcomes.jsonl") == []


def test_strategy_and_scorer_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(InputError, match="give --strategy and --size together"):
        settings("http://127.0.0.1:9", tmp_path, size=None)
    with pytest.raises(InputError, match="ranks branches with a reward model"):
        settings("http://127.0.0.1:9", tmp_path, strategy="best_of_n")
    with pytest.raises(InputError, match="unknown strategy 'nope'"):
        settings("http://127.0.0.1:9", tmp_path, strategy="nope")


def test_adaptive_runs_record_the_planners_plan_and_only_its_independent_samples(tmp_path):
    """The default mode: the planner decides. With a step-level reward model it may end a problem in a tree
    search; that problem's outcome records are its probe and rounds only, not the search's branches."""
    write_problems(tmp_path / "problems.jsonl", 40)
    # A generous time limit on answer comparisons, so a loaded CI machine groups answers as an idle one does.
    (tmp_path / "config.json").write_text(json.dumps({"grading": {"timeout": 60.0}}))
    with SimServer(SAMPLE, seed=3) as server:
        result = CliRunner().invoke(main, ["run", "--endpoint", server.url, "--reward-endpoint", server.url, "--scorer",
                                           "math_shepherd", "--input", str(tmp_path / "problems.jsonl"), "--output",
                                           str(tmp_path / "results.jsonl"), "--budget", "16", "--config",
                                           str(tmp_path / "config.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = lines(tmp_path / "results.jsonl")
    samples = Counter(r["problem_id"] for r in lines(tmp_path / "results.jsonl.outcomes.jsonl"))
    strategies = {r["strategy"] for r in lines(tmp_path / "results.jsonl.outcomes.jsonl")}
    assert strategies == {"majority"}  # unscored: the belief reads no evidence from this PRM, so scores buy nothing
    searched = [line for line in results if line["plan"]["adaptive"]["stop_reason"] == "searched"]
    assert searched, "this seed and sample end at least one problem in a search"
    for line in results:
        plan = line["plan"]["adaptive"]
        assert line["prediction"]["pass_at_1"] == plan["prior_pass_at_1"]
        assert samples[line["problem_id"]] == plan["samples"] <= plan["cap"] == 32, (line["errors"], plan)
        if line in searched:
            assert line["strategy"] in ("beam_search", "dvts", "particle_filter") and line["branches"] > plan["samples"]
        else:
            assert line["strategy"] == "majority" and line["branches"] == plan["samples"]
    stops = Counter(line["plan"]["adaptive"]["stop_reason"] for line in results)
    mean = sum(line["plan"]["adaptive"]["samples"] for line in results) / len(results)
    assert f"adaptive      {mean:.2f} samples per problem; stopped: " in result.stdout
    assert all(f"{reason} x{count}" in result.stdout for reason, count in stops.items())


def test_references_are_read_as_math_sets_write_them():
    assert reference_answer("\\frac{14}{3}") == "\\frac{14}{3}"  # MATH-500's answer field
    assert reference_answer("so $f = \\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"  # a whole solution
    assert reference_answer("She pays 3 * 4 = 12.\n#### 1,212") == "1212"  # GSM8K
    grader = shared_grader()
    assert Judge(grader, "She pays 3 * 4 = 12.\n#### 1,212")("1212") and Judge(grader, "\\boxed{\\frac12}")("0.5")
    assert not Judge(grader, "3")(None) and not Judge(grader, "#### 3")("4")
