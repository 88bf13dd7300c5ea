"""Fault injection over real HTTP: HTTP 500s, dropped connections and stalls, deterministic under the seed,
on the work endpoints only; and a server stopped in the middle of a stall."""

import http.client
import socket
import threading
import urllib.error

import pytest
from sim_http import call, ok

from sglang_plugin.sim.server import SimServer

PAYLOADS = [{"text": f"Unknown problem number {i}: add {i} and {i + 1}.", "sampling_params": {"max_new_tokens": 8}}
            for i in range(40)]


def statuses(server, bodies=None):
    answers = [call(server.url, "/generate", p) for p in PAYLOADS]
    if bodies is not None:
        bodies += [body for _, body in answers]
    return [status for status, _ in answers]


def test_error_rate_gives_500s_with_a_json_body_deterministically():
    bodies = []
    with SimServer(fail_rate=0.5, seed=3) as server:
        first = statuses(server, bodies)
        stats = ok(server.url, "/get_server_info")["internal_states"][0]["sim_stats"]
        assert ok(server.url, "/get_model_info")["simulated"]  # info endpoints never fail
    assert set(first) == {200, 500} and 8 < first.count(500) < 32
    assert all("fault injection" in b["error"]["message"] for s, b in zip(first, bodies) if s == 500)
    assert all("meta_info" in b for s, b in zip(first, bodies) if s == 200)
    assert stats["faults"]["error"] == first.count(500)
    with SimServer(fail_rate=0.5, seed=3) as again:
        assert statuses(again) == first
    with SimServer(fail_rate=0.5, seed=4) as other:
        assert statuses(other) != first


def test_retrying_the_same_request_eventually_succeeds():
    with SimServer(fail_rate=0.5, seed=1) as server:
        answers = [call(server.url, "/generate", PAYLOADS[0])[0] for _ in range(30)]
    assert 500 in answers and 200 in answers


def test_dropped_connections():
    with SimServer(drop_rate=1.0) as server:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            call(server.url, "/generate", PAYLOADS[0])
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            call(server.url, "/classify", {"text": "x"})
        assert ok(server.url, "/get_model_info")["is_generation"]
        assert call(server.url, "/health")[0] == 200


def test_stall_outlasts_a_client_timeout_and_stop_ends_it():
    server = SimServer(stall_rate=1.0, stall_seconds=60).start()
    try:
        with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
            call(server.url, "/generate", PAYLOADS[0], timeout=0.5)
        stalled = threading.Thread(target=lambda: _swallow(call, server.url, "/generate", PAYLOADS[1], timeout=120))
        stalled.start()
    finally:
        server.stop()
    stalled.join(timeout=30)
    assert not stalled.is_alive()  # stop() ended the stall instead of waiting 60 s


def test_rates_are_validated():
    with pytest.raises(ValueError):
        SimServer(fail_rate=0.7, drop_rate=0.5)
    with pytest.raises(ValueError):
        SimServer(stall_rate=-0.1)


def _swallow(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except (OSError, http.client.HTTPException):
        pass
