"""Every strategy program end to end through the real sglang frontend (`sgl.RuntimeEndpoint` subclass,
forks, threads) against the stand-in server over loopback HTTP, and checks of the search itself."""

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, comparable, sim_stats

from planner.errors import InputError
from planner.grading import extract_answer, shared_grader
from planner.strategies import planned_strategies
from sglang_plugin import Endpoint, OutcomeRewardScorer, SolveConfig, StepTagScorer, run_strategy, solve
from sglang_plugin.config import SamplingConfig, SearchConfig
from sglang_plugin.programs import program_for
from sglang_plugin.programs.particle_filter import effective_sample_size, particle_weights, resample
from sglang_plugin.programs.result import FINISH_REASONS
from sglang_plugin.sim.server import SimServer

SCORED = {"best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter"}


@pytest.fixture(scope="module")
def policy():
    with SimServer(PROBLEMS, seed=7, reward_auroc=0.9) as server:
        yield server


@pytest.fixture(scope="module")
def rewards():
    """Reward models on their own server, so the policy server's counters hold the policy's work only."""
    with SimServer(PROBLEMS, seed=7, reward_auroc=0.9) as server:
        yield server


@pytest.fixture(scope="module")
def endpoint(policy):
    return Endpoint(policy.url, transport=FAST)


@pytest.fixture(scope="module")
def orm(rewards):
    return OutcomeRewardScorer(rewards.url, transport=FAST)


@pytest.fixture(scope="module")
def prm(rewards):
    return StepTagScorer.math_shepherd(rewards.url, transport=FAST)


def test_registry_has_the_planners_names():
    assert list(planned_strategies()) == ["cot", "majority", "best_of_n", "weighted_vote", "beam_search", "dvts",
                                          "particle_filter", "deepconf"]


@pytest.mark.parametrize("strategy", planned_strategies())
def test_every_strategy_solves_end_to_end(strategy, endpoint, prm):
    problem = PROBLEMS[0]
    result = solve(problem.text, strategy, 4, endpoint, prm if strategy in SCORED else None)
    assert result.strategy == strategy and result.budget == 4 and not result.errors
    assert result.answer is not None and result.answer == result.branch(result.chosen).answer
    assert result.votes and result.votes[0].answer is not None
    assert shared_grader().equivalent(result.votes[0].answer, result.answer)
    delimiter = SearchConfig().step_delimiter
    for branch in result.branches:
        assert branch.finish_reason in FINISH_REASONS and branch.error is None
        assert all(step.endswith(delimiter) for step in branch.steps[:-1])  # delimiter added back
        if branch.finish_reason == "answer":
            assert extract_answer(branch.steps[-1]) == branch.answer
            assert delimiter not in branch.steps[-1]
        if strategy in SCORED and branch.finish_reason != "pruned":
            assert branch.step_scores and branch.step_scores[-1] is not None
    assert result.cost.completion_tokens > 0 and result.cost.requests > 0 and result.cost.wall_time > 0
    if strategy in SCORED:
        assert result.cost.reward_tokens > 0
    json.dumps(result.to_dict())  # one JSONL line


def test_costs_are_exactly_what_the_servers_reported(policy, rewards, endpoint, prm):
    policy_before, rewards_before = sim_stats(policy), sim_stats(rewards)
    totals_before = endpoint.totals.snapshot()
    result = solve(PROBLEMS[1].text, "beam_search", 8, endpoint, prm)
    policy_after, rewards_after = sim_stats(policy), sim_stats(rewards)
    served = {k: policy_after[k] - policy_before[k] for k in ("sequences", "prompt_tokens", "cached_tokens",
                                                              "completion_tokens", "requests")}
    cost = result.cost
    assert (cost.prompt_tokens, cost.cached_tokens, cost.completion_tokens) == (
        served["prompt_tokens"], served["cached_tokens"], served["completion_tokens"])
    reward_requests = rewards_after["requests"] - rewards_before["requests"]
    assert cost.requests == served["requests"] + reward_requests
    # The step-tag PRM reads /generate: what it computed is its prompt tokens minus its cache hits.
    assert cost.reward_tokens == ((rewards_after["prompt_tokens"] - rewards_before["prompt_tokens"])
                                  - (rewards_after["cached_tokens"] - rewards_before["cached_tokens"]))
    totals = endpoint.totals.snapshot()
    assert totals.prompt_tokens - totals_before.prompt_tokens == cost.prompt_tokens
    # The fork warm-ups (max_new_tokens 0) are among the requests: more sequences than generating steps.
    steps = sum(len(b.steps) - b.fork_step for b in result.branches)
    assert served["sequences"] > steps


