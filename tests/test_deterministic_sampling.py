"""Servers that sample deterministically (SGLang 0.5.3 on, `--enable-deterministic-inference`): a sampled request
without its own `sampling_seed` is sampled with seed 42, so N identical requests would give one sample N times and
every vote would be one sample's. Over real HTTP with the real sglang frontend: the stand-in server does what
SGLang does there, and each branch sends a seed of its own (from the search seed and its id), so its samples differ,
a run is reproducible, and a server that is not deterministic (0.5.2 rejects the field) never sees one."""

import json
import logging
import urllib.request

import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, SAMPLE, needs_smg

from sglang_plugin import Endpoint, solve
from sglang_plugin.config import SearchConfig, SolveConfig
from sglang_plugin.programs.search_run import sampling_seed
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import ThinkingParams

HARD = PROBLEMS[1]


def _generate(url: str, text: str, **sampling) -> str:
    body = json.dumps({"text": text, "sampling_params": {"temperature": 0.7, "max_new_tokens": 64, **sampling}})
    request = urllib.request.Request(url + "/generate", body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())["text"]


def _info(url: str) -> dict:
    with urllib.request.urlopen(url + "/get_server_info", timeout=10) as response:
        return json.loads(response.read())


def test_a_deterministic_server_gives_identical_requests_one_sample():
    """What the client must work around: without a seed, the same request gives the same sample every time."""
    with SimServer(PROBLEMS, enable_deterministic_inference=True) as server:
        assert _info(server.url)["enable_deterministic_inference"] is True
        unseeded = {_generate(server.url, HARD.text) for _ in range(4)}
        seeded = {_generate(server.url, HARD.text, sampling_seed=seed) for seed in range(4)}
        again = {_generate(server.url, HARD.text, sampling_seed=seed) for seed in range(4)}
    assert len(unseeded) == 1 and len(seeded) == 4 and again == seeded
    with SimServer(PROBLEMS) as server:  # by default (and in 0.5.2) sampling is random and the info says nothing
        assert "enable_deterministic_inference" not in _info(server.url)
        assert len({_generate(server.url, HARD.text) for _ in range(4)}) == 4


def _texts(url: str, strategy: str = "majority", n: int = 8, seed: int = 0, **search) -> list[str]:
    config = SolveConfig(search=SearchConfig(seed=seed, **search))
    result = solve(HARD.text, strategy, n, Endpoint(url, transport=FAST), config=config)
    assert not result.failed_branches
    return [b.text for b in sorted(result.branches, key=lambda b: b.id)]


@pytest.mark.compat
def test_every_branch_draws_a_sample_of_its_own_and_a_run_is_reproducible():
    with SimServer(PROBLEMS, enable_deterministic_inference=True) as server:
        first = _texts(server.url)
        assert len(set(first)) == 8  # one identical sample eight times without the seeds
        assert _texts(server.url) == first  # the same draws again, branch for branch
        other = _texts(server.url, seed=1)
    assert len(set(other)) == 8 and set(other) != set(first)  # another search seed, other samples
    assert len({sampling_seed(0, branch) for branch in range(1000)}) == 1000
    assert all(0 <= sampling_seed(seed, 7) < 2 ** 63 for seed in (-5, 0, 2 ** 70))


def test_a_server_that_is_not_deterministic_is_sent_no_seed():
    """0.5.2 refuses a sampling parameter it does not know; a seed would also make repeated runs repeat."""
    with SimServer(PROBLEMS) as server:
        endpoint = Endpoint(server.url, transport=FAST)
        assert not endpoint.deterministic
        assert _texts(server.url) != _texts(server.url)  # the server's draws move on: no seed was sent


def test_deepconf_traces_differ_on_a_deterministic_server_streamed_or_in_segments():
    short = ThinkingParams(easy_median_tokens=600, hard_median_tokens=2400)
    with SimServer(PROBLEMS, thinking=True, thinking_params=short, enable_deterministic_inference=True) as server:
        for transport in ("stream", "segments"):
            texts = _texts(server.url, "deepconf", 8, deepconf_mode="offline", confidence_window=256,
                           confidence_transport=transport, confidence_segment_tokens=512)
            assert len(set(texts)) == 8, transport
            assert _texts(server.url, "deepconf", 8, deepconf_mode="offline", confidence_window=256,
                          confidence_transport=transport, confidence_segment_tokens=512) == texts


@needs_smg
def test_seeds_reach_a_deterministic_worker_through_the_gateway(gateway):
    """The gateway answers /get_server_info from a worker, and passes each request's seed on."""
    front, _ = gateway(1, "round_robin", options=("--enable-deterministic-inference",))
    problem = json.loads(SAMPLE.read_text().splitlines()[0])["problem"]
    result = solve(problem, "majority", 6, Endpoint(front.url, transport=FAST))
    assert len({b.text for b in result.branches}) == 6


@sgl.function
def _three_forks(s, question, temperature):
    s += question
    forks = s.fork(3)
    for fork in forks:
        fork += sgl.gen("answer", max_tokens=48, temperature=temperature)
    s["answers"] = [fork["answer"] for fork in forks]


@pytest.mark.compat
def test_a_users_own_forks_on_a_deterministic_server_are_warned_about_once(caplog):
    """The frontend's sgl.gen cannot send a seed, so a user's forks of one prompt all get seed 42 and one sample:
    the endpoint says so once (the server's URL without its credentials), and not for greedy requests or a
    server that samples at random."""
    caplog.set_level(logging.WARNING, logger="tts_planner")
    with SimServer(PROBLEMS, enable_deterministic_inference=True) as server:
        host = server.url.replace("http://", "http://user:hunter2@")
        greedy = Endpoint(host, transport=FAST)
        _three_forks.run(HARD.text, 0.0, backend=greedy)
        assert not caplog.records
        endpoint = Endpoint(host, transport=FAST)
        for _ in range(2):
            answers = _three_forks.run(HARD.text, 0.7, backend=endpoint)["answers"]
            assert len(set(answers)) == 1  # the hazard itself: three forks, one sample
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and "seed 42" in warned[0] and "hunter2" not in warned[0]
    caplog.clear()
    with SimServer(PROBLEMS) as server:
        answers = _three_forks.run(HARD.text, 0.7, backend=Endpoint(server.url, transport=FAST))["answers"]
        assert len(set(answers)) > 1 and not caplog.records  # short answers may still coincide
