"""The SGLang-served scorers against the stand-in server over loopback HTTP: an outcome RM behind
/classify, a step-tag PRM read from /generate input logprobs, and self-certainty from the policy's own
top logprobs. Candidates are built from the server's own reference and wrong steps, so each step's true
label is known and the scores can be checked for discrimination, not just shape."""

import pytest
from conftest import FAST, PROBLEMS, sim_stats

from planner.grading import shared_grader
from sglang_plugin import Endpoint, OutcomeRewardScorer, SelfCertaintyScorer, StepTagScorer, solve
from sglang_plugin.sim.server import SimServer
from sglang_plugin.transport.ledger import CostLedger

PROBLEM = PROBLEMS[1]


@pytest.fixture(scope="module")
def server():
    with SimServer(PROBLEMS, seed=4, reward_auroc=0.97, confidence_gap=2.0) as sim:
        yield sim


@pytest.fixture(scope="module")
def labelled(server):
    """Partial solutions as generated (steps end with the delimiter) with their correct-so-far labels:
    the reference path cut at every length, and paths that go wrong at step j."""
    spec = server.reasoner.spec_for(PROBLEM.text)
    right = [next(o for o in opts if o.correct).text for opts in spec.options]
    wrong = [next(o for o in opts if not o.correct).text for opts in spec.options]
    candidates, labels = [], []
    for j in range(spec.num_steps):
        for path, tag in ((right[:j + 1], [True] * (j + 1)), (right[:j] + wrong[j:j + 2], [True] * j + [False] * 2)):
            path = path[:spec.num_steps]
            candidates.append([s + "\n\n" for s in path[:-1]] + [path[-1]])
            labels.append(tag[:len(path)])
    return candidates, labels


def _auroc(scores, labels):
    good = [s for s, ok in zip(scores, labels) if ok]
    bad = [s for s, ok in zip(scores, labels) if not ok]
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


def test_outcome_rm_scores_each_latest_step_in_one_request(server, labelled):
    candidates, labels = labelled
    scorer = OutcomeRewardScorer(server.url, transport=FAST)
    ledger, before = CostLedger(), sim_stats(server)
    scores = scorer.score_last(PROBLEM.text, candidates, ledger)
    after = sim_stats(server)
    assert after["requests"] - before["requests"] == 1 and ledger.cost.requests == 1
    assert after["classify_texts"] - before["classify_texts"] == len(candidates)
    assert all(0 < s < 1 for s in scores)
    assert _auroc(scores, [tag[-1] for tag in labels]) > 0.85
    assert ledger.cost.reward_tokens > 0  # /classify reports no cache hits: every token counted


def test_outcome_rm_scores_every_step_through_prefixes(server, labelled):
    candidates, labels = labelled
    scorer = OutcomeRewardScorer(server.url, transport=FAST, max_batch=16)
    ledger = CostLedger()
    scores = scorer.score_steps(PROBLEM.text, candidates, ledger)
    assert [len(s) for s in scores] == [len(c) for c in candidates]
    prefixes = sum(len(c) for c in candidates)
    assert ledger.cost.requests == -(-prefixes // 16)
    assert _auroc([x for s in scores for x in s], [x for t in labels for x in t]) > 0.85
    last = scorer.score_last(PROBLEM.text, candidates, CostLedger())
    assert [s[-1] for s in scores] == pytest.approx(last)


def test_step_tag_prm_reads_every_step_from_one_generate_call(server, labelled):
    candidates, labels = labelled
    scorer = StepTagScorer.math_shepherd(server.url, transport=FAST)
    ledger, before = CostLedger(), sim_stats(server)
    scores = scorer.score_steps(PROBLEM.text, candidates, ledger)
    middle = sim_stats(server)
    assert middle["requests"] - before["requests"] == 2  # the prefix warm-up, then one batched call
    assert middle["sequences"] - before["sequences"] == 1 + len(candidates)
    assert [len(s) for s in scores] == [len(c) for c in candidates]
    assert all(0 < x < 1 for s in scores for x in s)
    assert _auroc([x for s in scores for x in s], [x for t in labels for x in t]) > 0.85
    # The problem prefix is cached: what the PRM computed is less than what it read.
    read = middle["prompt_tokens"] - before["prompt_tokens"]
    assert middle["cached_tokens"] - before["cached_tokens"] > 0
    assert ledger.cost.reward_tokens == read - (middle["cached_tokens"] - before["cached_tokens"])
    assert scorer.score_last(PROBLEM.text, candidates, CostLedger()) == pytest.approx([s[-1] for s in scores])
    assert sim_stats(server)["requests"] - middle["requests"] == 1  # the warm-up is done once per problem


def test_step_tag_prm_keeps_the_tag_out_of_step_text(server):
    scorer = StepTagScorer.math_shepherd(server.url, transport=FAST)
    text = scorer.format("Problem?", ["We use ки here.\n\n", "So \\boxed{1}."])
    assert text == "Problem? We use  here. ки\nSo \\boxed{1}. ки\n"


def test_self_certainty_prefers_the_policys_confident_trajectories(server):
    scorer = SelfCertaintyScorer(top_k=4)
    result = solve(PROBLEM.text, "best_of_n", 16, Endpoint(server.url, transport=FAST), scorer)
    assert result.cost.reward_tokens == 0  # no reward model
    grouper = shared_grader()
    right = [b.score for b in result.branches if b.answer and grouper.equivalent(b.answer, PROBLEM.answer)]
    wrong = [b.score for b in result.branches if b.answer and not grouper.equivalent(b.answer, PROBLEM.answer)]
    assert right and wrong
    assert _auroc(right + wrong, [True] * len(right) + [False] * len(wrong)) > 0.7
    for branch in result.branches:  # one score for a whole sample (one request), on its last step
        assert len(branch.step_scores) == len(branch.steps) and 0 <= branch.step_scores[-1] < 1
        assert all(s is None for s in branch.step_scores[:-1])


def test_step_tag_prm_recomputes_only_the_latest_step_during_a_search(server, labelled):
    """Step by step, as a search calls it: each call reads logprobs only after the previous step, so the
    PRM computes about one step's tokens, not the whole trajectory again."""
    path = max(labelled[0], key=len)
    scorer = StepTagScorer.math_shepherd(server.url, transport=FAST)
    full = scorer.score_steps(PROBLEM.text, [path], CostLedger())[0]
    fresh = StepTagScorer.math_shepherd(server.url, transport=FAST)
    computed = []
    for k in range(1, len(path) + 1):
        ledger = CostLedger()
        assert fresh.score_last(PROBLEM.text, [path[:k]], ledger) == pytest.approx([full[k - 1]])
        computed.append(ledger.cost.reward_tokens)
    total = fresh._known(fresh.format(PROBLEM.text, path))  # as the server measured it
    # Linear in the trajectory (each token about once, plus one overlap token a call), where asking for
    # every tag's logprobs each time would recompute the whole trajectory at every step.
    assert sum(computed) <= total + 2 * len(path)
    recompute_all = sum(fresh._known(fresh.format(PROBLEM.text, path[:k])) for k in range(1, len(path) + 1))
    assert sum(computed) < recompute_all / 3
