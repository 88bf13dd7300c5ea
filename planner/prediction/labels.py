"""Training labels from JSONL, in the three shapes outcomes arrive in.

- a success-rate field in [0, 1], one line per problem;
- k-of-n counts: the label field holds k, `total_field` holds n;
- per-sample outcome records (what `tts-planner run` writes): one line per sampled solution whose label
  field is true/false or 0/1.

All three reduce to one pass@1 per problem with a weight equal to the number of samples behind it, so
a problem seen 50 times counts more than a problem seen twice. Lines of the same problem (same
`group_field` value, else same text) are pooled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from planner.errors import InputError
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog, number_of, read_jsonl, text_of


@dataclass
class LabeledProblems:
    """One row per distinct problem: its text, pass@1 label, sample weight, and the first record seen."""

    texts: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    records: list[dict] = field(default_factory=list)
    lines_read: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def load_labels(path: str | os.PathLike, label_field: str, *, text_field: str | None = None,
                total_field: str | None = None, group_field: str | None = "problem_id",
                skip: SkipLog | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> LabeledProblems:
    """Read `path` and pool its lines into labeled problems; bad lines raise or land in `skip`."""
    name = str(path)
    successes: dict[object, float] = {}
    samples: dict[object, float] = {}
    first: dict[object, tuple[str, dict]] = {}
    lines = 0
    for line, record in read_jsonl(path, skip=skip):
        lines += 1
        try:
            text = text_of(record, text_field, path=name, line=line, max_chars=max_chars)
            value, count = _label_of(record, label_field, total_field, name, line)
        except InputError as exc:
            if skip is None:
                raise
            skip.add(exc)
            continue
        key = record.get(group_field, text) if group_field else text
        key = key if isinstance(key, (str, int)) else text
        successes[key] = successes.get(key, 0.0) + value * count
        samples[key] = samples.get(key, 0.0) + count
        first.setdefault(key, (text, record))
    if not first:
        raise InputError(f"no usable labeled lines (field '{label_field}')", path=name)
    keys = list(first)
    weights = np.array([samples[k] for k in keys])
    return LabeledProblems(
        texts=[first[k][0] for k in keys],
        labels=np.array([successes[k] for k in keys]) / weights,
        weights=weights,
        records=[first[k][1] for k in keys],
        lines_read=lines,
    )


def _label_of(record: dict, label_field: str, total_field: str | None, path: str,
              line: int) -> tuple[float, float]:
    """(pass rate, number of samples behind it) of one line."""
    if total_field is not None:
        total = number_of(record, total_field, path=path, line=line, low=1)
        correct = number_of(record, label_field, path=path, line=line, low=0, high=total)
        return correct / total, total
    value = record.get(label_field)
    if isinstance(value, bool):
        return float(value), 1.0
    return number_of(record, label_field, path=path, line=line, low=0.0, high=1.0), 1.0
