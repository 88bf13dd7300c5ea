"""What a few samples say about one problem: the difficulty predictor's pass@1 as a Beta prior, updated with
which sampled answers agree and how the reward model scored them.

Model. p ~ Beta(s p0, s (1 - p0)), p0 the predictor's pass@1 and s the prior strength in pseudo-samples.
Each of k samples is right with probability p, independently. Right samples give the one correct answer;
wrong ones give wrong answers that cluster like a Chinese restaurant process with concentration alpha (small
alpha: wrong answers pile up on one value; large: they rarely agree). A sample's reward score has density
f1 if it is right and f0 if wrong (RewardEvidence). The answer groups G_1..G_r are seen; which one (if any)
is correct is not. With p integrated out, hypothesis H_j ("G_j is the correct answer", n_j samples) has
likelihood, up to factors every hypothesis shares,

    B(a + n_j, b + k - n_j) / B(a, b)  x  CRP(the other groups)  x  prod over G_j of f1(x) / f0(x)

and H_0 ("none of them") the same with n_0 = 0 and every group wrong. Normalised, these are the
probabilities that each answer is correct; the posterior of p is the mixture of Beta(a + n_j, b + k - n_j)
with those weights. Samples without an answer are wrong under every hypothesis. Exact, no sampling: a
few gammaln calls per group.

Defaults, reproduced by benchmarks/adaptive_priors.py from shared/data:
- PRIOR_STRENGTH 0.71: the Beta-binomial maximum-likelihood strength of the shipped predictor's pass@1 against
  the 50-sample outcomes of Qwen2.5-Math-1.5B-Instruct on the 4,500 MATH test problems outside MATH-500 (the
  text-only prediction is worth less than one sample, so a probe's first answers outweigh it quickly).
- WRONG_ANSWER_CONCENTRATION 1.57: the maximum-likelihood CRP concentration of the wrong answers in
  replay/math_cot_100.jsonl (two wrong answers agree with probability 1 / (1 + alpha) = 0.39).
Reward scores enter as per-sample likelihood ratios (planner.belief.evidence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import betainc, betaln

from planner.difficulty import HARD_MAX, difficulty_bin
from planner.errors import InputError
from planner.records import PosteriorSummary

PRIOR_STRENGTH = 0.71
WRONG_ANSWER_CONCENTRATION = 1.57
# The predictor's pass@1 is kept inside [P_MIN, 1 - P_MIN] so both Beta parameters stay positive.
P_MIN = 1e-3
_GRID = np.linspace(0.0, 1.0, 401)


@dataclass(frozen=True)
class BetaPrior:
    """The predictor's pass@1 as Beta(strength * mean, strength * (1 - mean))."""

    mean: float
    strength: float = PRIOR_STRENGTH

    def __post_init__(self) -> None:
        if not (isinstance(self.mean, (int, float)) and 0.0 <= self.mean <= 1.0):
            raise InputError(f"must be in [0, 1], got {self.mean!r}", field="pass_at_1")
        if not (self.strength > 0 and math.isfinite(self.strength)):
            raise InputError(f"must be a positive number, got {self.strength!r}", field="prior_strength")

    @property
    def a(self) -> float:
        return self.strength * min(max(self.mean, P_MIN), 1.0 - P_MIN)

    @property
    def b(self) -> float:
        return self.strength - self.a


def fit_prior_strength(predicted: Sequence[float], successes: Sequence[float], trials: Sequence[float] | float,
                       bounds: tuple[float, float] = (1e-2, 1e3)) -> float:
    """The s maximising the Beta-binomial likelihood of measured k-of-n outcomes under Beta(s p0, s (1 - p0)):
    how many samples the predictor's guess is worth."""
    p = np.clip(np.asarray(predicted, dtype=float), P_MIN, 1.0 - P_MIN)
    k = np.asarray(successes, dtype=float)
    n = np.broadcast_to(np.asarray(trials, dtype=float), k.shape)
    if p.shape != k.shape or p.size == 0:
        raise InputError(f"expected one outcome per prediction, got {k.size} for {p.size}", field="successes")
    if np.any((k < 0) | (k > n)):
        raise InputError("successes must lie in [0, trials]", field="successes")

    def loss(log_s: float) -> float:
        a, b = math.exp(log_s) * p, math.exp(log_s) * (1.0 - p)
        return -float(np.sum(betaln(a + k, b + n - k) - betaln(a, b)))

    found = minimize_scalar(loss, bounds=tuple(math.log(v) for v in bounds), method="bounded",
                            options={"xatol": 1e-4})
    return float(math.exp(found.x))


