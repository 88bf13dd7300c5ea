"""The math-verify process: `python -m planner.grading.worker`, one JSON line per comparison each way.

Request `[gold, pred, both]`; reply `[gold accepts pred, pred accepts gold or null]`. math-verify's own
timeouts use SIGALRM, which only works in a main thread, so they are off here and the calling process
enforces the deadline by killing this one. Answers are parsed as the content of a `\\boxed{}` by
math-verify's LaTeX parser only, never evaluated as code; memory is capped so a runaway sympy computation
fails here instead of taking the machine.
"""

from __future__ import annotations

import json
import logging
import resource
import sys

MEMORY_LIMIT_BYTES = 4 << 30
_PARSE_CACHE_SIZE = 10_000


def serve() -> None:
    """Answer comparisons from stdin until it closes."""
    _limit_memory()
    from math_verify import LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    parsed: dict[str, list] = {}
    # LaTeX only: math-verify's plain-expression fallback hands text to sympy's parse_expr, an eval.
    latex_only = [LatexExtractionConfig()]

    def parse_once(answer: str) -> list:
        if answer not in parsed:
            if len(parsed) >= _PARSE_CACHE_SIZE:
                parsed.clear()
            parsed[answer] = parse("\\boxed{" + answer + "}", extraction_config=latex_only, parsing_timeout=None)
        return parsed[answer]

    def accepts(gold: list, pred: list) -> bool:
        return bool(gold and pred and verify(gold, pred, timeout_seconds=None))

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        gold, pred, both = json.loads(line)
        try:
            parsed_gold, parsed_pred = parse_once(gold), parse_once(pred)
            reply = [accepts(parsed_gold, parsed_pred), accepts(parsed_pred, parsed_gold) if both else None]
        except Exception:  # noqa: BLE001 - an answer math-verify cannot handle matches nothing
            reply = [False, False if both else None]
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


def _limit_memory() -> None:
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):  # a platform without the limit still grades, unprotected
        pass


if __name__ == "__main__":
    serve()
