"""The adaptive planner's belief (planner.belief.posterior): the prior strength, how agreement and reward evidence
move it, its bounds, a check of the exact update against simulation of its own generative model, and the
fits of its parameters."""

import math
from itertools import pairwise

import numpy as np
import pytest

from planner.belief.evidence import LOG_RATIO_CLIP, RewardEvidence
from planner.belief.posterior import PRIOR_STRENGTH, BetaPrior, crp_log_probability, fit_prior_strength, update
from planner.errors import InputError


def test_without_samples_the_belief_is_the_prior():
    post = update(BetaPrior(0.7, 2.0), [])
    assert post.weights == (1.0,) and post.samples == 0
    assert post.mean == pytest.approx(0.7)
    assert post.cdf(0.7) == pytest.approx(0.5, abs=0.2) and post.cdf(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("sizes", [[4], [2, 1, 1], [1, 1, 1, 1]])
def test_a_stronger_prior_moves_less(sizes):
    moves = [abs(update(BetaPrior(0.2, s), sizes).mean - 0.2) for s in (0.3, PRIOR_STRENGTH, 3.0, 30.0, 300.0)]
    assert all(a > b for a, b in pairwise(moves))
    assert moves[-1] < 0.02  # a prior worth 300 samples barely notices 4


def test_agreement_raises_confidence_and_pass_at_1():
    prior = BetaPrior(0.5)
    patterns = [[4], [3, 1], [2, 1, 1], [1, 1, 1, 1]]  # four samples, less and less agreement
    posts = [update(prior, sizes) for sizes in patterns]
    top = [p.probability(0) for p in posts]
    assert all(a > b for a, b in pairwise(top))
    means = [p.mean for p in posts]
    assert all(a > b for a, b in pairwise(means))
    assert top[0] > 0.85 and top[-1] < 0.3
    # More samples agreeing: more confidence.
    confidence = [update(prior, [n]).probability(0) for n in (1, 2, 3, 4, 6)]
    assert all(a < b for a, b in pairwise(confidence))


def test_reward_evidence_moves_belief_towards_the_well_scored_answer():
    prior = BetaPrior(0.5)
    plain = update(prior, [2, 2])
    assert plain.probability(0) == pytest.approx(plain.probability(1))
    scored = update(prior, [2, 2], [2.0, -2.0])
    assert scored.probability(0) > plain.probability(0) > scored.probability(1)
    # Good scores on the only answer make it likelier right and the problem likelier easy; bad ones the reverse.
    good, none, bad = (update(prior, [3], [r]) for r in (3.0, 0.0, -3.0))
    assert good.probability(0) > none.probability(0) > bad.probability(0)
    assert good.mean > none.mean > bad.mean


def test_failed_answers_lower_pass_at_1():
    prior = BetaPrior(0.6)
    assert update(prior, [2], unanswered=4).mean < update(prior, [2]).mean
    assert update(prior, [], unanswered=4).mean < prior.mean


def test_wrong_answer_concentration_sets_how_much_agreement_proves():
    # When wrong answers rarely agree (large alpha), two agreeing answers are strong evidence.
    weak = update(BetaPrior(0.3), [2, 1], alpha=0.1).probability(0)
    strong = update(BetaPrior(0.3), [2, 1], alpha=20.0).probability(0)
    assert strong > weak
    assert crp_log_probability([1], 1.5) == pytest.approx(0.0)
    assert math.exp(crp_log_probability([2], 1.5)) == pytest.approx(1 / 2.5)
    assert math.exp(crp_log_probability([1, 1], 1.5)) == pytest.approx(1.5 / 2.5)


@pytest.mark.parametrize("p0", [0.0, 1e-9, 0.5, 1.0])
def test_belief_stays_in_bounds(p0):
    for sizes, ratios, unanswered in (([200], [300.0], 0), ([1] * 50, [-3.0] * 50, 50), ([], None, 500)):
        post = update(BetaPrior(p0), sizes, ratios, unanswered)
        w = np.array(post.weights)
        assert np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
        assert 0.0 <= post.mean <= 1.0
        cdf = [post.cdf(x) for x in np.linspace(0, 1, 11)]
        assert all(a <= b + 1e-12 for a, b in pairwise(cdf)) and cdf[-1] == pytest.approx(1.0)
        assert post.expect(lambda p: np.ones_like(p)) == pytest.approx(1.0, abs=1e-9)
        assert post.expect(lambda p: p) == pytest.approx(post.mean, abs=2e-3)


def test_exact_update_matches_simulation_of_its_model():
    """Draw p from the prior, 4 samples, wrong answers from the CRP; among draws showing answer groups of sizes
    {2, 1, 1}, count how often the pair is right and how often no answer is: the update must agree."""
    rng = np.random.default_rng(0)
    prior, alpha, k = BetaPrior(0.4, 2.0), 1.5, 4
    draws = 60000
    p = rng.beta(prior.a, prior.b, size=draws)
    right = rng.random((draws, k)) < p[:, None]
    pair_right = none_right = seen = 0
    for i in np.flatnonzero(right.sum(axis=1) <= 2):  # three or more right answers cannot show {2, 1, 1}
        tables: list[int] = []  # wrong answers seated by the Chinese restaurant process
        for _ in range(int((~right[i]).sum())):
            weights = np.array(tables + [alpha], dtype=float)
            choice = rng.choice(len(weights), p=weights / weights.sum())
            if choice == len(tables):
                tables.append(1)
            else:
                tables[choice] += 1
        n_right = int(right[i].sum())
        groups = sorted(([n_right] if n_right else []) + tables)
        if groups == [1, 1, 2]:
            seen += 1
            pair_right += n_right == 2
            none_right += n_right == 0
    post = update(prior, [2, 1, 1], alpha=alpha)
    assert seen > 3000
    assert pair_right / seen == pytest.approx(post.probability(0), abs=0.025)
    assert none_right / seen == pytest.approx(post.none_probability, abs=0.025)


def test_prior_strength_fit_recovers_the_truth():
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0.05, 0.95, size=3000)
    for true_strength in (0.7, 5.0):
        rates = rng.beta(true_strength * predicted, true_strength * (1 - predicted))
        successes = rng.binomial(50, rates)
        assert fit_prior_strength(predicted, successes, 50) == pytest.approx(true_strength, rel=0.2)


