"""HTTP to the policy and reward servers under one documented policy.

Policy (every request: the frontend's own, the scorers', the cache warm-ups):
- connect timeout `connect_timeout` (5 s), read timeout `read_timeout` (600 s without a byte from the
  server: a stalled server fails the request instead of hanging the program forever); a non-streamed
  generation sends nothing until it is done, so it also gets its tokens' time at `slowest_tokens_per_second`
  (10), the slowest a loaded server may decode one sequence: a long-thinking sample of up to 32,768 tokens
  waits up to 600 + 3,277 s (SGLang aborts a request whose client timed out, so it would be paid for, and
  its retry would time out again); requests that do not generate (model info, health checks, cache flushes)
  wait at most `control_timeout` (30 s) for their answer;
- retried, up to `max_retries` (3) more times: connection refused/reset/dropped, timeouts, HTTP 5xx, and
  HTTP 408/429 (the two 4xx answers that mean "try again later"); never retried: any other 4xx (the request
  itself is wrong, so sending it again cannot help), a 200 whose body is not the expected JSON, and a
  generation answered 504 (a gateway's request timeout: the generation would outlast it again, each attempt
  generated and billed; the error names smg's --request-timeout-secs);
- the wait before retry k (k = 0, 1, ...) is uniform in [0, min(backoff_max, backoff_initial * 2**k)]
  ("full jitter", so many branches failing at once do not retry in lock step); a Retry-After header is
  honoured up to backoff_max;
- when the attempts run out the request raises `EndpointError` naming the URL, the attempts and the last
  failure. Inside a program that error fails only the branch that sent it;
- a stream is retried only while nothing of it has arrived (a retry after part of a trace would pay for it
  twice); credentials in URLs never appear in an error.

Requests run on the process's request loop (transport.engine): many in flight without a thread each.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass

from planner.errors import InputError, PlannerError
from planner.redact import redact_url
from sglang_plugin.transport.engine import Failure, Session, submit
from sglang_plugin.transport.ledger import CostLedger

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


SERVER_MAX_NEW_TOKENS = 128  # SGLang's max_new_tokens when a request gives none
GATEWAY_TIMEOUT_HINT = ("(the generation outlasted a gateway's request timeout; behind the SGLang Model Gateway "
                        "start smg with --request-timeout-secs above the longest generation: its default, 1800 s, "
                        "is less than a 32k-token trace takes at 18 tokens/s)")


@dataclass(frozen=True)
class TransportConfig:
    """How requests reach the servers: timeouts, retries and backoff (given to the endpoint and the scorers)."""

    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    control_timeout: float = 30.0
    slowest_tokens_per_second: float = 10.0  # per sequence: a non-streamed generation's time on top of read_timeout
    max_retries: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_connections: int = 512

    def __post_init__(self) -> None:
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or self.max_connections < 1:
            raise InputError(f"must be a positive integer, got {self.max_connections!r}", field="max_connections")
        for name in ("connect_timeout", "read_timeout", "control_timeout", "slowest_tokens_per_second",
                     "backoff_initial", "backoff_max"):
            value, positive = getattr(self, name), not name.startswith("backoff")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and positive):
                raise InputError(f"must be a {'positive' if positive else 'non-negative'} number, got {value!r}",
                                 field=name)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InputError(f"must be a non-negative integer, got {self.max_retries!r}", field="max_retries")

    def generation_timeout(self, max_new_tokens: float) -> float:
        """How long a non-streamed generation of up to `max_new_tokens` may go without a byte: read_timeout plus
        its tokens' time at slowest_tokens_per_second."""
        return self.read_timeout + max_new_tokens / self.slowest_tokens_per_second

    def to_dict(self) -> dict:
        return asdict(self)


class EndpointError(PlannerError):
    """A request that failed for good: `kind` is "http", "connection", "timeout" or "bad_response". Credentials
    in a URL (user:password@) never reach its message or `url`."""

    def __init__(self, message: str, *, url: str, kind: str, status: int | None = None,
                 attempts: int = 1, partial: dict | None = None) -> None:
        self.url, self.kind, self.status, self.attempts = redact_url(url), kind, status, attempts
        self.partial = partial  # a stream's last event before it failed: the tokens generated and billed so far
        super().__init__(redact_url(message))


