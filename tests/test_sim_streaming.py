"""The stand-in's streaming, abort and operations endpoints against SGLang 0.5.2's shapes, over real HTTP:
chunk contents, stream_interval, incremental output, /abort_request (plain and streamed), abort on
disconnect, /get_load, /v1/loads, /v1/models, the profiler switches and /get_server_info."""

import itertools
import threading
import time

import pytest
from sim_http import (
    RATE_FIELD,
    RATES,
    SOLUTIONS,
    Stream,
    call,
    ok,
    prompt,
    sample_records,
    sim_stats,
    stream_and_abort,
    wait_idle,
)

from sglang_plugin.sim.server import SimServer


def flat(lists) -> list:
    return list(itertools.chain.from_iterable(lists))


ABORT = {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}


@pytest.fixture(scope="module")
def server():
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def text():
    return prompt(sample_records()[1]["problem"])


def payload(text, **extra):
    return {"text": text, "sampling_params": {"max_new_tokens": 400, "temperature": 0, **extra.pop("sampling", {})},
            "return_logprob": True, "top_logprobs_num": 3, **extra}


def test_stream_chunks_match_sglang_052(server, text):
    plain = ok(server.url, "/generate", payload(text, rid="plain-1"))
    stream = Stream(server.url, payload(text, rid="stream-1"))
    chunks = list(stream)
    assert stream.done
    assert all(c["meta_info"]["id"] == "stream-1" for c in chunks) and plain["meta_info"]["id"] == "plain-1"
    assert all(len(c["output_ids"]) == 1 for c in chunks[:-1])  # only the new ids
    assert flat(c["output_ids"] for c in chunks) == plain["output_ids"]
    counts = [c["meta_info"]["completion_tokens"] for c in chunks]
    assert counts == list(range(1, len(chunks) + 1)) and counts[-1] == plain["meta_info"]["completion_tokens"]
    for chunk in chunks[:-1]:
        meta = chunk["meta_info"]
        assert meta["finish_reason"] is None and "e2e_latency" not in meta
        n = meta["completion_tokens"]  # logprobs produced so far
        assert meta["output_token_logprobs"] == plain["meta_info"]["output_token_logprobs"][:n]
        assert meta["output_top_logprobs"] == plain["meta_info"]["output_top_logprobs"][:n]
        assert meta["input_token_logprobs"] == plain["meta_info"]["input_token_logprobs"]
        assert plain["text"].startswith(chunk["text"])  # cumulative text
    last = chunks[-1]
    assert last["text"] == plain["text"] and last["meta_info"]["finish_reason"] == plain["meta_info"]["finish_reason"]
    for name in ("output_token_logprobs", "output_top_logprobs", "prompt_tokens"):
        assert last["meta_info"][name] == plain["meta_info"][name]
    assert "e2e_latency" in last["meta_info"]


@pytest.mark.parametrize("where", ["server", "request"])
def test_stream_interval(text, where):
    options = {"stream_interval": 8} if where == "server" else {}
    with SimServer(seed=5, **options) as running:
        body = payload(text, sampling={"stream_interval": 8} if where == "request" else {})
        chunks = list(Stream(running.url, body))
        plain = ok(running.url, "/generate", payload(text))
    total = plain["meta_info"]["completion_tokens"]
    counts = [c["meta_info"]["completion_tokens"] for c in chunks]
    assert counts[:-1] == list(range(1, total, 8)) and counts[-1] == total  # 0.5.2: at 1, 9, 17, ... and the end
    assert flat(c["output_ids"] for c in chunks) == plain["output_ids"]


def test_incremental_streaming_output(text):
    with SimServer(seed=5, incremental_streaming_output=True, stream_interval=5) as running:
        chunks = list(Stream(running.url, payload(text)))
        plain = ok(running.url, "/generate", payload(text))
    assert "".join(c["text"] for c in chunks) == plain["text"]
    assert flat(c["output_ids"] for c in chunks) == plain["output_ids"]
    for name in ("output_token_logprobs", "output_top_logprobs"):
        assert flat(c["meta_info"][name] for c in chunks) == plain["meta_info"][name]
    assert all(len(c["meta_info"]["output_token_logprobs"]) == len(c["output_ids"]) for c in chunks)


def test_abort_plain_request_by_rid():
    with SimServer(seed=5, token_delay_ms=20) as running:
        before = sim_stats(running.url)
        answers = {}
        worker = threading.Thread(target=lambda: answers.setdefault("r", ok(
            running.url, "/generate", {"text": "Count to a thousand.", "rid": "slow-1",
                                       "sampling_params": {"max_new_tokens": 1000, "ignore_eos": True}})))
        started = time.monotonic()
        worker.start()
        time.sleep(0.3)
        assert call(running.url, "/abort_request", {"rid": "slow-1"}) == (200, "")
        worker.join(10)
        elapsed = time.monotonic() - started
        after = wait_idle(running.url)
    meta = answers["r"]["meta_info"]
    assert meta["finish_reason"] == ABORT and meta["id"] == "slow-1"
    assert 5 <= meta["completion_tokens"] == len(answers["r"]["output_ids"]) < 100
    assert elapsed < 2.0  # not the 20 s the whole request would take
    assert after["completion_tokens"] - before["completion_tokens"] == meta["completion_tokens"]
    assert after["aborted_requests"] - before["aborted_requests"] == 1
    assert after["aborted_tokens"] - before["aborted_tokens"] == meta["completion_tokens"]