def test_samples_share_the_prompt_through_the_cache_one_request_each(endpoint, policy):
    """The prompt is cached once (the warm-up), then each sample is one request whose prompt is all cache hits."""
    before = sim_stats(policy)
    result = solve(PROBLEMS[2].text, "majority", 8, endpoint, None)
    served = {k: sim_stats(policy)[k] - before[k] for k in ("requests", "sequences", "prompt_tokens", "cached_tokens")}
    assert served["requests"] == result.cost.requests == 1 + 8  # the warm-up and one request per sample
    prompt = served["prompt_tokens"] // 9
    # At most the warm-up's prompt is computed, and one token per sample (a server always computes the last one).
    assert served["prompt_tokens"] - served["cached_tokens"] <= prompt + 8
    assert result.cost.cache_hit_share == served["cached_tokens"] / served["prompt_tokens"] > 0.85


def test_beam_search_keeps_the_top_m_each_step(endpoint, prm):
    config = SolveConfig(search=SearchConfig(beam_width=3))
    result = solve(PROBLEMS[1].text, "beam_search", 9, endpoint, prm, config)
    assert result.size == {"n": 9, "beam_width": 3, "expand": 3}
    trace = result.trace
    assert len(trace) >= 3
    for step, record in enumerate(trace):
        scores = dict(zip(record["candidates"], record["scores"]))
        running = [b for b in record["candidates"] if b not in record["finished"]]
        assert len(record["kept"]) == min(3, len(running))
        assert set(record["kept"]) | set(record["pruned"]) == set(running)
        if record["kept"] and record["pruned"]:
            assert min(scores[b] for b in record["kept"]) >= max(scores[b] for b in record["pruned"])
        if step + 1 < len(trace):
            following = trace[step + 1]["candidates"]
            assert len(following) == 3 * len(record["kept"])
            for branch_id in following:
                branch = result.branch(branch_id)
                assert branch_id in record["kept"] or (branch.parent in record["kept"] and branch.fork_step == step + 1)
    for branch in result.branches:
        if branch.finish_reason == "pruned":
            assert branch.answer is None
    assert result.answer == max((b for b in result.branches if b.answer and b.score is not None),
                                key=lambda b: b.score).answer


def test_dvts_subtrees_stay_independent(endpoint, prm):
    config = SolveConfig(search=SearchConfig(beam_width=2))
    result = solve(PROBLEMS[1].text, "dvts", 8, endpoint, prm, config)
    assert result.size == {"n": 8, "subtrees": 4, "beam_width": 2}
    assert {b.group for b in result.branches} == {0, 1, 2, 3}
    for branch in result.branches:
        if branch.parent is not None:
            assert result.branch(branch.parent).group == branch.group
    records = {(r["step"], r["group"]): r for r in result.trace}
    for (step, group), record in records.items():
        assert len(record["kept"]) <= 1
        assert all(result.branch(b).group == group for b in record["candidates"])
        following = records.get((step + 1, group))
        if following is not None:
            assert record["kept"]
            assert {result.branch(b).parent for b in following["candidates"]} <= {record["kept"][0],
                                                                                  result.branch(record["kept"][0]).parent}
            assert len(following["candidates"]) == 2


def test_particle_resampling_follows_the_weights_on_the_server(endpoint, prm):
    """Over many resampling events, particles heavier than average are drawn as often as their weights
    say, far more often than a uniform draw would pick them (fixed seeds: the same draws every run)."""
    expected = observed = uniform = draws = 0.0
    events = 0
    for seed, problem in enumerate(PROBLEMS):
        config = SolveConfig(search=SearchConfig(seed=seed, pf_ess_threshold=0.9, pf_temperature=0.5))
        result = solve(problem.text, "particle_filter", 8, endpoint, prm, config)
        assert result.answer is not None
        for record in result.trace:
            weights = np.array(record["weights"])
            assert weights.sum() == pytest.approx(1.0)
            assert record["ess"] == pytest.approx(effective_sample_size(weights))
            assert record["resampled"] == (record["ess"] < 0.9 * 8 and record["running"] > 0)
            if not record["resampled"]:
                continue
            events += 1
            counts = Counter(record["ancestors"])
            heavy = weights > 1.0 / len(weights)
            expected += float(weights[heavy].sum()) * len(weights)
            observed += sum(counts[b] for b, h in zip(record["particles"], heavy) if h)
            uniform += float(heavy.sum())
            draws += len(weights)
    assert events >= 10
    assert abs(observed - expected) / draws < 0.08
    assert (observed - uniform) / draws > 0.2


