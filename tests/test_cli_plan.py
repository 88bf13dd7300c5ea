"""`tts-planner plan` end to end with the shipped default predictor, as a user runs it."""

import json
from pathlib import Path

import pytest
from test_cli_predict import lines, run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "problems.jsonl"
STRATEGIES = {"cot", "majority", "best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter"}


def test_plan_prints_its_table_and_writes_plans_only_where_asked(tmp_path):
    """The README's first command prints the comparison table, not 24 records; -o FILE writes them, -o - sends
    them to stdout (the table then to stderr)."""
    result = run("plan", EXAMPLES, "--budget", 4)
    assert result.stdout.startswith("Priced in FLOPs") and "{" not in result.stdout
    assert "Baseline at equal compute: uniform (majority@" in result.stdout and "-o FILE writes them" in result.stderr
    summary = [line.split() for line in result.stdout.splitlines() if line.startswith(("uniform", "allocated"))]
    (uniform_acc, uniform_flops), (planned_acc, planned_flops) = ((row[-5], row[-3]) for row in summary)
    assert float(planned_acc) >= float(uniform_acc) - 1e-9  # the allocation is never worse on its own curves
    assert planned_flops == uniform_flops  # compared at the same compute
    mix = next(line for line in result.stdout.splitlines() if line.startswith("plan strategies: "))
    piped = run("plan", EXAMPLES, "--budget", 4, "-o", "-")
    records = lines(piped.stdout)
    source = lines(EXAMPLES.read_text(encoding="utf-8"))
    assert [r["id"] for r in records] == [s["id"] for s in source]
    for record in records:
        plan = record["plan"]
        assert plan["strategy"] in {"cot", "majority"}  # no reward model served: voting only
        assert plan["size"] >= 1 and 0 <= plan["expected_accuracy"] <= 1 and plan["expected_cost"] > 0
        assert plan["difficulty"] in {"easy", "medium", "hard"} and 0 <= plan["pass_at_1"] <= 1
    for name in ("cot", "majority"):  # the table's strategy mix counts what the records say
        assert f"{name} x{sum(r['plan']['strategy'] == name for r in records)} " in mix
    assert piped.stderr.startswith("Priced in FLOPs") and mix in piped.stderr
    out = tmp_path / "plans.jsonl"
    quiet = run("plan", EXAMPLES, "--budget", 4, "-o", out, "-q")
    assert lines(out.read_text(encoding="utf-8")) == records
    assert quiet.stdout == result.stdout and quiet.stderr == ""


def test_total_token_budget_is_respected_and_output_file_written(tmp_path):
    out = tmp_path / "plans.jsonl"
    result = run("plan", EXAMPLES, "--budget-tokens", 60_000, "--reward-model", "Qwen/Qwen2.5-Math-PRM-7B",
                 "--output", out)
    assert "allocated" in result.stdout  # the table goes to stdout when the plans go to a file
    plans = [r["plan"] for r in lines(out.read_text(encoding="utf-8"))]
    assert sum(p["expected_cost"] for p in plans) <= 60_000
    assert {p["strategy"] for p in plans} <= STRATEGIES


def test_reward_model_opens_search_strategies_and_more_budget_buys_more():
    cheap = lines(run("plan", EXAMPLES, "--budget", 2, "--reward-model", "Qwen/Qwen2.5-Math-PRM-7B", "-o", "-").stdout)
    rich = lines(run("plan", EXAMPLES, "--budget", 32, "--reward-model", "Qwen/Qwen2.5-Math-PRM-7B", "-o", "-").stdout)
    assert {r["plan"]["strategy"] for r in rich} - {"cot", "majority"}  # a reward model gets used
    total = lambda rows, key: sum(r["plan"][key] for r in rows)  # noqa: E731
    assert total(rich, "expected_cost") > total(cheap, "expected_cost")
    assert total(rich, "expected_accuracy") > total(cheap, "expected_accuracy")


def test_strategy_filter_and_cap(tmp_path):
    rows = lines(run("plan", EXAMPLES, "--budget", 16, "--strategies", "cot,majority", "--cap", 4, "-o", "-").stdout)
    assert {r["plan"]["strategy"] for r in rows} <= {"cot", "majority"}
    assert max(r["plan"]["size"] for r in rows) <= 4


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "must be a positive number"),
    (["--budget", "-3"], "must be a positive number"),
    (["--budget", "nan"], "must be a positive number"),
    (["--budget-tokens", "100"], "below the floor"),
    ([], "give exactly one of --budget"),
    (["--budget", "4", "--budget-tokens", "1e6"], "give exactly one of --budget"),
    (["--budget", "4", "--reward-model", "Nope-RM"], "unknown reward model 'Nope-RM'"),
    (["--budget", "4", "--policy", "Nope-7B"], "unknown policy 'Nope-7B'"),
    (["--budget", "4", "--strategies", "cot,tree_of_thought"], "tree_of_thought"),
])
def test_bad_budgets_and_names_fail_clearly(args, message):
    result = run("plan", EXAMPLES, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_plan_reports_bad_lines_with_file_and_line(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"problem": "What is 2+2?"}\n{"problem": 5}\n', encoding="utf-8")
    result = run("plan", source, "--budget", 4, check=False)
    assert result.returncode != 0 and f"{source}:2: field 'problem': expected text" in result.stderr
    skipped = run("plan", source, "--budget", 4, "--skip-bad", "-o", "-")
    assert len(lines(skipped.stdout)) == 1 and "skipped 1 bad line(s)" in skipped.stderr


def test_plan_output_keeps_the_whole_input_record():
    record = lines(run("plan", EXAMPLES, "--budget", 4, "-o", "-").stdout)[0]
    original = json.loads(EXAMPLES.read_text(encoding="utf-8").splitlines()[0])
    assert {k: record[k] for k in original} == original


def test_a_72b_reward_model_is_priced_by_its_flops_and_the_baseline_spends_the_same():
    """The issue's case: with a 72B outcome RM the plan once reported 1.46 PFLOPs against the baseline's 20.02
    "at the same budget". Priced in FLOPs, both spend the same compute, and --budget-flops bounds it."""
    result = run("plan", EXAMPLES, "--budget", 4, "--reward-model", "Qwen/Qwen2.5-Math-RM-72B")
    assert "Priced in FLOPs" in result.stdout and "Baseline at equal compute" in result.stdout
    totals = [line.split()[-2] for line in result.stdout.splitlines() if line.startswith(("uniform", "allocated"))]
    assert len(totals) == 2 and totals[0] == totals[1]
    budget = 24 * 2 * 1.54e9 * (150 + 4 * 600)
    capped = run("plan", EXAMPLES, "--budget-flops", budget, "--reward-model", "Qwen/Qwen2.5-Math-RM-72B", "-o", "-")
    plans = [r["plan"] for r in lines(capped.stdout)]
    assert len(plans) == 24 and "Priced in FLOPs" in capped.stderr
    total = next(line for line in capped.stderr.splitlines() if line.startswith("allocated")).split()
    assert float(total[-2]) * 1e15 <= budget * 1.001