class HttpClient:
    """JSON over HTTP with the module's timeout and retry policy; safe to share between threads. The blocking
    methods (`post`, `get`, `request`) are for callers in ordinary threads; `submit` and the coroutines let a
    caller keep many requests in flight."""

    def __init__(self, config: TransportConfig | None = None, *, api_key: str | None = None,
                 verify: str | None = None, headers: dict | None = None) -> None:
        self.config = config or TransportConfig()
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        if api_key:
            merged["Authorization"] = f"Bearer {api_key}"
        self.session = Session(connect_timeout=self.config.connect_timeout, read_timeout=self.config.read_timeout,
                               max_connections=self.config.max_connections, headers=merged, verify=verify)

    def post(self, url: str, payload: dict | list, *, ledger: CostLedger | None = None, generation: bool = False):
        return self.request("POST", url, payload, ledger=ledger, generation=generation)

    def generation_timeout(self, payload: dict) -> float:
        """The read timeout of a non-streamed generation (TransportConfig.generation_timeout of its tokens)."""
        params = payload.get("sampling_params") if isinstance(payload, dict) else None
        tokens = params.get("max_new_tokens") if isinstance(params, dict) else None
        if isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or tokens < 0:
            tokens = SERVER_MAX_NEW_TOKENS
        return self.config.generation_timeout(tokens)

    def get(self, url: str, *, ledger: CostLedger | None = None, control: bool = True):
        return self.request("GET", url, None, ledger=ledger, control=control)

    def request(self, method: str, url: str, payload=None, *, ledger: CostLedger | None = None,
                text: bool = False, control: bool = False, generation: bool = False):
        """Send until success or the policy gives up; return the decoded JSON body (or, `text`, the body).
        `control`: a request that generates nothing, answered within control_timeout; `generation`: a
        non-streamed /generate, given its tokens' time (generation_timeout) and not retried after a gateway's
        timeout (HTTP 504: the retry would outlast it again, each attempt generated and billed)."""
        return self.submit(self.arequest(method, url, payload, ledger=ledger, text=text, control=control,
                                         generation=generation)).result()

    @staticmethod
    def submit(coroutine) -> Future:
        return submit(coroutine)

    async def arequest(self, method: str, url: str, payload=None, *, ledger: CostLedger | None = None,
                       text: bool = False, control: bool = False, generation: bool = False):
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        read_timeout = self.config.control_timeout if control else \
            self.generation_timeout(payload) if generation else None

        async def attempt():
            try:
                return await self.session.once(method, url, body, text=text, read_timeout=read_timeout)
            except Failure as failure:
                if generation and failure.status == 504:
                    failure.retriable = False
                    failure.args = (f"{failure} {GATEWAY_TIMEOUT_HINT}",)
                raise

        return await self._with_retries(attempt, method, url, ledger)

    async def astream(self, url: str, payload: dict, on_event: Callable[[dict], bool], *,
                      ledger: CostLedger | None = None,
                      on_stop: Callable[[], Awaitable[bool]] | None = None) -> tuple[dict | None, bool]:
        """POST with "stream": true; every event goes to `on_event` (False stops the stream, after `on_stop`, see
        engine.Session.stream_once). Retried only while nothing has arrived. Returns (the last event, whether
        `on_event` stopped it)."""
        body = json.dumps({**payload, "stream": True}).encode("utf-8")
        seen = [False]

        def counting(event: dict) -> bool:
            seen[0] = True
            return on_event(event)

        async def attempt():
            try:
                return await self.session.stream_once(url, body, counting, on_stop=on_stop,
                                                      drain_seconds=self.config.control_timeout)
            except Failure as failure:
                if seen[0]:
                    failure.retriable = False
                if failure.status == 200 and "timed out" in str(failure):  # an error event: a gateway's timeout
                    failure.args = (f"{failure} {GATEWAY_TIMEOUT_HINT}",)
                raise

        return await self._with_retries(attempt, "POST", url, ledger)

    async def _with_retries(self, attempt: Callable, method: str, url: str, ledger: CostLedger | None):
        attempts = self.config.max_retries + 1
        shown = redact_url(url)
        for number in range(attempts):
            try:
                return await attempt()
            except Failure as failure:
                message = redact_url(str(failure))
                if not failure.retriable or number + 1 == attempts:
                    prefix = "" if not failure.retriable else f"gave up after {attempts} attempt(s): "
                    raise EndpointError(prefix + message, url=shown, kind=failure.kind, status=failure.status,
                                        attempts=number + 1, partial=failure.last) from None
                if ledger is not None:
                    ledger.add_retry()
                await asyncio.sleep(self._delay(number, failure.retry_after))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.config.backoff_max, self.config.backoff_initial * 2 ** attempt)
        if retry_after is not None:
            return min(self.config.backoff_max, retry_after)
        return self.session.rng.uniform(0.0, cap)
