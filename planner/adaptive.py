"""The adaptive policy: its settings and the rules it follows between rounds, apart from how samples are drawn.

1. Predict: the difficulty predictor gives pass@1 p0 from the text alone.
2. Probe: `probe_size` independent samples (scored by the reward model when there is one).
3. Believe: planner.belief.posterior updates Beta(s p0, s (1 - p0)) with which answers agree and how they were
   scored: P(each answer is correct) and the posterior of pass@1.
4. Plan (`continuation`): the strategy table's accuracy curves, averaged over that posterior, value every way
   to go on (more samples up to the per-problem cap, or, with a step-level reward model, one tree search);
   the plan is the cheapest option within `min_gain` of the best expected accuracy, "stop now" included.
5. Stop (`decide`) when the favoured answer's posterior probability reaches `settle_confidence` ("settled") or
   the caller's target ("confident"), when the plan is to stop (more samples are expected to add less than
   `min_gain`: "hopeless" if the posterior says hard, else "enough"), at the cap ("cap"), or when a whole
   round failed ("failed"). Otherwise sample `round_size` more and go back to 3. A planned search runs once
   with the rest of the cap ("searched").

With a target confidence only the target and the cap stop it. sglang_plugin.programs.adaptive draws the
samples and runs these rules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from planner.belief.evidence import ConfidenceEvidence, RewardEvidence
from planner.belief.posterior import PRIOR_STRENGTH, WRONG_ANSWER_CONCENTRATION, BetaPrior, Posterior
from planner.errors import InputError
from planner.planning.table import StrategyTable
from planner.policies import RewardModel
from planner.strategies import REGISTRY

SELECTIONS = ("posterior", "plan")
EVIDENCE = ("auto", "none")
QWEN_ORM = "Qwen/Qwen2.5-Math-RM-72B"


@dataclass(frozen=True)
class AdaptiveConfig:
    """Settings of adaptive solving (one home for them; `tts-planner run --planner-option KEY=VALUE` sets them).

    prior_strength, alpha: the belief's prior strength in samples and the wrong answers' concentration.
    probe_size, round_size: samples in the probe and in each later round.
    spread: the per-problem cap is ceil(spread x budget) samples unless the caller gives max_budget, so a
        problem left unsettled can take more than the average its settled neighbours leave unspent.
    settle_confidence: stop once the favoured answer is this likely to be right.
    min_gain: stop once the rest of the plan is expected to add less accuracy than this.
    selection: the final answer: "posterior" (the most probable one) or "plan" (the planned strategy's rule).
    reward_evidence: "auto" (Qwen2.5-Math-RM-72B's fitted evidence when that model scores; without a reward
        model, a long-thinking policy's own trace confidence, planner.belief.evidence.ConfidenceEvidence, taken
        to separate right from wrong traces with `confidence_auroc`; agreement only otherwise) or "none"
        (answers' agreement only).
    """

    prior_strength: float = PRIOR_STRENGTH
    alpha: float = WRONG_ANSWER_CONCENTRATION
    probe_size: int = 2
    round_size: int = 2
    spread: float = 2.0
    settle_confidence: float = 0.99
    min_gain: float = 0.02
    selection: str = "posterior"
    reward_evidence: str = "auto"
    confidence_auroc: float = 0.7

    def __post_init__(self) -> None:
        for name in ("probe_size", "round_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        for name in ("spread", "settle_confidence", "min_gain", "prior_strength", "alpha", "confidence_auroc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"must be a number, got {value!r}", field=name)
        if self.spread < 1:
            raise InputError(f"must be >= 1, got {self.spread!r}", field="spread")
        if not 0 < self.settle_confidence < 1:
            raise InputError(f"must be in (0, 1), got {self.settle_confidence!r}", field="settle_confidence")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"must be in [0, 1), got {self.min_gain!r}", field="min_gain")
        if self.selection not in SELECTIONS:
            raise InputError(f"must be one of {', '.join(SELECTIONS)}, got {self.selection!r}", field="selection")
        if self.reward_evidence not in EVIDENCE:
            raise InputError(f"must be one of {', '.join(EVIDENCE)}, got {self.reward_evidence!r}",
                             field="reward_evidence")
        BetaPrior(0.5, self.prior_strength)  # validates the strength
        ConfidenceEvidence.from_auroc(self.confidence_auroc)
        if not self.alpha > 0:
            raise InputError(f"must be > 0, got {self.alpha!r}", field="alpha")

    @classmethod
    def from_options(cls, options: dict) -> AdaptiveConfig:
        """From KEY=VALUE options; an unknown key is an InputError naming it and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown planner option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                             field="planner_options")
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)

    def cap(self, budget: int, max_budget: int | None) -> int:
        """Most samples one problem may take."""
        check_budget(budget, "budget")
        if max_budget is not None:
            check_budget(max_budget, "max_budget")
            return max_budget
        return max(1, math.ceil(self.spread * budget))

    def prior(self, pass_at_1: float) -> BetaPrior:
        return BetaPrior(pass_at_1, self.prior_strength)

    def confidence_for(self, scored: bool, thinking: bool) -> ConfidenceEvidence | None:
        """Trace confidence as evidence: under "auto", for a long-thinking policy without a reward model."""
        if self.reward_evidence == "auto" and thinking and not scored:
            return ConfidenceEvidence.from_auroc(self.confidence_auroc)
        return None

    def evidence_for(self, reward_model: RewardModel | None) -> RewardEvidence | None:
        """How reward scores count as evidence: under "auto", the replay fit for the reward model it was fitted
        to (Qwen2.5-Math-RM-72B), agreement only for others (fit yours with RewardEvidence.fit)."""
        if self.reward_evidence == "auto" and reward_model is not None and reward_model.name == QWEN_ORM:
            return RewardEvidence.qwen_orm()
        return None


