"""Accuracy curves: how a strategy's chance of being right grows with its size, for a problem of pass@1 p.

Curve model. For a problem whose pass@1 under the policy is p, strategy s run at size n (samples, beams or
particles) is expected to be right with probability

    A_s(p, n) = p + g_s(p) * (1 - p) * (1 - (1 - p) ** (eta_s(p) * (n - 1)))

- n = 1 gives p (one chain of thought); g = 1, eta = 1 gives pass@n = 1 - (1 - p) ** n, the accuracy of
  best-of-N under a perfect verifier. Every curve is therefore measured against that ceiling.
- g in [0, 1] is the share of the headroom 1 - p the strategy recovers as n grows (an imperfect reward
  model picks a wrong candidate some of the time; majority voting only converges to the right answer when it
  is the plurality). eta > 0 is the sample efficiency: search that prunes bad partial solutions early is
  worth more than eta = 1 independent samples per unit of size.
- For g in [0, 1] and eta > 0 the curve rises monotonically and is concave in n, so greedy allocation by
  marginal gain is optimal (planner.planning.allocation relies on this), and A_s(p, 1) = p.
- g and eta are given at three anchors, the middle of each difficulty bin (hard 0.05, medium 0.30, easy 0.75),
  and interpolated linearly in p (constant beyond the end anchors), so curves are continuous in p. The
  per-bin table a user sees is the curve averaged over the bin's p.
- Majority voting has a wrong-answer model: wrong answers concentrate on a few values, so with many samples
  the vote converges to the plurality answer. If W, the share of the wrong mass taken by the most common
  wrong answer, follows Beta(a, b), the correct answer is the plurality with probability
  P(p > (1 - p) W) = I_{p / (1 - p)}(a, b), the majority curve's limit. Below p on hard problems, it makes
  majority the one curve that falls with n (measured: on MATH train, majority-of-8 is right less often than
  one sample when pass@1 < 0.3). The allocator works on each problem's upper concave hull of options, so a
  falling curve simply never gets more than one sample; every other curve rises and is concave.

Each strategy's default curves, with their sources, are in its entry of planner.strategies; a calibration file
(planner.planning.calibration) measured on the serving stack replaces them by fitting the same parameters.
"""


from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import betainc

from planner.policies import Policy

ANCHORS = np.array([0.05, 0.30, 0.75])  # middle of the hard, medium and easy bins
SIZE_CLASSES = ("small", "medium", "large")


def size_class(policy: Policy) -> str:
    """The policy-size classes of arXiv 2502.06703's findings: under 5B, 5B to 50B, and larger."""
    if policy.params < 5e9:
        return "small"
    return "medium" if policy.params < 50e9 else "large"



@dataclass(frozen=True)
class Curve:
    """Accuracy against size for one strategy; `gain` and `rate` at the hard, medium and easy anchors."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rate: tuple[float, float, float] = (1.0, 1.0, 1.0)
    plurality: tuple[float, float] | None = None  # Beta(a, b) of the top wrong answer's share of wrong mass

    def __post_init__(self) -> None:
        if not all(0.0 <= g <= 1.0 for g in self.gain):
            raise ValueError(f"gain must lie in [0, 1], got {self.gain}")
        if not all(r > 0.0 for r in self.rate):
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.plurality is not None and not all(v > 0.0 for v in self.plurality):
            raise ValueError(f"plurality Beta parameters must be positive, got {self.plurality}")

    def limit(self, p: np.ndarray) -> np.ndarray:
        """The accuracy approached as n grows: p + g(p) (1 - p), or for voting the chance that the correct
        answer is the plurality (which is below p on hard problems: the vote then converges to a wrong answer)."""
        p = np.asarray(p, dtype=float)
        g = np.interp(p, ANCHORS, self.gain)
        if self.plurality is None:
            return p + g * (1.0 - p)
        ratio = np.divide(p, 1.0 - p, out=np.full_like(p, np.inf), where=p < 1.0)
        wins = betainc(self.plurality[0], self.plurality[1], np.clip(ratio, 0.0, 1.0))
        return p + g * (wins - p)

    def accuracy(self, p: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
        """A(p, n), broadcasting p against n."""
        p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
        n = np.asarray(n, dtype=float)
        eta = np.interp(p, ANCHORS, self.rate)
        miss = np.power(1.0 - p, eta * (n - 1.0))
        return p + (self.limit(p) - p) * (1.0 - miss)

    def free_parameters(self) -> np.ndarray:
        """What a calibration fits: gain (or the plurality model for voting) and log rate."""
        head = np.log(self.plurality) if self.plurality is not None else np.array(self.gain)
        return np.concatenate([head, np.log(self.rate)])

    def with_free_parameters(self, theta: np.ndarray) -> Curve:
        rate = tuple(float(v) for v in np.exp(theta[-3:]))
        if self.plurality is not None:
            return replace(self, plurality=tuple(float(v) for v in np.exp(theta[:2])), rate=rate)
        return replace(self, gain=tuple(float(v) for v in np.clip(theta[:3], 0.0, 1.0)), rate=rate)


@dataclass(frozen=True)
class Default:
    curve: Curve
    source: str


LIU = ("arXiv 2502.06703 (Liu et al., 'Can 1B LLM Surpass 405B LLM?'), text of its difficulty study: for "
       "small policies best-of-N wins on easy problems and beam search on harder ones; for 7B-32B policies "
       "DVTS wins on easy and medium, beam search on hard; for 72B, best-of-N wins at every difficulty")
SNELL = ("arXiv 2408.03314 (Snell et al.): beam search beats best-of-N on medium problems and at small "
         "budgets, and over-optimises easy problems, falling below best-of-N as the budget grows")
HF_DVTS = ("Hugging Face 'Scaling test-time compute with open models' blog / search-and-learn: DVTS beats "
           "beam search at large budgets on easy and medium problems, beam search wins at small budgets")
PURI = ("arXiv 2502.01618 (Puri et al.): particle filtering scales better than beam search and DVTS with the "
        "same PRM (Qwen2.5-Math-1.5B-Instruct passes GPT-4o's MATH-500 accuracy with 4 particles)")
ROUGH = ("Magnitudes are my own rough choice that reproduces the ordering quoted above at equal size; they "
         "are not fit to a figure. Replace them with a calibration file.")
REPLAY = ("best-of-8 with an outcome RM on shared/data/replay/math_cot_100.jsonl (92 easy problems) "
          "recovered 0.52 of the pass@1-to-1 headroom")
WEIGHTED = ("HF blog: weighted best-of-N beats plain best-of-N, more so at large N; on easy problems it "
            "converges like majority voting (majority and weighted voting were right on all 92 easy replay "
            "problems at n=8), on hard ones votes gather on wrong answers (MAJ_FIT data). " + ROUGH)
MAJ_FIT = ("fit by benchmarks/majority_curve_fit.py to measured majority-of-8 correctness against k=50 "
           "pass@1 on the MATH train split (shared/data/outcomes/math_success_rates.jsonl, T=0.7 columns)")


def default(gain: tuple[float, float, float], rate: tuple[float, float, float], source: str) -> Default:
    """A default curve of a reward-driven strategy: gain and rate at the (hard, medium, easy) anchors."""
    return Default(Curve(gain=gain, rate=rate), source)
