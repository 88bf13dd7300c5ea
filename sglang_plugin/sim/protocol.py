"""Request parsing for the simulator, mirroring SGLang's own checks so a client gets the same 400s: type errors
in the request body come back in SGLang's validation shape ({"object": "error", "message", "type", "param",
"code"}), semantic errors (no input, bad sampling values, too long) in its {"error": {"message"}} shape, with
SGLang's messages. One deliberate difference: an unknown sampling parameter is a 400 here, where SGLang 0.5
fails with a 500 (an uncaught TypeError)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_NEW_TOKENS = 128
GREEDY_EPSILON = 1e-6
UNSUPPORTED_INPUTS = ("input_embeds", "image_data", "video_data", "audio_data")
CONSTRAINED = ("regex", "json_schema", "ebnf", "structural_tag")
_SAMPLING_TYPES: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,), "min_new_tokens": (int,), "n": (int,), "temperature": (int, float),
    "top_p": (int, float), "top_k": (int,), "min_p": (int, float), "frequency_penalty": (int, float),
    "presence_penalty": (int, float), "repetition_penalty": (int, float), "ignore_eos": (bool,),
    "skip_special_tokens": (bool,), "spaces_between_special_tokens": (bool,), "no_stop_trim": (bool,),
    "stream_interval": (int,), "sampling_seed": (int,), "custom_params": (dict,), "logit_bias": (dict,),
    "regex": (str,), "json_schema": (str,), "ebnf": (str,), "structural_tag": (str,),
    "stop": (str, list), "stop_token_ids": (list,), "stop_regex": (str, list),
}


class ApiError(Exception):
    """An HTTP error answer: status and JSON body. `in_stream` errors are the ones SGLang reports inside an
    event stream (status 200) when the request asked for streaming."""

    def __init__(self, status: int, body: dict, *, in_stream: bool = False) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body, self.in_stream = status, body, in_stream


def invalid(message: str) -> ApiError:
    """A request that does not fit the schema (FastAPI's validation error, turned into a 400 by SGLang)."""
    return ApiError(400, {"object": "error", "message": message, "type": "Bad Request", "param": None,
                          "code": 400})


def rejected(message: str) -> ApiError:
    """A well-formed request SGLang refuses (its ValueError path)."""
    return ApiError(400, {"error": {"message": message}}, in_stream=True)


@dataclass
class Sampling:
    max_new_tokens: int | None = DEFAULT_MAX_NEW_TOKENS
    min_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    stop_regex: list[str] = field(default_factory=list)  # newer SGLang releases; the 0.5.23 frontend sends it
    greedy: bool = False
    ignore_eos: bool = False
    no_stop_trim: bool = False
    skip_special_tokens: bool = True
    sampling_seed: int | None = None
    key: str = ""
    stream_interval: int | None = None
    draw_key: str = ""  # the parameters a sampled token depends on (not where generation stops)


@dataclass
class Single:
    """One sequence to generate (a batch or n > 1 expands into several)."""
    rid: str
    text: str | None
    input_ids: list[int] | None
    sampling: Sampling
    return_logprob: bool
    logprob_start_len: int
    top_logprobs_num: int
    token_ids_logprob: list[int] | None
    return_text_in_logprobs: bool


@dataclass
class GenerateRequest:
    items: list[Single]
    single: bool
    stream: bool


def parse_body(raw: bytes) -> dict:
    if not raw.strip():
        raise invalid("1 validation error: body: Field required")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"1 validation error: body: JSON decode error ({exc})") from None
    if not isinstance(body, dict):
        raise invalid(f"1 validation error: body: Input should be a valid dictionary, got "
                      f"{type(body).__name__}")
    return body


