"""The SGLang backend the programs run on: a `sgl.RuntimeEndpoint` whose every request follows the transport
policy (sglang_plugin.transport.http) and is accounted, and the generation calls the strategy programs make.

The programs do not fork the frontend's state to sample: `fork` gives every branch a thread and a
StreamExecutor, and generating step by step sends one request per paragraph. They build the prompt with the
frontend (the chat template, the user's own program around it), warm the server's prefix cache with it once,
and send each sample as one request (`generate_all`), or each step of a step-level search as one request per
candidate, all in flight at once on the request loop. Every response's meta_info is added to the solve's
`CostLedger` and to the endpoint's running `totals`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from planner.errors import InputError
from planner.logs import logger
from planner.policies import known_policy
from planner.redact import redact_url
from sglang_plugin.compat import BaseBackend, RuntimeEndpoint, chat_template, special_token_defaults
from sglang_plugin.transport.http import EndpointError, HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger

_LOGPROB_FIELDS = ("return_logprob", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs")
# Request ids: unique across processes (a random prefix) and cheap within one (a counter).
_RID_PREFIX = uuid.uuid4().hex[:12]
_RIDS = itertools.count()
log = logger(__name__)


class Endpoint(RuntimeEndpoint):
    """A drop-in `sgl.RuntimeEndpoint` with timeouts, retries and exact cost accounting, and the generation
    calls of the strategy programs. Thread-safe: share one across problems and threads."""

    def __init__(self, base_url: str, api_key: str | None = None, verify: str | None = None,
                 chat_template_name: str | None = None, transport: TransportConfig | None = None) -> None:
        BaseBackend.__init__(self)
        if api_key and urlsplit(base_url).password is not None:
            raise InputError("give the server's credentials either in the URL (user:password@) or as api_key, not "
                             "both", field="api_key")
        # Current servers have no /concate_and_append_request; join("concate_and_append") falls back to text.
        self.support_concate_and_append = False
        self.base_url = base_url.rstrip("/")
        self.api_key, self.verify = api_key, verify
        self.transport = transport or TransportConfig()
        self.client = HttpClient(self.transport, api_key=api_key, verify=verify)
        self.totals = CostLedger()
        self.stream_events = 0  # chunks streamed so far (read by a run's watchdog: a long trace shows progress)
        self.model_info = self._model_info()
        if not isinstance(self.model_info, dict) or "model_path" not in self.model_info:
            raise EndpointError(f"{self.base_url}/get_model_info has no model_path: {self.model_info!r}"[:300],
                                url=self.base_url + "/get_model_info", kind="bad_response", status=200)
        known = known_policy(self.model_info["model_path"])
        self.chat_template = chat_template(chat_template_name or (known.chat_template if known else None),
                                           self.model_info["model_path"])
        self._incremental: bool | None = None
        self._deterministic: bool | None = None
        self._unseeded_seen = False
        self._unseeded_lock = threading.Lock()  # forks call generate from threads of their own

    def _model_info(self) -> dict:
        """GET /get_model_info; through a gateway whose worker that answers it is down (smg asks one worker
        and does not try another), the served model's name from /v1/models, which any live worker answers."""
        try:
            return self.client.get(self.base_url + "/get_model_info")
        except EndpointError as exc:
            if exc.status is None or exc.status < 500:
                raise
            try:
                models = self.client.get(self.base_url + "/v1/models")
                return {"model_path": models["data"][0]["id"], "source": "/v1/models"}
            except (EndpointError, KeyError, IndexError, TypeError):
                raise exc from None

    # -- the programs' generation calls ---------------------------------------------------------------------

    def payload(self, text: str, sampling: dict, extra: dict | None = None) -> dict:
        """A /generate body: the text, the sampling parameters with the frontend's special-token defaults and
        the chat template's stop strings, a request id (for /abort_request), and top-level fields (logprobs)."""
        stop = list(sampling.get("stop") or []) + [s for s in self.chat_template.stop_str or () if s]
        params = {**special_token_defaults(), **sampling, "stop": stop}
        return {"text": text, "sampling_params": params, "rid": f"{_RID_PREFIX}-{next(_RIDS)}", **(extra or {})}

    async def agenerate(self, payload: dict, ledger: CostLedger | None) -> dict:
        """One non-streamed generation: the response item (text and meta_info), accounted."""
        answer = await self.client.arequest("POST", self.base_url + "/generate", payload, ledger=ledger,
                                            generation=True)
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise EndpointError(f"POST {self.base_url}/generate: expected one completion, got {answer!r}"[:300],
                                url=self.base_url + "/generate", kind="bad_response", status=200)
        self._account(answer, ledger)
        return answer

    def generate_all(self, payloads: Sequence[dict], ledger: CostLedger | None) -> list[dict | EndpointError]:
        """Every generation in flight at once; each result is the response item or the EndpointError that
        ended its attempts (one failure never fails the others)."""
        async def every() -> list:
            return await asyncio.gather(*(self.agenerate(payload, ledger) for payload in payloads),
                                        return_exceptions=True)

        results = self.client.submit(every()).result()  # one hand-over to the request loop for the whole batch
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, EndpointError):
                raise result
        return results

    def stream(self, payload: dict, ledger: CostLedger | None,
               on_event: Callable[[dict], bool]) -> tuple[dict | None, bool]:
        """One streamed generation (blocking): see astream."""
        return self.client.submit(self.astream(payload, ledger, on_event)).result()

    async def astream(self, payload: dict, ledger: CostLedger | None,
                      on_event: Callable[[dict], bool]) -> tuple[dict | None, bool]:
        """One streamed generation: `on_event` sees every event and may stop it (False): the request is aborted on
        the server (/abort_request, else by closing the stream). Returns (the last event, whether it was
        stopped); the last event's meta_info is accounted: after an abort the server's last chunk, which counts
        every token it generated, those sent but not yet read included. A stream that fails part-way raises
        EndpointError with its last event's tokens accounted (generated, so paid for)."""
        def seen(event: dict) -> bool:
            self.stream_events += 1  # only the request loop's thread writes it
            return on_event(event)

        try:
            last, stopped = await self.client.astream(self.base_url + "/generate", payload, seen, ledger=ledger,
                                                      on_stop=lambda: self.abort(payload["rid"]))
        except EndpointError as exc:
            if isinstance(exc.partial, dict) and isinstance(exc.partial.get("meta_info"), dict):
                self._account(exc.partial, ledger)
            raise
        if last is not None:
            self._account(last, ledger)
        return last, stopped

    async def incremental_streams(self, ledger: CostLedger | None) -> bool:
        """Whether the server's streamed chunks carry only what is new (SGLang started with
        --incremental-streaming-output) rather than everything so far (its default, in 0.5.2 and the current
        release alike: output logprob arrays re-sent whole in every chunk, so streaming a long trace with
        logprobs grows with the square of its length). Found once per endpoint by streaming two tokens with
        their logprobs (counted in `ledger`); a server that cannot say is taken as cumulative."""
        if self._incremental is None:
            payload = self.payload("1+1=", {"max_new_tokens": 2, "temperature": 0.0, "ignore_eos": True,
                                            "stream_interval": 1},
                                   {"return_logprob": True, "top_logprobs_num": 1, "logprob_start_len": -1})
            seen: list[dict] = []
            try:
                await self.astream(payload, ledger, lambda event: seen.append(event) or True)
            except EndpointError:
                seen = []
            second = next((e for e in seen if (e.get("meta_info") or {}).get("completion_tokens") == 2), None)
            tops = (second or {}).get("meta_info", {}).get("output_top_logprobs")
            self._incremental = len(seen) >= 2 and isinstance(tops, list) and len(tops) == 1
        return self._incremental

    @property
    def deterministic(self) -> bool:
        """Whether the server samples deterministically (SGLang 0.5.3 on, started with
        --enable-deterministic-inference): there a sampled request without its own `sampling_seed` is sampled
        with seed 42, so N identical requests give one sample N times. Read once from the server info (which the
        SGLang Model Gateway takes from a worker); a server that cannot say is taken as not deterministic. Call
        it from a program's thread, not the request loop."""
        if self._deterministic is None:
            try:
                info = self.get_server_info()
            except EndpointError:
                info = None
            self._deterministic = isinstance(info, dict) and info.get("enable_deterministic_inference") is True
        return self._deterministic

    async def abort(self, rid: str) -> bool:
        """Ask the server to stop a request; whether it took the request (a gateway without /abort_request
        answers 404, and the caller then closes the stream, which aborts the request too)."""
        try:
            await self.client.arequest("POST", self.base_url + "/abort_request", {"rid": rid}, text=True,
                                       control=True)
            return True
        except EndpointError:
            return False

    def warm(self, text: str, ledger: CostLedger | None) -> None:
        """Put a prefix into the server's radix cache once, before the samples that share it are sent (they
        would otherwise all prefill it at the same moment). Failing it is not fatal: it is recorded."""
        try:
            answer = self.client.post(self.base_url + "/generate",
                                      {"text": text, "sampling_params": {"max_new_tokens": 0}}, ledger=ledger)
            self._account(answer, ledger)
        except EndpointError as exc:
            if ledger is not None:
                ledger.add_error(f"prefix cache request: {exc}")

    def _account(self, answer, ledger: CostLedger | None) -> None:
        for item in answer if isinstance(answer, list) else [answer]:
            meta = item.get("meta_info") if isinstance(item, dict) else None
            if not isinstance(meta, dict):
                raise EndpointError(f"POST {self.base_url}/generate: answer without meta_info: {item!r}"[:300],
                                    url=self.base_url + "/generate", kind="bad_response", status=200)
            self.totals.add_policy(meta)
            if ledger is not None:
                ledger.add_policy(meta)

    # -- the frontend's own calls (a user's sgl.gen, fork, select) -------------------------------------------

    def post(self, path: str, payload: dict):
        answer = self.client.post(self.base_url + path, payload, generation=path == "/generate")
        self._account(answer, None)
        return answer

    def generate(self, s, sampling_params):
        self._handle_dtype_to_regex(sampling_params)
        params = {**special_token_defaults(), **sampling_params.to_srt_kwargs()}
        self._warn_unseeded(params)
        data = {"text": s.text_, "sampling_params": params}
        for name in _LOGPROB_FIELDS:
            value = getattr(sampling_params, name, None)
            if value is not None and not isinstance(value, tuple):  # the frontend's unset marker is (None,)
                data[name] = value
        self._add_images(s, data)
        answer = self.post("/generate", data)
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise EndpointError(f"POST {self.base_url}/generate: expected one completion, got {answer!r}"[:300],
                                url=self.base_url + "/generate", kind="bad_response", status=200)
        return answer["text"], answer["meta_info"]

    def _warn_unseeded(self, params: dict) -> None:
        """Once per endpoint: a program's own sampled `sgl.gen` on a deterministic server gets seed 42 like every
        unseeded request, so forks of one prompt all return one sample (the frontend cannot send a seed; the
        strategy programs send each branch its own)."""
        if params.get("temperature", 1.0) == 0 or params.get("top_k") == 1 or "sampling_seed" in params:  # greedy
            return
        with self._unseeded_lock:
            seen, self._unseeded_seen = self._unseeded_seen, True
        if not seen and self.deterministic:
            log.warning("%s samples deterministically (--enable-deterministic-inference): every sampled request "
                        "without a sampling_seed is sampled with seed 42, so sgl.gen in forks of one prompt returns "
                        "the same text in each; tts-planner's strategies (solve, the programs) seed every branch",
                        redact_url(self.base_url))

    def commit_lazy_operations(self, s) -> None:
        data = {"text": s.text_, "sampling_params": {"max_new_tokens": 0}}
        self._add_images(s, data)
        self.post("/generate", data)

    def fill_image(self, s) -> None:
        self.commit_lazy_operations(s)

    def cache_prefix(self, prefix_str: str) -> None:
        self.post("/generate", {"text": prefix_str, "sampling_params": {"max_new_tokens": 0}})

    def _generate_http_request(self, s, data):
        self._add_images(s, data)
        return self.post("/generate", data)

    def flush_cache(self) -> None:
        """Empty the server's prefix cache (SGLang answers in plain text; 400 while requests run)."""
        self.client.request("POST", self.base_url + "/flush_cache", {}, text=True, control=True)

    def get_server_info(self) -> dict:
        """GET /get_server_info (SGLang up to 0.5.x's early releases), else /server_info (current ones)."""
        try:
            return self.client.get(self.base_url + "/get_server_info")
        except EndpointError as exc:
            if exc.status != 404:
                raise
            return self.client.get(self.base_url + "/server_info")

    def start_profile(self) -> None:
        self.client.request("POST", self.base_url + "/start_profile", {}, text=True, control=True)

    def stop_profile(self) -> None:
        self.client.request("POST", self.base_url + "/stop_profile", {}, text=True, control=True)
