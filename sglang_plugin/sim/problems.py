"""The simulator's known problems (text, reference answer, optional reference solution, true success rate) and a
fast way to find which of them a prompt asks about, wherever it sits inside a chat template."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from planner.errors import InputError
from planner.grading import boxed_spans
from planner.jsonl import number_of, read_jsonl, text_of

ANCHOR_CHARS = 16
_SPACE = re.compile(r"\s+")
_WORD_START = re.compile(r"(?<![^\W_])\S")


def normalize(text: str) -> str:
    """Whitespace-insensitive form used to recognise a problem: runs of whitespace become one space."""
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class Problem:
    text: str
    answer: str
    rate: float
    solution: str | None = None
    source: str = ""


class ProblemBank:
    """Problems indexed by the first ANCHOR_CHARS characters of their normalized text, so finding the one in
    a prompt costs one dictionary probe per word start in the prompt instead of a substring search per
    problem. A problem is recognised where it starts a word (after a space, newline or symbol)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self._by_text: dict[str, Problem] = {}
        self._anchors: dict[str, list[str]] = {}
        self._short: list[str] = []
        self.duplicates = 0
        for problem in problems:
            key = normalize(problem.text)
            if key in self._by_text:
                self.duplicates += 1
                continue
            self._by_text[key] = problem
            if len(key) >= ANCHOR_CHARS:
                self._anchors.setdefault(key[:ANCHOR_CHARS], []).append(key)
            else:
                self._short.append(key)

    def __len__(self) -> int:
        return len(self._by_text)

    def get(self, text: str) -> Problem | None:
        return self._by_text.get(normalize(text))

    def find(self, prompt: str) -> tuple[Problem, int] | None:
        """The known problem that occurs last in `prompt` (longest if two start at the same place) and the
        offset in `prompt` just after it, or None."""
        flat = _SPACE.sub(" ", prompt)
        best: tuple[int, int, str] | None = None
        anchors = self._anchors
        for match in _WORD_START.finditer(flat):
            i = match.start()
            keys = anchors.get(flat[i:i + ANCHOR_CHARS])
            if keys:
                for key in keys:
                    if flat.startswith(key, i) and (best is None or (i, len(key)) > best[:2]):
                        best = (i, len(key), key)
        for key in self._short:
            i = flat.rfind(key)
            if i >= 0 and (best is None or (i, len(key)) > best[:2]):
                best = (i, len(key), key)
        if best is None:
            return None
        start, length, key = best
        return self._by_text[key], _original_offset(prompt, start + length)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, *, rate_field: str = "pass_rate",
                   solutions: str | os.PathLike | None = None) -> ProblemBank:
        """Read problems (`problem`, `answer`, the rate in `rate_field`, optional `solution`). A second JSONL
        file `solutions` (with `problem`, `solution`, optional `answer`) fills in solutions and answers by
        problem text, e.g. MATH-500's test.jsonl next to its success-rate file."""
        extra = _read_solutions(solutions) if solutions is not None else {}
        name = str(path)
        problems = []
        for line, record in read_jsonl(path):
            text = text_of(record, None, path=name, line=line)
            joined = extra.get(normalize(text), {})
            solution = _optional_text(record, "solution", name, line) or joined.get("solution")
            answer = _answer_of(record, name, line) or joined.get("answer")
            if answer is None and solution:
                answer = last_boxed(solution)
            if answer is None:
                hint = "" if solutions is None else f" (nor in {solutions})"
                raise InputError(f"missing; each problem needs its reference answer{hint}", path=name,
                                 line=line, field="answer")
            rate = number_of(record, rate_field, path=name, line=line, low=0.0, high=1.0)
            problems.append(Problem(text, answer, rate, solution, f"{name}:{line}"))
        if not problems:
            raise InputError("no problems in the file", path=name)
        return cls(problems)


def _read_solutions(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    name = str(path)
    out: dict[str, dict[str, str]] = {}
    for line, record in read_jsonl(path):
        text = text_of(record, None, path=name, line=line)
        entry = {}
        solution = _optional_text(record, "solution", name, line)
        if solution:
            entry["solution"] = solution
        answer = _answer_of(record, name, line)
        if answer is not None:
            entry["answer"] = answer
        out.setdefault(normalize(text), entry)
    return out


def _optional_text(record: dict, field: str, path: str, line: int) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", path=path, line=line, field=field)
    return value if value.strip() else None


def _answer_of(record: dict, path: str, line: int) -> str | None:
    value = record.get("answer")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"expected text or a number, got {type(value).__name__}", path=path, line=line,
                         field="answer")
    text = str(value).strip()
    if not text:
        raise InputError("empty answer", path=path, line=line, field="answer")
    return text


def boxed_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the content of the last complete \\boxed{...} in `text`, or None (the product's own
    extraction, planner.grading, finds the boxes)."""
    spans = boxed_spans(text)
    if not spans:
        return None
    _, end, content = spans[-1]
    return end - 1 - len(content), end - 1


def last_boxed(text: str) -> str | None:
    spans = boxed_spans(text)
    return spans[-1][2].strip() or None if spans else None


def _original_offset(prompt: str, flat_end: int) -> int:
    """Map the end of a match in the whitespace-collapsed prompt (its last character is not whitespace)
    back to the original prompt: add the characters removed from every whitespace run before it."""
    removed = 0
    for match in _SPACE.finditer(prompt):
        if match.start() - removed >= flat_end - 1:
            break
        removed += match.end() - match.start() - 1
    return flat_end + removed
