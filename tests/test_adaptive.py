"""The adaptive program end to end: real sglang frontend and forks, the stand-in server over loopback HTTP (policy
and outcome reward model on separate servers, so each server's own counters check the costs), the shipped
LightGBM predictor. Problems are MATH-500 ones whose true rate the server is told: one it always solves, one it
never does, two of medium difficulty. Also the rules alone (planner.adaptive): what the vote state makes worth
buying, at the price the budget sets, with reward-model reads priced in compute."""

import json

import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, comparable, sim_stats
from sim_http import ok

from planner.adaptive import AdaptiveConfig, Prices, decide, options
from planner.belief.posterior import BetaPrior, update
from planner.belief.value import SimulatedEvidence, VoteState
from planner.errors import InputError
from planner.grading import shared_grader
from planner.planning.table import StrategyTable
from planner.policies import reward_model
from planner.prediction.model_store import shipped_model_path
from planner.records import STOP_REASONS
from sglang_plugin import Endpoint, OutcomeRewardScorer, Planning, StepTagScorer, run_strategy, solve
from sglang_plugin.config import SamplingConfig
from sglang_plugin.scorers.base import QWEN_ORM_TEMPLATE, render
from sglang_plugin.sim.problems import Problem
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import ThinkingParams

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


def test_easy_problem_stops_once_two_samples_agree(endpoint, orm, planner, servers):
    policy, rewards = servers
    before = sim_stats(policy), sim_stats(rewards)
    # The predictor says easy and every answer agrees (the server always solves it).
    result = solve(EASY.text, "adaptive", 8, endpoint, orm, planning=planner, pass_at_1=0.9)
    after = sim_stats(policy), sim_stats(rewards)
    trace = result.plan.adaptive
    # Settled, or close enough that more samples are not worth their compute.
    assert trace.stop_reason in ("settled", "enough") and trace.posterior_difficulty == "easy"
    assert trace.confidence >= 0.9
    assert trace.probe_size == planner.adaptive.probe_size == 1
    assert trace.samples == len(result.branches) == 2 and [r.decision for r in trace.rounds] == ["continue", "enough"]
    assert right(result, EASY)
    # The first plan was to buy more samples, one at a time.
    assert trace.probe_tokens < result.cost.tokens and trace.rounds[0].plan.extra >= 1
    served = {k: after[0][k] - before[0][k] for k in ("prompt_tokens", "cached_tokens", "completion_tokens")}
    cost = result.cost
    assert (cost.prompt_tokens, cost.cached_tokens, cost.completion_tokens) == (
        served["prompt_tokens"], served["cached_tokens"], served["completion_tokens"])
    # One answer stays the choice whatever a score says, so the reward model is never asked.
    assert after[1]["classify_texts"] == before[1]["classify_texts"] and cost.reward_tokens == 0
    assert trace.probe_strategy == "majority" and all(b.score is None for b in result.branches)


def test_reward_reads_are_bought_at_their_price_and_counted_against_the_cap():
    """Priced in FLOPs a read of Qwen2.5-Math-RM-72B costs about 50 samples of the 1.5B policy, more than this
    cap: the solver samples instead. Priced in tokens a read costs about one sample, and a split vote is worth
    scoring; every read is counted, and samples plus reads stay within the cap."""
    with SimServer([MEDIUM], seed=5, reward_auroc=0.9) as policy, \
            SimServer([MEDIUM], seed=5, reward_auroc=0.9) as rewards:
        endpoint, orm = Endpoint(policy.url, transport=FAST), OutcomeRewardScorer(rewards.url, transport=FAST)
        flops = solve(MEDIUM.text, "adaptive", 8, endpoint, orm, pass_at_1=0.4)
        before = sim_stats(rewards)
        tokens = Planning(adaptive=AdaptiveConfig(pricing="tokens"))
        runs = [solve(MEDIUM.text, "adaptive", 8, endpoint, orm, planning=tokens, pass_at_1=0.4) for _ in range(4)]
        reads = sim_stats(rewards)["classify_texts"] - before["classify_texts"]
        read = [[render(QWEN_ORM_TEMPLATE, problem=MEDIUM.text, response=text)
                 for text in {b.text for b in r.branches if b.score is not None}] for r in runs]
        counted = [sum(len(ok(rewards.url, "/tokenize", {"prompt": t})["tokens"]) for t in texts) for texts in read]
    assert flops.cost.reward_tokens == 0 and all(b.score is None for b in flops.branches)
    assert flops.plan.adaptive.probe_strategy == "majority"
    assert any(r.cost.reward_tokens > 0 for r in runs), "a split vote on a medium problem is worth a cheap read"
    assert reads == sum(len(texts) for texts in read)  # each distinct text read once
    for result, tokens_read in zip(runs, counted):
        trace = result.plan.adaptive
        assert result.cost.reward_tokens == tokens_read
        assert trace.probe_strategy == ("weighted_vote" if tokens_read else "majority")
        unit = result.cost.completion_tokens / trace.samples
        assert trace.samples + result.cost.reward_tokens / unit <= trace.cap + 1e-9


