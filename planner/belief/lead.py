"""Whether the rest of a vote could still change its winner.

A vote of N samples is under way: the answer groups seen so far hold `votes` (in units of one sample's vote), and
`remaining` samples are still to come, each of which votes only with probability q (online DeepConf cuts some
traces, and a cut trace has no answer). The probability that the current leader still leads when all N are in
is estimated under the posterior of a Dirichlet-multinomial model: the groups' shares ~ Dirichlet(votes +
`prior`, plus `new_answer` for answers not seen yet, each of which starts a group of its own), q ~ Beta(1 +
voted, 1 + cut) from the later samples seen so far. Once it reaches the wanted level, the remaining samples
would only confirm the leader, and a run that stops there gives N samples' answer for fewer. This is
Adaptive-Consistency's stopping rule (Aggarwal et al., arXiv 2305.11860, a Dirichlet posterior on the answer
distribution) asked of a vote with a known end. Ties count against the leader. A fixed seed makes every decision
reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SIMULATIONS = 4096
SEED = 20240610


def lead_holds(votes: Sequence[float], remaining: int, voted: int = 0, cut: int = 0, *, prior: float = 0.5,
               new_answer: float = 1.0, simulations: int = SIMULATIONS) -> float:
    """The probability that the largest of `votes` is still the strict largest after `remaining` more samples
    (1.0 when none remain, 0.0 when nothing was voted)."""
    weights = np.sort(np.asarray([v for v in votes if v > 0], dtype=float))[::-1]
    if weights.size == 0:
        return 0.0
    if remaining <= 0:
        return float(weights.size == 1 or weights[0] > weights[1])
    rng = np.random.default_rng(SEED)
    shares = rng.dirichlet(np.append(weights + prior, new_answer), size=simulations)
    counts = rng.binomial(remaining, rng.beta(1 + voted, 1 + cut, size=simulations))
    future = rng.multinomial(counts, shares)
    final = weights + future[:, :-1]
    rival = final[:, 1:].max(axis=1) if weights.size > 1 else np.zeros(simulations)
    rival = np.maximum(rival, np.minimum(future[:, -1], 1))  # an unseen answer's group: one vote each
    return float(np.mean(final[:, 0] > rival))
