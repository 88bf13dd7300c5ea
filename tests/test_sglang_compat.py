"""Everything tts-planner asks of the sglang frontend, against the stand-in server, with whatever sglang is
installed: CI runs it with the light 0.5.2 frontend, and `python scripts/check_sglang_compat.py` runs it in an
environment with the current release (see the README's "SGLang versions")."""

import json

import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, sim_stats

from planner.strategies import REGISTRY, planned_strategies
from sglang_plugin import Endpoint, OutcomeRewardScorer, StepTagScorer, run_strategy, solve
from sglang_plugin.compat import VERSION, chat_template, global_config, special_token_defaults
from sglang_plugin.sim.server import SimServer

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def servers():
    with SimServer(PROBLEMS, seed=3, reward_auroc=0.9) as policy, SimServer(PROBLEMS, seed=3) as rewards:
        yield policy, rewards


@pytest.fixture(scope="module")
def endpoint(servers):
    return Endpoint(servers[0].url, transport=FAST)


def test_the_internals_tts_planner_reads_are_found():
    assert VERSION.split(".")[:2] >= ["0", "5"]
    assert isinstance(special_token_defaults()["skip_special_tokens"], bool)
    assert hasattr(global_config, "skip_special_tokens_in_output")
    template = chat_template(None, "Qwen/Qwen2.5-Math-1.5B-Instruct")
    assert template.role_prefix_and_suffix["user"][0].startswith("<|im_start|>user")


@pytest.mark.parametrize("strategy", [*planned_strategies(), "adaptive"])
def test_every_program_runs(strategy, endpoint, servers):
    scorer = StepTagScorer.math_shepherd(servers[1].url, transport=FAST) \
        if strategy == "adaptive" or REGISTRY[strategy].needs_reward else None
    result = solve(PROBLEMS[0].text, strategy, 4, endpoint, scorer)
    assert result.answer is not None and not result.failed_branches
    assert result.cost.completion_tokens > 0
    assert result.cost.cached_tokens > 0 or strategy == "cot"  # the samples (or steps) share the cached prompt


def test_the_outcome_reward_model_scores(endpoint, servers):
    scorer = OutcomeRewardScorer(servers[1].url, transport=FAST)
    result = solve(PROBLEMS[1].text, "weighted_vote", 4, endpoint, scorer)
    assert all(b.score is not None for b in result.branches if b.answer is not None)
    assert result.cost.reward_tokens > 0


def test_a_users_own_program_with_its_own_gen_fork_and_batch(endpoint):
    @sgl.function
    def tutor(s, problem):
        s += sgl.system("You are a careful math tutor.")
        result = run_strategy(s, "majority", problem, 3)
        s += sgl.user("Two ways to check it?")
        forks = s.fork(2)
        for f in forks:
            f += sgl.assistant(sgl.gen("check", max_tokens=16, temperature=0.7))
        forks.join()
        s += sgl.user("The final answer only.")
        s += sgl.assistant(sgl.gen("final", max_tokens=24, temperature=0))
        return result

    states = tutor.run_batch([{"problem": p.text} for p in PROBLEMS[:2]], backend=endpoint, num_threads=2)
    for state in states:
        assert state.ret_value.answer is not None and state["answer"] == state.ret_value.answer
        assert state.get_meta_info("final")["completion_tokens"] > 0
        assert [m["role"] for m in state.messages()][:3] == ["system", "user", "assistant"]


def test_a_plain_runtime_endpoint_is_taken_as_its_url(servers):
    before = sim_stats(servers[0])["requests"]
    result = solve(PROBLEMS[2].text, "majority", 3, sgl.RuntimeEndpoint(servers[0].url), transport=FAST)
    assert result.answer is not None and sim_stats(servers[0])["requests"] - before == 1 + 3


def test_a_stream_can_be_read_and_stopped():
    with SimServer(PROBLEMS, seed=3, token_delay_ms=5, stream_interval=2) as server:
        endpoint = Endpoint(server.url, transport=FAST)
        payload = endpoint.payload("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
                                   {"max_new_tokens": 200, "temperature": 0.7, "ignore_eos": True})
        seen = []
        last, stopped = endpoint.stream(payload, None, lambda event: seen.append(event) or len(seen) < 3)
    assert stopped and len(seen) == 3
    # the stop aborted the request on the server, whose last chunk counts every token it generated
    assert last["meta_info"]["finish_reason"]["type"] == "abort"
    assert seen[-1]["meta_info"]["completion_tokens"] <= last["meta_info"]["completion_tokens"] < 200
    json.dumps(last)
