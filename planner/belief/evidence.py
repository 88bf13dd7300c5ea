"""How much a score says about its sample: likelihood ratios of "right" against "wrong" for the adaptive belief.

RewardEvidence.qwen_orm() is fitted to Qwen2.5-Math-RM-72B's scores in shared/data/replay/math_cot_100.jsonl
(AUROC 0.968), reproduced by benchmarks/adaptive_priors.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from planner.errors import InputError

# One sample's score moves the odds that its answer is right by at most e**LOG_RATIO_CLIP (20x): a reward
# model on the serving distribution may discriminate less well than where its evidence was fit.
LOG_RATIO_CLIP = 3.0
_NORMAL = NormalDist()


def _logit(score: float) -> float:
    s = min(max(float(score), 1e-9), 1.0 - 1e-9)
    return math.log(s / (1.0 - s))


@dataclass(frozen=True)
class RewardEvidence:
    """How much a reward score says about its sample: an equal-variance binormal model of x (the score, or its
    logit for scorers that answer probabilities), wrong ~ N(wrong_mean, scale), right ~ N(wrong_mean +
    separation * scale, scale). The log likelihood ratio is then linear in x, so a higher score always counts
    for the answer, and separation = sqrt(2) * probit(AUROC)."""

    wrong_mean: float
    scale: float
    separation: float
    logit: bool = True
    clip: float = LOG_RATIO_CLIP

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise InputError(f"must be a positive number, got {self.scale!r}", field="scale")
        if not (self.separation >= 0 and math.isfinite(self.separation)):
            raise InputError(f"must be a non-negative number, got {self.separation!r}", field="separation")
        if not self.clip > 0:
            raise InputError(f"must be > 0, got {self.clip!r}", field="clip")

    @property
    def auroc(self) -> float:
        return _NORMAL.cdf(self.separation / math.sqrt(2.0))

    def log_ratio(self, score: float | None) -> float:
        """log f1(x) / f0(x), clipped to +-clip; 0 for a missing score."""
        if score is None or not math.isfinite(score):
            return 0.0
        x = _logit(score) if self.logit else float(score)
        z = (x - self.wrong_mean) / self.scale
        value = self.separation * z - self.separation ** 2 / 2.0
        return max(-self.clip, min(self.clip, value))

    @classmethod
    def from_auroc(cls, auroc: float, wrong_mean: float = 0.0, scale: float = 1.0, **options) -> RewardEvidence:
        if not 0.5 <= auroc < 1.0:
            raise InputError(f"must be in [0.5, 1), got {auroc!r}", field="auroc")
        return cls(wrong_mean, scale, math.sqrt(2.0) * _NORMAL.inv_cdf(auroc), **options)

    @classmethod
    def fit(cls, scores: Sequence[float], correct: Sequence[bool], *, logit: bool = True,
            clip: float = LOG_RATIO_CLIP) -> RewardEvidence:
        """From labelled scores (e.g. outcome records): the wrong class's mean, the pooled standard deviation,
        and the separation of the rank AUROC (robust to the classes' tails)."""
        x = np.array([_logit(s) if logit else float(s) for s in scores])
        y = np.asarray(correct, dtype=bool)
        if x.size != y.size:
            raise InputError(f"{x.size} scores but {y.size} labels", field="correct")
        if y.sum() < 2 or (~y).sum() < 2:
            raise InputError("need at least two right and two wrong samples", field="correct")
        pooled = math.sqrt((((x[y] - x[y].mean()) ** 2).sum() + ((x[~y] - x[~y].mean()) ** 2).sum()) / (x.size - 2))
        ranks = _ranks(x)
        auroc = (ranks[y].sum() - y.sum() * (y.sum() + 1) / 2.0) / (y.sum() * (~y).sum())
        auroc = min(max(auroc, 0.5), 1.0 - 1e-6)
        return cls.from_auroc(auroc, float(x[~y].mean()), max(pooled, 1e-6), logit=logit, clip=clip)

    @classmethod
    def qwen_orm(cls) -> RewardEvidence:
        """Qwen2.5-Math-RM-72B raw scores (the OutcomeRewardScorer's sigmoid undone) in
        shared/data/replay/math_cot_100.jsonl: 728 right, 72 wrong samples, AUROC 0.968."""
        return cls(wrong_mean=-0.8226, scale=1.3239, separation=2.6242)


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


@dataclass(frozen=True)
class ConfidenceEvidence:
    """The traces' own confidence (planner.confidence) as evidence about their answers, when no reward model
    scores them. Confidence levels differ between problems (DeepConf sets its thresholds per problem), so the
    evidence is relative: a trace's score standardised among the problem's traces, z, moves the odds that its
    answer is right by exp(separation * z), clipped; `separation` = sqrt(2) * probit(AUROC within a problem).
    The default AUROC, 0.7, is an assumption (below the stand-in server's 0.8 default), not a measurement."""

    separation: float
    clip: float = LOG_RATIO_CLIP

    @classmethod
    def from_auroc(cls, auroc: float = 0.7, clip: float = LOG_RATIO_CLIP) -> ConfidenceEvidence:
        if not 0.5 <= auroc < 1.0:
            raise InputError(f"must be in [0.5, 1), got {auroc!r}", field="confidence_auroc")
        return cls(math.sqrt(2.0) * _NORMAL.inv_cdf(auroc), clip)

    def log_ratios(self, scores: Sequence[float | None]) -> list[float]:
        """One log likelihood ratio per trace (0 for a trace without a score, or while fewer than two traces
        have one)."""
        known = [s for s in scores if s is not None and math.isfinite(s)]
        if len(known) < 2:
            return [0.0] * len(scores)
        mean = sum(known) / len(known)
        spread = math.sqrt(sum((s - mean) ** 2 for s in known) / (len(known) - 1))
        if spread <= 0:
            return [0.0] * len(scores)
        return [0.0 if s is None or not math.isfinite(s) else
                max(-self.clip, min(self.clip, self.separation * (s - mean) / spread)) for s in scores]