def parse_generate(body: dict) -> GenerateRequest:
    """Validate a /generate body and expand it into single sequences the way SGLang normalises a batch."""
    _check_types(body, {
        "text": _str_or_list_of_str, "input_ids": _ids_or_list_of_ids, "sampling_params": _dict_or_list_of_dict,
        "rid": _str_or_list_of_str, "return_logprob": _bool_or_list, "logprob_start_len": _int_or_list,
        "top_logprobs_num": _int_or_list, "token_ids_logprob": _ids_or_list_of_ids,
        "return_text_in_logprobs": _is_bool, "stream": _is_bool,
    })
    for name in UNSUPPORTED_INPUTS:
        if body.get(name) is not None:
            raise rejected(f"{name} is not supported: the simulator serves a text-only model")
    text, input_ids = body.get("text"), body.get("input_ids")
    if text is None and input_ids is None:
        raise rejected("Either text, input_ids or input_embeds should be provided.")
    if text is not None:
        single, prompts = isinstance(text, str), [text] if isinstance(text, str) else list(text)
        id_prompts: list[list[int] | None] = [None] * len(prompts)
    else:
        if len(input_ids) == 0:
            raise rejected("input_ids cannot be empty.")
        single = isinstance(input_ids[0], int)
        id_prompts = [input_ids] if single else list(input_ids)
        prompts = [None] * len(id_prompts)
    batch = len(prompts)
    if batch == 0:
        raise rejected("The batch is empty: give at least one text or list of input_ids.")
    params = body.get("sampling_params")
    n = _parallel_n(params)
    if n > 1:
        single = False
    if isinstance(params, list) and len(params) != batch:
        raise rejected(f"The length of sampling_params ({len(params)}) should be equal to the batch size "
                       f"({batch}).")
    per_item = [params[i] if isinstance(params, list) else (params or {}) for i in range(batch)]
    samplings = [_sampling(p) for p in per_item]
    rids = _rids(body.get("rid"), batch, n, single)
    items = []
    for copy in range(n):
        for i in range(batch):
            items.append(Single(
                rid=rids[copy * batch + i], text=prompts[i], input_ids=id_prompts[i], sampling=samplings[i],
                return_logprob=bool(_pick(body.get("return_logprob"), i, False, n)),
                logprob_start_len=_pick(body.get("logprob_start_len"), i, -1, n),
                top_logprobs_num=_pick(body.get("top_logprobs_num"), i, 0, n),
                token_ids_logprob=_token_ids(body.get("token_ids_logprob"), i),
                return_text_in_logprobs=bool(body.get("return_text_in_logprobs", False)),
            ))
    return GenerateRequest(items, single, bool(body.get("stream", False)))


def parse_embedding(body: dict) -> tuple[list[str | list[int]], bool]:
    """Validate a /classify or /encode body; returns the inputs and whether it was a single one."""
    _check_types(body, {"text": _str_or_list_of_str, "input_ids": _ids_or_list_of_ids, "rid": _str_or_list_of_str,
                        "sampling_params": _dict_or_list_of_dict})
    text, input_ids = body.get("text"), body.get("input_ids")
    if text is None and input_ids is None:
        raise rejected("At least one of text, input_ids, or image should be provided")
    if text is not None and input_ids is not None:
        raise rejected("text and input_ids cannot be provided at the same time")
    if text is not None:
        return ([text], True) if isinstance(text, str) else (list(text), False)
    if len(input_ids) == 0:
        raise rejected("input_ids cannot be empty.")
    return ([input_ids], True) if isinstance(input_ids[0], int) else (list(input_ids), False)


