"""What the planner knows about a solve, resolved against the servers it runs on: the policy the server serves,
the reward model behind the scorer, the strategy table of that setup, and the problem's predicted difficulty.

`Planning` is built once per run and shared across problems and threads; `for_problem` adds the per-problem
values (a batch's prediction, a cap). A forced strategy solved with a Planning carries the table's expectations
and the prediction in its result; the adaptive program plans with one (the defaults when none is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from planner.adaptive import AdaptiveConfig, budget_from_tokens, check_budget, check_budget_tokens, check_target
from planner.difficulty import difficulty_bin
from planner.errors import InputError
from planner.planning.plan import priced_plan
from planner.planning.table import StrategyTable, shared_table
from planner.policies import DEFAULT_POLICY, Policy, RewardModel, Thinking, described_reward_model, known_policy
from planner.policies import policy as find_policy
from planner.policies import reward_model as find_reward_model
from planner.prediction.model_store import predictor_for
from planner.prediction.predictor import DifficultyPredictor
from planner.records import PlanRecord, Prediction
from sglang_plugin.config import SearchConfig
from sglang_plugin.scorers.base import Scorer


@dataclass(frozen=True)
class Planning:
    """Planning inputs of a solve.

    adaptive: the adaptive policy's settings.
    table: the strategy table (default: the published-findings table of the served policy and the scorer's
        reward model, with `calibration` applied).
    predictor: a DifficultyPredictor, or a policy name or model file (default: the served policy's shipped
        predictor, else the default policy's).
    policy, policy_params: the policy's name when the server's model path is not one the planner knows, and its
        size for a policy it does not know at all.
    thinking_end: the policy is a long-thinking one and its thinking ends with this text (e.g. "</think>"; the
        known long-thinking policies need none): its answers are read after it, its samples get a 32k cap.
    reward_model: the reward model's name when the scorer does not say it.
    pass_at_1: this problem's predicted pass@1 (skips the per-problem prediction).
    max_budget, target_confidence: adaptive only: a per-problem cap, and a confidence to stop at.
    budget_tokens: adaptive only: generated tokens to spend per problem on average, instead of the solve's budget
        in samples (long-thinking policies): each round, the budget is this over the samples' average length.
    """

    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    table: StrategyTable | None = None
    predictor: DifficultyPredictor | str | None = None
    policy: str | None = None
    policy_params: float | None = None
    thinking_end: str | None = None
    reward_model: str | None = None
    calibration: str | None = None
    pass_at_1: float | None = None
    max_budget: int | None = None
    target_confidence: float | None = None
    budget_tokens: float | None = None

    def __post_init__(self) -> None:
        check_target(self.target_confidence)
        if self.budget_tokens is not None:
            check_budget_tokens(self.budget_tokens)
        if self.max_budget is not None:
            check_budget(self.max_budget, "max_budget")
        if self.pass_at_1 is not None and (isinstance(self.pass_at_1, bool) or not isinstance(self.pass_at_1, (int, float))
                                           or not 0.0 <= self.pass_at_1 <= 1.0):
            raise InputError(f"must be a number in [0, 1], got {self.pass_at_1!r}", field="pass_at_1")

    def for_problem(self, **values) -> Planning:
        return replace(self, **values)

    def budget_for(self, budget: int, sample_tokens: float) -> int:
        """The adaptive budget in samples of this problem: `budget`, or budget_tokens over one sample's tokens."""
        return budget if self.budget_tokens is None else budget_from_tokens(self.budget_tokens, sample_tokens)

    # -- resolution against the servers ------------------------------------------------------------------

    def policy_of(self, served: str | None) -> Policy:
        """The policy planned for: the given one, else the served model if known, else the default policy
        (borrowed; the prediction names the served model beside it)."""
        thinking = Thinking.ending_with(self.thinking_end) if self.thinking_end else None
        if self.policy is not None:
            return find_policy(self.policy, self.policy_params, thinking)
        chosen = known_policy(served) or find_policy(DEFAULT_POLICY)
        return replace(chosen, thinking=thinking) if thinking is not None else chosen

    def reward_model_of(self, scorer: Scorer | None) -> RewardModel | None:
        """The reward model behind the scorer: the given name, else the scorer's, else an unnamed one of the
        scorer's kind (size unknown). None without a reward model."""
        if scorer is None or scorer.kind is None:
            return None
        name = self.reward_model or scorer.reward_model
        if name is None:
            return described_reward_model(f"unnamed {scorer.kind} reward model", scorer.kind)
        return find_reward_model(name, kind=scorer.kind)

    def table_for(self, served: str | None, scorer: Scorer | None, search: SearchConfig) -> StrategyTable:
        if self.table is not None:
            return self.table
        return shared_table(self.policy_of(served), self.reward_model_of(scorer), self.calibration, search.beam_width)

    def prediction(self, problem: str, served: str | None) -> Prediction:
        """The problem's predicted pass@1 (given, or from the predictor) and which predictor said so."""
        policy = self.policy_of(served)
        if self.pass_at_1 is not None:
            p, model = float(self.pass_at_1), "given"
        elif isinstance(self.predictor, DifficultyPredictor):
            p, model = float(self.predictor.predict([problem])[0]), self.predictor.policy or "custom"
        else:
            predictor, path = predictor_for(policy.name if policy.known else None, self.predictor)
            p, model = float(predictor.predict([problem])[0]), path.name
        p = round(p, 4)  # the bin follows the number written
        return Prediction(p, difficulty_bin(p), policy.name, model, served)

    def priced(self, problem: str, strategy: str, size: int, served: str | None, scorer: Scorer | None,
               search: SearchConfig) -> tuple[PlanRecord, Prediction]:
        """The plan record and prediction of a forced strategy: the table's expectation for its size."""
        prediction = self.prediction(problem, served)
        table = self.table_for(served, scorer, search)
        if strategy not in table.strategies:
            return PlanRecord(strategy, size), prediction
        return priced_plan(table, strategy, size, prediction.pass_at_1).record(), prediction
