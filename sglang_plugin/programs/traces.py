"""Whole traces generated with their own confidence (planner.confidence): the top-k logprobs of every token,
read while the trace is produced, so a trace can be cut as soon as its confidence says so.

Two ways to get them from SGLang, chosen per server (SearchConfig.confidence_transport):
- stream: one streamed request per trace (`stream: true`, `return_logprob`, `top_logprobs_num`, a per-request
  `stream_interval`); a cut trace's request is aborted on the server (/abort_request with its rid, or by
  closing the stream) and the server's last chunk says how many tokens it generated. Linear in the trace's
  length only on servers that stream incrementally (`--incremental-streaming-output`): by default SGLang
  (0.5.2 and the current release) re-sends every logprob so far in every chunk.
- segments: consecutive requests of `confidence_segment_tokens` tokens, each continuing the trace's text (its
  prefix cached on the server), each returning its own logprobs once; a trace is cut between segments, so
  nothing needs aborting and the tokens are exactly what the server answered. A long-thinking trace's first
  segments stop at the end of its thinking (kept in the text), so its thinking tokens are exact.

Thinking tokens of a streamed trace are apportioned by characters within the chunk where the thinking ended;
those of a plain (unstreamed) sample by characters within the sample (see `apportioned`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from planner.confidence import TraceConfidence, token_confidence
from sglang_plugin.programs.result import Branch
from sglang_plugin.transport.engine import submit
from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.streams import StreamReader

if TYPE_CHECKING:
    from sglang_plugin.programs.search_run import SearchRun

Stop = Callable[[TraceConfidence], bool]


def apportioned(tokens: int, text: str, end: str) -> int | None:
    """Tokens of `text` (`tokens` of them) up to and including the first `end`, apportioned by characters;
    None when `end` does not occur."""
    at = text.find(end)
    if at < 0:
        return None
    if not text:
        return 0
    return round(tokens * (at + len(end)) / len(text))


def generate_traces(run: SearchRun, branches: Sequence[Branch], stop: Stop | None,
                    settled: Callable[[], bool] | None = None) -> None:
    """Run `branches` to their end with their confidence, all in flight at once; a trace for which
    `stop(confidence)` holds is cut (finish "stopped", no answer, its tokens paid and counted). Each trace is
    added to its branch as soon as it ends; `settled()` is then asked (off the request loop, since it grades
    answers) and, once it holds, every trace still running is cut the same way (finish "cancelled")."""
    search = run.config.search
    transport = search.confidence_transport
    if transport == "auto":
        incremental = submit(run.endpoint.incremental_streams(run.ledger)).result()
        transport = "stream" if incremental else "segments"
    one = _streamed if transport == "stream" else _segmented
    cancelled = threading.Event()

    async def trace_of(branch: Branch) -> tuple[TraceConfidence, object]:
        trace = TraceConfidence(search.confidence_window)
        try:
            return trace, await one(run, branch, trace, stop, cancelled)
        except Exception as exc:  # noqa: BLE001 - an EndpointError fails its branch, anything else is raised below
            return trace, exc

    async def every() -> BaseException | None:
        """Every trace to its end; the first unexpected error is returned once none is left running (it cuts the
        others at once, so no request outlives the call)."""
        running = {asyncio.ensure_future(trace_of(branch)): branch for branch in branches}
        unexpected = None
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            try:
                for task in done:
                    branch = running.pop(task)
                    trace, result = task.result()
                    if isinstance(result, BaseException) and not isinstance(result, EndpointError):
                        raise result
                    await asyncio.to_thread(_finish, run, branch, trace, result)
                if settled is not None and running and not cancelled.is_set() and await asyncio.to_thread(settled):
                    cancelled.set()
            except Exception as exc:  # noqa: BLE001 - raised by the caller once the rest are cut
                unexpected = unexpected or exc
                cancelled.set()
        return unexpected

    unexpected = submit(every()).result()
    if unexpected is not None:
        raise unexpected


def _finish(run: SearchRun, branch: Branch, trace: TraceConfidence, result) -> None:
    """Add one ended trace to its branch: its confidence, text, tokens and how it ended."""
    branch.confidence = trace.score
    if isinstance(result, EndpointError):
        run.close(branch, error=f"{type(result).__name__}: {result}")
        return
    item, thinking, cut = result
    if run.thinking_end is not None:
        branch.thinking_tokens = thinking
    if cut is not None:
        branch.steps.append(item["text"])
        branch.tokens += item["meta_info"]["completion_tokens"]
        if branch.thinking_tokens is None and run.thinking_end is not None:
            branch.thinking_tokens = branch.tokens  # cut inside its thinking
        run.close(branch, cut)
    else:
        run.collect(branch, item)


def _logprob_options(run: SearchRun) -> dict:
    return {"return_logprob": True, "top_logprobs_num": run.config.search.confidence_top_k, "logprob_start_len": -1}


def _add(trace: TraceConfidence, tops: list) -> None:
    trace.add(v for v in (token_confidence(top) for top in tops) if v is not None)


async def _streamed(run: SearchRun, branch: Branch, trace: TraceConfidence, stop: Stop | None,
                    cancelled: threading.Event):
    """One streamed request: (the generation as a plain answer would give it, thinking tokens, why it was cut:
    None, "stopped" or "cancelled")."""
    reader = StreamReader(run.thinking_end)
    why: list[str] = []

    def on_event(event: dict) -> bool:
        _add(trace, reader.feed(event))
        if stop is not None and stop(trace):
            why.append("stopped")
        elif cancelled.is_set() and not (event.get("meta_info") or {}).get("finish_reason"):
            why.append("cancelled")  # a trace whose last chunk came is not cut: it keeps its answer
        return not why

    sampling = {**run.sampling_for(branch), "stream_interval": run.config.search.confidence_stream_interval}
    payload = run.endpoint.payload(run.prompt + branch.text, sampling, _logprob_options(run))
    last, stopped = await run.endpoint.astream(payload, run.ledger, on_event)
    item = reader.item()
    if stopped and last is not None:  # the server's last chunk counts the tokens generated after the cut too
        served = int((last.get("meta_info") or {}).get("completion_tokens") or 0)
        item["meta_info"]["completion_tokens"] = max(served, reader.completion_tokens)
    return item, reader.thinking_tokens, why[0] if stopped and why else None


async def _segmented(run: SearchRun, branch: Branch, trace: TraceConfidence, stop: Stop | None,
                     cancelled: threading.Event):
    """Consecutive requests continuing the trace: (the whole generation, thinking tokens, why it was cut: None,
    "stopped" or "cancelled"). A cancelled trace is simply not continued; one that ended keeps its answer."""
    segment, end = run.config.search.confidence_segment_tokens, run.thinking_end
    text, tokens, thinking, meta = "", 0, None, {}
    thinking_open = end is not None
    while True:
        sampling = run.sampling_for(branch, generated=tokens)
        sampling["max_new_tokens"] = min(segment, sampling["max_new_tokens"])
        if thinking_open:
            sampling.update(stop=[*sampling.get("stop", []), end], no_stop_trim=True)
        payload = run.endpoint.payload(run.prompt + branch.text + text, sampling, _logprob_options(run))
        answer = await run.endpoint.agenerate(payload, run.ledger)
        meta = answer["meta_info"]
        piece, count = answer["text"], int(meta.get("completion_tokens") or 0)
        _add(trace, meta.get("output_top_logprobs") or [])
        text, tokens = text + piece, tokens + count
        reason = meta.get("finish_reason") if isinstance(meta.get("finish_reason"), dict) else {}
        if thinking_open and end in text:
            thinking_open, thinking = False, tokens - count + (apportioned(count, piece, end) or count)
            if reason.get("matched") == end:
                thinking = tokens
        item = {"text": text, "meta_info": {**meta, "completion_tokens": tokens}}
        if stop is not None and stop(trace):
            return item, thinking, "stopped"
        ended_by_thinking = reason.get("type") == "stop" and reason.get("matched") == end
        if reason.get("type") == "length" and count < sampling["max_new_tokens"]:
            return item, thinking, None  # the server's own limit (context): the trace cannot go on
        if not (reason.get("type") == "length" or ended_by_thinking) or tokens + branch.tokens >= run.max_tokens \
                or count == 0:
            return item, thinking, None
        if cancelled.is_set():
            return item, thinking, "cancelled"
