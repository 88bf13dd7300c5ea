"""What more evidence is worth on one problem (planner.belief.value): the simulated belief agrees with the exact
update, the value of one more sample matches exact enumeration of what it can show, and the value behaves as
a value of information should (never negative, zero when the choice cannot change, largest on a split)."""

import numpy as np
import pytest

from planner.adaptive import worth_sampling
from planner.belief.posterior import WRONG_ANSWER_CONCENTRATION as ALPHA
from planner.belief.posterior import BetaPrior, update
from planner.belief.value import SimulatedEvidence, VoteState, sampling_gains, scoring_gain

STATES = [(0.5, [1, 1]), (0.8, [2]), (0.3, [1, 1, 1]), (0.5, [2, 1]), (0.1, [1, 1, 1, 1]), (0.6, [3, 3])]


def state(p0: float, sizes: list[int], unanswered: int = 0, ratios=None) -> VoteState:
    return VoteState(BetaPrior(p0), ALPHA, tuple(sizes), tuple(ratios or [0.0] * len(sizes)), unanswered,
                     tuple(sizes))


def exact_gain_of_one_sample(p0: float, sizes: list[int]) -> float:
    """E[max P' - P'(choice)] over what one more sample can show: each existing group or a new one, with its
    predictive probability under every hypothesis (right with the hypothesis' mean pass@1, else a wrong answer
    by the Chinese restaurant process)."""
    prior = BetaPrior(p0)
    now = update(prior, sizes, alpha=ALPHA)
    w, groups, k, answered = np.array(now.weights), len(sizes), sum(sizes), sum(sizes)
    choice = int(np.argmax(w[:-1]))
    gain = 0.0
    for outcome in range(groups + 1):  # groups + 1: a new answer
        chance = 0.0
        for h in range(groups + 1):
            own = sizes[h] if h < groups else 0
            right = (prior.a + own) / (prior.a + prior.b + k)
            wrong_mass = answered - own + ALPHA
            if outcome < groups:
                chance += w[h] * (right if outcome == h else (1 - right) * sizes[outcome] / wrong_mass)
            else:
                chance += w[h] * ((1 - right) * ALPHA / wrong_mass + (right if h == groups else 0.0))
        after = list(sizes) + ([1] if outcome == groups else [])
        if outcome < groups:
            after[outcome] += 1
        p = np.array(update(prior, after, alpha=ALPHA).weights[:-1])
        gain += chance * (p.max() - p[choice])
    return gain


@pytest.mark.parametrize("p0,sizes", STATES)
def test_the_vectorised_belief_is_the_exact_update(p0, sizes):
    for unanswered in (0, 2):
        ratios = [0.5 * j - 0.3 for j in range(len(sizes))]
        expected = update(BetaPrior(p0), sizes, ratios, unanswered, ALPHA).weights
        assert state(p0, sizes, unanswered, ratios).weights() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p0,sizes", STATES)
def test_one_more_sample_is_worth_what_exact_enumeration_says(p0, sizes):
    simulated = sampling_gains(state(p0, sizes), [1], sims=40_000)[0]
    assert simulated == pytest.approx(exact_gain_of_one_sample(p0, sizes), abs=0.004)


def test_value_of_more_samples_grows_with_how_many_and_with_disagreement():
    split, agreed = state(0.5, [1, 1]), state(0.5, [2])
    gains = sampling_gains(split, [1, 2, 4, 8, 16])
    assert np.all(gains >= 0) and np.all(np.diff(gains) > 0)
    assert np.all(sampling_gains(agreed, [2, 4, 8]) < gains[[1, 2, 3]])
    # An easy-looking problem whose two samples agree: two more cannot change the choice.
    assert sampling_gains(state(0.8, [2]), [1, 2])[1] == 0.0


def test_scores_are_worth_something_only_where_they_can_change_the_choice():
    evidence = SimulatedEvidence(2.6, 3.0)  # about Qwen2.5-Math-RM-72B's fit
    assert scoring_gain(state(0.5, [3]), [3], evidence) == 0.0  # one answer: it stays the choice
    split = scoring_gain(state(0.5, [1, 1]), [1, 1], evidence)
    lopsided = scoring_gain(state(0.5, [4, 1]), [4, 1], evidence)
    assert split > 0.1 > lopsided >= 0.0
    # Scored samples are worth more than unscored ones.
    plain, scored = sampling_gains(state(0.5, [1, 1]), [2]), sampling_gains(state(0.5, [1, 1]), [2], evidence)
    assert scored[0] > plain[0]


def test_same_state_same_value():
    a = sampling_gains(state(0.4, [2, 1, 1]), [2, 4])
    b = sampling_gains(state(0.4, [2, 1, 1]), [2, 4])
    assert np.array_equal(a, b)


def test_a_shorter_horizon_is_valued_by_the_same_draws():
    """Online DeepConf values a belief state once for every horizon up to the traces left and reuses it as
    traces are cut: that holds only if the gains of the first m samples do not depend on how far the simulation
    goes."""
    evidence = SimulatedEvidence(0.74, 3.0)  # trace confidence at the adaptive solver's assumed AUROC, 0.7
    long = sampling_gains(state(0.3, [2, 1, 1], ratios=[0.3, -0.2, 0.1]), range(1, 13), evidence)
    short = sampling_gains(state(0.3, [2, 1, 1], ratios=[0.3, -0.2, 0.1]), [1, 2, 4, 5], evidence)
    assert np.allclose(long[[0, 1, 3, 4]], short, rtol=0, atol=1e-12)


def test_more_samples_are_worth_buying_only_above_their_price():
    gains = [0.004, 0.007, 0.009, 0.012, 0.014, 0.015]  # what 1 to 6 more samples would add
    assert worth_sampling(gains, 0.0025)  # one more: 0.004 > 0.0025
    assert not worth_sampling(gains, 0.0045)  # no horizon buys more than it costs
    assert worth_sampling([0.0, 0.0, 0.0, 0.05], 0.01)  # only the longest horizon pays: still worth it
    assert not worth_sampling([], 0.0)  # nothing left to draw
