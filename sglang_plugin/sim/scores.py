"""Simulated reward models and policy confidence, all deterministic functions of (seed, text).

Reward noise is binormal: a label-free standard normal draw keyed by the text, shifted by d' for correct
prefixes, with d' = sqrt(2) * Phi^-1(AUROC) so that correct prefixes outrank wrong ones with exactly the
configured probability. The outcome RM maps it to a raw scalar on the scale of Qwen2.5-Math-RM-72B's scores
in data/replay (wrong around -0.8, correct higher); the step-tag PRM maps it to P("+") through a sigmoid.
Policy token confidence is a logistic draw around a mean that is lower on wrong steps by `confidence_gap`.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

_NORMAL = NormalDist()
ORM_OFFSET = -0.8
ORM_SCALE = 1.5
PRM_BIAS = -0.6
PRM_MASS = 0.98
CONFIDENCE_MEAN = 3.0
CONFIDENCE_SPREAD = 1.2
NEUTRAL_CONFIDENCE = 1.5


def d_prime(auroc: float) -> float:
    if not 0.0 < auroc < 1.0:
        raise ValueError(f"reward AUROC must be strictly between 0 and 1, got {auroc}")
    return math.sqrt(2.0) * _NORMAL.inv_cdf(auroc)


def unit(*parts: object) -> float:
    """A uniform number in (0, 1) that depends only on `parts`."""
    return units(*parts, count=1)[0]


def units(*parts: object, count: int) -> list[float]:
    """`count` (at most 8) independent uniform numbers in (0, 1) from one hash of `parts`."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8 * count).digest()
    return [((int.from_bytes(digest[i:i + 8], "big") >> 11) + 0.5) / (1 << 53) for i in range(0, 8 * count, 8)]


def normal(*parts: object) -> float:
    return _NORMAL.inv_cdf(unit(*parts))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class ScoreModel:
    """Reward scores and token confidences for one simulated deployment (seed and discrimination)."""

    def __init__(self, seed: int = 0, *, reward_auroc: float = 0.9, confidence_gap: float = 0.3) -> None:
        self.seed = seed
        self.reward_auroc = reward_auroc
        self.d = d_prime(reward_auroc)
        self.confidence_gap = confidence_gap

    def orm_score(self, text: str, correct: bool) -> float:
        """Outcome RM raw score of a (partial) solution."""
        z = normal(self.seed, "orm", text) + (self.d if correct else 0.0)
        return ORM_OFFSET + ORM_SCALE * z

    def prm_plus(self, prefix_digest: str, correct: bool) -> float:
        """P("+") at a step tag, given a digest of the text up to and including the tag."""
        z = normal(self.seed, "prm", prefix_digest) + (self.d if correct else 0.0)
        return sigmoid(z + PRM_BIAS)

    def token_probability(self, key: str, correct: bool | None) -> tuple[float, float, float]:
        """Probability the policy gave to one token (high and noisy on correct steps, `confidence_gap`
        lower in logits on wrong ones, a flatter neutral level on text that is not a step), and two more
        uniform draws tied to the same token for the rest of its distribution."""
        if correct is None:
            mean = NEUTRAL_CONFIDENCE
        else:
            mean = CONFIDENCE_MEAN - (0.0 if correct else self.confidence_gap)
        u, extra, spare = units(self.seed, "tok", key, count=3)
        return sigmoid(mean + CONFIDENCE_SPREAD * math.log(u / (1.0 - u))), extra, spare
