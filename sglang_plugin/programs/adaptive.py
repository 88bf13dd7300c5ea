"""The adaptive program: probe a problem with a few samples, update the belief about it, and buy more evidence
(samples, reward-model scores, or one tree search) only while what it is expected to add to the accuracy is
worth its compute. The rules are planner.adaptive's; this module draws and scores the samples, groups their
answers into the belief, measures what each action costs on this problem, and records every round.

`budget` is the samples to spend per problem on average; the per-problem cap is the adaptive config's spread
times that (or the planning's max_budget), counted in samples' compute: a reward-model read of a sample counts
at its price in policy samples (planner.adaptive), so scores never ride free. One unit is one plain sample of
this problem, as the probe measured its tokens (a budget in tokens, Planning.budget_tokens, is set again every
round in samples of this problem's average length so far). Every sample paid for stays in the final choice, and
the result's cost is everything the servers reported, probe included.
"""

from __future__ import annotations

import math
from dataclasses import replace

from planner.adaptive import Option, Prices, decide, options, simulated
from planner.planning.table import StrategyTable
from planner.records import AdaptiveRound, AdaptiveTrace, PlanRecord, RoundPlan
from planner.strategies import REGISTRY
from sglang_plugin.programs.belief import Belief, unscored
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun


def _best_scored(branches: list[Branch]) -> Branch:
    return max(branches, key=lambda b: (b.score if b.score is not None else -math.inf, -b.id))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Sampler:
    """Draws and scores samples for the adaptive program, and measures what its actions cost on this problem in
    samples' compute: one unit is the tokens one sample generated on average; a reward token weighs
    `reward_weight` policy tokens."""

    def __init__(self, run: SearchRun, streamed: bool, reward_weight: float) -> None:
        self.run, self.streamed, self.reward_weight = run, streamed, reward_weight
        self.samples: list[Branch] = []
        self.scored_texts = 0
        self.prompt_tokens = 0.0

    def draw(self, count: int, scored: bool) -> list[Branch]:
        """`count` more independent samples, run to the end (and scored when `scored`)."""
        run = self.run
        branches = run.spawn(count)
        if self.streamed:
            run.stream_rollouts(branches)
        else:
            run.rollouts(branches)
        if not self.samples:  # the probe: what one request's prompt costs, to estimate a reward read
            cost = run.ledger.snapshot()
            self.prompt_tokens = cost.prompt_tokens / max(cost.requests, 1)
        self.samples += branches
        if scored:
            self.score(branches)
        for branch in branches:
            run.trajectory_score(branch)
        return branches

    def score(self, branches: list[Branch]) -> None:
        """Score each distinct unscored text among `branches` once; repeats of a text share its score."""
        todo = unscored(branches)
        self.run.score_final(todo)
        self.scored_texts += len(todo)
        by_text = {b.text: b for b in todo}
        for branch in branches:
            source = by_text.get(branch.text)
            if source is not None and branch.score is None and not branch.failed:
                branch.step_scores = list(source.step_scores)
            self.run.trajectory_score(branch)

    @property
    def unit_tokens(self) -> float:
        """Tokens of one sample on this problem: what one unit of the budget buys."""
        return max(self.run.ledger.snapshot().completion_tokens / max(len(self.samples), 1), 1.0)

    def spent(self) -> float:
        """Compute spent, in samples: every sample plus the reward model's reads at their price."""
        return len(self.samples) + self.reward_weight * self.run.ledger.snapshot().reward_tokens / self.unit_tokens

    def read_tokens(self) -> float:
        """A reward read of one sample: as measured, else the prompt and one sample."""
        if self.scored_texts:
            return self.run.ledger.snapshot().reward_tokens / self.scored_texts
        return self.prompt_tokens + self.unit_tokens

    def score_price(self) -> float:
        return self.reward_weight * self.read_tokens() / self.unit_tokens


