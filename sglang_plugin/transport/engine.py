"""The request engine: every HTTP request of the process runs on one asyncio event loop in one daemon thread.

Why: a batch run keeps hundreds to thousands of generation requests in flight (samples of many problems, long
streamed traces). A thread per request costs memory and scheduling, and the sglang frontend's fork makes one
thread (and one StreamExecutor to finalise) per branch. Here a request is a coroutine; callers in any thread
submit it and wait on a concurrent.futures.Future, so the number of threads is the number of problems being
solved, not the number of requests in flight. Connections are pooled per client (aiohttp), at most
`TransportConfig.max_connections` of them; further requests wait for one.

The retry policy is transport.http's; this module only runs it. Streaming reads server-sent events and hands
each decoded event to a callback that may stop the stream; stopping closes the connection (SGLang aborts a
request whose stream is closed) and the caller may also send /abort_request.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import aiohttp
from aiohttp.http_exceptions import LineTooLong

_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The process's request loop, started on first use in a daemon thread (it never blocks interpreter exit)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            ready = threading.Event()
            new = asyncio.new_event_loop()

            def serve() -> None:
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=serve, name="tts-planner-requests", daemon=True).start()
            ready.wait()
            _LOOP = new
        return _LOOP


def submit(coroutine) -> Future:
    """Schedule a coroutine on the request loop from any thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop())


class Failure(Exception):
    """One failed attempt: `kind` is "http", "connection", "timeout" or "bad_response"."""

    def __init__(self, message: str, kind: str, status: int | None = None, retry_after: float | None = None,
                 retriable: bool = True) -> None:
        super().__init__(message)
        self.kind, self.status, self.retry_after, self.retriable = kind, status, retry_after, retriable
        self.last: dict | None = None  # a stream's last event before it failed: what was generated until then


_POOLS: dict[tuple, aiohttp.ClientSession] = {}


def _pool(headers: dict[str, str], verify: str | None, max_connections: int) -> aiohttp.ClientSession:
    """The connection pool of these settings, shared by every client of the process that has them (an endpoint
    and its scorers reuse connections), created on the request loop on first use and kept for the process."""
    key = (tuple(sorted(headers.items())), verify, max_connections)
    session = _POOLS.get(key)
    if session is None or session.closed:
        ssl = True
        if verify:
            import ssl as ssl_module

            ssl = ssl_module.create_default_context(cafile=verify)
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ssl=ssl)
        session = _POOLS[key] = aiohttp.ClientSession(connector=connector, headers=headers,
                                                      auto_decompress=True)
    return session


class Session:
    """A client's way to the servers: its headers, timeouts and connection pool (pools run on the request loop)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, max_connections: int,
                 headers: dict[str, str], verify: str | None) -> None:
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_connections, self.headers, self.verify = max_connections, headers, verify
        self.rng = random.Random()

    def _open(self) -> aiohttp.ClientSession:
        return _pool(self.headers, self.verify, self.max_connections)

    def _timeout(self, read_timeout: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout,
                                     sock_read=read_timeout or self.read_timeout)

    async def once(self, method: str, url: str, body: bytes | None, *, text: bool,
                   read_timeout: float | None = None):
        """One attempt: the decoded JSON body (or text); raises Failure."""
        try:
            async with self._open().request(method, url, data=body, timeout=self._timeout(read_timeout)) as response:
                raw = await response.read()
                if response.status != 200:
                    raise _http_failure(method, url, response, raw)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Failure(f"{method} {url}: timeout error: no answer within the time limit ({exc or 'read'})",
                          "timeout") from None
        except aiohttp.ClientError as exc:
            raise Failure(f"{method} {url}: connection error: {exc}", "connection") from None
        if text:
            return raw.decode("utf-8", "replace")
        try:
            return json.loads(raw)
        except ValueError:
            raise Failure(f"{method} {url}: the answer is not JSON: {raw[:200]!r}", "bad_response", 200,
                          retriable=False) from None

    async def stream_once(self, url: str, body: bytes, on_event: Callable[[dict], bool], *,
                          on_stop: Callable[[], Awaitable[bool]] | None = None, drain_seconds: float = 30.0,
                          read_timeout: float | None = None) -> tuple[dict | None, bool]:
        """One streamed attempt: feeds every `data: {...}` event to `on_event` until it returns False (stop) or
        the stream ends; returns (the last event, whether the caller stopped it). Raises Failure.

        On a stop, `on_stop` (e.g. POST /abort_request) runs first; if the server took it, the stream is read to
        its end (the abort's last chunk says how many tokens the server generated, including those sent but not
        yet read), else, or after `drain_seconds`, the connection is closed, which also aborts the request. A
        stream that fails after some events raises a Failure whose `last` is the last of them."""
        last, stopped, draining_since = None, False, None
        try:
            try:
                async with self._open().post(url, data=body, timeout=self._timeout(read_timeout)) as response:
                    if response.status != 200:
                        raise _http_failure("POST", url, response, await response.read())
                    async for line in response.content:
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            break
                        try:
                            event = json.loads(data)
                        except ValueError:
                            raise Failure(f"POST {url}: a stream event is not JSON: {data[:200]!r}", "bad_response",
                                          200, retriable=False) from None
                        if isinstance(event, dict) and "error" in event and "text" not in event:
                            raise Failure(f"POST {url}: the server ended the stream with {event['error']!r}"[:500],
                                          "http", 200, retriable=False)
                        last = event
                        if draining_since is not None:
                            if asyncio.get_running_loop().time() - draining_since > drain_seconds:
                                response.close()
                                break
                            continue
                        if not on_event(event):
                            stopped = True
                            if on_stop is not None and await on_stop():
                                draining_since = asyncio.get_running_loop().time()
                                continue
                            response.close()  # closing the stream makes the server abort the request
                            break
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                raise Failure(f"POST {url}: timeout error: the stream stalled", "timeout") from None
            except LineTooLong:
                raise Failure(f"POST {url}: a streamed chunk was too long to read: the server re-sends everything "
                              "generated so far in every chunk (SGLang's default); stream with "
                              "--incremental-streaming-output on the server, or generate in segments",
                              "bad_response", 200, retriable=False) from None
            except aiohttp.ClientPayloadError as exc:
                if stopped:
                    return last, stopped
                raise Failure(f"POST {url}: connection error: the stream broke ({exc})", "connection") from None
            except aiohttp.ClientError as exc:
                if stopped:
                    return last, stopped
                raise Failure(f"POST {url}: connection error: {exc}", "connection") from None
        except Failure as failure:
            failure.last = last
            raise
        return last, stopped


def _http_failure(method: str, url: str, response: aiohttp.ClientResponse, raw: bytes) -> Failure:
    from sglang_plugin.transport.http import RETRY_STATUSES

    detail = raw.decode("utf-8", "replace")[:500]
    return Failure(f"{method} {url}: HTTP {response.status}: {detail}", "http", response.status,
                   _retry_after(response.headers.get("Retry-After")), retriable=response.status in RETRY_STATUSES)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
