"""A SIMULATED SGLang server: the HTTP protocol of `python -m sglang.launch_server` (the endpoints the sglang
frontend, `sgl.RuntimeEndpoint`, reward scorers and the SGLang Model Gateway use, with SGLang's request and
response shapes) in front of a model-free simulator. No model, no GPU: texts are a problem's reference steps
or wrong variants of them (or, with `thinking=True`, long <think> traces; see thinking.py), drawn so each
known problem is solved at its measured success rate; rewards and logprobs are synthetic with a configured
discrimination. It says so in its ready line and in /get_model_info.

Endpoints: GET /health, /health_generate, /get_model_info (= /model_info), /get_server_info (= /server_info),
/get_load (0.5.2), /v1/loads (0.5.23), /v1/models; GET or POST /flush_cache, /start_profile, /stop_profile;
POST (or PUT) /generate, /classify, /encode; POST /abort_request, /tokenize, /detokenize (and /v1/...
aliases). Unknown paths get 404 and known paths with a wrong method 405, with FastAPI's {"detail": ...} bodies.

Streaming follows SGLang 0.5.2 (generation.py has the chunk contents), with `stream_interval` and 0.5.23's
incremental_streaming_output as options. A client-supplied rid names the request; /abort_request stops it
(or all, with abort_all) and so does a client closing its connection: the tokens generated until then are the
answer (finish_reason {"type": "abort", ...}) and what the server counts; the rest of its simulated time is
not spent (runs.py).

Concurrency: one thread per connection (stdlib ThreadingHTTPServer); simulated time (`token_delay_ms` per
generated token, `prefill_delay_ms` per uncached prompt token) runs on each request's own clock, so
concurrent requests overlap like a batching server's. Faults (`fail_rate` HTTP 500s, `drop_rate` closed
connections, `stall_rate` stalls of `stall_seconds`) hit /generate, /classify and /encode only, so a
client can still connect and read the model info. A server that stops breaks its open streams, as a dying
process would (a gateway then retries plain requests on another worker).

Where it knowingly differs from SGLang 0.5: max_new_tokens 0 returns empty text and completion_tokens 0
(a real server samples one token), while the logprob arrays keep the one next-position entry a real server
has (Engine.score reads output_token_ids_logprobs[0]); one server answers generation, /classify and the
step-tag PRM (a real reward model runs on its own --is-embedding server); an unknown sampling parameter is
a 400 (a real server fails with 500); constrained decoding is refused; temperature, top_p and top_k do not
change the trajectory model except that temperature 0 (or top_k 1) is greedy; the tokenizer is the
simulator's own (see tokens.py), so token ids differ from the real model's except the configured PRM
ids, which default to Math-Shepherd's so its scorer works unchanged; a closed connection aborts the request
at once (SGLang's abort task waits 2 s); the profiler switches write no trace; a batch streams its items one
after the other (SGLang interleaves them).
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sglang_plugin.sim.engine import SimConfig, SimEngine
from sglang_plugin.sim.problems import Problem, ProblemBank
from sglang_plugin.sim.protocol import (
    ApiError,
    invalid,
    parse_abort,
    parse_body,
    parse_embedding,
    parse_generate,
    parse_profile,
    rejected,
)
from sglang_plugin.sim.reasoner import Reasoner
from sglang_plugin.sim.runs import ABORT_REASON

FAULTY = frozenset({"/generate", "/classify", "/encode"})
FLUSH_BUSY = ("Cache not flushed: there are running or waiting requests.\n"
              "(When there are running or waiting requests, the operation will not be performed.)\n")
FLUSH_DONE = ("Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting "
              "requests, the operation will not be performed.)\n")


class SimServer:
    """The simulator on a background thread: `with SimServer(problems, seed=1) as server: server.url`.

    `problems`: a ProblemBank, Problem objects, or a JSONL path (read with `rate_field` and an optional
    `solutions` file, see ProblemBank.from_jsonl), or None (every problem unknown, at `default_rate`).
    Other keyword arguments are SimConfig fields (seed, reward_auroc, token_delay_ms, fail_rate, ...).
    """

    def __init__(self, problems: ProblemBank | Iterable[Problem] | str | os.PathLike | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, rate_field: str = "pass_rate",
                 solutions: str | os.PathLike | None = None, config: SimConfig | None = None,
                 **options: Any) -> None:
        if isinstance(problems, (str, os.PathLike)):
            bank = ProblemBank.from_jsonl(problems, rate_field=rate_field, solutions=solutions)
        elif problems is None or isinstance(problems, ProblemBank):
            bank = problems
        else:
            bank = ProblemBank(problems)
        self.config = SimConfig(**{**config.__dict__, **options}) if config is not None else SimConfig(**options)
        self.engine = SimEngine(self.config, bank)
        self.host, self.port = host, port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def reasoner(self) -> Reasoner:
        """The trajectory model, e.g. `server.reasoner.spec_for(problem_text)` for a problem's rate,
        reference answer and wrong-answer pool with its probabilities."""
        return self.engine.reasoner

    def start(self) -> SimServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self.engine)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: ends stalls and delays in progress and closes open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, handler, engine: SimEngine) -> None:
        self.engine = engine
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        """A client that goes away mid-request (killed, timed out) is routine for a server; anything else is
        the simulator's own bug and is printed."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tts-planner-sim"
    timeout = 120
    server: _HTTPServer

    routes = {
        "/health": ("GET",), "/health_generate": ("GET",), "/get_model_info": ("GET",), "/model_info": ("GET",),
        "/get_server_info": ("GET",), "/server_info": ("GET",), "/flush_cache": ("GET", "POST"),
        "/generate": ("POST", "PUT"), "/classify": ("POST", "PUT"), "/encode": ("POST", "PUT"),
        "/tokenize": ("POST",), "/v1/tokenize": ("POST",), "/detokenize": ("POST",), "/v1/detokenize": ("POST",),
        "/abort_request": ("POST",), "/get_load": ("GET",), "/v1/loads": ("GET",), "/v1/models": ("GET",),
        "/start_profile": ("GET", "POST"), "/stop_profile": ("GET", "POST"),
    }

    _serving = False  # between engine.enter() and engine.leave() for this request

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the client's
        # delayed ACK hold every keep-alive answer back by ~40 ms (uvicorn sets it too)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test or benchmark sends thousands of requests."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        raw = self._read_body()
        if raw is None:
            return
        allowed = self.routes.get(path)
        if allowed is None:
            self._json(404, {"detail": "Not Found"})
            return
        if method not in allowed:
            self._json(405, {"detail": "Method Not Allowed"}, {"Allow": ", ".join(allowed)})
            return
        engine = self.server.engine
        if path in FAULTY:
            engine.count_request()
            fault = engine.fault(path.encode() + b"\x00" + _without_rid(raw))
            if fault == "error":
                self._json(500, {"error": {"message": "simulated internal server error (fault injection)"}})
                return
            if fault == "drop":
                self.close_connection = True
                return
            if fault == "stall" and self.server.stopping.wait(engine.config.stall_seconds):
                self.close_connection = True
                return
        engine.enter()
        self._serving = True
        try:
            self._route(path, raw, time.perf_counter())
        except ApiError as exc:
            self._json(exc.status, exc.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the simulator's own bug: report it like a server would, and log it
            traceback.print_exc(file=sys.stderr)
            self._json(500, {"error": {"message": f"internal simulator error: {type(exc).__name__}: {exc}"}})
        finally:
            self._served()

    def _served(self) -> None:
        """The request stops counting as running: before its last bytes go out, as on a real server, so a
        client that sends /flush_cache right after reading an answer is not refused for its own request."""
        if self._serving:
            self._serving = False
            self.server.engine.leave()

    def _route(self, path: str, raw: bytes, started: float) -> None:
        engine = self.server.engine
        if path in ("/health", "/health_generate"):
            self._send(200, b"", "text/plain")
        elif path in ("/get_model_info", "/model_info"):
            self._json(200, engine.model_info())
        elif path in ("/get_server_info", "/server_info"):
            self._json(200, engine.server_info(*self.server.server_address[:2]))
        elif path == "/flush_cache":
            busy = engine.stats.in_flight > 1
            if not busy:
                engine.flush()
            self._send(400 if busy else 200, (FLUSH_BUSY if busy else FLUSH_DONE).encode(), "text/plain")
        elif path == "/generate":
            self._generate(parse_body(raw), started)
        elif path == "/abort_request":
            engine.abort(*parse_abort(raw))
            self._send(200, b"", "application/json")
        elif path == "/get_load":
            self._json(200, {"load": engine.load()})
        elif path == "/v1/loads":
            self._json(200, engine.loads())
        elif path == "/v1/models":
            self._json(200, engine.models())
        elif path in ("/start_profile", "/stop_profile"):
            if path == "/start_profile":
                error, done = engine.start_profile(parse_profile(raw)), "Start profiling.\n"
            else:
                error, done = engine.stop_profile(), "Stop profiling. This will take some time.\n"
            # SGLang raises a RuntimeError there, which its ASGI stack answers with a bare 500
            self._send(500, b"Internal Server Error", "text/plain; charset=utf-8") if error else \
                self._send(200, done.encode(), "text/plain; charset=utf-8")
        elif path in ("/classify", "/encode"):
            inputs, single = parse_embedding(parse_body(raw))
            results = engine.classify(inputs)
            tokens = sum(r["meta_info"]["prompt_tokens"] for r in results)
            self._sleep(engine.config.prefill_delay_ms * tokens / 1000.0)
            for result in results:
                result["meta_info"]["e2e_latency"] = time.perf_counter() - started
            self._json(200, results[0] if single else results)
        elif path.endswith("/tokenize"):
            self._json(200, self._tokenize(parse_body(raw)))
        else:
            self._json(200, self._detokenize(parse_body(raw)))

    def _generate(self, body: dict, started: float) -> None:
        engine = self.server.engine
        request = parse_generate(body)
        if request.stream:
            self._stream(request, started)
            return
        generations = [engine.generate(item) for item in request.items]
        runs = [engine.start(g) for g in generations]
        generated = [0] * len(runs)
        gone = _Watch(self.connection)
        try:
            for run in runs:
                run.wait_until(run.due(run.count), self.server.stopping, gone)
            for i, run in enumerate(runs):
                generated[i] = run.generated() if run.aborted else run.count
        finally:
            for generation, run, count in zip(generations, runs, generated):
                engine.finish(generation, run, count)
        if gone.closed or self.server.stopping.is_set():
            self.close_connection = True
            return
        bodies = []
        for generation, run, count in zip(generations, runs, generated):
            reason, text = (ABORT_REASON, generation.text(0, count)) if run.aborted else \
                (generation.reason, generation.final_text)
            bodies.append(generation.payload(0, count, reason=reason, text=text,
                                             e2e=time.perf_counter() - started))
        body_bytes = bodies[0] if request.single else b"[" + b", ".join(bodies) + b"]"
        self._send(200, body_bytes, "application/json")

    def _stream(self, request, started: float) -> None:
        """Server-sent events as SGLang 0.5.2 sends them (see generation.py): a chunk after the first token and
        every stream_interval tokens, a last chunk with the finish reason, then "data: [DONE]". An abort
        (/abort_request, or the client closing the connection) ends the sequence where it is."""
        engine = self.server.engine
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        gone = _Watch(self.connection)
        try:
            for index, item in enumerate(request.items):
                try:
                    generation = engine.generate(item)
                except ApiError as exc:
                    if not exc.in_stream:
                        raise
                    self._event(json.dumps(exc.body).encode("utf-8"))
                    continue
                self._stream_one(generation, item, None if request.single else index, started, gone)
                if gone.closed:
                    return
            self._served()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def _stream_one(self, generation, item, index: int | None, started: float, gone: _Watch) -> None:
        engine, stopping = self.server.engine, self.server.stopping
        cfg = engine.config
        interval = item.sampling.stream_interval or cfg.stream_interval
        incremental = cfg.incremental_streaming_output
        run = engine.start(generation)
        count, sent, text = generation.count, 0, ""
        try:
            for due in _chunk_ends(count, interval):
                if not run.wait_until(run.due(due), stopping, gone):
                    break
                piece = generation.text(sent, due)
                text = piece if incremental else text + piece
                self._chunk(generation, sent, due, None, text, incremental, index)
                sent = due
            else:
                run.wait_until(run.due(count), stopping, gone)
        except (BrokenPipeError, ConnectionResetError):
            gone.closed = True
            run.abort()
        if run.aborted:
            # with no token delay the sequence is paced by its chunks: it stops where the client is
            generated = max(sent, run.generated()) if run.token_seconds > 0 else sent
            reason, final = ABORT_REASON, text + generation.text(sent, generated) if not incremental else \
                generation.text(sent, generated)
        else:
            generated, reason = count, generation.reason
            sent_text = generation.text(0, sent)
            tail = generation.final_text[len(sent_text):]  # SGLang sends what the trimmed text adds
            final = tail if incremental else text + tail
        engine.finish(generation, run, generated)
        if stopping.is_set():  # a server going down sends nothing more: the client sees the stream break
            gone.closed = True
        if gone.closed:
            return
        try:
            self._chunk(generation, sent, generated, reason, final, incremental, index,
                        e2e=time.perf_counter() - started)
        except (BrokenPipeError, ConnectionResetError):
            gone.closed = True

    def _chunk(self, generation, start: int, end: int, reason, text: str, incremental: bool, index: int | None,
               e2e: float | None = None) -> None:
        self._event(generation.payload(start, end, reason=reason, text=text, logprobs_from=start if incremental
                                       else 0, e2e=e2e, index=index))
        self.server.engine.count_chunk()

    def _event(self, payload: bytes) -> None:
        self.wfile.write(b"data: " + payload + b"\n\n")
        self.wfile.flush()

    def _tokenize(self, body: dict) -> dict:
        prompt = body.get("prompt")
        tok = self.server.engine.tokenizer
        if isinstance(prompt, str):
            ids = tok.encode(prompt)
            return {"tokens": ids, "count": len(ids), "max_model_len": self.server.engine.config.context_length}
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            lists = [tok.encode(p) for p in prompt]
            return {"tokens": lists, "count": [len(ids) for ids in lists],
                    "max_model_len": self.server.engine.config.context_length}
        raise invalid("1 validation error: prompt: Input should be a valid string or a list of strings")

    def _detokenize(self, body: dict) -> dict:
        tokens = body.get("tokens")
        skip = body.get("skip_special_tokens", True)
        tok = self.server.engine.tokenizer
        if not isinstance(tokens, list) or not isinstance(skip, bool):
            raise invalid("1 validation error: tokens: Input should be a list of integers or of lists")
        try:
            if tokens and all(isinstance(t, list) for t in tokens):
                return {"text": [tok.decode(t, skip_special_tokens=skip) for t in tokens]}
            return {"text": tok.decode(tokens, skip_special_tokens=skip)}
        except (ValueError, TypeError) as exc:
            raise rejected(f"Error decoding tokens: {exc}. Input tokens might be invalid for the model.") from None

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._json(400, invalid("Content-Length is not a number").body)
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.server.stopping.wait(seconds)

    def _json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self._served()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Watch:
    """Whether the client has closed its connection (a read-ready socket with nothing to read): SGLang aborts
    the request of a client that went away."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.closed = False

    def __call__(self) -> bool:
        if not self.closed:
            try:
                ready, _, _ = select.select([self.connection], [], [], 0)
                if ready and self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    self.closed = True
            except BlockingIOError:
                pass
            except (OSError, ValueError):
                self.closed = True
        return self.closed


def _chunk_ends(count: int, interval: int) -> range:
    """Token counts after which SGLang 0.5.2 sends a chunk before the last one: every token for an interval of
    1, else the 1st, (interval + 1)th, (2 * interval + 1)th, ..."""
    return range(1, count) if interval <= 1 else range(1, count, interval)


def _without_rid(raw: bytes) -> bytes:
    """A request body as fault injection keys it: its content, not its request id (clients give every request a
    fresh one), so the k-th identical request meets the same fate in every run."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(body, dict) and "rid" in body:
        body.pop("rid")
        return json.dumps(body, sort_keys=True).encode()
    return raw
