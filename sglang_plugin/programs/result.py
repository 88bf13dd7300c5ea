"""The one result object every strategy returns: the chosen answer with every branch, score, vote and cost."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from planner.cost import Cost
from planner.grading import Vote
from planner.records import PlanRecord, Prediction, to_json

# Why a branch stopped. Only "failed" carries an error; "pruned" branches lost a search or resampling step;
# "stopped" traces were cut by their own low confidence (online DeepConf); "cancelled" ones were still running
# when the vote was settled without them.
FINISH_REASONS = ("answer", "eos", "length", "max_steps", "pruned", "stopped", "cancelled", "failed")


@dataclass
class Branch:
    """One trajectory. `steps` hold the exact text the policy produced, each ending with the step
    delimiter when the server matched it (the server trims it; the program adds it back), so
    "".join(steps) is the branch's solution text."""

    id: int
    parent: int | None = None  # the branch this one was forked from
    fork_step: int = 0  # steps[:fork_step] are shared with the parent
    group: int | None = None  # DVTS subtree
    steps: list[str] = field(default_factory=list)
    step_scores: list[float | None] = field(default_factory=list)  # None: a step never scored
    answer: str | None = None
    finish_reason: str | None = None  # None while the branch is still running
    error: str | None = None
    tokens: int = 0  # generated tokens in the trajectory, the part shared with the parent included
    score: float | None = None  # the trajectory score used for selection
    weight: float | None = None  # particle filter: final normalised weight
    confidence: float | None = None  # the trace's own confidence (lowest sliding-window group confidence)
    thinking_tokens: int | None = None  # long-thinking policies: generated tokens until the thinking ended
    independent: bool = False  # a whole, unselected sample of the policy (an unbiased pass@1 observation)

    @property
    def text(self) -> str:
        return "".join(self.steps)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def failed(self) -> bool:
        return self.finish_reason == "failed"

    def fail(self, error: str) -> None:
        self.finish_reason, self.error = "failed", error

    def to_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


@dataclass
class Selection:
    """What a strategy chose: the branch whose answer it returns (None: no answer), the answer groups as voted,
    and its size as it ran (e.g. {"n": 16, "beam_width": 4})."""

    chosen: Branch | None
    votes: list[Vote]
    size: dict


@dataclass
class SolveResult:
    """What `solve` and every program return. `answer` is None when no branch produced one; `errors` then
    says why. Failed branches are listed with their error and never counted as answers."""

    answer: str | None
    strategy: str
    budget: int
    size: dict
    branches: list[Branch]
    chosen: int | None
    votes: list[Vote]
    cost: Cost
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    trace: list[dict] = field(default_factory=list)  # per-step search decisions (kept, pruned, weights)
    # What the planner decided (the adaptive program adds its probe, belief, rounds and stop reason) and the
    # difficulty prediction it used.
    plan: PlanRecord | None = None
    prediction: Prediction | None = None

    def branch(self, branch_id: int) -> Branch:
        return next(b for b in self.branches if b.id == branch_id)

    @property
    def failed_branches(self) -> list[Branch]:
        return [b for b in self.branches if b.failed]

    @property
    def thinking_tokens(self) -> int | None:
        """Generated tokens the branches spent thinking (a long-thinking policy's; None for others): the rest of
        cost.completion_tokens is their answers, the prefix-cache warm-up and any confidence probe."""
        counted = [b.thinking_tokens for b in self.branches if b.thinking_tokens is not None]
        return sum(counted) if counted else None

    def to_dict(self) -> dict:
        """JSON-ready (non-finite floats become None) for one JSONL line."""
        return _finite({
            "answer": self.answer, "strategy": self.strategy, "budget": self.budget, "size": self.size,
            "chosen": self.chosen, "cost": self.cost.to_dict(), "thinking_tokens": self.thinking_tokens,
            "errors": self.errors,
            "retries": self.retries, "votes": [v.to_dict() for v in self.votes],
            "branches": [b.to_dict() for b in self.branches], "trace": self.trace,
            "plan": to_json(self.plan) if self.plan else None,
            "prediction": to_json(self.prediction) if self.prediction else None,
        })


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
