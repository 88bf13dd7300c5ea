"""Per-problem plans and batch allocation: budgets are respected and spent where they buy the most, the
result is optimal where it can be checked exhaustively, and bad input is refused clearly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from planner.cost import CostModel
from planner.errors import InputError
from planner.planning.allocation import (
    Budget,
    allocate,
    check_pass_at_1,
    plan_each,
    plan_problem,
    uniform,
    uniform_at,
)
from planner.planning.curves import Curve
from planner.planning.plan import compare, format_comparison
from planner.planning.table import StrategyTable
from planner.policies import policy, reward_model
from planner.strategies import REGISTRY

REWARD_STRATEGIES = {name for name, spec in REGISTRY.items() if spec.needs_reward}

SMALL = "Qwen/Qwen2.5-Math-1.5B-Instruct"
PRM = "Qwen/Qwen2.5-Math-PRM-7B"
ORM_72B = "Qwen/Qwen2.5-Math-RM-72B"
RNG = np.random.default_rng(7)
BATCH = RNG.beta(0.6, 0.3, size=2000)  # shaped like MATH pass@1: most easy, a long hard tail


def sample_table(curve: Curve = Curve()) -> StrategyTable:
    """One token per sample, no prompt, no reward-model reading: costs are sample counts."""
    return StrategyTable(policy(SMALL), None, {"cot": Curve(gain=(0.0, 0.0, 0.0)), "best_of_n": curve},
                         CostModel(tokens_per_sample=1.0, prompt_tokens=0.0, reward_reads=False))


@pytest.mark.parametrize("amount", [0, -1, float("nan"), float("inf"), "4", True])
def test_budgets_must_be_positive_numbers(amount):
    with pytest.raises(InputError) as caught:
        Budget(amount)
    assert caught.value.field == "budget"


def test_budget_units_are_checked():
    with pytest.raises(InputError, match="unknown budget unit 'joules'"):
        Budget(4, "joules")


@pytest.mark.parametrize("bad", [[0.5, float("nan")], [0.5, 1.5], [-0.1]])
def test_pass_at_1_must_be_probabilities(bad):
    with pytest.raises(InputError, match="problem") as caught:
        check_pass_at_1(bad)
    assert caught.value.field == "pass_at_1"


def test_samples_budget_converts_to_policy_tokens_with_prompts():
    table = StrategyTable.default(SMALL)
    prompts = np.array([100.0, 300.0])
    flops, tokens = table.pricing(), table.pricing("tokens")
    assert Budget(4).batch_cost(table, prompts, flops) == 400 + 2 * 4 * 600
    assert Budget(4, total=True).batch_cost(table, prompts, flops) == 400 + 4 * 600
    assert Budget(5000, "tokens").batch_cost(table, prompts, tokens) == 10_000
    assert Budget(5000, "tokens", total=True).batch_cost(table, prompts, tokens) == 5000
    assert Budget(2 * 1.54e9 * 5000, "flops", total=True).batch_cost(table, prompts, flops) == pytest.approx(5000)


def test_budgets_in_samples_are_priced_in_flops_when_sizes_are_known():
    """A 72B reward model's token costs 47 tokens of a 1.5B policy: in FLOPs the planner can afford far fewer
    reward-model reads than the token count suggests, and the plan's FLOPs stay within the budget's."""
    table = StrategyTable.default(SMALL, ORM_72B)
    assert Budget(4).pricing(table).unit == "flops"
    assert Budget(4).pricing(table).reward_weight == pytest.approx(72.7e9 / 1.54e9)
    assert Budget(4, "tokens").pricing(table).reward_weight == 1.0
    in_flops = allocate(BATCH, table, Budget(8))
    in_tokens = allocate(BATCH, table, Budget(8 * 600 * len(BATCH) + 150 * len(BATCH), "tokens", total=True))
    one_sample_flops = 2 * 1.54e9 * (150 + 8 * 600) * len(BATCH)
    assert in_flops.flops() <= one_sample_flops * (1 + 1e-9)
    assert in_tokens.flops() > 3 * one_sample_flops  # tokens-priced: the reward model's reads look cheap
    assert in_flops.reward_tokens.sum() < in_tokens.reward_tokens.sum() / 5
    flops_budget = allocate(BATCH, table, Budget(one_sample_flops, "flops", total=True))
    assert flops_budget.flops() == pytest.approx(in_flops.flops(), rel=1e-3)


def test_a_reward_model_of_unknown_size_is_priced_in_tokens_and_refuses_a_flop_budget():
    table = StrategyTable.default(SMALL, reward_model("my-orm", kind="outcome"))
    assert Budget(4).pricing(table).unit == "tokens"
    with pytest.raises(InputError, match="size of the reward model my-orm is unknown"):
        allocate(BATCH, table, Budget(1e15, "flops", total=True))


def exhaustive_best(p: np.ndarray, table: StrategyTable, budget: int, sizes: range) -> float:
    """The best total accuracy any allocation of sizes (one per problem) within the budget reaches."""
    acc = {n: table.accuracy("cot" if n == 1 else "best_of_n", p, n) for n in sizes}
    best = -1.0
    for combo in itertools.product(sizes, repeat=len(p)):
        if sum(combo) <= budget:
            best = max(best, sum(acc[n][i] for i, n in enumerate(combo)))
    return best


@pytest.mark.parametrize("budget", [5, 8, 13, 20])
def test_allocation_is_optimal_against_exhaustive_search(budget):
    p = np.array([0.02, 0.15, 0.4, 0.85, 0.6])
    table = sample_table()
    plan = allocate(p, table, Budget(budget, total=True), max_size=8)
    assert plan.expected_cost.sum() <= budget
    assert plan.expected_accuracy.sum() == pytest.approx(exhaustive_best(p, table, budget, range(1, 9)),
                                                         abs=1e-9)


@pytest.mark.parametrize("budget", [1.5, 2, 4, 8, 16])
def test_allocation_spends_the_budget_and_beats_uniform(budget):
    for table in (StrategyTable.default(SMALL), StrategyTable.default(SMALL, PRM), sample_table()):
        plan = allocate(BATCH, table, Budget(budget))
        base = uniform(BATCH, table, Budget(budget))
        assert plan.priced_cost.sum() <= plan.budget * (1 + 1e-12)
        assert base.priced_cost.sum() <= plan.budget * (1 + 1e-12)
        assert plan.expected_accuracy.mean() >= base.expected_accuracy.mean() - 1e-12
        assert plan.priced_cost.sum() >= 0.995 * plan.budget  # more would still buy accuracy


def test_floor_and_cap_bound_every_problem():
    table = StrategyTable.default(SMALL, PRM)
    plan = allocate(BATCH, table, Budget(8), floor=Budget(3), cap=Budget(20))
    extra = plan.generated_tokens + plan.reward_tokens - plan.prompt_tokens * np.isin(
        np.array(plan.strategies)[plan.strategy], sorted(REWARD_STRATEGIES))
    assert extra.min() >= 3 * 600 - 1e-6 and extra.max() <= 20 * 600 + 1e-6


def test_budget_below_the_floor_is_an_error():
    table = StrategyTable.default(SMALL)
    with pytest.raises(InputError, match="below the floor"):
        allocate(BATCH, table, Budget(0.5))
    with pytest.raises(InputError, match="below the floor"):
        allocate(BATCH, table, Budget(4), floor=Budget(5))
    with pytest.raises(InputError, match="below the floor"):
        allocate(BATCH[:10], table, Budget(100, "tokens"))
    with pytest.raises(InputError, match="between the floor and the cap"):
        allocate(BATCH, table, Budget(4), floor=Budget(300))
    with pytest.raises(InputError, match="per problem"):
        allocate(BATCH, table, Budget(4), floor=Budget(100, total=True))


def test_a_generous_budget_is_not_spent_for_nothing():
    table = sample_table()
    plan = allocate(np.array([1.0, 1.0, 0.0]), table, Budget(64))
    assert plan.size.tolist() == [1, 1, 1]  # sure or hopeless: more samples cannot change the outcome
    assert plan.expected_cost.sum() == 3


def test_spending_follows_marginal_gain():
    table = sample_table()
    plan = allocate(np.array([0.999, 0.5, 0.05]), table, Budget(4))
    assert plan.size[0] == 1 and plan.size[2] > plan.size[1] >= 2


def test_without_a_reward_model_no_reward_strategy_is_planned():
    plan = allocate(BATCH, StrategyTable.default(SMALL), Budget(16))
    assert set(plan.strategies) == {"cot", "majority"}
    with_prm = allocate(BATCH, StrategyTable.default(SMALL, PRM), Budget(16))
    used = {with_prm.strategies[i] for i in np.unique(with_prm.strategy)}
    assert used & REWARD_STRATEGIES


def test_strategies_can_be_restricted_but_not_invented():
    table = StrategyTable.default(SMALL, PRM)
    plan = allocate(BATCH, table, Budget(8), strategies=["cot", "best_of_n"])
    assert set(plan.strategies) == {"cot", "best_of_n"}
    with pytest.raises(InputError, match="unknown strategy"):
        allocate(BATCH, table, Budget(8), strategies=["cot", "self_consistency"])
    with pytest.raises(InputError, match="not available"):
        allocate(BATCH, StrategyTable.default(SMALL), Budget(8), strategies=["beam_search"])


def test_per_problem_prompts_are_paid_and_priced():
    table = StrategyTable.default(SMALL, PRM)
    p = np.full(4, 0.3)
    prompts = np.array([50.0, 50.0, 20_000.0, 20_000.0])
    plan = allocate(p, table, Budget(12), prompt_tokens=prompts)
    assert plan.priced_cost.sum() <= plan.budget + 1e-6
    assert (plan.prompt_tokens == prompts).all()
    # a reward model reading a 20k-token problem costs more than the vote it would improve
    names = np.array(plan.strategies)[plan.strategy]
    assert not np.isin(names[2:], sorted(REWARD_STRATEGIES)).any()
    with pytest.raises(InputError, match="one prompt token count per problem"):
        allocate(p, table, Budget(4), prompt_tokens=[1.0, 2.0])
    with pytest.raises(InputError, match="non-negative"):
        allocate(p, table, Budget(4), prompt_tokens=[1.0, -2.0, 1.0, 1.0])


def test_uniform_gives_everyone_the_same_plan():
    table = StrategyTable.default(SMALL)
    base = uniform(BATCH, table, Budget(8))
    assert len(set(base.size.tolist())) == 1 and base.size[0] == 8
    assert base.label == "uniform (majority@8)"
    only_cot = uniform(BATCH, table, Budget(2))
    assert only_cot.label == "uniform (cot@1)"
    with pytest.raises(InputError, match="cannot give every problem"):
        uniform(BATCH, table, Budget(0.5))


def brute_force_plan(p: float, table: StrategyTable, samples: float) -> tuple[float, float]:
    """The best (accuracy, tokens) within `samples` chains of thought's FLOPs, by trying every option."""
    best = (-1.0, 0.0, 0.0)
    pricing = table.pricing()
    limit = (table.cost.prompt_tokens + samples * table.sample_tokens()) * pricing.per_policy_token
    for name in table.strategies:
        for n in table.sizes(name):
            cost = table.expected_cost(name, n)
            priced = pricing.of(cost)
            acc = float(table.accuracy(name, p, n))
            if priced <= limit * (1 + 1e-9) and (acc > best[0] + 1e-12
                                                 or (abs(acc - best[0]) <= 1e-12 and priced < best[2])):
                best = (acc, cost.tokens, priced)
    return best[:2]


