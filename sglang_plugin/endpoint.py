"""HTTP to the policy and reward servers under one documented policy, and exact cost accounting.

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
  failure. Inside a program that error fails only the branch that sent it (see programs_base.py).

Costs are what the servers reported: every response's meta_info is added to the `CostLedger` attached to
the stream executor that sent it (forks included) and to the endpoint's running `totals`.
"""

from __future__ import annotations

import json
import random
import threading
import time
import weakref
from dataclasses import dataclass, field, replace

import urllib3
from sglang.global_config import global_config
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.chat_template import get_chat_template, get_chat_template_by_model_path
from urllib3.exceptions import HTTPError as TransportError

from planner.cost import Cost
from planner.errors import PlannerError
from sglang_plugin.config import SolveConfig

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class EndpointError(PlannerError):
    """A request that failed for good: `kind` is "http", "connection", "timeout" or "bad_response"."""

    def __init__(self, message: str, *, url: str, kind: str, status: int | None = None,
                 attempts: int = 1) -> None:
        self.url, self.kind, self.status, self.attempts = url, kind, status, attempts
        super().__init__(message)


@dataclass
class CostLedger:
    """Thread-safe sum of what one solve spent, plus the errors and retries met on the way."""

    cost: Cost = field(default_factory=Cost)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_policy(self, meta: dict) -> None:
        """One policy-server response: its prompt, completion and cached tokens, as reported."""
        with self._lock:
            self.cost.prompt_tokens += int(meta.get("prompt_tokens", 0))
            self.cost.completion_tokens += int(meta.get("completion_tokens", 0))
            self.cost.cached_tokens += int(meta.get("cached_tokens", 0))
            self.cost.requests += 1

    def add_reward(self, tokens: int) -> None:
        """One reward-server response: the tokens it had to compute (prompt tokens minus cache hits)."""
        with self._lock:
            self.cost.reward_tokens += int(tokens)
            self.cost.requests += 1

    def add_error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def merge(self, other: CostLedger) -> None:
        """Add another ledger's costs, errors and retries (a solve run inside an accounted program)."""
        with other._lock:
            cost, errors, retries = replace(other.cost), list(other.errors), other.retries
        with self._lock:
            self.cost = self.cost + cost
            self.errors += errors
            self.retries += retries

    def snapshot(self) -> Cost:
        with self._lock:
            return replace(self.cost)


class HttpClient:
    """JSON over HTTP with the module's timeout and retry policy; safe to share between threads."""

    def __init__(self, config: SolveConfig | None = None, *, api_key: str | None = None,
                 verify: str | None = None, headers: dict | None = None) -> None:
        self.config = config or SolveConfig()
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