def test_abort_streamed_request_counts_what_was_delivered():
    with SimServer(seed=5, token_delay_ms=10) as running:
        before = sim_stats(running.url)
        stream, chunks, elapsed = stream_and_abort(running.url, {
            "text": "Count to a thousand.", "rid": "stream-abort",
            "sampling_params": {"max_new_tokens": 1000, "ignore_eos": True}}, after=5)
        after = wait_idle(running.url)
    assert stream.done  # the stream ends the way SGLang ends it: a last chunk, then [DONE]
    last = chunks[-1]["meta_info"]
    delivered = sum(len(c["output_ids"]) for c in chunks)
    assert last["finish_reason"] == ABORT and last["completion_tokens"] == delivered < 100
    assert after["completion_tokens"] - before["completion_tokens"] == delivered
    assert elapsed < 2.0


def test_abort_all_and_unknown_rid():
    with SimServer(seed=5, token_delay_ms=20) as running:
        assert call(running.url, "/abort_request", {"rid": "nobody"}) == (200, "")
        assert call(running.url, "/abort_request", {}) == (200, "")
        assert call(running.url, "/abort_request", {"rid": 3})[0] == 400
        results = []
        body = {"text": "Count.", "sampling_params": {"max_new_tokens": 1000, "ignore_eos": True, "n": 3}}
        worker = threading.Thread(target=lambda: results.append(ok(running.url, "/generate", body)))
        worker.start()
        time.sleep(0.2)
        assert ok(running.url, "/get_load")["load"] > 0
        assert call(running.url, "/abort_request", {"abort_all": True})[0] == 200
        worker.join(10)
        assert wait_idle(running.url)["running"] == 0
    assert len(results[0]) == 3 and all(r["meta_info"]["finish_reason"] == ABORT for r in results[0])


def test_closing_the_stream_aborts_the_request():
    with SimServer(seed=5, token_delay_ms=10) as running:
        before = sim_stats(running.url)
        stream = Stream(running.url, {"text": "Count to a thousand.",
                                      "sampling_params": {"max_new_tokens": 1000, "ignore_eos": True}})
        seen = 0
        for chunk in stream:
            seen += len(chunk["output_ids"])
            if seen >= 3:
                break
        stream.close()
        after = wait_idle(running.url, timeout=3)
    assert after["running"] == 0 and after["aborted_requests"] - before["aborted_requests"] == 1
    assert seen <= after["completion_tokens"] - before["completion_tokens"] < 100


def test_concurrent_requests_overlap_like_a_batch():
    with SimServer(seed=5, token_delay_ms=5) as running:
        body = {"text": "Count.", "sampling_params": {"max_new_tokens": 100, "ignore_eos": True}}
        started = time.monotonic()
        threads = [threading.Thread(target=ok, args=(running.url, "/generate", body)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() - started < 8 * 0.5 / 2


def test_load_endpoints(server):
    assert ok(server.url, "/get_load") == {"load": 0}
    loads = ok(server.url, "/v1/loads")
    assert {"timestamp", "version", "loads"} <= set(loads)
    rank = loads["loads"][0]
    assert {"dp_rank", "num_running_reqs", "num_waiting_reqs", "num_used_tokens", "max_total_num_tokens",
            "token_usage", "gen_throughput", "cache_hit_rate", "memory", "queues"} <= set(rank)
    models = ok(server.url, "/v1/models")
    assert models["object"] == "list" and models["data"][0]["owned_by"] == "sglang"
    assert models["data"][0]["id"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"


def test_profile_endpoints(server):
    assert call(server.url, "/start_profile", method="POST") == (200, "Start profiling.\n")
    assert call(server.url, "/start_profile", method="POST")[0] == 500  # SGLang: already in progress
    assert call(server.url, "/stop_profile", method="GET") == (200, "Stop profiling. This will take some time.\n")
    assert call(server.url, "/stop_profile", method="POST")[0] == 500  # not in progress
    assert call(server.url, "/start_profile", {"num_steps": 1, "activities": ["CPU"]})[0] == 200
    ok(server.url, "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 2}})
    assert sim_stats(server.url)["profiling"] is False  # stopped by itself after num_steps


def test_server_info_fields(server):
    for path in ("/get_server_info", "/server_info"):
        info = ok(server.url, path)
        assert info["served_model_name"] == info["model_path"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"
        assert info["max_req_input_len"] == min(info["context_length"] - 1, info["max_total_num_tokens"] - 1) - 5
        assert info["status"] == "ready" and info["version"] == "0.5.2" and info["dp_size"] == 1
        state = info["internal_states"][0]
        assert {"load", "last_gen_throughput", "memory_usage", "sim_stats"} <= set(state)
        assert state["memory_usage"]["token_capacity"] == info["max_total_num_tokens"]
    model = ok(server.url, "/get_model_info")
    assert {"model_path", "tokenizer_path", "is_generation", "preferred_sampling_params", "weight_version"} <= set(model)