@pytest.mark.parametrize("p", [0.0, 0.03, 0.2, 0.45, 0.7, 0.95, 1.0])
@pytest.mark.parametrize("samples", [1, 3, 10, 40])
def test_per_problem_plan_is_the_best_that_fits(p, samples):
    table = StrategyTable.default(SMALL, PRM)
    plan = plan_problem(p, table, Budget(samples))
    acc, cost = brute_force_plan(p, table, samples)
    assert plan.expected_accuracy == pytest.approx(acc, abs=1e-9)
    assert plan.expected_cost == pytest.approx(cost)
    assert table.pricing().of(plan.cost()) <= 2 * 1.54e9 * (table.cost.prompt_tokens + samples * 600) * (1 + 1e-9)


def test_per_problem_plans_in_tokens_and_errors():
    table = StrategyTable.default(SMALL, PRM)
    plans = plan_each([0.3, 0.3], table, Budget(5000, "tokens"), prompt_tokens=[100.0, 3000.0])
    assert (plans.expected_cost <= 5000 + 1e-9).all()
    assert plans.expected_accuracy[0] >= plans.expected_accuracy[1]
    with pytest.raises(InputError, match="does not cover one sample"):
        plan_problem(0.5, table, Budget(300, "tokens"))
    with pytest.raises(InputError, match="per-problem budget"):
        plan_each([0.5], table, Budget(10, total=True))