def test_hopeless_problem_stops_early(endpoint, orm, planner):
    """The server never solves it; its wrong answers cluster (as real ones do), so agreement alone cannot call it
    hard, but more samples are soon not worth their compute."""
    result = solve(HOPELESS.text, "adaptive", 8, endpoint, orm, planning=planner, pass_at_1=0.3)
    trace = result.plan.adaptive
    assert trace.stop_reason in ("hopeless", "enough") and trace.samples < trace.cap == 16
    assert trace.stop_reason == ("hopeless" if trace.posterior_difficulty == "hard" else "enough")
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
                             "expected_cost": None, "beam_width": None, "adaptive": None, "deepconf": None}
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


POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"


def rule(p0: float, sizes: list[int], budget: int, room: float = 16.0, prices: Prices = Prices(),
         table: StrategyTable | None = None, config: AdaptiveConfig = AdaptiveConfig()):
    """(stop reason, option) of the rules on a vote state, with `room` samples' compute left under the cap."""
    table = table or StrategyTable.default(POLICY)
    state = VoteState(BetaPrior(p0), config.alpha, tuple(sizes), (0.0,) * len(sizes), 0, tuple(sizes))
    posterior = update(BetaPrior(p0), sizes)
    choices = options(state, posterior, room, config.round_size, prices, table, None, None)
    return decide(config, budget, choices, state.accuracy() if sizes else None, False, posterior, None)


def test_more_compute_is_bought_only_while_the_vote_state_says_it_pays():
    assert rule(0.9, [8], 8)[0] == "settled"
    assert rule(0.9, [2], 8)[0] == "enough"  # two samples agree on a problem predicted easy
    reason, option = rule(0.5, [1, 1], 8)  # a split: more samples are likely to settle it
    assert reason is None and option.action == "sample" and option.gain > 0.05
    assert rule(0.1, [1] * 12, 4)[0] == "hopeless"  # twelve different answers
    assert rule(0.5, [1, 1], 8, room=0.5)[0] == "cap"  # not even one more sample fits
    # The price falls with the budget: a state worth more samples at budget 16 is not at budget 2.
    assert rule(0.4, [2, 1, 1], 16)[0] is None and rule(0.4, [2, 1, 1], 2)[0] == "enough"


def test_reward_reads_and_searches_are_options_only_where_their_compute_fits():
    evidence = AdaptiveConfig().evidence_for(reward_model("Qwen/Qwen2.5-Math-RM-72B"))
    state = VoteState(BetaPrior(0.5), AdaptiveConfig().alpha, (1, 1), (0.0, 0.0), 0, (1, 1))
    posterior = update(BetaPrior(0.5), [1, 1])
    table = StrategyTable.default(POLICY)
    simulated = SimulatedEvidence(evidence.separation, evidence.clip)
    # In FLOPs a 72B read of a 1.5B policy's sample costs about 59 samples (a read covers the prompt too).
    flops = StrategyTable.default(POLICY, "Qwen/Qwen2.5-Math-RM-72B").pricing()
    assert flops.unit == "flops" and 47 < flops.reward_weight < 48
    cheap = options(state, posterior, 16.0, 2, Prices(score=1.2), table, simulated, None)
    dear = options(state, posterior, 16.0, 2, Prices(score=59.0), table, simulated, None)
    assert {o.action for o in cheap} == {"sample", "sample_scored", "score"}
    assert {o.action for o in dear} == {"sample"}
    assert all(o.cost <= 16.0 for o in cheap + dear)
    # A step-level search is offered at the sizes whose compute fits.
    prm = StrategyTable.default(POLICY, "peiyi9979/math-shepherd-mistral-7b-prm")
    search = options(state, posterior, 30.0, 2, Prices(search={"beam_search": 5.7}), prm, None, None)
    assert {o.size for o in search if o.action == "beam_search"} == {4}


