"""Final answers: extraction from \\boxed{}, and grouping of equivalent answers with math-verify under a
time limit that works from any thread.

math-verify's own timeouts use SIGALRM, which only works in the main thread, and the frontend runs every
fork in its own thread. So comparisons run in a small pool of worker processes with math-verify's
timeouts switched off, and the calling thread enforces the deadline: a worker that overruns it is killed
and replaced, and the pair counts as not equivalent. Cheap paths (identical after presentational
normalisation, two plain numbers) and a cache keep most comparisons out of the pool. Model output is
only ever parsed by math-verify's LaTeX parser, never evaluated.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

_BOX = re.compile(r"\\(?:boxed|fbox)")
# Spacing and sizing commands that never change a value.
_PRESENTATION = re.compile(r"\\left|\\right|\\[!,;: ]|\$|\s+")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")
_RATIONAL = re.compile(r"([-+]?)(?:(\d+)|\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))")


@dataclass
class Vote:
    """One group of equivalent answers."""

    answer: str  # the group's first answer, as written by the policy
    branches: list[int]
    score: float  # branch count (majority) or summed reward / weight

    def to_dict(self) -> dict:
        return asdict(self)



def extract_answer(text: str) -> str | None:
    """The content of the last complete \\boxed{...} (or \\fbox{...}, or "\\boxed 5") in `text`."""
    for match in reversed(list(_BOX.finditer(text))):
        content = _box_content(text, match.end())
        if content:
            return content
    return None


def _box_content(text: str, start: int) -> str | None:
    rest = text[start:]
    stripped = rest.lstrip(" ")
    if not stripped.startswith("{"):
        token = re.match(r"\s+([^\s$]+)", rest)  # "\boxed 5"
        return token.group(1).rstrip(".") if token else None
    begin = start + (len(rest) - len(stripped)) + 1
    depth, i = 1, begin
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # \{ and \} are literal braces, not grouping
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i].strip() or None
        i += 1
    return None  # truncated


def normalize(answer: str) -> str:
    """Presentational normalisation only: two answers equal after it are the same answer."""
    text = _PRESENTATION.sub("", answer)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".")


class _Worker:
    """One math-verify process (`python -m sglang_plugin.answers`), one JSON line per comparison each way.
    A plain subprocess, not multiprocessing: spawning would re-run the caller's main script in the child,
    which breaks scripts that call `solve` at top level."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.answers"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.ready = False

    def compare(self, a: str, b: str, timeout: float, start_timeout: float) -> bool | None:
        """True/False, or None when the deadline passed (the worker is then dead)."""
        if not self.ready:
            if self._line(start_timeout) is None:
                return None
            self.ready = True
        try:
            self.process.stdin.write(json.dumps([a, b]).encode("utf-8") + b"\n")
            self.process.stdin.flush()
        except OSError:
            self.kill()
            return None
        line = self._line(timeout)
        return None if line is None else bool(json.loads(line))

    def _line(self, timeout: float) -> bytes | None:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else b""
        if not line:
            self.kill()
            return None
        return line

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()