def _sampling(params: dict) -> Sampling:
    for name, value in params.items():
        kinds = _SAMPLING_TYPES.get(name)
        if kinds is None:
            raise rejected(f"unexpected sampling parameter '{name}' (the simulator accepts "
                           f"{', '.join(sorted(_SAMPLING_TYPES))})")
        if value is None:
            continue
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise rejected(f"sampling parameter '{name}' has the wrong type: {json.dumps(value)[:60]}")
    for name in CONSTRAINED:
        if params.get(name) is not None:
            raise rejected(f"{name}: constrained decoding is not simulated")
    get = params.get
    max_new = get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    min_new = get("min_new_tokens") or 0
    temperature = _or(get("temperature"), 1.0)
    top_p, top_k, min_p = _or(get("top_p"), 1.0), _or(get("top_k"), -1), _or(get("min_p"), 0.0)
    if temperature < 0.0:
        raise rejected(f"temperature must be non-negative, got {temperature}.")
    if not 0.0 < top_p <= 1.0:
        raise rejected(f"top_p must be in (0, 1], got {top_p}.")
    if not 0.0 <= min_p <= 1.0:
        raise rejected(f"min_p must be in [0, 1], got {min_p}.")
    if top_k < 1 and top_k != -1:
        raise rejected(f"top_k must be -1 (disable) or at least 1, got {top_k}.")
    for name, low, high in (("frequency_penalty", -2.0, 2.0), ("presence_penalty", -2.0, 2.0),
                            ("repetition_penalty", 0.0, 2.0)):
        value = get(name)
        if value is not None and not low <= value <= high:
            raise rejected(f"{name} must be in [{low:g}, {high:g}], got {value}.")
    if min_new < 0:
        raise rejected(f"min_new_tokens must be in [0, max_new_tokens], got {min_new}.")
    if max_new is not None:
        if max_new < 0:
            raise rejected(f"max_new_tokens must be at least 0, got {max_new}.")
        if min_new > max_new:
            raise rejected(f"min_new_tokens must be in [0, max_new_tokens({max_new})], got {min_new}.")
    if get("stream_interval") is not None and get("stream_interval") < 1:
        raise rejected(f"stream_interval must be at least 1, got {get('stream_interval')}.")
    if _or(get("n"), 1) < 1:
        raise rejected(f"n must be at least 1, got {get('n')}.")
    stop = get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not all(isinstance(s, str) for s in stop):
        raise rejected("sampling parameter 'stop' must be a string or a list of strings")
    stop_ids = get("stop_token_ids") or []
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in stop_ids):
        raise rejected("sampling parameter 'stop_token_ids' must be a list of integers")
    stop_regex = get("stop_regex") or []
    stop_regex = [stop_regex] if isinstance(stop_regex, str) else stop_regex
    if not all(isinstance(s, str) for s in stop_regex):
        raise rejected("sampling parameter 'stop_regex' must be a string or a list of strings")
    for pattern in stop_regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise rejected(f"invalid stop_regex {pattern!r}: {exc}") from None
    key = json.dumps({k: v for k, v in sorted(params.items()) if k not in ("n", "stream_interval")}, sort_keys=True)
    draw_key = json.dumps({k: v for k, v in sorted(params.items()) if k not in _WHERE_IT_STOPS}, sort_keys=True)
    return Sampling(max_new, min_new, list(stop), list(stop_ids), list(stop_regex),
                    temperature < GREEDY_EPSILON or top_k == 1, bool(get("ignore_eos")), bool(get("no_stop_trim")),
                    _or(get("skip_special_tokens"), True), get("sampling_seed"), key, get("stream_interval"), draw_key)


# Sampling parameters that say where generation stops or how it is shown, not which tokens are drawn.
_WHERE_IT_STOPS = frozenset({"n", "stream_interval", "max_new_tokens", "stop", "stop_token_ids", "stop_regex",
                             "no_stop_trim", "skip_special_tokens", "spaces_between_special_tokens"})


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _parallel_n(params: Any) -> int:
    if isinstance(params, dict):
        n = params.get("n", 1)
    elif isinstance(params, list) and params:
        n = params[0].get("n", 1)
        if any(p.get("n", 1) != n for p in params):
            raise rejected("The parallel_sample_num should be the same for all samples in sample params.")
    else:
        return 1
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int):
        raise rejected(f"sampling parameter 'n' has the wrong type: {json.dumps(n)[:60]}")
    return n


