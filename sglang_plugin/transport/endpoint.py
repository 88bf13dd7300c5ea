"""The SGLang backend the programs run on: a `sgl.RuntimeEndpoint` whose requests follow the transport policy
(sglang_plugin.transport.http) and whose every response's meta_info is accounted: added to the `CostLedger`
attached to the stream executor that sent it (forks included) and to the endpoint's running `totals`.
"""

from __future__ import annotations

import threading
import weakref

from sglang_plugin.compat import BaseBackend, RuntimeEndpoint, chat_template, special_token_defaults
from sglang_plugin.transport.http import EndpointError, HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger

_LOGPROB_FIELDS = ("return_logprob", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs")


class Endpoint(RuntimeEndpoint):
    """A drop-in `sgl.RuntimeEndpoint` whose requests follow the module's policy and are accounted.

    `RuntimeEndpoint`'s own requests have no timeout and no retry, and the fork warm-up requests it sends
    by itself are invisible to the program; here every response's meta_info lands in the `CostLedger`
    attached to the sending stream executor (`attach`) and in `totals`.
    """

    def __init__(self, base_url: str, api_key: str | None = None, verify: str | None = None,
                 chat_template_name: str | None = None, transport: TransportConfig | None = None) -> None:
        BaseBackend.__init__(self)
        # Current servers have no /concate_and_append_request; join("concate_and_append") falls back to text.
        self.support_concate_and_append = False
        self.base_url = base_url.rstrip("/")
        self.api_key, self.verify = api_key, verify
        self.transport = transport or TransportConfig()
        self.client = HttpClient(self.transport, api_key=api_key, verify=verify)
        self.totals = CostLedger()
        self._ledgers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._ledgers_lock = threading.Lock()
        self.model_info = self.client.get(self.base_url + "/get_model_info")
        if not isinstance(self.model_info, dict) or "model_path" not in self.model_info:
            raise EndpointError(f"{self.base_url}/get_model_info has no model_path: {self.model_info!r}"[:300],
                                url=self.base_url + "/get_model_info", kind="bad_response", status=200)
        self.chat_template = chat_template(chat_template_name, self.model_info["model_path"])

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
        params = {**special_token_defaults(), **sampling_params.to_srt_kwargs()}
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
        """GET /get_server_info (SGLang up to 0.5.x's early releases), else /server_info (current ones)."""
        try:
            return self.client.get(self.base_url + "/get_server_info")
        except EndpointError as exc:
            if exc.status != 404:
                raise
            return self.client.get(self.base_url + "/server_info")
