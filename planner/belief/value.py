"""What more compute is expected to buy on one problem, read from its actual vote state.

Answering with the most probable answer group j* is right with probability P(j*), the posterior's weight of
that group (planner.belief.posterior). After more evidence (k more samples, or scores of the samples drawn)
the answer becomes the new most probable group, right with probability max_j P'(j). The posterior is a
martingale, E[P'(j*)] = P(j*), so the expected accuracy gain of the evidence is

    gain = E[max_j P'(j) - P'(j*)]

the expected amount by which the evidence moves the choice to a better answer: zero when it cannot change the
choice (a single answer group stays the choice whatever comes), large on a split vote. It is computed from the
state itself (which answers agree, how often, how they were scored), not from curves averaged over pass@1, and
estimated in this difference form because the difference is zero in most simulated futures, so its Monte
Carlo error is far smaller than that of E[max P'] alone.

Simulation follows the belief's own generative model: draw the true hypothesis from the posterior weights,
pass@1 from its Beta, then each new sample is right with probability p (the correct group grows; under "none is
correct" a new group appears) or wrong, joining a wrong group by the Chinese restaurant process (a new group
with weight alpha). Evidence, when the samples are scored (or carry their own confidence), is a log likelihood
ratio drawn from the evidence's binormal model. Each simulated state's posterior is computed exactly,
vectorised over simulations. Future samples are assumed to give an answer. A fixed seed makes every decision
reproducible, and the same draws serve every horizon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammaln

from planner.belief.posterior import BetaPrior

SIMULATIONS = 2048
SEED = 20240610


class SimulatedEvidence:
    """Log likelihood ratios of right and wrong samples under an equal-variance binormal model with this
    separation (in standard deviations), clipped like the belief clips them."""

    def __init__(self, separation: float, clip: float) -> None:
        self.separation, self.clip = float(separation), float(clip)

    def draw(self, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(right.shape) + self.separation * right
        return np.clip(self.separation * z - self.separation ** 2 / 2.0, -self.clip, self.clip)


@dataclass(frozen=True)
class VoteState:
    """One problem's evidence so far: samples per answer group, each group's summed log likelihood ratio, the
    samples without an answer, and per group the samples still unscored."""

    prior: BetaPrior
    alpha: float
    sizes: tuple[int, ...]
    ratios: tuple[float, ...]
    unanswered: int = 0
    unscored: tuple[int, ...] = ()

    @property
    def samples(self) -> int:
        return sum(self.sizes) + self.unanswered

    def weights(self) -> np.ndarray:
        """Posterior weights of each group, then of "none is correct" (as planner.belief.posterior.update)."""
        n = np.array([self.sizes], dtype=float).reshape(1, -1)
        r = np.array([self.ratios], dtype=float).reshape(1, -1)
        return _weights(self.prior.a, self.prior.b, self.alpha, n, r, np.array([float(self.samples)]))[0]

    def choice(self) -> int | None:
        """The group answered with now: the most probable (the earliest on a tie), None without answers."""
        if not self.sizes:
            return None
        w = self.weights()[:-1]
        return int(np.flatnonzero(w >= w.max() - 1e-12)[0])

    def accuracy(self) -> float:
        """P(the chosen answer is right)."""
        return float(self.weights()[:-1].max()) if self.sizes else 0.0


def _weights(a: float, b: float, alpha: float, n: np.ndarray, r: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Posterior weights for many states at once: n and r are (states, groups) sizes and log ratios (size 0 is
    an absent group), k the samples per state; returns (states, groups + 1), "none is correct" last."""
    present = n > 0
    safe = np.where(present, n, 1.0)
    groups = present.sum(axis=1)
    answered = n.sum(axis=1)
    shared = np.where(present, gammaln(safe), 0.0).sum(axis=1) + gammaln(alpha)
    log_alpha = math.log(alpha)
    each = (betaln(a + n, b + k[:, None] - n) + (groups[:, None] - 1) * log_alpha
            - gammaln(alpha + answered[:, None] - n) + shared[:, None] - gammaln(safe) + r)
    each = np.where(present, each, -np.inf)
    none = betaln(a, b + k) + groups * log_alpha - gammaln(alpha + answered) + shared
    logs = np.concatenate([each, none[:, None]], axis=1)
    logs -= logs.max(axis=1, keepdims=True)
    out = np.exp(logs)
    return out / out.sum(axis=1, keepdims=True)