def test_resampling_draws_in_proportion_to_weights():
    rng = np.random.default_rng(0)
    weights = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    counts = Counter()
    for _ in range(4000):
        counts.update(resample(weights, rng))
    total = sum(counts.values())
    for index, weight in enumerate(weights):
        assert counts[index] / total == pytest.approx(weight, abs=0.01)
    assert counts[4] == 0


def test_particle_weights_are_softmax_of_logit_over_temperature():
    weights = particle_weights([0.9, 0.5, None, 0.1], temperature=2.0)
    logits = np.array([np.log(9) / 2, 0.0, np.log(1 / 9) / 2])
    expected = np.exp(logits) / np.exp(logits).sum()
    assert weights[2] == 0.0
    assert weights[[0, 1, 3]] == pytest.approx(expected)
    assert effective_sample_size(np.full(4, 0.25)) == pytest.approx(4.0)


def test_finished_particles_stay_finished(endpoint, prm):
    config = SolveConfig(search=SearchConfig(pf_ess_threshold=1.0, seed=3))
    result = solve(PROBLEMS[3].text, "particle_filter", 8, endpoint, prm, config)
    finals = [b for b in result.branches if b.weight is not None]
    assert len(finals) == 8 and sum(b.weight for b in finals) == pytest.approx(1.0)
    for branch in result.branches:
        if branch.parent is not None and branch.fork_step == len(result.branch(branch.parent).steps):
            parent = result.branch(branch.parent)
            if parent.finish_reason in ("answer", "eos"):  # a copy of a finished particle
                assert branch.steps == parent.steps and branch.answer == parent.answer
    groups = {v.answer: v.score for v in result.votes}
    assert sum(groups.values()) == pytest.approx(sum(b.weight for b in finals if b.answer is not None))


def test_votes_partition_answers_into_equivalent_groups(endpoint):
    result = solve(PROBLEMS[0].text, "majority", 12, endpoint, None)
    grouper = shared_grader()
    answered = [b for b in result.branches if b.answer is not None]
    assert sum(len(v.branches) for v in result.votes) == len(answered)
    assert [v.score for v in result.votes] == sorted((v.score for v in result.votes), reverse=True)
    assert all(v.score == len(v.branches) for v in result.votes)
    for vote in result.votes:
        for branch_id in vote.branches:
            assert grouper.equivalent(result.branch(branch_id).answer, vote.answer)
    for a in result.votes:
        for b in result.votes:
            if a is not b:
                assert not grouper.equivalent(a.answer, b.answer)
    assert result.answer == result.votes[0].answer


def test_weighted_vote_sums_reward_per_group(endpoint, orm):
    result = solve(PROBLEMS[1].text, "weighted_vote", 8, endpoint, orm)
    for vote in result.votes:
        assert vote.score == pytest.approx(sum(result.branch(b).score for b in vote.branches))
        assert all(0 < result.branch(b).score < 1 for b in vote.branches)
    assert result.answer == result.votes[0].answer


@pytest.mark.parametrize("aggregation", ["last", "min", "prod", "mean"])
def test_best_of_n_aggregates_step_scores(endpoint, prm, aggregation):
    result = solve(PROBLEMS[1].text, "best_of_n", 4, endpoint, prm, SolveConfig(search=SearchConfig(aggregation=aggregation)))
    scored = [b for b in result.branches if b.score is not None]
    assert scored
    for branch in scored:
        values = branch.step_scores
        if aggregation == "last":  # only the last step is scored: the others cost reward tokens for nothing
            assert values[:-1] == [None] * (len(branch.steps) - 1)
            expected = values[-1]
        else:
            assert len(values) == len(branch.steps) and None not in values
            expected = {"min": min(values), "prod": float(np.prod(values)), "mean": float(np.mean(values))}[aggregation]
        assert branch.score == pytest.approx(expected)
    assert result.branch(result.chosen).score == max(b.score for b in scored)


def test_step_and_token_caps(endpoint, prm):
    capped = solve(PROBLEMS[1].text, "beam_search", 4, endpoint, prm, SolveConfig(search=SearchConfig(max_steps=2)))
    for branch in capped.branches:
        assert len(branch.steps) <= 2 and branch.finish_reason in ("answer", "max_steps", "pruned", "eos")
    assert len(capped.trace) <= 2
    short = solve(PROBLEMS[1].text, "cot", 1, endpoint, None, SolveConfig(SamplingConfig(max_tokens=40)))
    (branch,) = short.branches
    assert branch.finish_reason == "length" and branch.tokens == 40 and branch.answer is None
    stepped = solve(PROBLEMS[1].text, "beam_search", 4, endpoint, prm,
                    SolveConfig(SamplingConfig(max_tokens=40), SearchConfig(max_step_tokens=16)))
    for branch in stepped.branches:
        assert branch.tokens <= 40 and all(not s.endswith("\n\n") for s in branch.steps if len(s) > 100)


