"""The adaptive program: probe a problem with a few samples, update the belief about it, plan the rest of the
budget, and stop as soon as more samples are not worth it. The rules are planner.adaptive's; this module draws
the samples, groups their answers into the belief, and records every round.

`budget` is the samples to spend per problem on average; the per-problem cap is the adaptive config's spread
times that (or the planning's max_budget). Every sample paid for stays in the final choice, and the result's
cost is everything the servers reported, probe included.
"""

from __future__ import annotations

import math
from dataclasses import replace

from planner.adaptive import continuations, decide, probe_strategy
from planner.belief.evidence import ConfidenceEvidence, RewardEvidence
from planner.belief.posterior import BetaPrior, Posterior, update
from planner.grading import Vote, shared_grader
from planner.records import AdaptiveRound, AdaptiveTrace, PlanRecord, RoundPlan
from planner.strategies import REGISTRY
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun


class Belief:
    """The answer groups of the samples so far, the posterior over them, and the answer it favours. Evidence is
    the reward model's scores, or (no reward model, a long-thinking policy) the traces' own confidence."""

    def __init__(self, run: SearchRun, samples: list[Branch], prior: BetaPrior, evidence: RewardEvidence | None,
                 alpha: float, confidence: ConfidenceEvidence | None = None) -> None:
        self.grading = run.config.grading
        answered = run.answered(samples)
        unanswered = sum(1 for b in samples if b.answer is None and not b.failed)
        self.groups = [[run.branches[i] for i in vote.branches] for vote in run.vote(answered)]
        if confidence is not None:
            by_id = dict(zip((b.id for b in answered), confidence.log_ratios([b.confidence for b in answered])))
            ratios = [sum(by_id[b.id] for b in group) for group in self.groups]
        else:
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
        grader = shared_grader(self.grading)
        for j, group in enumerate(self.groups):
            if any(b is branch for b in group) or grader.equivalent(group[0].answer, branch.answer):
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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def adaptive(run: SearchRun) -> Selection:
    """Probe, believe, plan, repeat; then choose. Sets run.plan (with its AdaptiveTrace) and run.prediction."""
    planning = run.planning or Planning()
    config = planning.adaptive
    cap = config.cap(run.budget, planning.max_budget)
    target = planning.target_confidence
    prediction = planning.prediction(run.problem, run.served)
    table = planning.table_for(run.served, run.scorer, run.config.search)
    scored = run.scorer is not None
    strategies = continuations(table, scored)
    evidence = config.evidence_for(planning.reward_model_of(run.scorer))
    by_confidence = config.confidence_for(scored, run.policy.thinking is not None)
    prior = config.prior(prediction.pass_at_1)
    stop_at = target if target is not None else config.settle_confidence
    sampling_rule = probe_strategy(scored)

    samples = run.sample(min(config.probe_size, cap), streamed=by_confidence is not None)
    probe_tokens = run.ledger.snapshot().tokens
    # The table's relative costs, in the tokens the probe actually cost per sample.
    tokens_per_unit = probe_tokens / len(samples) / max(sum(table.cost.per_unit(sampling_rule)), 1e-9)
    rounds: list[AdaptiveRound] = []
    searched: Selection | None = None
    fresh = samples
    while True:
        belief = Belief(run, samples, prior, evidence, config.alpha, by_confidence)
        best = belief.best_group()
        confidence = belief.confidence(best)
        reason, plan = decide(config, belief.posterior, confidence, len(samples), all(b.failed for b in fresh), cap,
                              table, strategies, target)
        spent = run.ledger.snapshot().tokens
        if reason is None:
            recorded = RoundPlan(plan.strategy, plan.size, plan.extra, round(plan.expected_accuracy, 4),
                                 round(spent + plan.table_tokens * tokens_per_unit, 1))
        else:  # the plan is to stop here: expect what the belief says, at what was spent
            expected = plan.expected_accuracy if confidence is None else confidence
            recorded = RoundPlan(plan.strategy if plan.extra == 0 else sampling_rule, len(samples), 0,
                                 round(expected, 4), float(spent))
        rounds.append(AdaptiveRound(len(samples), spent, belief.posterior.summary(), _round(confidence), recorded,
                                    reason or "continue"))
        if reason is not None:
            break
        if plan.search:
            searched = run.stage(_search_body(plan.strategy), plan.size)
            reason = "searched"
            rounds[-1] = replace(rounds[-1], decision="searched")
            break
        fresh = run.sample(min(config.round_size, plan.extra), streamed=by_confidence is not None)
        samples += fresh

    chosen, chosen_by = _choose(run, config.selection, belief, best, plan.strategy, searched)
    group = belief.group_of(chosen) if chosen is not None else None
    size = {"n": len(samples), "probe": min(config.probe_size, cap), "cap": cap, "rounds": len(rounds)}
    if searched is not None:
        size["search"] = plan.size
    first = rounds[0].plan  # the plan made on the probe's evidence
    trace = AdaptiveTrace(
        chosen_by=chosen_by, budget=run.budget, samples=len(samples), probe_size=size["probe"], probe_strategy=sampling_rule,
        probe_tokens=probe_tokens, cap=cap, target_confidence=target, stop_confidence=stop_at,
        prior_pass_at_1=prediction.pass_at_1, prior_strength=config.prior_strength,
        posterior_pass_at_1=round(belief.posterior.mean, 4), posterior_difficulty=belief.posterior.difficulty,
        confidence=_round(belief.confidence(group)), stop_reason=reason, rounds=tuple(rounds),
        search=plan.strategy if searched is not None else None)
    run.plan = PlanRecord(first.strategy, first.size, first.expected_accuracy, first.expected_cost,
                          table.beam_width if REGISTRY[first.strategy].beam_sized else None, trace)
    run.prediction = prediction
    return Selection(chosen, belief.votes(), size)


def _search_body(strategy: str):
    from sglang_plugin.programs import body_of

    return body_of(strategy)


def _choose(run: SearchRun, selection: str, belief: Belief, best: int | None, planned: str,
            searched: Selection | None) -> tuple[Branch | None, str]:
    """The final branch and the rule that chose it."""
    if searched is not None:
        return searched.chosen, planned
    if best is None:
        return None, selection
    if selection == "posterior" or REGISTRY[planned].step_level:
        return _best_scored(belief.groups[best]), "posterior"
    answered = [b for g in belief.groups for b in g]
    if planned == "best_of_n":
        return _best_scored(answered), planned
    weights = None if planned == "majority" else [b.score or 0.0 for b in answered]
    top = run.vote(answered, weights)[0]
    return _best_scored([run.branches[i] for i in top.branches]), planned
