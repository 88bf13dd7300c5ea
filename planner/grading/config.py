"""How answers are compared: one home for the grading settings of runs, votes and `tts-planner grade`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import InputError


@dataclass(frozen=True)
class GradingConfig:
    """timeout: seconds for one math-verify comparison; time_limit: seconds for all comparisons of one grouping
    or vote (the rest keep exact-form groups); workers: math-verify processes."""

    timeout: float = 5.0
    time_limit: float = 10.0
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("timeout", "time_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise InputError(f"must be a positive number of seconds, got {value!r}", field=name)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InputError(f"must be a positive integer, got {self.workers!r}", field="workers")