def _gain(a: float, b: float, alpha: float, n: np.ndarray, r: np.ndarray, k: np.ndarray,
          choice: int | None) -> float:
    """Mean over simulated states of max_j P'(j) - P'(choice)."""
    w = _weights(a, b, alpha, n, r, k)[:, :-1]
    best = w.max(axis=1)
    return float(np.mean(best - (w[:, choice] if choice is not None else 0.0)))


def _draw_truth(state: VoteState, rng: np.random.Generator, sims: int) -> tuple[np.ndarray, np.ndarray]:
    """(the true group's column per simulation: an existing group, or column len(sizes) for an unseen answer;
    pass@1 per simulation from that hypothesis' Beta)."""
    w = state.weights()
    groups = len(state.sizes)
    h = rng.choice(groups + 1, size=sims, p=w / w.sum())
    own = np.append(np.array(state.sizes, dtype=float), 0.0)[h]
    p = rng.beta(state.prior.a + own, state.prior.b + state.samples - own)
    return h, p


def sampling_gains(state: VoteState, horizons: Sequence[int], evidence: SimulatedEvidence | None = None,
                   sims: int = SIMULATIONS, seed: int = SEED) -> np.ndarray:
    """Expected accuracy gain of drawing each horizon's number of further samples (each carrying `evidence`, or
    none), one value per horizon."""
    horizons = sorted(int(m) for m in horizons)
    if not horizons or horizons[0] < 1:
        raise ValueError("horizons must be positive sample counts")
    rng = np.random.default_rng(seed)
    groups, longest = len(state.sizes), horizons[-1]
    truth, p = _draw_truth(state, rng, sims)
    columns = groups + 1 + longest  # existing groups, the unseen correct answer, new wrong answers
    n = np.zeros((sims, columns))
    r = np.zeros((sims, columns))
    n[:, :groups] = state.sizes
    r[:, :groups] = state.ratios
    rows = np.arange(sims)
    fresh = np.zeros(sims, dtype=int)
    choice = state.choice()
    gains, wanted = [], set(horizons)
    for step in range(1, longest + 1):
        right = rng.random(sims) < p
        wrong = n.copy()
        wrong[rows, truth] = 0.0
        mass = wrong.sum(axis=1)
        u = rng.random(sims) * (mass + state.alpha)
        new = u >= mass
        joined = (np.cumsum(wrong, axis=1) < u[:, None]).sum(axis=1)
        column = np.where(right, truth, np.where(new, groups + 1 + fresh, joined))
        n[rows, column] += 1.0
        fresh += ~right & new
        if evidence is not None:
            r[rows, column] += evidence.draw(right, rng)
        if step in wanted:
            k = np.full(sims, float(state.samples + step))
            gains.append(_gain(state.prior.a, state.prior.b, state.alpha, n, r, k, choice))
    return np.array(gains)


def scoring_gain(state: VoteState, scored: Sequence[int], evidence: SimulatedEvidence, sims: int = SIMULATIONS,
                 seed: int = SEED) -> float:
    """Expected accuracy gain of scoring `scored[j]` of group j's unscored samples."""
    rng = np.random.default_rng(seed)
    groups = len(state.sizes)
    truth, _ = _draw_truth(state, rng, sims)
    r = np.tile(np.array(state.ratios, dtype=float), (sims, 1))
    for j, count in enumerate(scored):
        if count:
            right = np.repeat((truth == j)[:, None], count, axis=1)
            r[:, j] += evidence.draw(right, rng).sum(axis=1)
    n = np.tile(np.array(state.sizes, dtype=float), (sims, 1))
    k = np.full(sims, float(state.samples))
    return _gain(state.prior.a, state.prior.b, state.alpha, n, r, k, state.choice()) if groups else 0.0
