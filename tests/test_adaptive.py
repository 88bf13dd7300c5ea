"""The adaptive program end to end: real sglang frontend and forks, the stand-in server over loopback HTTP (policy
and outcome reward model on separate servers, so each server's own counters check the costs), the shipped
LightGBM predictor. Problems are MATH-500 ones whose true rate the server is told: one it always solves, one it
never does, two of medium difficulty."""

import json

import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, comparable, sim_stats
from sim_http import ok

from planner.adaptive import AdaptiveConfig, continuation
from planner.belief.posterior import BetaPrior, update
from planner.errors import InputError
from planner.grading import shared_grader
from planner.planning.table import StrategyTable
from planner.prediction.model_store import shipped_model_path
from planner.records import STOP_REASONS
from sglang_plugin import Endpoint, OutcomeRewardScorer, Planning, StepTagScorer, run_strategy, solve
from sglang_plugin.config import SamplingConfig
from sglang_plugin.scorers.base import QWEN_ORM_TEMPLATE, render
from sglang_plugin.sim.problems import Problem
from sglang_plugin.sim.server import SimServer

EASY = Problem(PROBLEMS[0].text, PROBLEMS[0].answer, 1.0, PROBLEMS[0].solution)
HOPELESS = Problem(PROBLEMS[1].text, PROBLEMS[1].answer, 0.0, PROBLEMS[1].solution)
MEDIUM = PROBLEMS[2]
BANK = [EASY, HOPELESS, MEDIUM, PROBLEMS[3]]
PLAN_KEYS = {"strategy", "size", "expected_accuracy", "expected_cost"}


@pytest.fixture(scope="module")
def servers():
    """The policy and the reward model on separate servers, so each one's own counters check the costs."""
    with SimServer(BANK, seed=3, reward_auroc=0.9) as policy, SimServer(BANK, seed=3, reward_auroc=0.9) as rewards:
        yield policy, rewards


@pytest.fixture(scope="module")
def endpoint(servers):
    return Endpoint(servers[0].url, transport=FAST)


@pytest.fixture(scope="module")
def orm(servers):
    return OutcomeRewardScorer(servers[1].url, transport=FAST)


@pytest.fixture(scope="module")
def planner():
    return Planning()


def right(result, problem) -> bool:
    return result.answer is not None and shared_grader().equivalent(result.answer, problem.answer)


def test_settled_easy_problem_spends_only_the_probe(endpoint, orm, planner, servers):
    policy, rewards = servers
    before = sim_stats(policy), sim_stats(rewards)
    # The predictor says easy and every probe answer agrees (the server always solves it).
    result = solve(EASY.text, "adaptive", 8, endpoint, orm, planning=planner, pass_at_1=0.9)
    after = sim_stats(policy), sim_stats(rewards)
    trace = result.plan.adaptive
    # Settled, or close enough that the table expects more samples to add less than min_gain.
    assert trace.stop_reason in ("settled", "enough") and trace.posterior_difficulty == "easy"
    assert trace.confidence >= 0.9
    assert trace.samples == trace.probe_size == planner.adaptive.probe_size == len(result.branches)
    assert right(result, EASY)
    # The cost is the probe's, exactly what the two servers counted.
    assert trace.probe_tokens == result.cost.tokens == result.plan.expected_cost
    served = {k: after[0][k] - before[0][k] for k in ("prompt_tokens", "cached_tokens", "completion_tokens")}
    cost = result.cost
    assert (cost.prompt_tokens, cost.cached_tokens, cost.completion_tokens) == (
        served["prompt_tokens"], served["cached_tokens"], served["completion_tokens"])
    # The outcome RM (/classify, no prefix cache) computed every scored text in full: as its /tokenize counts it.
    assert after[1]["classify_texts"] - before[1]["classify_texts"] == len(result.branches)
    texts = [render(QWEN_ORM_TEMPLATE, problem=EASY.text, response=b.text) for b in result.branches]
    assert cost.reward_tokens == sum(len(ok(rewards.url, "/tokenize", {"prompt": t})["tokens"]) for t in texts) > 0