def crp_log_probability(sizes: Sequence[int], alpha: float) -> float:
    """log probability that m wrong answers fall into groups of these sizes (in order of first appearance)."""
    sizes = [int(n) for n in sizes if n > 0]
    m = sum(sizes)
    if m == 0:
        return 0.0
    return (len(sizes) * math.log(alpha) + math.lgamma(alpha) - math.lgamma(alpha + m)
            + sum(math.lgamma(n) for n in sizes))


@dataclass(frozen=True)
class Posterior:
    """Belief after `samples` samples: P(each answer group is correct), P(none is), and pass@1's mixture."""

    prior: BetaPrior
    samples: int
    sizes: tuple[int, ...]  # samples per answer group
    weights: tuple[float, ...]  # P(group j is correct) for each group, then P(no group is correct)

    @property
    def none_probability(self) -> float:
        return self.weights[-1]

    def probability(self, group: int) -> float:
        """P(the answer of group `group` is correct)."""
        return self.weights[group]

    def _components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = np.array(list(self.sizes) + [0], dtype=float)
        return self.prior.a + n, self.prior.b + self.samples - n, np.array(self.weights)

    @property
    def mean(self) -> float:
        """Posterior mean pass@1."""
        a, b, w = self._components()
        return float(np.sum(w * a / (a + b)))

    def cdf(self, x: float) -> float:
        """P(pass@1 <= x)."""
        a, b, w = self._components()
        return float(np.sum(w * betainc(a, b, x)))

    @property
    def difficulty(self) -> str:
        return difficulty_bin(self.mean)

    @property
    def hard_probability(self) -> float:
        return self.cdf(HARD_MAX)

    def expect(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """E[fn(p)] under the posterior, by the mixture's mass on 400 equal bins of p. `fn` maps an array of p
        to an array whose first axis is p (e.g. accuracy of several options)."""
        a, b, w = self._components()
        cdf = betainc(a[:, None], b[:, None], _GRID[None, :])
        mass = w @ np.diff(cdf, axis=1)
        mids = (_GRID[:-1] + _GRID[1:]) / 2.0
        return np.tensordot(mass, fn(mids), axes=(0, 0))

    def summary(self) -> PosteriorSummary:
        """What a result line records of the belief."""
        return PosteriorSummary(self.samples, round(self.mean, 4), self.difficulty, round(self.hard_probability, 4),
                                tuple(round(w, 4) for w in self.weights[:-1]), round(self.none_probability, 4))


def update(prior: BetaPrior, sizes: Sequence[int], log_ratios: Sequence[float] | None = None, unanswered: int = 0,
           alpha: float = WRONG_ANSWER_CONCENTRATION) -> Posterior:
    """The posterior after answer groups of `sizes` samples (each group's summed reward log likelihood ratio in
    `log_ratios`, zeros without a reward model) and `unanswered` samples that gave no answer."""
    sizes = [int(n) for n in sizes]
    if any(n < 1 for n in sizes) or unanswered < 0:
        raise InputError("group sizes must be positive and unanswered non-negative", field="sizes")
    if not alpha > 0:
        raise InputError(f"must be > 0, got {alpha!r}", field="alpha")
    ratios = [0.0] * len(sizes) if log_ratios is None else [float(r) for r in log_ratios]
    if len(ratios) != len(sizes):
        raise InputError(f"{len(ratios)} log ratios for {len(sizes)} groups", field="log_ratios")
    k = sum(sizes) + unanswered
    a, b = prior.a, prior.b
    base = betaln(a, b)
    logs = []
    for j, n in enumerate(sizes):
        others = sizes[:j] + sizes[j + 1:]
        logs.append(betaln(a + n, b + k - n) - base + crp_log_probability(others, alpha) + ratios[j])
    logs.append(betaln(a, b + k) - base + crp_log_probability(sizes, alpha))
    logs = np.array(logs)
    weights = np.exp(logs - logs.max())
    weights /= weights.sum()
    return Posterior(prior, k, tuple(sizes), tuple(float(w) for w in weights))
