"""JSONL in and out: every bad line is reported with its file and line, or skipped and counted on request."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from planner.errors import InputError
from planner.files import atomic_path

TEXT_FIELDS = ("problem", "question")
DEFAULT_MAX_CHARS = 50_000
MAX_DEPTH = 100  # nesting a record may have: every record is written back (and walked) as it came


@dataclass
class SkipLog:
    """Lines left out under --skip-bad, kept so the caller can report every one of them."""

    errors: list[InputError] = field(default_factory=list)

    def add(self, error: InputError) -> None:
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.errors)

    def summary(self, limit: int = 5) -> str:
        lines = [f"skipped {len(self.errors)} bad line(s):"]
        lines += [f"  {e}" for e in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more")
        return "\n".join(lines)


def read_jsonl(path: str | os.PathLike, *, skip: SkipLog | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) for each non-blank line; raise InputError or log it in `skip`."""
    name = str(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=name) from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, _parse_line(raw, name, number)
            except InputError as exc:
                if skip is None:
                    raise
                skip.add(exc)


def _parse_line(raw: bytes, path: str, number: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start} of the line)", path=path, line=number) from exc
    try:
        record = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", path=path, line=number) from exc
    except ValueError as exc:
        raise InputError(str(exc), path=path, line=number) from exc
    except RecursionError:
        raise InputError(f"JSON nested more than {MAX_DEPTH} levels deep", path=path, line=number) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(record) > MAX_DEPTH:
        raise InputError(f"JSON nested more than {MAX_DEPTH} levels deep", path=path, line=number)
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", path=path, line=number)
    return record


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a decoded JSON value (iterative: any depth)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack += [(child, level + 1) for child in item]
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def text_of(record: dict, field_name: str | None, *, path: str, line: int,
            max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The problem text of a record: `field_name` if given, else the first of TEXT_FIELDS present."""
    candidates = (field_name,) if field_name else TEXT_FIELDS
    name = next((c for c in candidates if c in record), None)
    if name is None:
        wanted = " or ".join(f"'{c}'" for c in candidates)
        raise InputError(f"missing; the record needs a {wanted} text field", path=path, line=line,
                         field=candidates[0])
    value = record[name]
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", path=path, line=line, field=name)
    if not value.strip():
        raise InputError("empty text", path=path, line=line, field=name)
    if len(value) > max_chars:
        raise InputError(f"text has {len(value):,} characters, over the limit of {max_chars:,} "
                         "(raise it with --max-chars)", path=path, line=line, field=name)
    return value


def number_of(record: dict, field_name: str, *, path: str, line: int, low: float = -math.inf,
              high: float = math.inf) -> float:
    """A finite number from a record, within [low, high]."""
    if field_name not in record:
        raise InputError("missing", path=path, line=line, field=field_name)
    value = record[field_name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"expected a number, got {json.dumps(value)[:40]}", path=path, line=line,
                         field=field_name)
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{value} is outside [{low}, {high}]", path=path, line=line, field=field_name)
    return float(value)


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def write_jsonl(records: Iterable[dict], output: str | os.PathLike | None) -> int:
    """Write records to `output` atomically (temp file then rename), or to stdout when it is None."""
    if output is None:
        return _write_lines(records, sys.stdout)
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        return _write_lines(records, handle)


def _write_lines(records: Iterable[dict], handle: IO[str]) -> int:
    count = 0
    for record in records:
        handle.write(dumps(record))
        handle.write("\n")
        count += 1
    return count


def read_problems(path: str | os.PathLike, field_name: str | None = None, *, skip: SkipLog | None = None,
                  max_chars: int = DEFAULT_MAX_CHARS) -> tuple[list[dict], list[str]]:
    """Records and their problem texts; a line without usable text raises, or is logged in `skip`."""
    records, texts = [], []
    for line, record in read_jsonl(path, skip=skip):
        try:
            texts.append(text_of(record, field_name, path=str(path), line=line, max_chars=max_chars))
        except InputError as exc:
            if skip is None:
                raise
            skip.add(exc)
            continue
        records.append(record)
    return records, texts
