"""Adaptive solving: probe a problem with a few samples, update the belief about it, plan the rest of the
budget, and stop as soon as more samples are not worth it.

1. Predict: the serving policy's shipped difficulty predictor gives pass@1 p0 from the text alone.
2. Probe: `probe_size` independent samples, scored by the reward model when there is one.
3. Believe: sglang_plugin.posterior updates Beta(s p0, s (1 - p0)) with which answers agree and how they
   were scored: P(each answer is correct) and the posterior of pass@1.
4. Plan: the strategy table's accuracy curves, averaged over that posterior, value every way to go on (more
   samples up to the per-problem cap, or, with a step-level reward model, one tree search); the plan is the
   cheapest option within `min_gain` of the best expected accuracy, "stop now" included.
5. Stop when the chosen answer's posterior probability reaches `settle_confidence` ("settled") or the
   caller's `target_confidence` ("confident"), when the plan is to stop (more samples are expected to add
   less than `min_gain`: "hopeless" if the posterior says hard, else "enough"), at the cap ("cap"), or when a
   whole round failed ("failed"). Otherwise sample `round_size` more and go back to 3. A planned search
   runs once with the rest of the cap ("searched").

With a target confidence only the target and the cap stop it. Every sample paid for stays in the final
choice, and the result's cost is everything the servers reported, probe included.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import sglang as sgl
from sglang.lang.tracer import StopTracing, TracerProgramState

from planner.difficulty import difficulty_bin
from planner.errors import InputError
from planner.model_store import load_model, resolve_model_path, shipped_model_path
from planner.policies import DEFAULT_POLICY
from planner.policies import policy as find_policy
from planner.predictor import DifficultyPredictor
from planner.strategy_table import StrategyTable
from sglang_plugin.answers import shared_grouper
from sglang_plugin.config import SolveConfig
from sglang_plugin.posterior import (
    PRIOR_STRENGTH,
    WRONG_ANSWER_CONCENTRATION,
    BetaPrior,
    Posterior,
    RewardEvidence,
    update,
)
from sglang_plugin.programs_base import SearchRun
from sglang_plugin.programs_particle import particle_filter
from sglang_plugin.programs_search import beam_search, dvts
from sglang_plugin.result import Branch, SolveResult, Vote
from sglang_plugin.scorers import Scorer

SAMPLING = ("majority", "best_of_n", "weighted_vote")
SEARCHES = {"beam_search": beam_search, "dvts": dvts, "particle_filter": particle_filter}
# The reward model behind each scorer kind, for the strategy table's curves (override with reward_model=).
SCORER_REWARD_MODELS = {"orm": "Qwen/Qwen2.5-Math-RM-72B", "step_tag": "peiyi9979/math-shepherd-mistral-7b-prm",
                        "http": "Qwen/Qwen2.5-Math-PRM-7B"}
SELECTIONS = ("posterior", "plan")
STOP_REASONS = ("settled", "confident", "enough", "hopeless", "cap", "searched", "failed")


class AdaptiveRun(SearchRun):
    """The adaptive program's run: rounds of independent samples, and at most one search stage whose result
    is kept instead of finishing the run."""

    def __init__(self, s, problem: str, budget: int, config: SolveConfig | None, scorer: Scorer | None) -> None:
        super().__init__(s, "adaptive", problem, budget, config, scorer, needs_scorer=False)
        self._stage: dict | None = None

    def sample(self, count: int) -> list[Branch]:
        """`count` more independent samples, run to the end and scored."""
        branches = self.spawn(count)
        self.rollouts(branches)
        self.score_final(branches)
        for branch in branches:
            self.trajectory_score(branch)
        return branches

    def search(self, strategy: str, size: int) -> Branch | None:
        """Run a step-level search of `size` on the same prompt; its chosen branch (or None)."""
        budget, self.budget, self._stage = self.budget, size, {}
        try:
            SEARCHES[strategy](self)
            return self._stage.get("chosen")
        finally:
            self.budget, self._stage = budget, None

    def finish(self, chosen: Branch | None, votes: list[Vote], size: dict) -> SolveResult | None:
        if self._stage is not None:  # a search stage ends here; the adaptive program finishes the run
            self._stage.update(chosen=chosen, votes=votes, size=size)
            return None
        return super().finish(chosen, votes, size)


class Belief:
    """The answer groups of the samples so far, the posterior over them, and the answer it favours."""

    def __init__(self, run: AdaptiveRun, samples: list[Branch], prior: BetaPrior,
                 evidence: RewardEvidence | None, alpha: float) -> None:
        answered = run.answered(samples)
        unanswered = sum(1 for b in samples if b.answer is None and not b.failed)
        self.groups = [[run.branches[i] for i in vote.branches] for vote in run.vote(answered)]
        ratios = [_log_ratio(group, evidence) for group in self.groups]
        self.posterior: Posterior = update(prior, [len(g) for g in self.groups], ratios, unanswered, alpha)

    def best_group(self) -> int | None:
        if not self.groups:
            return None
        return max(range(len(self.groups)), key=lambda j: (self.posterior.probability(j), -j))

    def confidence(self, group: int | None) -> float | None:
        return None if group is None else self.posterior.probability(group)

    def group_of(self, branch: Branch) -> int | None:
        """The group whose answer is equivalent to `branch`'s (a search's choice may be new)."""
        grouper = shared_grouper()
        for j, group in enumerate(self.groups):
            if any(b is branch for b in group) or grouper.equivalent(group[0].answer, branch.answer):
                return j
        return None

    def votes(self) -> list[Vote]:
        """The groups as votes scored by their posterior probability of being correct, most probable first."""
        votes = [Vote(g[0].answer, [b.id for b in g], self.posterior.probability(j)) for j, g in enumerate(self.groups)]
        return sorted(votes, key=lambda v: -v.score)


def _log_ratio(group: list[Branch], evidence: RewardEvidence | None) -> float:
    """Summed reward evidence of a group, each distinct text once (a deterministic reward model scores a
    repeated text the same way, so the repeat carries no new evidence)."""
    if evidence is None:
        return 0.0
    seen: dict[str, float | None] = {}
    for branch in group:
        seen.setdefault(branch.text, branch.score)
    return sum(evidence.log_ratio(score) for score in seen.values())


def _best_scored(branches: list[Branch]) -> Branch:
    return max(branches, key=lambda b: (b.score if b.score is not None else -math.inf, -b.id))


class AdaptivePlanner:
    """Settings of adaptive solving and what it loads once (predictors, strategy tables). Thread-safe: share one
    across problems and threads.

    predictor: a DifficultyPredictor, a policy name or model path (planner.model_store), or None for the
        shipped predictor of the policy the server serves. policy: the policy's name when the server's
        model path is not one planner.policies knows (default: the server's, else the default policy).
    reward_model, table, calibration: the strategy table's setup (default: the scorer's reward model, the
        published-findings curves, no calibration file).
    reward_evidence: how reward scores count as evidence: "auto" (Qwen2.5-Math-RM-72B's fit for an outcome
        scorer, none otherwise), a RewardEvidence, or None (answers' agreement only).
    prior_strength, alpha: the belief's prior strength in samples and the wrong answers' concentration.
    probe_size, round_size: samples in the probe and in each later round.
    spread: the per-problem cap is ceil(spread x budget) samples unless the caller gives max_budget, so a
        problem left unsettled can take more than the average its settled neighbours leave unspent.
    settle_confidence: stop once the chosen answer is this likely to be right.
    min_gain: stop once the rest of the plan is expected to add less accuracy than this.
    selection: the final answer: "posterior" (the most probable one) or "plan" (the planned strategy's rule).
    """

    def __init__(self, predictor: DifficultyPredictor | str | None = None, policy: str | None = None,
                 reward_model: str | None = None, table: StrategyTable | None = None,
                 calibration: str | Path | None = None, reward_evidence: RewardEvidence | str | None = "auto",
                 prior_strength: float = PRIOR_STRENGTH, alpha: float = WRONG_ANSWER_CONCENTRATION,
                 probe_size: int = 2, round_size: int = 2, spread: float = 2.0, settle_confidence: float = 0.99,
                 min_gain: float = 0.02, selection: str = "posterior") -> None:
        for name, value in (("probe_size", probe_size), ("round_size", round_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        if not (isinstance(spread, (int, float)) and spread >= 1):
            raise InputError(f"must be a number >= 1, got {spread!r}", field="spread")
        if not 0 < settle_confidence < 1:
            raise InputError(f"must be in (0, 1), got {settle_confidence!r}", field="settle_confidence")
        if not 0 <= min_gain < 1:
            raise InputError(f"must be in [0, 1), got {min_gain!r}", field="min_gain")
        if selection not in SELECTIONS:
            raise InputError(f"must be one of {', '.join(SELECTIONS)}, got {selection!r}", field="selection")
        if not (reward_evidence is None or reward_evidence == "auto" or isinstance(reward_evidence, RewardEvidence)):
            raise InputError("must be 'auto', a RewardEvidence or None", field="reward_evidence")
        BetaPrior(0.5, prior_strength)  # validates the strength
        if not alpha > 0:
            raise InputError(f"must be > 0, got {alpha!r}", field="alpha")
        self.predictor, self.policy, self.reward_model = predictor, policy, reward_model
        self.table, self.calibration, self.reward_evidence = table, calibration, reward_evidence
        self.prior_strength, self.alpha = prior_strength, alpha
        self.probe_size, self.round_size, self.spread = probe_size, round_size, spread
        self.settle_confidence, self.min_gain, self.selection = settle_confidence, min_gain, selection
        self._lock = threading.Lock()
        self._predictors: dict[str, tuple[DifficultyPredictor, str]] = {}
        self._tables: dict[tuple[str, str | None], StrategyTable] = {}

    # -- setup ----------------------------------------------------------------------------------------

    def policy_for(self, endpoint) -> tuple[str, str | None]:
        """(policy name for the predictor and table, the model path the server reported)."""
        served = getattr(endpoint, "model_info", {}).get("model_path") if endpoint is not None else None
        if self.policy is not None:
            return find_policy(self.policy).name, served
        try:
            return find_policy(served).name, served
        except (InputError, AttributeError):
            return DEFAULT_POLICY, served

    def _predictor(self, policy: str) -> tuple[DifficultyPredictor, str]:
        if isinstance(self.predictor, DifficultyPredictor):
            return self.predictor, self.predictor.policy or "custom"
        # A policy without a shipped predictor borrows the default policy's (the prior is weak either way, and
        # the prediction's "model" says which one was used).
        key = self.predictor or (policy if shipped_model_path(policy).exists() else DEFAULT_POLICY)
        with self._lock:
            if key not in self._predictors:
                self._predictors[key] = (load_model(key), resolve_model_path(key).name)
            return self._predictors[key]

    def predict(self, problems: list[str], policy: str = DEFAULT_POLICY) -> np.ndarray:
        """Predicted pass@1 of many problems at once (pass each to solve as pass_at_1= to skip the per-problem
        prediction)."""
        return self._predictor(find_policy(self.policy or policy).name)[0].predict(problems)

    def prediction(self, problem: str, endpoint=None, pass_at_1: float | None = None) -> dict:
        """The prediction dict a result carries: pass_at_1, difficulty, policy, model, served_model."""
        policy, served = self.policy_for(endpoint)
        if pass_at_1 is None:
            predictor, model = self._predictor(policy)
            pass_at_1 = float(predictor.predict([problem])[0])
        else:
            model = "given"
            BetaPrior(pass_at_1)  # validates it
        return {"pass_at_1": round(float(pass_at_1), 4), "difficulty": difficulty_bin(pass_at_1),
                "policy": policy, "model": model, "served_model": served}

    def table_for(self, policy: str, scorer: Scorer | None) -> StrategyTable:
        if self.table is not None:
            return self.table
        rm = self.reward_model if self.reward_model is not None else \
            SCORER_REWARD_MODELS.get(getattr(scorer, "name", None)) if scorer is not None else None
        with self._lock:
            if (policy, rm) not in self._tables:
                self._tables[(policy, rm)] = StrategyTable.default(policy, rm, self.calibration)
            return self._tables[(policy, rm)]

    def evidence_for(self, scorer: Scorer | None) -> RewardEvidence | None:
        if self.reward_evidence != "auto":
            return self.reward_evidence
        return RewardEvidence.qwen_orm() if getattr(scorer, "name", None) == "orm" and \
            self.reward_model in (None, SCORER_REWARD_MODELS["orm"]) else None

    def cap(self, budget: int, max_budget: int | None) -> int:
        if max_budget is not None:
            if isinstance(max_budget, bool) or not isinstance(max_budget, int) or max_budget < 1:
                raise InputError(f"must be a positive integer, got {max_budget!r}", field="max_budget")
            return max_budget
        return max(1, math.ceil(self.spread * budget))

    @staticmethod
    def _check_target(target_confidence: float | None) -> None:
        if target_confidence is not None and not (isinstance(target_confidence, (int, float))
                                                  and 0 < target_confidence < 1):
            raise InputError(f"must be in (0, 1), got {target_confidence!r}", field="target_confidence")

    # -- planning ---------------------------------------------------------------------------------------

    def _continuations(self, table: StrategyTable, scorer: Scorer | None) -> list[str]:
        """Strategies the rest can run: scored sampling (or plain majority without a scorer), and the table's
        step-level searches when the reward model allows them."""
        if scorer is None:
            return ["majority"]
        usable = [s for s in table.strategies if s in ("best_of_n", "weighted_vote") or s in SEARCHES]
        return usable or ["majority"]

    def plan(self, posterior: Posterior, spent: int, cap: int, table: StrategyTable, strategies: list[str], *,
             searches: bool = True, min_gain: float | None = None) -> dict:
        """The cheapest way to go on whose expected accuracy (the table's curves averaged over the posterior)
        is within min_gain of the best; sampling sizes count the samples already drawn, a search starts anew.
        Returns strategy, size (total samples, or the search's size), extra (samples still to draw) and
        expected_accuracy."""
        min_gain = self.min_gain if min_gain is None else min_gain
        options: list[tuple[str, int, int]] = []
        for name in strategies:
            if name in SEARCHES:
                if searches:
                    options += [(name, n, n) for n in table.sizes(name) if n <= cap - spent]
            else:
                options += [(name, spent, 0)] + [(name, n, n - spent) for n in table.sizes(name) if spent < n <= cap]
        values = posterior.expect(lambda p: np.stack([table.accuracy(s, p, n) for s, n, _ in options], axis=-1))
        extra = np.array([e * sum(table.cost.per_unit(s)) for s, _, e in options])
        eligible = np.flatnonzero(values >= values.max() - min_gain - 1e-12)
        pick = min(eligible, key=lambda i: (extra[i], -values[i]))
        name, size, more = options[pick]
        return {"strategy": name, "size": int(size), "extra": int(more), "expected_accuracy": float(values[pick]),
                "table_tokens": float(extra[pick])}

    # -- the program -----------------------------------------------------------------------------------

    def execute(self, run: AdaptiveRun, max_budget: int | None = None, target_confidence: float | None = None,
                pass_at_1: float | None = None) -> SolveResult:
        """Probe, believe, plan, repeat; then choose and report (inside an opened AdaptiveRun)."""
        self._check_target(target_confidence)
        cap = self.cap(run.budget, max_budget)
        policy, _ = self.policy_for(run.endpoint)
        prediction = self.prediction(run.problem, run.endpoint, pass_at_1)
        table = self.table_for(policy, run.scorer)
        strategies = self._continuations(table, run.scorer)
        evidence = self.evidence_for(run.scorer)
        prior = BetaPrior(prediction["pass_at_1"], self.prior_strength)
        stop_at = target_confidence if target_confidence is not None else self.settle_confidence
        probe_strategy = "weighted_vote" if run.scorer is not None else "majority"

        samples = run.sample(min(self.probe_size, cap))
        probe_tokens = run.ledger.snapshot().tokens
        # The table's relative costs, in the tokens the probe actually cost per sample.
        tokens_per_unit = probe_tokens / len(samples) / max(sum(table.cost.per_unit(probe_strategy)), 1e-9)
        rounds: list[dict] = []
        searched: Branch | None = None
        fresh = samples
        while True:
            belief = Belief(run, samples, prior, evidence, self.alpha)
            best = belief.best_group()
            confidence = belief.confidence(best)
            reason, plan = self._decide(belief.posterior, confidence, samples, fresh, cap, table, strategies,
                                        target_confidence)
            spent = run.ledger.snapshot().tokens
            if reason is None:
                plan["expected_cost"] = spent + plan["table_tokens"] * tokens_per_unit
            else:  # the plan is to stop here: expect what the belief says, at what was spent
                plan.update(strategy=plan["strategy"] if plan["extra"] == 0 else probe_strategy, size=len(samples),
                            extra=0, expected_cost=spent, expected_accuracy=plan["expected_accuracy"]
                            if confidence is None else confidence)
            del plan["table_tokens"]
            rounds.append({"samples": len(samples), "tokens": spent, "posterior": belief.posterior.to_dict(),
                           "confidence": _round(confidence), "plan": {k: _round(v) for k, v in plan.items()},
                           "decision": reason or "continue"})
            if reason is not None:
                break
            if plan["strategy"] in SEARCHES:
                searched = run.search(plan["strategy"], plan["size"])
                reason = rounds[-1]["decision"] = "searched"
                break
            fresh = run.sample(min(self.round_size, plan["extra"]))
            samples += fresh

        chosen, chosen_by = self._choose(run, belief, best, plan["strategy"], searched)
        group = belief.group_of(chosen) if chosen is not None else None
        size = {"n": len(samples), "probe": min(self.probe_size, cap), "cap": cap, "rounds": len(rounds)}
        if reason == "searched":
            size["search"] = plan["size"]
        result = run.finish(chosen, belief.votes(), size)
        result.prediction = prediction
        first_plan = rounds[0]["plan"]  # the plan made on the probe's evidence
        result.plan = {
            "strategy": first_plan["strategy"], "size": first_plan["size"],
            "expected_accuracy": first_plan["expected_accuracy"],
            "expected_cost": round(first_plan["expected_cost"], 1),
            "adaptive": True, "chosen_by": chosen_by, "samples": len(samples),
            "probe_size": size["probe"], "probe_strategy": probe_strategy, "probe_tokens": probe_tokens,
            "cap": cap, "target_confidence": target_confidence, "stop_confidence": stop_at,
            "prior_pass_at_1": prediction["pass_at_1"], "prior_strength": self.prior_strength,
            "posterior_pass_at_1": round(belief.posterior.mean, 4), "posterior_difficulty": belief.posterior.difficulty,
            "confidence": _round(belief.confidence(group)), "stop_reason": reason, "rounds": rounds,
        }
        return result

    def _decide(self, posterior: Posterior, confidence: float | None, samples: list[Branch], fresh: list[Branch],
                cap: int, table: StrategyTable, strategies: list[str],
                target_confidence: float | None) -> tuple[str | None, dict]:
        """(why to stop now or None to go on, the plan for the rest)."""
        plan = self.plan(posterior, len(samples), cap, table, strategies, searches=target_confidence is None,
                         min_gain=0.0 if target_confidence is not None else None)
        stop_at = self.settle_confidence if target_confidence is None else target_confidence
        if confidence is not None and confidence >= stop_at:
            return ("settled" if target_confidence is None else "confident"), plan
        if all(b.failed for b in fresh):
            return "failed", plan
        if len(samples) >= cap:
            return "cap", plan
        if target_confidence is None and plan["extra"] == 0:
            return ("hopeless" if posterior.difficulty == "hard" else "enough"), plan
        return None, plan

    def _choose(self, run: AdaptiveRun, belief: Belief, best: int | None, planned: str,
                searched: Branch | None) -> tuple[Branch | None, str]:
        """The final branch and the rule that chose it."""
        if searched is not None:
            return searched, planned
        if best is None:
            return None, self.selection
        if self.selection == "posterior" or planned not in SAMPLING:
            return _best_scored(belief.groups[best]), "posterior"
        answered = [b for g in belief.groups for b in g]
        if planned == "best_of_n":
            return _best_scored(answered), planned
        weights = None if planned == "majority" else [b.score or 0.0 for b in answered]
        top = run.vote(answered, weights)[0]
        return _best_scored([run.branches[i] for i in top.branches]), planned

    def forced(self, problem: str, strategy: str, budget: int, endpoint=None, scorer: Scorer | None = None,
               pass_at_1: float | None = None) -> tuple[dict, dict]:
        """plan and prediction of a solve with a forced strategy: the table's expectation for it."""
        prediction = self.prediction(problem, endpoint, pass_at_1)
        table = self.table_for(prediction["policy"], scorer)
        plan = forced_plan(problem, strategy, budget)[0]
        if strategy in table.strategies:
            plan["expected_accuracy"] = round(float(table.accuracy(strategy, prediction["pass_at_1"], budget)), 4)
            plan["expected_cost"] = round(table.expected_cost(strategy, budget).tokens, 1)
        return plan, prediction


def forced_plan(problem: str, strategy: str, budget: int, planner: AdaptivePlanner | None = None, endpoint=None,
                scorer: Scorer | None = None, pass_at_1: float | None = None) -> tuple[dict, dict | None]:
    """(plan, prediction) of a solve with a forced strategy: expectations and prediction only with a planner."""
    if planner is not None:
        return planner.forced(problem, strategy, budget, endpoint, scorer, pass_at_1)
    return {"strategy": strategy, "size": budget, "expected_accuracy": None, "expected_cost": None,
            "adaptive": False}, None


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


_DEFAULT: AdaptivePlanner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_planner() -> AdaptivePlanner:
    """One shared AdaptivePlanner with the defaults (its predictors load once per process)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = AdaptivePlanner()
        return _DEFAULT


def adaptive(s, problem: str, budget: int, config: SolveConfig | None = None, scorer: Scorer | None = None,
             planner: AdaptivePlanner | None = None, max_budget: int | None = None,
             target_confidence: float | None = None, pass_at_1: float | None = None) -> SolveResult:
    if isinstance(s, TracerProgramState):
        raise StopTracing()  # run_batch's prefix tracing: our prompt starts with arguments
    planner = planner or default_planner()
    planner._check_target(target_confidence)
    planner.cap(budget if isinstance(budget, int) else 1, max_budget)
    run = AdaptiveRun(s, problem, budget, config, scorer)
    run.open()
    try:
        return planner.execute(run, max_budget, target_confidence, pass_at_1)
    finally:
        run.release()


adaptive_program = sgl.function(adaptive)


def run_adaptive(s, problem: str, budget: int, config: SolveConfig | None = None, scorer: Scorer | None = None,
                 planner: AdaptivePlanner | None = None, *, max_budget: int | None = None,
                 target_confidence: float | None = None, pass_at_1: float | None = None) -> SolveResult:
    """The adaptive program on the state `s` of your own SGLang program (its backend must be an Endpoint):
    writes the problem as a user turn and the chosen solution as the assistant turn, sets s["answer"]."""
    return adaptive(s, problem, budget, config, scorer, planner, max_budget, target_confidence, pass_at_1)