def _serve() -> None:
    """The worker's loop: math-verify with its own (signal) timeouts off; the caller keeps the deadline."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    parsed: dict[str, list] = {}

    def parse_once(answer: str) -> list:
        if answer not in parsed:
            if len(parsed) > 10_000:
                parsed.clear()
            parsed[answer] = parse("\\boxed{" + answer + "}", parsing_timeout=None)
        return parsed[answer]

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        a, b = json.loads(line)
        try:
            pa, pb = parse_once(a), parse_once(b)
            same = bool(pa and pb and (verify(pa, pb, timeout_seconds=None)
                                       or verify(pb, pa, timeout_seconds=None)))
        except Exception:  # noqa: BLE001 - an answer math-verify cannot handle matches nothing
            same = False
        out.write(b"true\n" if same else b"false\n")
        out.flush()


class AnswerGrouper:
    """Groups equivalent answers. Thread-safe; one instance is shared by every program in a process."""

    def __init__(self, workers: int = 1, start_timeout: float = 120.0) -> None:
        self.workers = workers
        self.start_timeout = start_timeout
        self.timeouts = 0  # comparisons that overran their deadline
        self._idle: queue.Queue = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], bool] = {}

    def equivalent(self, a: str, b: str, timeout: float = 5.0) -> bool:
        """Whether two answers denote the same value; False when unsure or out of time."""
        na, nb = normalize(a), normalize(b)
        if na == nb:
            return bool(na)
        numeric = _numbers_equal(na, nb)
        if numeric is not None:
            return numeric
        key = (na, nb) if na < nb else (nb, na)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        same = self._compare(na, nb, timeout)
        with self._lock:
            if same is None:
                self.timeouts += 1
                return False
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = same
        return same

    def group(self, answers: Sequence[str | None], timeout: float = 5.0) -> list[int | None]:
        """A group id per answer (None for a missing answer); ids number groups by first appearance."""
        labels: list[int | None] = []
        representatives: list[str] = []
        seen: dict[str, int] = {}
        for answer in answers:
            if answer is None:
                labels.append(None)
                continue
            key = normalize(answer)
            if key not in seen:
                seen[key] = next((g for g, rep in enumerate(representatives)
                                  if self.equivalent(rep, answer, timeout)), len(representatives))
                if seen[key] == len(representatives):
                    representatives.append(answer)
            labels.append(seen[key])
        return labels

    def vote(self, answers: Sequence[str | None], weights: Sequence[float] | None = None,
             timeout: float = 5.0, ids: Sequence[int] | None = None, reduce: str = "sum") -> list[Vote]:
        """Groups with their summed (or, with reduce="max", best) weight, 1 per answer by default; best
        first, ties to the group that appeared first."""
        weights = [1.0] * len(answers) if weights is None else list(weights)
        ids = list(range(len(answers))) if ids is None else list(ids)
        votes: dict[int, Vote] = {}
        for label, answer, weight, branch in zip(self.group(answers, timeout), answers, weights, ids):
            if label is None:
                continue
            if label not in votes:
                votes[label] = Vote(answer=answer, branches=[], score=float(weight) if reduce == "max" else 0.0)
            vote = votes[label]
            vote.branches.append(branch)
            vote.score = max(vote.score, float(weight)) if reduce == "max" else vote.score + float(weight)
        return sorted(votes.values(), key=lambda v: -v.score)

    def _compare(self, a: str, b: str, timeout: float) -> bool | None:
        worker = self._take()
        result = worker.compare(a, b, timeout, self.start_timeout)
        self._idle.put(worker if result is not None else _Worker())
        return result

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.workers:
                self._started += 1
                return _Worker()
        return self._idle.get()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return


def _numbers_equal(a: str, b: str) -> bool | None:
    """Exact comparison when both answers are plain decimals, or both integers or integer fractions
    (\\frac{p}{q}, p/q, with a sign); None (ask math-verify) otherwise, e.g. a fraction against a decimal,
    which math-verify compares to a rounding precision."""
    for kind in (_decimal, _rational):
        x, y = kind(a), kind(b)
        if x is not None and y is not None:
            return x == y
    return None


def _decimal(text: str) -> Decimal | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _rational(text: str) -> Fraction | None:
    match = _RATIONAL.fullmatch(text)
    if match is None:
        return None
    sign, whole, top, bottom, num, den = match.groups()
    numerator, denominator = (int(whole), 1) if whole else (int(top or num), int(bottom or den))
    if denominator == 0:
        return None
    return Fraction(-numerator if sign == "-" else numerator, denominator)


_shared: dict[int, AnswerGrouper] = {}
_shared_lock = threading.Lock()


def shared_grouper(workers: int = 1) -> AnswerGrouper:
    """The process-wide grouper with `workers` processes (started on first use, reused after)."""
    with _shared_lock:
        if workers not in _shared:
            _shared[workers] = AnswerGrouper(workers)
        return _shared[workers]


if __name__ == "__main__":
    _serve()