def test_a_sample_is_one_request_and_its_steps_are_its_paragraphs(endpoint, policy):
    """Sampling strategies generate a whole solution per request; the steps a scorer sees are its paragraphs."""
    before = sim_stats(policy)["requests"]
    result = solve(PROBLEMS[3].text, "cot", 1, endpoint)
    assert sim_stats(policy)["requests"] - before == result.cost.requests == 1
    (branch,) = result.branches
    assert len(branch.steps) > 1 and "".join(branch.steps) == branch.text
    assert all(step.endswith("\n\n") for step in branch.steps[:-1])


def test_runs_inside_a_users_own_program(endpoint):
    @sgl.function
    def tutor(s, problem):
        s += sgl.system("You are a careful math tutor.")
        result = run_strategy(s, "majority", problem, 4)
        s += sgl.user("Now give only the final answer.")
        s += sgl.assistant(sgl.gen("final", max_tokens=24, temperature=0))
        return result

    states = tutor.run_batch([{"problem": p.text} for p in PROBLEMS[:2]], backend=endpoint, num_threads=2)
    for state, problem in zip(states, PROBLEMS[:2]):
        result = state.ret_value
        assert result.answer is not None and state["answer"] == result.answer
        messages = state.messages()
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
        assert messages[0]["content"] == "You are a careful math tutor."
        assert messages[1]["content"] == problem.text + SamplingConfig().instruction
        assert messages[2]["content"] == result.branch(result.chosen).text.strip()
        # The program's cost is its own: the warm-up and its four samples, not the tutor's final gen, not the
        # other program's.
        assert result.cost.requests == 5
        assert result.cost.completion_tokens == sum(b.tokens for b in result.branches)
        assert state.get_meta_info("final")["completion_tokens"] > 0


def test_program_costs_add_up_to_the_endpoint_totals(policy):
    endpoint = Endpoint(policy.url, transport=FAST)
    results = [solve(p.text, "majority", 3, endpoint, None) for p in PROBLEMS[:2]]
    totals = endpoint.totals.snapshot()
    assert totals.prompt_tokens == sum(r.cost.prompt_tokens for r in results)
    assert totals.cached_tokens == sum(r.cost.cached_tokens for r in results)
    assert totals.completion_tokens == sum(r.cost.completion_tokens for r in results)
    assert totals.requests == sum(r.cost.requests for r in results)


@pytest.mark.parametrize("strategy", ["majority", "beam_search", "dvts", "particle_filter"])
def test_deterministic_under_the_server_seed(strategy):
    runs = []
    for _ in range(2):
        with SimServer(PROBLEMS, seed=11, reward_auroc=0.8) as server:
            scorer = StepTagScorer.math_shepherd(server.url, transport=FAST)
            runs.append(comparable(solve(PROBLEMS[3].text, strategy, 8, server.url,
                                         scorer if strategy in SCORED else None)))
    assert runs[0] == runs[1]


def test_bad_input_is_a_clear_error(endpoint, prm):
    with pytest.raises(InputError, match="unknown strategy 'beam'"):
        solve("What is 1+1?", "beam", 4, endpoint)
    with pytest.raises(InputError, match="budget"):
        solve("What is 1+1?", "majority", 0, endpoint)
    with pytest.raises(InputError, match="scorer"):
        solve("What is 1+1?", "beam_search", 4, endpoint)
    with pytest.raises(InputError, match="problem"):
        solve("  ", "cot", 1, endpoint)
    with pytest.raises(InputError, match="beam_width"):
        SearchConfig(beam_width=0)
    with pytest.raises(InputError, match="unknown field") as caught:
        SolveConfig.from_dict({"search": {"beams": 2}}, "my-config.json")
    assert caught.value.field == "search.beams" and "my-config.json" in str(caught.value)
    with pytest.raises(InputError, match="aggregation"):
        SearchConfig(aggregation="max")
    with pytest.raises(TypeError, match="sglang_plugin.Endpoint"):
        program_for("cot").run(problem="What is 1+1?", budget=1, backend=sgl.RuntimeEndpoint(endpoint.base_url))


def test_solve_is_the_function_whatever_was_imported_before():
    """`from sglang_plugin import solve` after the batch runner (which imports the module that defines it) still
    gives the function: no submodule of the package shares its name."""
    code = ("import sglang_plugin.runs.batch\nfrom sglang_plugin import solve, run_strategy\n"
            "print(callable(solve), callable(run_strategy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "True"], done.stderr