def test_plans_carry_what_the_runner_and_the_user_need():
    table = StrategyTable.default(SMALL, PRM)
    plan = allocate(BATCH, table, Budget(16))
    records = plan.records()
    assert len(records) == len(BATCH)
    first = plan[0].to_dict()
    assert first == records[0]
    assert set(first) >= {"strategy", "size", "expected_accuracy", "expected_cost", "difficulty", "pass_at_1"}
    beamed = [r for r in records if r["strategy"] in ("beam_search", "dvts")]
    assert all(r["beam_width"] == 4 for r in beamed)
    one = plan[int(np.argmax(plan.reward_tokens))]
    assert one.cost().tokens == pytest.approx(one.expected_cost)
    assert one.cost().flops(1.54e9, 7.62e9) > 0
    summary = plan.summary()
    assert sum(b["problems"] for b in summary["bins"].values()) == len(BATCH)
    assert sum(s["problems"] for s in summary["strategies"].values()) == len(BATCH)
    assert summary["tokens"] == pytest.approx(plan.expected_cost.sum())


def test_comparison_table_against_uniform_at_equal_compute():
    table = StrategyTable.default(SMALL)
    plan = allocate(BATCH, table, Budget(4))
    base = uniform_at(plan, table)
    result = compare(plan, base)
    assert result["accuracy_gain"] > 0 and result["spend_ratio"] == pytest.approx(1.0)
    text = format_comparison(plan, base)
    assert "Priced in FLOPs" in text and "Baseline at equal compute: uniform (majority@" in text
    assert "allocated" in text and "hard" in text and "TFLOPs/problem" in text


