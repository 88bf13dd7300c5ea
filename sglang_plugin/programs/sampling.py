"""Strategies that sample whole solutions independently and then choose: cot, majority (self-consistency),
best_of_n and weighted_vote. Branches run to the end on their own (no lock step); only the choice waits
for all of them."""

from __future__ import annotations

from sglang_plugin.programs.result import Selection
from sglang_plugin.programs.search_run import SearchRun


def cot(run: SearchRun) -> Selection:
    """One chain of thought, whatever the budget."""
    branch = run.spawn(1)[0]
    run.rollout(branch)
    chosen = branch if branch.answer is not None and not branch.failed else None
    votes = run.vote([chosen], [1.0]) if chosen is not None else []
    return Selection(chosen, votes, {"n": 1})


def majority(run: SearchRun) -> Selection:
    """Self-consistency (Wang et al., arXiv 2203.11171): the most frequent answer among N samples."""
    branches = run.spawn(run.budget)
    run.rollouts(branches)
    answered = run.answered(branches)
    votes = run.vote(answered)
    chosen = run.branches[votes[0].branches[0]] if votes else None
    return Selection(chosen, votes, {"n": run.budget})


def best_of_n(run: SearchRun) -> Selection:
    """The sample with the best trajectory score (step scores aggregated by config.aggregation)."""
    branches = run.spawn(run.budget)
    run.rollouts(branches)
    run.score_final(branches)
    chosen, votes = run.pick_by_score(branches)
    return Selection(chosen, votes, {"n": run.budget, "aggregation": run.config.search.aggregation})


def weighted_vote(run: SearchRun) -> Selection:
    """The answer whose group of equivalent answers has the largest summed trajectory score."""
    branches = run.spawn(run.budget)
    run.rollouts(branches)
    run.score_final(branches)
    scored = [b for b in run.answered(branches) if run.trajectory_score(b) is not None]
    votes = run.vote(scored, [b.score for b in scored])
    chosen = None
    if votes:
        winners = [run.branches[i] for i in votes[0].branches]
        chosen = max(winners, key=lambda b: (b.score, -b.id))
    return Selection(chosen, votes, {"n": run.budget, "aggregation": run.config.search.aggregation})