def test_hopeless_problem_stops_early(endpoint, orm, planner):
    result = solve(HOPELESS.text, "adaptive", 8, endpoint, orm, planning=planner, pass_at_1=0.3)
    trace = result.plan.adaptive
    assert trace.stop_reason == "hopeless" and trace.posterior_difficulty == "hard"
    assert trace.samples < trace.cap == 16
    assert trace.posterior_pass_at_1 < trace.prior_pass_at_1
    assert not right(result, HOPELESS)
    assert trace.confidence is None or trace.confidence < 0.5


def test_medium_problem_gets_more_than_the_probe(endpoint, orm, planner):
    result = solve(MEDIUM.text, "adaptive", 8, endpoint, orm, planning=planner, pass_at_1=0.5)
    trace = result.plan.adaptive
    assert trace.samples > trace.probe_size and len(result.branches) == trace.samples
    assert trace.samples <= trace.cap == 16
    assert trace.rounds[0].decision == "continue" and trace.rounds[-1].decision == trace.stop_reason
    assert trace.stop_reason in STOP_REASONS
    assert result.cost.tokens > trace.probe_tokens  # the probe's cost is part of the total
    # Every sample it paid for is in the final choice: the votes cover all answered branches.
    answered = {b.id for b in result.branches if b.answer is not None and not b.failed}
    assert {i for v in result.votes for i in v.branches} == answered
    assert result.votes[0].score == pytest.approx(trace.confidence, abs=1e-4)


def test_cap_is_respected(endpoint, orm, planner):
    for cap in (1, 3, 6):
        result = solve(MEDIUM.text, "adaptive", 8, endpoint, orm, planning=planner, max_budget=cap, pass_at_1=0.4)
        assert result.plan.adaptive.cap == cap and result.plan.adaptive.samples <= cap and len(result.branches) <= cap
        assert result.plan.adaptive.probe_size == min(planner.adaptive.probe_size, cap)


def test_target_confidence_stops_when_reached_or_at_the_cap(endpoint, orm, planner):
    loose = solve(EASY.text, "adaptive", 8, endpoint, orm, planning=planner, target_confidence=0.6)
    assert loose.plan.adaptive.stop_reason == "confident" and loose.plan.adaptive.confidence >= 0.6
    assert loose.plan.adaptive.samples == planner.adaptive.probe_size
    strict = solve(MEDIUM.text, "adaptive", 4, endpoint, orm, planning=planner, target_confidence=0.999999,
                   max_budget=10, pass_at_1=0.4)
    assert strict.plan.adaptive.stop_reason == "cap" and strict.plan.adaptive.samples == 10
    assert strict.plan.adaptive.target_confidence == 0.999999
    assert all(r.decision == "continue" for r in strict.plan.adaptive.rounds[:-1])
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="target_confidence"):
            solve(EASY.text, "adaptive", 4, endpoint, orm, planning=planner, target_confidence=bad)
    with pytest.raises(InputError, match="max_budget"):
        solve(EASY.text, "adaptive", 4, endpoint, orm, planning=planner, max_budget=0)
    with pytest.raises(InputError, match="only the adaptive strategy"):
        solve(EASY.text, "majority", 4, endpoint, max_budget=4)