def adaptive(run: SearchRun) -> Selection:
    """Probe, believe, value, buy or stop; then choose. Sets run.plan (with its AdaptiveTrace) and
    run.prediction."""
    planning = run.planning or Planning()
    config = planning.adaptive
    cap = config.cap(run.budget, planning.max_budget)
    target = planning.target_confidence
    prediction = planning.prediction(run.problem, run.served)
    table = planning.table_for(run.served, run.scorer, run.config.search)
    scorer = run.scorer
    evidence = config.evidence_for(planning.reward_model_of(scorer))
    by_confidence = config.confidence_for(scorer is not None, run.policy.thinking is not None)
    prior = config.prior(prediction.pass_at_1)
    stop_at = target if target is not None else config.settle_confidence
    weight = config.pricing_for(table).reward_weight if scorer is not None else 0.0
    can_score = evidence is not None and scorer is not None and not scorer.intrinsic
    searches = [s for s in table.strategies if REGISTRY[s].step_level] if scorer is not None and target is None \
        else []

    sampler = Sampler(run, by_confidence is not None, weight)
    fresh = sampler.draw(min(config.probe_size, cap), scored=False)
    probe_tokens = run.ledger.snapshot().tokens
    rounds: list[AdaptiveRound] = []
    searched: Selection | None = None
    taken: Option | None = None
    while True:
        samples = sampler.samples
        belief = Belief(run, samples, prior, evidence, config.alpha, by_confidence)
        best = belief.best_group()
        confidence = belief.confidence(best)
        unit = sampler.unit_tokens
        budget = planning.budget_for(run.budget, unit)
        if planning.budget_tokens is not None:  # in samples of this problem, as long as its samples have run
            cap = config.cap(budget, planning.max_budget)
        prices = Prices(sampler.score_price() if can_score else None, _search_prices(table, searches, weight))
        room = cap - sampler.spent()
        choices = options(belief.state, belief.posterior, room, config.round_size, prices, table,
                          simulated(evidence) if can_score else None, simulated(by_confidence))
        failed = fresh is not None and all(b.failed for b in fresh)
        reason, taken = decide(config, budget, choices, confidence, failed, belief.posterior, target)
        spent = run.ledger.snapshot().tokens
        rule = "weighted_vote" if sampler.scored_texts else "majority"
        if taken is None:  # stop here: expect what the belief says, at what was spent
            recorded = RoundPlan(rule, len(samples), 0, round(confidence or 0.0, 4), float(spent))
        else:
            recorded = _planned(taken, len(samples), (confidence or 0.0) + taken.gain, spent, unit,
                                sampler.read_tokens(), table)
        rounds.append(AdaptiveRound(len(samples), spent, belief.posterior.summary(), _round(confidence), recorded,
                                    reason or "continue"))
        if reason is not None:
            break
        if taken.search:
            searched = run.stage(_search_body(taken.action), taken.size)
            reason = "searched"
            rounds[-1] = replace(rounds[-1], decision="searched")
            break
        if taken.action == "score":
            sampler.score([b for j in taken.groups for b in belief.groups[j]])
            fresh = None
        else:
            fresh = sampler.draw(min(config.round_size, taken.size), scored=taken.action == "sample_scored")

    samples = sampler.samples
    rule = "weighted_vote" if sampler.scored_texts else "majority"
    planned = taken.action if searched is not None else rule
    chosen, chosen_by = _choose(run, config.selection, belief, best, planned, searched)
    group = belief.group_of(chosen) if chosen is not None else None
    size = {"n": len(samples), "probe": min(config.probe_size, cap), "cap": cap, "rounds": len(rounds)}
    if searched is not None:
        size["search"] = taken.size
    first = rounds[0].plan  # the plan made on the probe's evidence
    trace = AdaptiveTrace(
        chosen_by=chosen_by, budget=budget, samples=len(samples), probe_size=size["probe"], probe_strategy=rule,
        probe_tokens=probe_tokens, cap=cap, target_confidence=target, stop_confidence=stop_at,
        prior_pass_at_1=prediction.pass_at_1, prior_strength=config.prior_strength,
        posterior_pass_at_1=round(belief.posterior.mean, 4), posterior_difficulty=belief.posterior.difficulty,
        confidence=_round(belief.confidence(group)), stop_reason=reason, rounds=tuple(rounds),
        search=taken.action if searched is not None else None)
    run.plan = PlanRecord(first.strategy, first.size, first.expected_accuracy, first.expected_cost,
                          table.beam_width if REGISTRY[first.strategy].beam_sized else None, trace)
    run.prediction = prediction
    return Selection(chosen, belief.votes(), size)


def _planned(option: Option, samples: int, expected: float, spent: int, unit: float, read: float,
             table: StrategyTable) -> RoundPlan:
    """The round's plan as recorded: the rule it leads to, the size after it, the samples it draws, the
    accuracy expected after it, and tokens spent so far plus its own."""
    if option.search:
        tokens = option.size * sum(table.cost.per_unit(option.action)) * unit / table.sample_tokens()
        return RoundPlan(option.action, option.size, option.size, round(expected, 4), round(spent + tokens, 1))
    scored = option.size if option.scores else 0
    strategy = "weighted_vote" if option.scores else "majority"
    return RoundPlan(strategy, samples + option.draws, option.draws, round(expected, 4),
                     round(spent + option.draws * unit + scored * read, 1))


def _search_prices(table: StrategyTable, searches: list[str], weight: float) -> dict[str, float]:
    """Each search's compute per unit of size, in samples: the table's policy and reward tokens per unit, the
    reward tokens at their weight, over the table's tokens of one sample."""
    prices = {}
    for name in searches:
        policy, reward = table.cost.per_unit(name)
        prices[name] = (policy + weight * reward) / table.sample_tokens()
    return prices


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