def test_uniform_at_the_plans_spend_interpolates_between_two_sizes():
    """A plan that spends between two sizes of the best uniform strategy is compared with a mix of both that
    spends exactly as much (the larger size on a share of the problems), never with a cheaper uniform run."""
    table = StrategyTable.default(SMALL, PRM)
    plan = allocate(BATCH, table, Budget(16), cap=Budget(10))
    base = uniform_at(plan, table)
    assert base.spend() == pytest.approx(plan.spend(), rel=1e-9)
    low, high = (int(n) for n in base.label.split("@")[1].rstrip(")").split("-"))
    assert high > low and "on average" in base.note
    name = base.label.split("(")[1].split("@")[0]
    p = plan.pass_at_1
    accuracies = [table.accuracy(name, p, n).mean() for n in (low, high)]
    assert min(accuracies) <= base.expected_accuracy.mean() <= max(accuracies)
    voting = StrategyTable.default(SMALL)
    exact = uniform_at(uniform(BATCH, voting, Budget(8)), voting)  # spends exactly majority@8's compute
    assert exact.label == "uniform (majority@8)" and exact.note == ""


def test_large_batches_allocate_exactly_and_deterministically():
    p = np.random.default_rng(1).beta(0.6, 0.3, size=50_000)
    table = StrategyTable.default(SMALL, PRM)
    first, second = allocate(p, table, Budget(6)), allocate(p, table, Budget(6))
    assert (first.size == second.size).all() and (first.strategy == second.strategy).all()
    assert first.priced_cost.sum() <= first.budget * (1 + 1e-12)
    assert first.priced_cost.sum() >= first.budget * 0.999