def test_plan_and_prediction_are_in_the_result(endpoint, orm, planner):
    result = solve(MEDIUM.text, "adaptive", 4, endpoint, orm, planning=planner)
    data = json.loads(json.dumps(result.to_dict()))
    assert PLAN_KEYS <= set(data["plan"]) and data["plan"]["adaptive"]["samples"] == data["size"]["n"]
    prediction = data["prediction"]
    assert prediction["model"] == "qwen2.5-math-1.5b-instruct.npz"  # the shipped predictor of the served policy
    assert prediction["policy"] == prediction["served_model"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"
    predicted = Planning().prediction(MEDIUM.text, "Qwen/Qwen2.5-Math-1.5B-Instruct").pass_at_1
    assert prediction["pass_at_1"] == pytest.approx(predicted, abs=1e-4)
    assert data["plan"]["adaptive"]["prior_pass_at_1"] == prediction["pass_at_1"]
    assert data["strategy"] == "adaptive"
    # A forced strategy carries its plan, and with a planning the prediction and the table's expectations.
    plain = solve(MEDIUM.text, "weighted_vote", 4, endpoint, orm).to_dict()
    assert plain["plan"] == {"strategy": "weighted_vote", "size": 4, "expected_accuracy": None,
                             "expected_cost": None, "beam_width": None, "adaptive": None}
    assert plain["prediction"] is None
    planned = solve(MEDIUM.text, "weighted_vote", 4, endpoint, orm, planning=planner, pass_at_1=0.3).to_dict()
    assert planned["prediction"]["pass_at_1"] == 0.3 and planned["prediction"]["model"] == "given"
    assert 0.3 < planned["plan"]["expected_accuracy"] < 1 and planned["plan"]["expected_cost"] > 0


def test_runs_inside_a_users_own_program(endpoint, orm, planner):
    @sgl.function
    def tutor(s, problem):
        s += sgl.system("You are a careful math tutor.")
        result = run_strategy(s, "adaptive", problem, 4, None, orm, planner)
        s += sgl.user("Now give only the final answer.")
        s += sgl.assistant(sgl.gen("final", max_tokens=24, temperature=0))
        return result

    states = tutor.run_batch([{"problem": p.text} for p in (EASY, MEDIUM)], backend=endpoint, num_threads=2)
    for state, problem in zip(states, (EASY, MEDIUM)):
        result = state.ret_value
        assert result.answer is not None and state["answer"] == result.answer
        messages = state.messages()
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
        assert messages[1]["content"] == problem.text + SamplingConfig().instruction
        assert messages[2]["content"] == result.branch(result.chosen).text.strip()
        assert result.cost.prompt_tokens > state.get_meta_info("final")["prompt_tokens"] > 0


def test_same_seed_same_run(orm):
    runs = []
    for _ in range(2):
        with SimServer(BANK, seed=11, reward_auroc=0.9) as server:
            endpoint = Endpoint(server.url, transport=FAST)
            runs.append(comparable(solve(MEDIUM.text, "adaptive", 4, endpoint, orm, pass_at_1=0.5)))
    for run in runs:
        run["plan"]["adaptive"].pop("rounds")
        run["plan"]["adaptive"].pop("probe_tokens")  # the reward server is shared, so its prefix cache differs
        run["plan"].pop("expected_cost")
        run.pop("cost")
    assert runs[0] == runs[1]


def test_plan_spends_where_the_curves_say_it_pays():
    table = StrategyTable.default("Qwen/Qwen2.5-Math-1.5B-Instruct", "Qwen/Qwen2.5-Math-RM-72B")
    strategies = ["best_of_n", "weighted_vote"]
    gain = AdaptiveConfig().min_gain
    settled = update(BetaPrior(0.9), [8], [2.0])
    assert continuation(settled, 8, 32, table, strategies, searches=True, min_gain=gain).extra == 0
    hopeless = update(BetaPrior(0.1), [1] * 16, [-3.0] * 16)
    assert hopeless.difficulty == "hard"
    assert continuation(hopeless, 16, 32, table, strategies, searches=True, min_gain=gain).extra == 0
    unsure = update(BetaPrior(0.5), [2, 1, 1])
    plan = continuation(unsure, 4, 32, table, strategies, searches=True, min_gain=gain)
    assert plan.extra > 0 and plan.size == 4 + plan.extra <= 32 and plan.strategy in strategies
    # min_gain 0 asks for the best expected accuracy whatever it costs: the cap.
    assert continuation(unsure, 4, 32, table, strategies, searches=True, min_gain=0.0).size == 32


def test_bad_settings_are_named():
    for field, value in (("probe_size", 0), ("round_size", 1.5), ("spread", 0.5), ("settle_confidence", 1.0),
                         ("min_gain", -0.1), ("selection", "best"), ("reward_evidence", "orm"),
                         ("prior_strength", -1.0), ("alpha", 0.0)):
        with pytest.raises(InputError, match=field):
            AdaptiveConfig(**{field: value})
    with pytest.raises(InputError, match="unknown planner option") as caught:
        AdaptiveConfig.from_options({"probe": 2})
    assert "probe_size" in str(caught.value)


def test_a_planned_search_runs_once_with_the_rest(endpoint, servers):
    """With a step-level reward model the plan may be a tree search; here the table offers only beam search."""
    prm = StepTagScorer.math_shepherd(servers[1].url, transport=FAST)
    full = StrategyTable.default("Qwen/Qwen2.5-Math-1.5B-Instruct", "peiyi9979/math-shepherd-mistral-7b-prm")
    table = StrategyTable(full.policy, full.reward_model,
                          {"cot": full.curves["cot"], "beam_search": full.curves["beam_search"]}, full.cost)
    result = solve(MEDIUM.text, "adaptive", 8, endpoint, prm, planning=Planning(table=table), pass_at_1=0.4)
    plan, trace = result.plan, result.plan.adaptive
    assert trace.stop_reason == "searched" and trace.chosen_by == "beam_search" == trace.search
    assert plan.strategy == "beam_search" and plan.size == result.size["search"] <= 16 - trace.samples
    probe = [b for b in result.branches if b.id < trace.samples]
    assert all(b.parent is None and b.group is None for b in probe)  # the probe's samples are kept
    assert len(result.branches) > trace.samples and result.trace  # the search's candidates and steps
    assert result.answer == result.branch(result.chosen).answer
    assert result.cost.tokens > trace.probe_tokens


def test_without_a_scorer_agreement_alone_decides(endpoint):
    result = solve(MEDIUM.text, "adaptive", 4, endpoint, None, pass_at_1=0.4)
    assert result.plan.adaptive.probe_strategy == "majority" and result.cost.reward_tokens == 0
    assert all(b.score is None for b in result.branches)
    assert result.plan.adaptive.stop_reason in STOP_REASONS and result.answer is not None


def test_selection_by_the_planned_strategys_rule(endpoint, orm):
    planning = Planning(adaptive=AdaptiveConfig(selection="plan"))
    result = solve(MEDIUM.text, "adaptive", 8, endpoint, orm, planning=planning, pass_at_1=0.4)
    assert result.plan.adaptive.chosen_by in ("best_of_n", "weighted_vote")
    answered = [b for b in result.branches if b.answer is not None]
    if result.plan.adaptive.chosen_by == "best_of_n":
        assert result.branch(result.chosen).score == max(b.score for b in answered)
    else:
        totals = {}
        for b in answered:
            key = next(v.answer for v in result.votes if b.id in v.branches)
            totals[key] = totals.get(key, 0.0) + b.score
        assert shared_grader().equivalent(result.answer, max(totals, key=totals.get))


def test_prediction_uses_the_policys_shipped_predictor_or_says_which_it_borrowed():
    for name in ("Qwen/Qwen2.5-Math-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"):
        prediction = Planning(policy=name).prediction(MEDIUM.text, "some/served-model")
        own = shipped_model_path(name)
        expected = own if own.exists() else shipped_model_path("Qwen/Qwen2.5-Math-1.5B-Instruct")
        assert prediction.policy == name and prediction.model == expected.name
        assert prediction.served_model == "some/served-model"
        assert 0.0 <= prediction.pass_at_1 <= 1.0 and prediction.difficulty in ("easy", "medium", "hard")
    borrowed = Planning(policy="my-org/math-7b", policy_params=7e9).prediction(MEDIUM.text, None)
    assert borrowed.policy == "my-org/math-7b" and borrowed.model == "qwen2.5-math-1.5b-instruct.npz"
