"""HTTP to the policy and reward servers under one documented policy.

Policy (every request: the frontend's own, the scorers', the cache warm-ups):
- connect timeout `connect_timeout` (5 s), read timeout `read_timeout` (600 s without a byte from the
  server: a stalled server fails the request instead of hanging the program forever);
- retried, up to `max_retries` (3) more times: connection refused/reset/dropped, timeouts, HTTP 5xx, and
  HTTP 408/429 (the two 4xx answers that mean "try again later"); never retried: any other 4xx (the request
  itself is wrong, so sending it again cannot help) and a 200 whose body is not the expected JSON;
- the wait before retry k (k = 0, 1, ...) is uniform in [0, min(backoff_max, backoff_initial * 2**k)]
  ("full jitter", so many branches failing at once do not retry in lock step); a Retry-After header is
  honoured up to backoff_max;
- when the attempts run out the request raises `EndpointError` naming the URL, the attempts and the last
  failure. Inside a program that error fails only the branch that sent it.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass

import urllib3
from urllib3.exceptions import HTTPError as TransportError

from planner.errors import InputError, PlannerError
from sglang_plugin.transport.ledger import CostLedger

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class TransportConfig:
    """How requests reach the servers: timeouts, retries and backoff (given to the endpoint and the scorers)."""

    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    max_retries: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "backoff_initial", "backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and name.endswith("timeout")):
                raise InputError(f"must be a {'positive' if name.endswith('timeout') else 'non-negative'} number, "
                                 f"got {value!r}", field=name)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InputError(f"must be a non-negative integer, got {self.max_retries!r}", field="max_retries")

    def to_dict(self) -> dict:
        return asdict(self)


class EndpointError(PlannerError):
    """A request that failed for good: `kind` is "http", "connection", "timeout" or "bad_response"."""

    def __init__(self, message: str, *, url: str, kind: str, status: int | None = None,
                 attempts: int = 1) -> None:
        self.url, self.kind, self.status, self.attempts = url, kind, status, attempts
        super().__init__(message)


class HttpClient:
    """JSON over HTTP with the module's timeout and retry policy; safe to share between threads."""

    def __init__(self, config: TransportConfig | None = None, *, api_key: str | None = None,
                 verify: str | None = None, headers: dict | None = None) -> None:
        self.config = config or TransportConfig()
        self.headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        timeout = urllib3.Timeout(connect=self.config.connect_timeout, read=self.config.read_timeout)
        self._pool = urllib3.PoolManager(num_pools=8, maxsize=256, block=False, retries=False,
                                         timeout=timeout, ca_certs=verify)
        self._rng = random.Random()

    def post(self, url: str, payload: dict | list, *, ledger: CostLedger | None = None):
        return self.request("POST", url, payload, ledger=ledger)

    def get(self, url: str, *, ledger: CostLedger | None = None):
        return self.request("GET", url, None, ledger=ledger)

    def request(self, method: str, url: str, payload=None, *, ledger: CostLedger | None = None,
                text: bool = False):
        """Send until success or the policy gives up; return the decoded JSON body (or, `text`, the body)."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                response = self._pool.request(method, url, body=body, headers=self.headers,
                                              preload_content=True)
            except TransportError as exc:
                timed_out = isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
                    exc, urllib3.exceptions.NewConnectionError)  # "refused" subclasses ConnectTimeoutError
                kind = "timeout" if timed_out else "connection"
                failure = EndpointError(f"{method} {url}: {kind} error: {exc}", url=url, kind=kind,
                                        attempts=attempt + 1)
                retry_after = None
            else:
                if response.status == 200:
                    if text:
                        return response.data.decode("utf-8", "replace")
                    return _decode(response, method, url, attempt + 1)
                detail = response.data.decode("utf-8", "replace")[:500]
                failure = EndpointError(f"{method} {url}: HTTP {response.status}: {detail}", url=url,
                                        kind="http", status=response.status, attempts=attempt + 1)
                if response.status not in RETRY_STATUSES:
                    raise failure
                retry_after = _retry_after(response)
            if attempt + 1 == attempts:
                break
            if ledger is not None:
                ledger.add_retry()
            time.sleep(self._delay(attempt, retry_after))
        raise EndpointError(f"gave up after {attempts} attempt(s): {failure}", url=url, kind=failure.kind,
                            status=failure.status, attempts=attempts)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.config.backoff_max, self.config.backoff_initial * 2 ** attempt)
        if retry_after is not None:
            return min(self.config.backoff_max, retry_after)
        return self._rng.uniform(0.0, cap)


def _decode(response, method: str, url: str, attempts: int):
    try:
        return json.loads(response.data)
    except ValueError as exc:
        raise EndpointError(f"{method} {url}: the answer is not JSON: {response.data[:200]!r}", url=url,
                            kind="bad_response", status=200, attempts=attempts) from exc


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