def _rids(rid: Any, batch: int, n: int, single: bool) -> list[str]:
    """Request ids in item order (copy-major, as SGLang expands n > 1)."""
    if rid is None:
        return [uuid.uuid4().hex for _ in range(batch * n)]
    if isinstance(rid, str):
        return [rid] if single else [f"{rid}_{i}" for i in range(batch * n)]
    if len(rid) != batch:
        raise rejected("The specified rids length mismatch with the batch_size for batch processing.")
    return list(rid) if n == 1 else [f"{r}_{copy}" for copy in range(n) for r in rid]


def _pick(value: Any, index: int, default: Any, n: int) -> Any:
    if value is None:
        return default
    if isinstance(value, list):
        if n > 1:
            raise rejected("Cannot use list logprob parameters with parallel_sample_num > 1")
        if index >= len(value):
            raise rejected(f"a per-item parameter list has {len(value)} entries, fewer than the batch")
        return value[index]
    return value


def _token_ids(value: Any, index: int) -> list[int] | None:
    if not value:
        return None
    if isinstance(value[0], list):
        if index >= len(value):
            raise rejected("token_ids_logprob has fewer lists than the batch has items")
        return value[index] or None
    return value


def _check_types(body: dict, checks: dict) -> None:
    errors = [f"{name}: {problem}" for name, check in checks.items()
              if body.get(name) is not None and (problem := check(body[name]))]
    if errors:
        raise invalid(f"{len(errors)} validation error(s) for the request body: " + "; ".join(errors))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "Input should be a valid boolean"


def _str_or_list_of_str(value: Any) -> str | None:
    if isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value):
        return None
    return "Input should be a valid string or a list of strings"


def _ids_or_list_of_ids(value: Any) -> str | None:
    if isinstance(value, list) and (all(_is_int(v) for v in value) or all(
            isinstance(v, list) and all(_is_int(t) for t in v) for v in value)):
        return None
    return "Input should be a list of integers or a list of lists of integers"


def _dict_or_list_of_dict(value: Any) -> str | None:
    if isinstance(value, dict) or isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return None
    return "Input should be a valid dictionary or a list of dictionaries"


def _bool_or_list(value: Any) -> str | None:
    if isinstance(value, bool) or isinstance(value, list) and all(isinstance(v, bool) for v in value):
        return None
    return "Input should be a valid boolean or a list of booleans"


def _int_or_list(value: Any) -> str | None:
    if _is_int(value) or isinstance(value, list) and all(_is_int(v) for v in value):
        return None
    return "Input should be a valid integer or a list of integers"


def parse_abort(raw: bytes) -> tuple[str, bool]:
    """(rid, abort_all) of a /abort_request body: {"rid": str, "abort_all": bool}, both optional (0.5.2's
    AbortReq defaults; 0.5.23 also accepts "rid": null)."""
    body = parse_body(raw)
    _check_types(body, {"rid": _is_str, "abort_all": _is_bool})
    return body.get("rid") or "", bool(body.get("abort_all", False))


def parse_profile(raw: bytes) -> int | None:
    """The optional /start_profile body (SGLang's ProfileReqInput); returns num_steps."""
    if not raw.strip():
        return None
    body = parse_body(raw)
    _check_types(body, {"output_dir": _is_str, "start_step": _is_int_check, "num_steps": _is_int_check,
                        "activities": _list_of_str, "with_stack": _is_bool, "record_shapes": _is_bool,
                        "profile_by_stage": _is_bool})
    return body.get("num_steps")


def _is_str(value: Any) -> str | None:
    return None if isinstance(value, str) else "Input should be a valid string"


def _is_int_check(value: Any) -> str | None:
    return None if _is_int(value) else "Input should be a valid integer"


def _list_of_str(value: Any) -> str | None:
    return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else \
        "Input should be a valid list of strings"