def test_prior_strength_fit_rejects_bad_input():
    with pytest.raises(InputError, match="successes"):
        fit_prior_strength([0.5, 0.5], [60, 1], 50)
    with pytest.raises(InputError, match="one outcome per prediction"):
        fit_prior_strength([0.5, 0.5], [1], 50)


def test_reward_evidence_is_monotone_clipped_and_fits_binormal_scores():
    evidence = RewardEvidence.from_auroc(0.9, wrong_mean=-0.8, scale=1.5, logit=False)
    xs = np.linspace(-6, 8, 50)
    ratios = [evidence.log_ratio(x) for x in xs]
    assert all(a <= b for a, b in pairwise(ratios)) and ratios[0] < 0 < ratios[-1]
    assert max(abs(r) for r in ratios) == pytest.approx(LOG_RATIO_CLIP)
    assert evidence.log_ratio(None) == 0.0 and evidence.log_ratio(float("nan")) == 0.0
    assert evidence.auroc == pytest.approx(0.9)
    # Fit on scores drawn from that model (as probabilities, the scorer's sigmoid) recovers it.
    rng = np.random.default_rng(2)
    right = rng.random(4000) < 0.6
    raw = -0.8 + 1.5 * (rng.standard_normal(4000) + evidence.separation * right)
    fitted = RewardEvidence.fit(1 / (1 + np.exp(-raw)), right)
    assert fitted.auroc == pytest.approx(0.9, abs=0.015)
    assert fitted.wrong_mean == pytest.approx(-0.8, abs=0.1) and fitted.scale == pytest.approx(1.5, abs=0.1)
    # The shipped Qwen ORM evidence reads the scorer's sigmoid scores: a confident right score counts for.
    orm = RewardEvidence.qwen_orm()
    assert orm.log_ratio(1 / (1 + math.exp(-3.3))) > 1.0 > -1.0 > orm.log_ratio(1 / (1 + math.exp(0.8)))


def test_bad_parameters_are_named():
    with pytest.raises(InputError, match="prior_strength"):
        BetaPrior(0.5, 0.0)
    with pytest.raises(InputError, match="pass_at_1"):
        BetaPrior(1.5)
    with pytest.raises(InputError, match="scale"):
        RewardEvidence(0.0, -1.0, 1.0)
    with pytest.raises(InputError, match="log_ratios"):
        update(BetaPrior(0.5), [1, 1], [0.0])
    with pytest.raises(InputError, match="sizes"):
        update(BetaPrior(0.5), [0])
    with pytest.raises(InputError, match="two right and two wrong"):
        RewardEvidence.fit([0.1, 0.9, 0.8], [False, True, True])
