"""Whether the rest of a vote could change its winner (planner.belief.lead): the simulation agrees with the exact
beta-binomial answer where there is one, a lead the remaining votes cannot overturn holds for sure, and the
probability moves the way evidence should move it."""

import pytest
from scipy.stats import betabinom

from planner.belief.lead import lead_holds


def exact_two_groups(a: int, b: int, remaining: int, prior: float) -> float:
    """Two groups, every later sample voting and none with a new answer: the leader's share is Beta(a + prior,
    b + prior), its future votes beta-binomial, and it holds while a + x > b + (remaining - x)."""
    law = betabinom(remaining, a + prior, b + prior)
    return float(sum(law.pmf(x) for x in range(remaining + 1) if a + x > b + remaining - x))


@pytest.mark.parametrize("a, b, remaining", [(2, 1, 4), (3, 1, 6), (4, 2, 10), (5, 1, 24), (1, 1, 3)])
def test_it_agrees_with_the_exact_answer(a, b, remaining):
    simulated = lead_holds([a, b], remaining, voted=10**6, cut=0, prior=0.5, new_answer=1e-9)
    assert simulated == pytest.approx(exact_two_groups(a, b, remaining, 0.5), abs=0.025)


def test_a_lead_the_rest_cannot_overturn_holds_for_sure():
    assert lead_holds([5, 1], 3) == 1.0 and lead_holds([6.0, 1.5, 0.5], 4) == 1.0
    assert lead_holds([2, 1], 0) == 1.0 and lead_holds([2, 2], 0) == 0.0 and lead_holds([3], 0) == 1.0
    assert lead_holds([], 5) == 0.0 and lead_holds([0.0], 5) == 0.0
    assert lead_holds([1, 1], 2) < 0.5  # a tie counts against the leader


def test_it_moves_as_evidence_should():
    assert lead_holds([3, 1], 4) < lead_holds([3, 1], 2) < lead_holds([3, 1], 1)  # fewer votes to come
    assert lead_holds([2, 1], 6) < lead_holds([4, 1], 6) < lead_holds([8, 1], 6)  # a larger lead
    # later traces mostly cut: fewer of the remaining will vote
    assert lead_holds([3, 1], 8, voted=1, cut=9) > lead_holds([3, 1], 8, voted=9, cut=1)
    assert lead_holds([3, 1], 8, new_answer=5.0) > lead_holds([3, 1], 8, new_answer=0.1)  # answers scatter
    assert lead_holds([3, 2, 1], 5) == lead_holds([1, 3, 2], 5)  # reproducible, order-free
