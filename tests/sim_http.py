"""Shared pieces of the simulator tests: the sample problems in tests/data and a raw HTTP client (stdlib,
like the sglang frontend's own `http_request`) that returns status and body instead of raising."""

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data"
RATES = DATA / "sim_math500_rates.jsonl"
SOLUTIONS = DATA / "sim_math500_solutions.jsonl"
RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
TEMPLATE = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{problem}" \
           " Let's think step by step and output the final answer within \\boxed{{}}.<|im_end|>\n" \
           "<|im_start|>assistant\n"


def sample_records(path=SOLUTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prompt(problem: str) -> str:
    return TEMPLATE.format(problem=problem)


def call(url: str, path: str, payload=None, *, method: str | None = None, raw: bytes | None = None,
         timeout: float = 30.0):
    """(status, decoded JSON body or text) of one request."""
    data = raw if raw is not None else None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def ok(url: str, path: str, payload=None, **options):
    status, body = call(url, path, payload, **options)
    assert status == 200, (status, body)
    return body


def _decode(raw: bytes):
    text = raw.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Stream:
    """A streamed /generate read event by event over one real connection (http.client, like a client that
    reads server-sent events): iterate for the decoded chunks; `done` tells whether "data: [DONE]" came;
    `close()` drops the connection mid-stream."""

    def __init__(self, url: str, payload: dict, timeout: float = 30.0) -> None:
        host, port = url.rsplit("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.conn.request("POST", "/generate", json.dumps({**payload, "stream": True}),
                          {"Content-Type": "application/json"})
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.done = False

    def __iter__(self):
        for line in self.response:
            if line.startswith(b"data: [DONE]"):
                self.done = True
                return
            if line.startswith(b"data: "):
                yield json.loads(line[len(b"data: "):])

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.response.close()
        self.conn.close()


def sim_stats(url: str) -> dict:
    return ok(url, "/get_server_info")["internal_states"][0]["sim_stats"]


def wait_idle(url: str, timeout: float = 5.0) -> dict:
    """The server's stats once nothing is running any more."""
    deadline = time.monotonic() + timeout
    while True:
        stats = sim_stats(url)
        if stats["running"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def stream_and_abort(url: str, body: dict, after: int) -> tuple[Stream, list[dict], float]:
    """Stream `body` (which names its rid), POST /abort_request for that rid once `after` chunks have come,
    and read the stream to its end: (the stream, its chunks, seconds it took)."""
    stream, chunks, started = Stream(url, body), [], time.monotonic()
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == after:
            assert call(url, "/abort_request", {"rid": body["rid"]})[0] == 200
    return stream, chunks, time.monotonic() - started
