"""Votes: groups of equivalent answers with their weight, ranked without regard to sample order."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass
class Vote:
    """One group of equivalent answers."""

    answer: str  # the group's most frequent written form (ties: the smallest string)
    branches: list[int]
    score: float  # branch count (majority) or summed / best reward or weight

    def to_dict(self) -> dict:
        return asdict(self)


class Grouping(list):
    """Group labels (a list of int | None) that also say whether every comparison was made: `complete` is
    False when the call's time limit ran out and the remaining answers were grouped by exact form only."""

    def __init__(self, labels: Sequence[int | None], complete: bool = True) -> None:
        super().__init__(labels)
        self.complete = complete


class VoteList(list):
    """Votes, best first (a list of Vote), with the `complete` flag of the grouping they came from."""

    def __init__(self, votes: Sequence[Vote], complete: bool = True) -> None:
        super().__init__(votes)
        self.complete = complete


REDUCTIONS = ("sum", "max")


def most_common_form(forms: Iterable[str]) -> str:
    """The most frequent of these written forms, ties to the smallest: the same whatever their order."""
    counts = Counter(forms)
    return min(counts, key=lambda form: (-counts[form], form))


def tally(answers: Sequence[str | None], grouping: Grouping, weights: Sequence[float] | None = None,
          ids: Sequence[int] | None = None, reduce: str = "sum") -> VoteList:
    """Votes from group labels: summed (or best) weight, 1 per answer by default. Ranked by score, then by
    size, then by a hash of the group's answer text, so equal votes rank the same whatever the sample order
    and a tie is a fair coin, not a preference for smaller or shorter answers."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, not {reduce!r}")
    weights = [1.0] * len(answers) if weights is None else [float(w) for w in weights]
    ids = list(range(len(answers))) if ids is None else list(ids)
    if not len(weights) == len(ids) == len(answers):
        raise ValueError(f"{len(answers)} answers, {len(weights)} weights and {len(ids)} ids")
    members: dict[int, list[int]] = {}
    for index, label in enumerate(grouping):
        if label is not None:
            members.setdefault(label, []).append(index)
    votes = []
    for indexes in members.values():
        answer = most_common_form(answers[i] for i in indexes)
        scores = [weights[i] for i in indexes]
        votes.append(Vote(answer=answer, branches=[ids[i] for i in indexes],
                          score=max(scores) if reduce == "max" else math.fsum(scores)))  # fsum: exact, so order-free
    votes.sort(key=lambda v: (-v.score, -len(v.branches), tie_key(v.answer), v.answer))
    return VoteList(votes, grouping.complete)


def tie_key(answer: str) -> bytes:
    """Where an answer ranks among equal votes: a stable hash of its text. Ranking ties by the text itself
    would favour answers that sort first, and nothing makes wrong answers sort after right ones as often as
    before them (the stand-in server's mostly do: 64% on MATH-500), so a tie would stop being a coin flip."""
    return hashlib.blake2b(answer.encode("utf-8", "surrogatepass"), digest_size=8).digest()
