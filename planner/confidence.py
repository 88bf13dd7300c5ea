"""A trace's own confidence, from the top-k logprobs the server returns with each generated token, as DeepConf
defines it (Fu et al., "Deep Think with Confidence", arXiv 2508.15260):

- token confidence C_i = -(1/k) * sum of the k top logprobs at position i (high when the model was sure);
- group confidence = the mean of C_i over a sliding window of the last `window` tokens (DeepConf: 2048);
- a trace's score = its lowest group confidence (its mean confidence while it is shorter than the window).

Online filtering stops a trace as soon as its current group confidence falls below a threshold set on a few
warm-up traces of the same problem (a percentile of their scores: confidence levels differ between problems,
so thresholds are per problem), and votes weighted by confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

DEFAULT_WINDOW = 2048
DEFAULT_TOP_K = 20


def token_confidence(top: Sequence) -> float | None:
    """C_i of one position from SGLang's top-logprob entries ([logprob, token id, text], best first)."""
    logprobs = [entry[0] for entry in top if entry and entry[0] is not None]
    if not logprobs:
        return None
    return -sum(logprobs) / len(logprobs)


class TraceConfidence:
    """Sliding-window confidence of one trace, updated as its tokens arrive (constant work per token)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window = window
        self.values: list[float] = []
        self.total = 0.0
        self.window_sum = 0.0
        self.lowest = math.inf

    def add(self, confidences: Iterable[float]) -> None:
        window, values = self.window, self.values
        for value in confidences:
            values.append(value)
            self.total += value
            self.window_sum += value
            if len(values) > window:
                self.window_sum -= values[-window - 1]
            if len(values) >= window:
                mean = self.window_sum / window
                if mean < self.lowest:
                    self.lowest = mean

    @property
    def tokens(self) -> int:
        return len(self.values)

    @property
    def full(self) -> bool:
        """Whether a whole window has been seen (before that, no group confidence exists)."""
        return len(self.values) >= self.window

    @property
    def current(self) -> float | None:
        """The latest group confidence (None before a whole window)."""
        return self.window_sum / self.window if self.full else None

    def fell_below(self, threshold: float) -> bool:
        """Whether some whole window so far had a mean under `threshold`: DeepConf's online stop, which checks
        every token, read at whatever granularity the tokens arrive."""
        return self.full and self.lowest < threshold

    @property
    def score(self) -> float | None:
        """The trace's lowest group confidence, or its mean confidence while shorter than the window."""
        if not self.values:
            return None
        return self.lowest if self.full else self.total / len(self.values)


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile of `values` (linear interpolation between order statistics)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = share * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def stop_threshold(warmup_scores: Sequence[float], keep: float) -> float:
    """DeepConf's online threshold: the score above which the most confident `keep` share of the warm-up
    traces lie (keep 0.9: DeepConf-high, the 10th percentile; keep 0.1: DeepConf-low, the 90th)."""
    return percentile(warmup_scores, 1.0 - keep)


def kept(scores: Sequence[float | None], keep: float) -> list[int]:
    """Offline filtering: the indexes of the scored traces at or above the threshold that keeps the most
    confident `keep` share (stop_threshold, as DeepConf's percentile filter: 7 of 8 traces at 0.9), in order."""
    scored = [s for s in scores if s is not None]
    if not scored:
        return []
    threshold = stop_threshold(scored, keep)
    return [i for i, s in enumerate(scores) if s is not None and s >= threshold]
