"""The belief about one problem read from its branches: their answers grouped by equivalence, the evidence they
carry (reward scores, or a long-thinking policy's own trace confidence), and the posterior over which group is
right (planner.belief). The adaptive program decides with it; online DeepConf asks it whether more traces are
worth their tokens."""

from __future__ import annotations

from planner.belief.evidence import ConfidenceEvidence, RewardEvidence
from planner.belief.posterior import BetaPrior, Posterior, update
from planner.belief.value import VoteState
from planner.grading import Vote, shared_grader
from sglang_plugin.programs.result import Branch
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
        sizes = [len(g) for g in self.groups]
        self.posterior: Posterior = update(prior, sizes, ratios, unanswered, alpha)
        self.state = VoteState(prior, alpha, tuple(sizes), tuple(ratios), unanswered,
                               tuple(len(unscored(group)) for group in self.groups))

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


def unscored(branches: list[Branch]) -> list[Branch]:
    """One branch per distinct text not yet scored (a repeated text would be scored the same)."""
    seen: dict[str, Branch] = {}
    for branch in branches:
        if branch.score is None and not branch.failed and branch.answer is not None:
            seen.setdefault(branch.text, branch)
    return list(seen.values())
