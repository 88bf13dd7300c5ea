"""Particle filtering over reasoning steps (Puri et al., arXiv 2502.01618).

N particles each generate one step; each particle's weight is softmax(logit(r) / T) over the particles,
r being the reward of its latest step (rewards are clipped into (0, 1) first, so a scorer of raw logits
needs `sigmoid=True`). When the effective sample size 1 / sum(w^2) falls under
`pf_ess_threshold * N`, N ancestors are drawn with probabilities w (multinomial, seeded by config.seed):
a particle drawn k times continues once and is forked k - 1 times; one never drawn is pruned. Finished
particles stay finished: they keep their last reward, take part in the weighting and the draws, and a
drawn copy is a duplicate of the finished trajectory. Resampling stops once no particle is running.
Failed particles weigh 0. The answer is the weighted vote of the final particles (or the heaviest one).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun

_EPS = 1e-6


def particle_weights(rewards: list[float | None], temperature: float) -> np.ndarray:
    """softmax(logit(r) / T); a missing reward (failed particle) weighs 0. All-missing gives zeros."""
    logits = np.array([-math.inf if r is None else _logit(r) / temperature for r in rewards], dtype=float)
    if not np.isfinite(logits).any():
        return np.zeros(len(rewards))
    shifted = np.exp(logits - logits[np.isfinite(logits)].max())
    return shifted / shifted.sum()


def effective_sample_size(weights: np.ndarray) -> float:
    total = float(np.sum(weights ** 2))
    return 1.0 / total if total > 0 else 0.0


def resample(weights: np.ndarray, rng: np.random.Generator) -> list[int]:
    """N ancestor indices drawn with probabilities `weights` (multinomial resampling), sorted."""
    return sorted(int(i) for i in rng.choice(len(weights), size=len(weights), p=weights))


def _logit(reward: float) -> float:
    r = min(max(float(reward), _EPS), 1.0 - _EPS)
    return math.log(r / (1.0 - r))


def particle_filter(run: SearchRun) -> Selection:
    n, config = run.budget, run.config.search
    rng = np.random.default_rng(config.seed)
    particles = run.spawn(n)
    for depth in range(config.max_steps):
        if all(p.finished for p in particles):
            break
        fresh = [p for p in particles if not p.finished]
        run.advance(fresh)
        run.canonicalize(fresh)
        run.score_latest(fresh)
        weights = particle_weights(_rewards(particles), config.pf_temperature)
        ess = effective_sample_size(weights)
        running = sum(not p.finished for p in particles)
        record = {"step": depth, "particles": [p.id for p in particles], "rewards": _rewards(particles),
                  "weights": weights.tolist(), "ess": ess, "running": running, "resampled": False}
        run.trace.append(record)
        if not weights.any():
            break  # every particle failed
        if ess < config.pf_ess_threshold * n and running:
            ancestors = resample(weights, rng)
            record.update(resampled=True, ancestors=[particles[i].id for i in ancestors])
            particles = _next_generation(run, particles, ancestors)
    for particle in particles:
        if not particle.finished:
            run.close(particle, "max_steps")
    weights = particle_weights(_rewards(particles), config.pf_temperature)
    for particle, weight in zip(particles, weights):
        particle.weight = float(weight)
    answered = [p for p in particles if p.answer is not None and not p.failed and p.weight > 0]
    if config.pf_selection == "weighted_vote":
        votes = run.vote(answered, [p.weight for p in answered])
        winners = [p for p in answered if votes and p.id in votes[0].branches]
    else:
        votes = run.vote(answered, [p.weight for p in answered], reduce="max")
        winners = answered
    chosen = max(winners, key=lambda p: (p.weight, -p.id)) if winners else None
    for particle in particles:
        particle.score = run.trajectory_score(particle)
    size = {"n": n, "temperature": config.pf_temperature, "ess_threshold": config.pf_ess_threshold,
            "selection": config.pf_selection}
    return Selection(chosen, votes, size)


def _rewards(particles: list[Branch]) -> list[float | None]:
    return [None if p.failed or not p.step_scores or p.step_scores[-1] is None else p.step_scores[-1]
            for p in particles]


def _next_generation(run: SearchRun, particles: list[Branch], ancestors: list[int]) -> list[Branch]:
    counts = Counter(ancestors)
    survivors: list[Branch] = []
    for index, particle in enumerate(particles):
        copies = counts.get(index, 0)
        if copies == 0:
            if not particle.finished:
                run.close(particle, "pruned")
            continue
        survivors.append(particle)
        if particle.finished:
            survivors += [run.copy_finished(particle) for _ in range(copies - 1)]
        else:
            survivors += run.spawn(copies - 1, parent=particle)
    return survivors