def check_budget(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer, got {value!r}", field=name)
    return value


def check_target(target_confidence: float | None) -> None:
    if target_confidence is None:
        return
    if isinstance(target_confidence, bool) or not isinstance(target_confidence, (int, float)) \
            or not 0 < target_confidence < 1:
        raise InputError(f"must be a number in (0, 1), got {target_confidence!r}", field="target_confidence")


def probe_strategy(scored: bool) -> str:
    """The sampling rule of the probe and rounds: weighted voting with a reward model, majority without."""
    return "weighted_vote" if scored else "majority"


def continuations(table: StrategyTable, scored: bool) -> list[str]:
    """Strategies the rest can run: scored sampling (or plain majority without a scorer), and the table's
    step-level searches when the reward model allows them."""
    if not scored:
        return ["majority"]
    usable = [s for s in table.strategies if REGISTRY[s].needs_reward]
    return usable or ["majority"]


@dataclass(frozen=True)
class Continuation:
    """How to go on: `strategy` at `size` (total samples for sampling, the search's own size for a search),
    `extra` samples still to draw (0: stop), and what the table expects of it."""

    strategy: str
    size: int
    extra: int
    expected_accuracy: float
    table_tokens: float  # the table's tokens for the extra samples, in its own per-sample unit

    @property
    def search(self) -> bool:
        return REGISTRY[self.strategy].step_level


def continuation(posterior: Posterior, spent: int, cap: int, table: StrategyTable, strategies: list[str], *,
                 searches: bool, min_gain: float) -> Continuation:
    """The cheapest way to go on whose expected accuracy (the table's curves averaged over the posterior) is
    within min_gain of the best; sampling sizes count the samples already drawn, a search starts anew."""
    options: list[tuple[str, int, int]] = []
    for name in strategies:
        if REGISTRY[name].step_level:
            if searches:
                options += [(name, n, n) for n in table.sizes(name) if n <= cap - spent]
        else:
            options += [(name, spent, 0)] + [(name, n, n - spent) for n in table.sizes(name) if spent < n <= cap]
    values = posterior.expect(lambda p: np.stack([table.accuracy(s, p, n) for s, n, _ in options], axis=-1))
    extra = np.array([e * sum(table.cost.per_unit(s)) for s, _, e in options])
    eligible = np.flatnonzero(values >= values.max() - min_gain - 1e-12)
    pick = min(eligible, key=lambda i: (extra[i], -values[i]))
    name, size, more = options[pick]
    return Continuation(name, int(size), int(more), float(values[pick]), float(extra[pick]))


def decide(config: AdaptiveConfig, posterior: Posterior, confidence: float | None, samples: int,
           fresh_failed: bool, cap: int, table: StrategyTable, strategies: list[str],
           target_confidence: float | None) -> tuple[str | None, Continuation]:
    """(why to stop now, or None to go on; the plan for the rest)."""
    plan = continuation(posterior, samples, cap, table, strategies, searches=target_confidence is None,
                        min_gain=0.0 if target_confidence is not None else config.min_gain)
    stop_at = config.settle_confidence if target_confidence is None else target_confidence
    if confidence is not None and confidence >= stop_at:
        return ("settled" if target_confidence is None else "confident"), plan
    if fresh_failed:
        return "failed", plan
    if samples >= cap:
        return "cap", plan
    if target_confidence is None and plan.extra == 0:
        return ("hopeless" if posterior.difficulty == "hard" else "enough"), plan
    return None, plan
