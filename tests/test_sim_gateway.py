"""The SGLang Model Gateway (`smg`, on PyPI) in front of two stand-in workers, over real loopback HTTP: it
discovers them (GET /v1/models, /server_info, /model_info, /v1/loads, ...), routes /generate plain and
streamed, proxies /get_model_info, fans out /flush_cache, and its /get_loads reports the workers' loads. smg
1.13 has no /abort_request route (404); closing a streamed request through it aborts the request on the
worker. Skipped only when the smg binary cannot be found."""

import json
import time

import pytest
from conftest import Gateway, needs_smg
from sim_http import Stream, call, ok, sim_stats, wait_idle

from sglang_plugin.sim.server import SimServer

pytestmark = needs_smg
ABORT = {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}


@pytest.fixture(scope="module")
def workers():
    with SimServer(seed=1, token_delay_ms=2) as first, SimServer(seed=2, token_delay_ms=2) as second:
        yield first, second


@pytest.mark.parametrize("policy", ["cache_aware", "round_robin"])
def test_generate_through_the_gateway(workers, policy):
    gateway = Gateway([w.url for w in workers], policy)
    try:
        assert ok(gateway.url, "/get_model_info")["model_path"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"
        before = [sim_stats(w.url)["sequences"] for w in workers]
        body = {"text": "What is 7 times 6?", "rid": f"gw-{policy}", "sampling_params": {"max_new_tokens": 64}}
        answer = ok(gateway.url, "/generate", body)
        assert answer["meta_info"]["id"] == f"gw-{policy}" and answer["meta_info"]["completion_tokens"] > 0
        for i in range(6):
            ok(gateway.url, "/generate", {"text": f"Question {i}: what is {i} + {i}?",
                                          "sampling_params": {"max_new_tokens": 8}})
        chunks = list(stream := Stream(gateway.url, {**body, "rid": f"gw-s-{policy}"}))
        assert stream.done and chunks[-1]["meta_info"]["finish_reason"] is not None
        assert all(len(c["output_ids"]) <= 1 for c in chunks) and len(chunks) > 1  # 0.5.2 chunks pass through
        served = [sim_stats(w.url)["sequences"] - b for w, b in zip(workers, before)]
        assert sum(served) == 8
        if policy == "round_robin":
            assert min(served) >= 3
        assert call(gateway.url, "/flush_cache", method="POST")[0] == 200
        deadline, urls = time.monotonic() + 5, {w.url for w in workers}
        while True:  # its load monitor polls each worker's /v1/loads on its own schedule
            reported = {entry["worker"] for entry in ok(gateway.url, "/get_loads")["loads"]}
            if reported == urls or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reported and reported <= urls
    finally:
        gateway.close()


def test_abort_through_the_gateway(workers):
    gateway = Gateway([w.url for w in workers], "round_robin")
    try:
        before = [sim_stats(w.url) for w in workers]
        body = {"text": "Count to a thousand.", "rid": "gw-abort",
                "sampling_params": {"max_new_tokens": 2000, "ignore_eos": True}}
        stream, chunks = Stream(gateway.url, body), []
        status = None
        for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 3:
                status, answer = call(gateway.url, "/abort_request", {"rid": "gw-abort"})
                if status != 200:  # smg 1.13: no such route; closing the stream is how to abort through it
                    assert status == 404 and "unknown_url" in json.dumps(answer)
                    stream.close()
                    break
        after = [wait_idle(w.url) for w in workers]
        aborted = sum(a["aborted_requests"] - b["aborted_requests"] for a, b in zip(after, before))
        counted = sum(a["completion_tokens"] - b["completion_tokens"] for a, b in zip(after, before))
        assert aborted == 1 and all(a["running"] == 0 for a in after)
        delivered = sum(len(c["output_ids"]) for c in chunks)
        if status == 200:  # a gateway that fans /abort_request out to its workers
            assert stream.done and chunks[-1]["meta_info"]["finish_reason"] == ABORT and counted == delivered
        else:
            assert delivered <= counted < 1000
    finally:
        gateway.close()
