"""The problems of a batch run: text, a stable id to resume by, and the reference answer when there is one.

Resuming skips problems by id, so ids must be unique: the first of `problem_id`, `id`, `unique_id`, `idx`
that a record has, else `line-N` (N its line in the input). A repeated id is bad input, reported with the
line of its first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from planner.errors import InputError
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog, read_jsonl, text_of

ID_FIELDS = ("problem_id", "id", "unique_id", "idx")


@dataclass(frozen=True)
class RunProblem:
    line: int
    problem_id: str
    text: str
    record: dict
    reference: str | None  # the reference answer, None when the record has none


def read_run_problems(path: str | os.PathLike, field: str | None = None, *, answer_field: str = "answer",
                      skip: SkipLog | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> list[RunProblem]:
    """Every usable problem of `path`; bad lines raise InputError naming file, line and field, or go to `skip`."""
    name = str(path)
    problems: list[RunProblem] = []
    first_line: dict[str, int] = {}
    for line, record in read_jsonl(path, skip=skip):
        try:
            text = text_of(record, field, path=name, line=line, max_chars=max_chars)
            problem_id = _id_of(record, name, line)
            if problem_id in first_line:
                raise InputError(f"repeats id '{problem_id}' of line {first_line[problem_id]}; resuming a run "
                                 "needs unique ids", path=name, line=line, field=_id_field(record))
            reference = _reference_of(record, answer_field, name, line, max_chars)
        except InputError as exc:
            if skip is None:
                raise
            skip.add(exc)
            continue
        first_line[problem_id] = line
        problems.append(RunProblem(line, problem_id, text, record, reference))
    if not problems:
        raise InputError("no usable problems in the file", path=name)
    return problems


def _id_field(record: dict) -> str | None:
    return next((name for name in ID_FIELDS if name in record), None)


def _id_of(record: dict, path: str, line: int) -> str:
    name = _id_field(record)
    if name is None:
        return f"line-{line}"
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"expected text or an integer, got {type(value).__name__}", path=path, line=line,
                         field=name)
    text = str(value)
    if not text.strip():
        raise InputError("empty id", path=path, line=line, field=name)
    return text


def _reference_of(record: dict, field: str, path: str, line: int, max_chars: int) -> str | None:
    if record.get(field) is None:
        return None
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"expected text or a number, got {type(value).__name__}", path=path, line=line,
                         field=field)
    text = str(value).strip()
    if not text:
        raise InputError("empty reference answer (leave the field out when there is none)", path=path, line=line,
                         field=field)
    if len(text) > max_chars:  # every judging call reads it
        raise InputError(f"reference has {len(text):,} characters, over the limit of {max_chars:,} (raise it with "
                         "--max-chars)", path=path, line=line, field=field)
    return text