def test_bad_settings_are_named():
    for field, value in (("probe_size", 0), ("round_size", 1.5), ("spread", 0.5), ("settle_confidence", 1.0),
                         ("min_gain", -0.1), ("selection", "best"), ("reward_evidence", "orm"),
                         ("prior_strength", -1.0), ("alpha", 0.0), ("pricing", "joules")):
        with pytest.raises(InputError, match=field):
            AdaptiveConfig(**{field: value})
    with pytest.raises(InputError, match="unknown planner option") as caught:
        AdaptiveConfig.from_options({"probe": 2})
    assert "probe_size" in str(caught.value)


def test_a_planned_search_runs_once_with_the_rest(endpoint, servers):
    """With a step-level reward model the plan may be a tree search; here the table offers only beam search. Its
    compute, the 7B PRM's reads at their price in the 1.5B policy's samples, must fit under the cap."""
    prm = StepTagScorer.math_shepherd(servers[1].url, transport=FAST)
    full = StrategyTable.default("Qwen/Qwen2.5-Math-1.5B-Instruct", "peiyi9979/math-shepherd-mistral-7b-prm")
    table = StrategyTable(full.policy, full.reward_model,
                          {"cot": full.curves["cot"], "beam_search": full.curves["beam_search"]}, full.cost)
    result = solve(MEDIUM.text, "adaptive", 16, endpoint, prm, planning=Planning(table=table), pass_at_1=0.4)
    trace = result.plan.adaptive
    assert trace.stop_reason == "searched" and trace.chosen_by == "beam_search" == trace.search
    policy_tokens, reward_tokens = table.cost.per_unit("beam_search")
    per_unit = (policy_tokens + table.pricing().reward_weight * reward_tokens) / table.sample_tokens()
    assert trace.rounds[-1].plan.strategy == "beam_search" and trace.rounds[-1].plan.size == result.size["search"]
    assert trace.samples + result.size["search"] * per_unit <= trace.cap == 32
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
    planning = Planning(adaptive=AdaptiveConfig(selection="plan", pricing="tokens"))
    for _ in range(3):
        result = solve(MEDIUM.text, "adaptive", 8, endpoint, orm, planning=planning, pass_at_1=0.4)
        answered = [b for b in result.branches if b.answer is not None]
        scored = any(b.score is not None for b in answered)
        assert result.plan.adaptive.chosen_by == ("weighted_vote" if scored else "majority")
        totals = {}
        for b in answered:
            key = next(v.answer for v in result.votes if b.id in v.branches)
            totals[key] = totals.get(key, 0.0) + (b.score or 0.0 if scored else 1.0)
        assert totals[result.answer] == max(totals.values())


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


def test_a_long_thinking_policy_without_a_reward_model_weighs_its_traces_confidence():
    """No reward model and an R1-style policy: samples are streamed with their confidence, which counts as
    evidence (AdaptiveConfig.confidence_for) and comes free, so the rules value new samples with it."""
    short = ThinkingParams(easy_median_tokens=400, hard_median_tokens=1600)
    with SimServer(thinking=True, seed=4, default_rate=0.4, thinking_params=short) as server:
        endpoint = Endpoint(server.url, transport=FAST)
        results = [solve(f"Problem {i}: how many ways are there to choose {i + 2} of {2 * i + 5} books?", "adaptive",
                         4, endpoint, None, pass_at_1=0.4) for i in range(3)]
    for result in results:
        trace = result.plan.adaptive
        assert result.plan.adaptive is not None and trace.stop_reason in STOP_REASONS
        assert trace.samples == len(result.branches) <= trace.cap == 8 and result.cost.reward_tokens == 0
        assert all(b.confidence is not None for b in result.branches)
    assert any(r.plan.adaptive.samples > r.plan.adaptive.probe_size for r in results)
