"""Reading SGLang's streamed /generate answers, whichever way the server sends its chunks.

SGLang 0.5.2 sends the text so far (cumulative), only the new `output_ids`, and output logprob arrays holding
every position so far; servers started with `--incremental-streaming-output` (newer releases) send only the
new text and the new logprobs. `completion_tokens` counts all tokens so far in both. The reader tells the two
apart from the logprob arrays' length against that count (the first chunk reads the same either way) and
hands out only the new top-logprob entries, so a long trace costs work proportional to its length.
"""

from __future__ import annotations


class StreamReader:
    """The state of one streamed generation as its events arrive."""

    def __init__(self, thinking_end: str | None = None) -> None:
        self.text = ""
        self.meta: dict = {}
        self.completion_tokens = 0
        self.thinking_end = thinking_end
        self.thinking_tokens: int | None = None  # tokens when the thinking had ended (chunk granularity)
        self._seen_logprobs = 0
        self._cumulative: bool | None = None

    def feed(self, event: dict) -> list:
        """Take one event; return the top-logprob entries of the tokens it adds."""
        meta = event.get("meta_info") or {}
        completion = int(meta.get("completion_tokens") or 0)
        tops = meta.get("output_top_logprobs") or []
        if self._cumulative is None and self.completion_tokens > 0 and completion > self.completion_tokens:
            if tops:
                self._cumulative = len(tops) == completion
            else:
                self._cumulative = str(event.get("text", "")).startswith(self.text)
        cumulative = self._cumulative is not False
        new = tops[self._seen_logprobs:] if cumulative else tops
        self._seen_logprobs += len(new)
        piece = event.get("text") or ""
        self.text = piece if cumulative else self.text + piece
        self.completion_tokens = completion
        self.meta = meta
        if self.thinking_end and self.thinking_tokens is None and self.thinking_end in self.text:
            self.thinking_tokens = completion
        return new

    def item(self) -> dict:
        """The generation as a non-streamed answer would give it: text and the last meta_info."""
        return {"text": self.text, "meta_info": {**self.meta, "completion_tokens": self.completion_tokens}}
