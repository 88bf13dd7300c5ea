"""The real sglang frontend against the simulator: RuntimeEndpoint construction, a program that forks after
sync() so the shared prefix is sent once and cached, forks that draw different samples, streaming."""

import pytest

sgl = pytest.importorskip("sglang")

from sim_http import RATE_FIELD, RATES, SOLUTIONS, ok, sample_records  # noqa: E402

from sglang_plugin.sim.server import SimServer  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=21) as running:
        yield running


@sgl.function
def first_steps(s, question, width):
    s += sgl.user(question)
    s += sgl.assistant_begin()
    s.sync()  # the frontend only sends the shared prefix before forking if the parent's text is synced
    forks = s.fork(width)
    for f in forks:
        f += sgl.gen("step", max_tokens=400, stop="\n\n", temperature=0.7)
    return [(f["step"], f.get_meta_info("step")) for f in forks]


def test_runtime_endpoint_and_cached_forks(server):
    backend = sgl.RuntimeEndpoint(server.url)
    assert backend.get_model_name() == "Qwen/Qwen2.5-Math-1.5B-Instruct"
    assert backend.get_chat_template().name == "qwen"
    backend.flush_cache()
    before = ok(server.url, "/get_server_info")["internal_states"][0]["sim_stats"]
    record = sample_records()[1]
    state = first_steps.run(question=record["problem"], width=8, backend=backend)
    assert state.error() is None
    steps = state.ret_value
    after = ok(server.url, "/get_server_info")["internal_states"][0]["sim_stats"]
    assert after["requests"] - before["requests"] == 1 + 8  # the prefix once, then one request per fork
    for text, meta in steps:
        assert meta["finish_reason"] == {"type": "stop", "matched": "\n\n"} and "\n\n" not in text
        assert meta["cached_tokens"] == meta["prompt_tokens"] - 1  # the whole prompt came from the cache
    assert len({text for text, _ in steps}) > 1
    spec = server.reasoner.spec_for(record["problem"])
    assert all(any(o.text == text for o in spec.options[0]) for text, _ in steps)


@sgl.function
def solve_whole(s, question):
    s += sgl.user(question)
    s += sgl.assistant(sgl.gen("answer", max_tokens=2000, temperature=0.7))


def test_run_batch_and_streaming(server):
    backend = sgl.RuntimeEndpoint(server.url)
    records = sample_records()[:4]
    states = solve_whole.run_batch([{"question": r["problem"]} for r in records], backend=backend, num_threads=4)
    assert all("\\boxed{" in st["answer"] for st in states)
    # text_iter joins whatever chunks arrived while its reader slept: tokens take time, as on a GPU, so the
    # answer arrives in several pieces even on a loaded machine
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=21, token_delay_ms=2.0) as paced:
        backend = sgl.RuntimeEndpoint(paced.url)
        streamed = solve_whole.run(question=records[2]["problem"], backend=backend, stream=True)
        pieces = list(streamed.text_iter("answer"))
    assert len(pieces) > 1 and "".join(pieces) == streamed["answer"]
    assert streamed.get_meta_info("answer")["finish_reason"]["type"] == "stop"