_LOGPROB_FIELDS = ("return_logprob", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs")


class Endpoint(RuntimeEndpoint):
    """A drop-in `sgl.RuntimeEndpoint` whose requests follow the module's policy and are accounted.

    `RuntimeEndpoint`'s own requests have no timeout and no retry, and the fork warm-up requests it sends
    by itself are invisible to the program; here every response's meta_info lands in the `CostLedger`
    attached to the sending stream executor (`attach`) and in `totals`.
    """

    def __init__(self, base_url: str, api_key: str | None = None, verify: str | None = None,
                 chat_template_name: str | None = None, config: SolveConfig | None = None) -> None:
        BaseBackend.__init__(self)
        # Current servers have no /concate_and_append_request; join("concate_and_append") falls back to text.
        self.support_concate_and_append = False
        self.base_url = base_url.rstrip("/")
        self.api_key, self.verify = api_key, verify
        self.config = config or SolveConfig()
        self.client = HttpClient(self.config, api_key=api_key, verify=verify)
        self.totals = CostLedger()
        self._ledgers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._ledgers_lock = threading.Lock()
        self.model_info = self.client.get(self.base_url + "/get_model_info")
        if not isinstance(self.model_info, dict) or "model_path" not in self.model_info:
            raise EndpointError(f"{self.base_url}/get_model_info has no model_path: {self.model_info!r}"[:300],
                                url=self.base_url + "/get_model_info", kind="bad_response", status=200)
        self.chat_template = (get_chat_template(chat_template_name) if chat_template_name
                              else get_chat_template_by_model_path(self.model_info["model_path"]))

    def attach(self, executor, ledger: CostLedger | None) -> CostLedger | None:
        """Send the costs of `executor`'s requests to `ledger` (None: stop); returns the previous ledger."""
        with self._ledgers_lock:
            previous = self._ledgers.pop(executor, None)
            if ledger is not None:
                self._ledgers[executor] = ledger
            return previous

    def ledger_of(self, executor) -> CostLedger | None:
        with self._ledgers_lock:
            return self._ledgers.get(executor)

    def post(self, path: str, payload: dict, executor=None):
        """POST to the policy server under the policy; account every response's meta_info."""
        ledger = self.ledger_of(executor) if executor is not None else None
        answer = self.client.post(self.base_url + path, payload, ledger=ledger)
        for item in answer if isinstance(answer, list) else [answer]:
            meta = item.get("meta_info") if isinstance(item, dict) else None
            if not isinstance(meta, dict):
                raise EndpointError(f"POST {self.base_url}{path}: answer without meta_info: {item!r}"[:300],
                                    url=self.base_url + path, kind="bad_response", status=200)
            self.totals.add_policy(meta)
            if ledger is not None:
                ledger.add_policy(meta)
        return answer

    def generate(self, s, sampling_params):
        self._handle_dtype_to_regex(sampling_params)
        params = {"skip_special_tokens": global_config.skip_special_tokens_in_output,
                  "spaces_between_special_tokens": global_config.spaces_between_special_tokens_in_out,
                  **sampling_params.to_srt_kwargs()}
        data = {"text": s.text_, "sampling_params": params}
        for name in _LOGPROB_FIELDS:
            value = getattr(sampling_params, name, None)
            if value is not None and not isinstance(value, tuple):  # the frontend's unset marker is (None,)
                data[name] = value
        self._add_images(s, data)
        answer = self.post("/generate", data, s)
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise EndpointError(f"POST {self.base_url}/generate: expected one completion, got {answer!r}"[:300],
                                url=self.base_url + "/generate", kind="bad_response", status=200)
        return answer["text"], answer["meta_info"]

    def commit_lazy_operations(self, s) -> None:
        """The fork warm-up: cache the shared prefix once. Failing it is not fatal (each branch sends its
        full text anyway), so the error is recorded in the ledger instead of killing the parent stream."""
        data = {"text": s.text_, "sampling_params": {"max_new_tokens": 0}}
        self._add_images(s, data)
        try:
            self.post("/generate", data, s)
        except EndpointError as exc:
            ledger = self.ledger_of(s)
            if ledger is not None:
                ledger.add_error(f"prefix cache request: {exc}")

    def fill_image(self, s) -> None:
        data = {"text": s.text_, "sampling_params": {"max_new_tokens": 0}}
        self._add_images(s, data)
        self.post("/generate", data, s)

    def cache_prefix(self, prefix_str: str) -> None:
        self.post("/generate", {"text": prefix_str, "sampling_params": {"max_new_tokens": 0}})

    def _generate_http_request(self, s, data):
        self._add_images(s, data)
        return self.post("/generate", data, s)

    def flush_cache(self) -> None:
        """Empty the server's prefix cache (SGLang answers in plain text; 400 while requests run)."""
        self.client.request("POST", self.base_url + "/flush_cache", {}, text=True)

    def get_server_info(self) -> dict:
        try:
            return self.client.get(self.base_url + "/get_server_info")
        except EndpointError as exc:
            if exc.status != 404:
                raise
            return self.client.get(self.base_url + "/server_info")
