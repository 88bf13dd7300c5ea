"""The documented error policy under the stand-in server's fault injection: 500s, dropped connections and
stalls are retried into the same result a healthy server gives; a 4xx is not retried; what still fails
fails only its branches, with the error, and costs stay exact; a server that is down is a clear error."""

import socket
import time
from dataclasses import replace

import pytest
from conftest import FAST, PROBLEMS, comparable, sim_stats

from sglang_plugin import Endpoint, EndpointError, OutcomeRewardScorer, StepTagScorer, solve
from sglang_plugin.sim.server import SimServer
from sglang_plugin.transport.http import HttpClient

PATIENT = replace(FAST, max_retries=6, slowest_tokens_per_second=1e6)  # stalls are timed out after read_timeout


def _run(server, strategy, transport, budget=4, scored=True):
    scorer = StepTagScorer.math_shepherd(server.url, transport=transport) if scored else None
    return solve(PROBLEMS[3].text, strategy, budget, Endpoint(server.url, transport=transport), scorer)


@pytest.fixture(scope="module")
def clean_beam():
    with SimServer(PROBLEMS, seed=5) as server:
        return comparable(_run(server, "beam_search", PATIENT))


@pytest.mark.parametrize("fault", [{"fail_rate": 0.2}, {"drop_rate": 0.2},
                                   {"stall_rate": 0.15, "stall_seconds": 30.0}])
def test_faults_are_retried_into_the_healthy_result(fault, clean_beam):
    config = replace(PATIENT, read_timeout=0.5)
    with SimServer(PROBLEMS, seed=5, **fault) as server:
        result = _run(server, "beam_search", config)
        faults = sim_stats(server)["faults"]
    assert sum(faults.values()) > 0 and result.retries == sum(faults.values())  # one retry per fault
    assert not result.errors and not result.failed_branches
    retried, clean = comparable(result), dict(clean_beam)
    assert retried.pop("retries") > 0 and clean.pop("retries") == 0
    assert retried == clean


def test_what_still_fails_fails_only_its_branch_and_costs_stay_exact():
    config = replace(FAST, max_retries=0)
    with SimServer(PROBLEMS, seed=2, fail_rate=0.3) as server:
        before = sim_stats(server)
        result = _run(server, "majority", config, budget=8, scored=False)
        after = sim_stats(server)
    failed = result.failed_branches
    assert failed and len(failed) < len(result.branches)
    for branch in failed:
        assert branch.answer is None and "HTTP 500" in branch.error and "1 attempt" in branch.error
        assert any(f"branch {branch.id}:" in e for e in result.errors)
    counted = {b for v in result.votes for b in v.branches}
    assert counted.isdisjoint(b.id for b in failed)
    assert result.answer is not None
    served = {k: after[k] - before[k] for k in ("sequences", "prompt_tokens", "cached_tokens", "completion_tokens")}
    assert result.cost.requests == served["sequences"]
    assert (result.cost.prompt_tokens, result.cost.cached_tokens, result.cost.completion_tokens) == (
        served["prompt_tokens"], served["cached_tokens"], served["completion_tokens"])


def test_all_branches_failing_gives_no_answer_with_the_errors():
    config = replace(FAST, max_retries=2)
    with SimServer(PROBLEMS, seed=2, fail_rate=1.0) as server:
        result = _run(server, "majority", config, budget=3, scored=False)
    assert result.answer is None and result.chosen is None and result.votes == []
    assert len(result.failed_branches) == 3
    assert any(e.startswith("prefix cache request:") for e in result.errors)  # the fork warm-up, recorded
    assert all("gave up after 3 attempt(s)" in b.error for b in result.failed_branches)
    assert result.retries == 4 * 2  # warm-up and 3 branches, 2 retries each
    assert result.cost.requests == 0 and result.cost.tokens == 0


def test_a_stalled_server_times_out_into_a_failed_branch():
    config = replace(FAST, read_timeout=0.3, max_retries=1, slowest_tokens_per_second=1e6)
    with SimServer(PROBLEMS, seed=2, stall_rate=1.0, stall_seconds=30.0) as server:
        start = time.monotonic()
        result = _run(server, "cot", config, budget=1, scored=False)
        elapsed = time.monotonic() - start
    assert result.answer is None
    (branch,) = result.branches
    assert branch.finish_reason == "failed" and "timeout" in branch.error
    assert elapsed < 20  # bounded by the read timeout and retries, not the 30 s stall


def test_a_long_generation_is_not_timed_out_as_a_stall():
    """A non-streamed generation sends nothing until it is done: it gets read_timeout plus its max_new_tokens at
    slowest_tokens_per_second, so a slow one is neither cut nor retried (SGLang would abort it and bill it)."""
    with SimServer(PROBLEMS, seed=2, token_delay_ms=4.0) as server:  # a few hundred tokens: over a second
        slow = _run(server, "cot", replace(FAST, read_timeout=0.3, max_retries=1), budget=1, scored=False)
        assert slow.answer is not None and slow.retries == 0 and not slow.errors
        assert slow.cost.completion_tokens * 0.004 > 0.6  # it did take longer than the read timeout, twice over
        strict = _run(server, "cot", replace(FAST, read_timeout=0.3, max_retries=1, slowest_tokens_per_second=1e6),
                      budget=1, scored=False)
    assert strict.answer is None and "timeout" in strict.branches[0].error and strict.retries == 1


def test_a_4xx_answer_is_not_retried():
    with SimServer(PROBLEMS, seed=2, context_length=64) as server:  # the prompt does not fit
        result = _run(server, "majority", FAST, budget=2, scored=False)
        assert sim_stats(server)["requests"] == 3  # warm-up and two branches, each sent once
    assert result.answer is None and result.retries == 0
    assert all("HTTP 400" in b.error and "context length" in b.error for b in result.failed_branches)


def test_a_reward_server_that_is_down_fails_the_scored_branches():
    with SimServer(PROBLEMS, seed=2) as server:
        scorer = OutcomeRewardScorer(f"http://127.0.0.1:{_closed_port()}", transport=replace(FAST, max_retries=1))
        result = solve(PROBLEMS[3].text, "best_of_n", 3, Endpoint(server.url, transport=FAST), scorer)
    assert result.answer is None
    assert result.failed_branches and all("scoring failed" in b.error for b in result.failed_branches)
    assert result.cost.completion_tokens > 0  # the policy's work is still reported


def test_a_policy_server_that_is_down_is_a_clear_error():
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(EndpointError) as caught:
        solve(PROBLEMS[0].text, "cot", 1, url, transport=replace(FAST, max_retries=1))
    assert caught.value.kind == "connection" and caught.value.attempts == 2
    assert f"GET {url}/get_model_info" in str(caught.value)


def test_a_server_that_goes_away_mid_session_fails_the_branches():
    server = SimServer(PROBLEMS, seed=2).start()
    endpoint = Endpoint(server.url, transport=replace(FAST, max_retries=1))
    server.stop()
    result = solve(PROBLEMS[0].text, "majority", 2, endpoint)
    assert result.answer is None and len(result.failed_branches) == 2
    assert all("connection error" in b.error for b in result.failed_branches)


def test_backoff_is_full_jitter_under_a_cap():
    client = HttpClient(replace(FAST, backoff_initial=0.5, backoff_max=3.0))
    for attempt, cap in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        delays = [client._delay(attempt, None) for _ in range(300)]
        assert 0 <= min(delays) and max(delays) <= cap and max(delays) > 0.8 * cap
    assert client._delay(0, retry_after=10.0) == 3.0 and client._delay(0, retry_after=1.5) == 1.5


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
