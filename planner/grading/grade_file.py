"""`tts-planner grade`: each JSONL record plus `correct`, so old result files can be re-graded.

The answer field may hold a whole model response (its final answer is extracted) or a bare answer; null
means unanswered. The reference may be MATH-style (a solution with `\\boxed{}`), GSM8K-style (`#### n`),
bare, a number, or a list of answers (OlympiadBench's `final_answer`: all of them make the answer).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from planner.errors import InputError
from planner.grading.equivalence import Grader, shared_grader
from planner.grading.extract import extract_answer, reference_answer
from planner.jsonl import SkipLog, read_jsonl, write_jsonl


@dataclass
class GradeSummary:
    """What one grade_file run did, for its summary line."""

    path: str
    graded: int = 0
    correct: int = 0
    unanswered: int = 0  # records whose answer field is null, empty, or has no final answer
    skipped: list[InputError] = field(default_factory=list)  # bad lines left out under skip_bad
    timeouts: int = 0  # comparisons that overran their time limit (graded as incorrect)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.graded if self.graded else None


def grade_file(input_path: str | os.PathLike, reference_field: str, answer_field: str,
               output: str | os.PathLike | None = None, *, progress: bool = True, skip_bad: bool = False,
               grader: Grader | None = None) -> GradeSummary:
    """Write every record of `input_path` with `correct` (true/false) added to `output` (atomically; stdout
    when None). A bad line raises InputError naming file, line and field, or with `skip_bad` is left out
    and counted."""
    grader = grader or shared_grader()
    summary = GradeSummary(path=str(input_path))
    skip = SkipLog() if skip_bad else None
    start, timeouts_before = time.monotonic(), grader.timeouts

    def graded() -> Iterator[dict]:
        lines = tqdm(read_jsonl(input_path, skip=skip), desc="grading", unit=" records", disable=not progress,
                     file=sys.stderr)
        for line, record in lines:
            try:
                reference = _reference(record, reference_field, str(input_path), line)
                answer = _answer(record, answer_field, str(input_path), line)
            except InputError as exc:
                if skip is None:
                    raise
                skip.add(exc)
                continue
            summary.graded += 1
            summary.unanswered += answer is None
            record["correct"] = grader.correct(reference, answer)
            summary.correct += record["correct"]
            yield record

    write_jsonl(graded(), output)
    summary.skipped = skip.errors if skip is not None else []
    summary.timeouts = grader.timeouts - timeouts_before
    summary.seconds = time.monotonic() - start
    return summary


def _reference(record: dict, name: str, path: str, line: int) -> str:
    if name not in record:
        raise InputError("missing", path=path, line=line, field=name)
    value = record[name]
    values = value if isinstance(value, list) else [value]
    answers = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise InputError(f"expected a reference answer (text or number), got {type(item).__name__}",
                             path=path, line=line, field=name)
        answer = reference_answer(str(item))
        if answer:
            answers.append(answer)
    if not answers:
        raise InputError("empty reference", path=path, line=line, field=name)
    return ", ".join(answers)


def _answer(record: dict, name: str, path: str, line: int) -> str | None:
    if name not in record:
        raise InputError("missing (use null for an unanswered record)", path=path, line=line, field=name)
    value = record[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"expected a response or answer (text or number), got {type(value).__name__}",
                         path=path, line=line, field=name)
    return extract_answer(str(value)) if str(value).strip() else None


def format_grade_summary(summary: GradeSummary) -> str:
    """One line: graded, correct, accuracy, unanswered, skipped and timed-out, time."""
    accuracy = "n/a" if summary.accuracy is None else f"{summary.accuracy:.1%}"
    extras = [f"{summary.unanswered:,} unanswered"]
    if summary.skipped:
        extras.append(f"{len(summary.skipped):,} bad line(s) skipped")
    if summary.timeouts:
        extras.append(f"{summary.timeouts:,} comparison(s) timed out")
    return (f"{summary.path}: graded {summary.graded:,}, correct {summary.correct:,} ({accuracy}), "
            f"{', '.join(extras)}, {summary.seconds:.1f} s")
