"""One generated sequence and the JSON SGLang sends for it: the whole answer of a plain /generate, or the
chunks of a streamed one.

What a streamed chunk holds, read from SGLang 0.5.2's tokenizer manager and scheduler (and 0.5.23's, which
differs only when the server runs with --incremental-streaming-output):
- `text`: cumulative (everything generated so far); with incremental output, only the new text.
- `output_ids`: only the ids generated since the previous chunk (0.5.2 always; 0.5.23 only with incremental
  output, else cumulative).
- `meta_info`: id, finish_reason (null until the last chunk), prompt_tokens, weight_version, the logprob
  arrays, completion_tokens (tokens so far), cached_tokens; the last chunk adds e2e_latency. Output logprob
  arrays hold every position produced so far (0.5.2), or only the new positions with incremental output;
  input logprob arrays are repeated in every chunk.
- A chunk is sent after the 1st token and then every `stream_interval` tokens (0.5.2's rule: when the
  output length modulo the interval is 1, or every token for an interval of 1), and always at the end;
  then `data: [DONE]`. An aborted request's last chunk carries the tokens generated until the abort and
  finish_reason {"type": "abort", "message": "Aborted", ...}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

OUTPUT_FIELDS = ("output_token_logprobs", "output_top_logprobs", "output_token_ids_logprobs")
_SLOT = "\x00sim-slot-{}\x00"


class Logprobs(Protocol):
    def fields(self, start: int, end: int) -> list[tuple[str, str]]:
        """(name, JSON value) of every logprob field, the output ones for positions [start, end)."""


@dataclass
class DictLogprobs:
    """Logprob arrays computed up front as Python lists (the default profile's short answers). `whole`: never
    sliced (max_new_tokens 0 keeps its one next-position entry)."""
    meta: dict
    whole: bool = False

    def fields(self, start: int, end: int) -> list[tuple[str, str]]:
        return [(name, json.dumps(value[start:end] if name in OUTPUT_FIELDS and not self.whole else value,
                                  ensure_ascii=False))
                for name, value in self.meta.items()]


@dataclass
class Generation:
    """A sequence as planned: `count` tokens and `reason` if it runs to its end. `shown` holds each token's
    text as it appears in the answer (empty for skipped special tokens); `final_text` is the whole answer's
    text with SGLang's stop-string trimming."""
    rid: str
    prompt_tokens: int
    cached_tokens: int
    ids: list[int]
    shown: list[str]
    count: int
    reason: dict
    final_text: str
    logprobs: Logprobs | None = None
    prompt_ids: list[int] = field(default_factory=list, repr=False)

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    def text(self, start: int, end: int) -> str:
        return "".join(self.shown[start:end])

    def payload(self, start: int, end: int, *, reason: dict | None, text: str, ids_from: int | None = None,
                logprobs_from: int = 0, e2e: float | None = None, index: int | None = None) -> bytes:
        """The JSON of one answer or chunk: `text` as given, output_ids[ids_from or start : end], output logprob
        arrays for [logprobs_from, end), completion_tokens = end."""
        ids = self.ids[start if ids_from is None else ids_from:end]
        meta: dict = {"id": self.rid, "finish_reason": reason, "prompt_tokens": self.prompt_tokens,
                      "weight_version": "default"}
        raw = []
        if self.logprobs is not None:
            for name, value in self.logprobs.fields(logprobs_from, end):
                meta[name] = _SLOT.format(len(raw))
                raw.append(value)
        meta["completion_tokens"] = end
        meta["cached_tokens"] = self.cached_tokens
        if e2e is not None:
            meta["e2e_latency"] = e2e
        body = {"text": text, "output_ids": ids, "meta_info": meta}
        if index is not None:
            body["index"] = index
        out = json.dumps(body, ensure_ascii=False)
        for i, value in enumerate(raw):
            out = out.replace(json.dumps(_SLOT.format(i)), value, 1)
        return out.encode("utf-8")
