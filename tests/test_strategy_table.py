"""Strategy tables: curve properties, the published orderings the defaults encode, the cost model, and
calibration files (real JSON files on disk, valid and broken)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from planner.cost import CostModel
from planner.errors import InputError
from planner.planning.calibration import load_calibration
from planner.planning.curves import Curve
from planner.planning.table import StrategyTable
from planner.policies import Policy
from planner.strategies import REGISTRY, planned_strategies

SMALL = "Qwen/Qwen2.5-Math-1.5B-Instruct"
MEDIUM = "Qwen/Qwen2.5-Math-7B-Instruct"
LARGE = Policy("example/Qwen2.5-72B-Instruct", 72.7e9, known=False)  # no large policy is registered
PRM = "Qwen/Qwen2.5-Math-PRM-7B"
STEP_TAG = "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data"
ORM = "Qwen/Qwen2.5-Math-RM-72B"
P = np.linspace(0.0, 1.0, 201)
N = np.arange(1, 257)


def all_tables() -> list[StrategyTable]:
    return [StrategyTable.default(pol, rm) for pol in (SMALL, MEDIUM, LARGE) for rm in (None, PRM, STEP_TAG, ORM)]


def test_every_curve_starts_at_pass_at_1_and_stays_a_probability():
    for table in all_tables():
        for name in table.strategies:
            acc = table.accuracy(name, P[:, None], N[None, :])
            np.testing.assert_allclose(acc[:, 0], P, atol=1e-12)
            assert np.all((acc >= -1e-12) & (acc <= 1 + 1e-12)), (table.policy.name, name)


def test_every_curve_but_majority_rises_and_is_concave_in_size():
    for table in all_tables():
        for name in table.strategies:
            if name == "majority":
                continue
            acc = table.accuracy(name, P[:, None], N[None, :])
            step = np.diff(acc, axis=1)
            assert step.min() >= -1e-12, (table.policy.name, name)
            assert np.diff(step, axis=1).max() <= 1e-12, (table.policy.name, name)


def test_curves_are_continuous_in_p_across_bin_edges():
    for table in all_tables():
        for name in table.strategies:
            for edge in (0.1, 0.5):
                below, above = table.accuracy(name, np.array([edge - 1e-9, edge]), 64)
                assert abs(above - below) < 1e-3, (table.policy.name, name, edge)


def test_perfect_verifier_curve_is_pass_at_n():
    curve = Curve()
    np.testing.assert_allclose(curve.accuracy(P[:, None], N[None, :]), 1 - (1 - P[:, None]) ** N[None, :],
                               atol=1e-12)


def test_majority_converges_to_the_plurality_answer():
    table = StrategyTable.default(SMALL)
    # easy: the correct answer is the plurality, so many samples all but guarantee it
    assert table.accuracy("majority", 0.75, 256) > 0.99
    # hard: wrong answers gather on one value, so voting is worse than one sample
    assert table.accuracy("majority", 0.08, 64) < 0.08
    # and in between it helps, but stays below best-of-N with a perfect verifier
    mid = table.accuracy("majority", 0.4, 16)
    assert 0.4 < mid < 1 - 0.6 ** 16


def test_without_a_reward_model_only_cot_and_majority_are_offered():
    table = StrategyTable.default(SMALL)
    assert table.strategies == ("cot", "majority")
    with pytest.raises(InputError, match="not available with no reward model"):
        table.accuracy("best_of_n", 0.5, 4)


def test_outcome_reward_models_do_not_drive_step_level_search():
    table = StrategyTable.default(SMALL, ORM)
    assert table.strategies == ("cot", "majority", "best_of_n", "weighted_vote")
    with pytest.raises(InputError, match="beam_search"):
        table.options(["beam_search"])
    assert set(StrategyTable.default(SMALL, PRM).strategies) == set(planned_strategies()) - {"deepconf"}


def test_deepconf_is_planned_for_thinking_policies_only():
    thinking = StrategyTable.default("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    assert thinking.strategies == ("cot", "majority", "deepconf")
    assert "deepconf" not in StrategyTable.default(SMALL).strategies
    # its curve is majority's (a floor) at a share of the tokens
    assert thinking.accuracy("deepconf", 0.4, 16) == pytest.approx(thinking.accuracy("majority", 0.4, 16))
    share = thinking.expected_cost("deepconf", 16).completion_tokens / \
        thinking.expected_cost("majority", 16).completion_tokens
    assert share == pytest.approx(REGISTRY["deepconf"].token_share) and share < 1


def test_unknown_names_are_input_errors():
    with pytest.raises(InputError, match="unknown strategy 'mcts'"):
        StrategyTable.default(SMALL).accuracy("mcts", 0.5, 4)
    with pytest.raises(InputError, match="unknown policy"):
        StrategyTable.default("gpt-5")
    with pytest.raises(InputError, match="unknown reward model"):
        StrategyTable.default(SMALL, "some/rm")


def test_every_default_has_a_source():
    for klass in ("small", "medium", "large"):
        for name in planned_strategies():
            default = REGISTRY[name].curves[klass]
            assert len(default.source) > 30
    rough = [d for name in planned_strategies() if name not in ("cot", "majority", "deepconf")
             for d in REGISTRY[name].curves.values()]
    assert rough and all("rough" in d.source for d in rough)
    assert all("as a floor" in d.source for d in REGISTRY["deepconf"].curves.values())


def bin_accuracy(table: StrategyTable, strategy: str, bin_name: str, size: int) -> float:
    rows = table.by_bin(sizes=(size,))
    return next(r["accuracy"] for r in rows if r["bin"] == bin_name and r["strategy"] == strategy)


def test_defaults_reproduce_the_cited_orderings_at_equal_size():
    small, medium = StrategyTable.default(SMALL, PRM), StrategyTable.default(MEDIUM, PRM)
    large = StrategyTable.default(LARGE, PRM)
    # 2502.06703: small policies, beam search on hard problems, best-of-N on easy ones
    assert bin_accuracy(small, "beam_search", "hard", 16) > bin_accuracy(small, "best_of_n", "hard", 16)
    assert bin_accuracy(small, "best_of_n", "easy", 64) > bin_accuracy(small, "beam_search", "easy", 64)
    # 2408.03314: beam search beats best-of-N on medium problems at small budgets
    assert bin_accuracy(small, "beam_search", "medium", 4) > bin_accuracy(small, "best_of_n", "medium", 4)
    # ... and over-optimises easy ones: its edge at small size turns into a deficit at large size
    edge = [bin_accuracy(small, "beam_search", "easy", n) - bin_accuracy(small, "best_of_n", "easy", n)
            for n in (4, 256)]
    assert edge[0] > edge[1] and edge[1] < 0
    # HF blog: DVTS beats beam search at large budgets on easy and medium problems
    for bin_name in ("easy", "medium"):
        assert bin_accuracy(medium, "dvts", bin_name, 256) > bin_accuracy(medium, "beam_search", bin_name, 256)
    # 2502.06703: 7B-32B policies, beam search for hard problems
    assert bin_accuracy(medium, "beam_search", "hard", 16) > bin_accuracy(medium, "dvts", "hard", 16)
    # 2502.06703: the largest policies do best with best-of-N at every difficulty
    for bin_name in ("easy", "medium", "hard"):
        for n in (16, 64, 256):
            bon = bin_accuracy(large, "best_of_n", bin_name, n)
            assert all(bon >= bin_accuracy(large, s, bin_name, n) for s in ("beam_search", "dvts", "particle_filter"))


def test_a_weaker_reward_model_lowers_every_reward_driven_curve():
    strong, weak = StrategyTable.default(SMALL, PRM), StrategyTable.default(SMALL, STEP_TAG)
    for name in ("best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter"):
        assert np.all(weak.accuracy(name, P[1:-1], 32) < strong.accuracy(name, P[1:-1], 32))


def test_cost_model_in_tokens():
    cost = CostModel(tokens_per_sample=600, prompt_tokens=100, steps_per_solution=8)
    assert cost.expected("cot", 1).tokens == 700
    assert cost.expected("majority", 8).tokens == 100 + 8 * 600
    # best-of-N: the reward model reads the problem once and each candidate once
    assert cost.expected("best_of_n", 8).tokens == 100 + 8 * 600 + 100 + 8 * 600
    # step search without a caching reward server re-reads each partial solution every step
    assert cost.expected("beam_search", 8).tokens == 100 + 8 * 600 + 100 + 8 * 600 * 4.5
    cached = CostModel(tokens_per_sample=600, prompt_tokens=100, rescore_cached=True)
    assert cached.expected("beam_search", 8).tokens == 100 + 8 * 600 + 100 + 8 * 600
    spent = cost.expected("best_of_n", 4, prompt_tokens=50)
    assert spent.flops(1.5e9, 7e9) == 2 * (1.5e9 * (50 + 2400) + 7e9 * (50 + 2400))
    assert spent.cached_tokens == 50 * 3 and spent.requests == 4


def test_step_tag_reward_models_are_assumed_to_cache_rescoring():
    assert StrategyTable.default(SMALL, STEP_TAG).cost.rescore_cached
    assert not StrategyTable.default(SMALL, PRM).cost.rescore_cached


def test_sizes_respect_each_strategy():
    table = StrategyTable.default(SMALL, PRM)
    assert table.sizes("cot") == (1,)
    assert min(table.sizes("majority")) == 3
    assert all(n % 4 == 0 for n in table.sizes("beam_search") + table.sizes("dvts"))
    assert min(table.sizes("dvts")) == 8


def test_beam_width_is_the_search_config_s_and_reaches_the_plans():
    """One home for the beam width: the table built with the run's search config offers its multiples and writes
    it into plans (it was a constant in plans and a config field in runs, which could disagree)."""
    from planner.planning.allocation import Budget, plan_problem

    table = StrategyTable.default(SMALL, PRM, beam_width=8)
    assert min(table.sizes("beam_search")) == 8 and all(n % 8 == 0 for n in table.sizes("dvts"))
    plan = plan_problem(0.3, table, Budget(256), strategies=["beam_search"])  # a PRM re-read per step costs FLOPs
    assert plan.beam_width == 8 and plan.to_dict()["beam_width"] == 8


def test_best_by_bin_spends_more_only_to_gain():
    table = StrategyTable.default(SMALL, PRM)
    rows = table.best_by_bin((1, 2, 4, 8, 16, 32, 64))
    for bin_name in ("easy", "medium", "hard"):
        mine = [r for r in rows if r["bin"] == bin_name]
        assert mine[0]["strategy"] == "cot"
        accs = [r["accuracy"] for r in mine]
        assert accs == sorted(accs)
    text = table.format_best_by_bin((1, 8))
    assert "medium" in text and "cot@1" in text


def test_bin_table_averages_over_the_bins_p():
    table = StrategyTable.default(SMALL)
    rows = {(r["bin"], r["strategy"], r["size"]): r["accuracy"] for r in table.by_bin(sizes=(1, 8))}
    assert rows[("easy", "cot", 1)] == pytest.approx(0.75)
    assert rows[("hard", "cot", 1)] == pytest.approx(0.05)
    sample = np.array([0.2, 0.3, 0.6, 0.9])
    given = {(r["bin"], r["strategy"]): r["accuracy"] for r in table.by_bin(sizes=(1,), p=sample)}
    assert given[("medium", "cot")] == pytest.approx(0.25) and ("hard", "cot") not in given


# ------------------------------------------------------------------------------------------ calibration

def point(**overrides) -> dict:
    base = {"policy": SMALL, "reward_model": PRM, "strategy": "beam_search", "bin": "medium", "size": 16,
            "accuracy": 0.6, "tokens": 50_000.0, "problems": 3, "pass_at_1": [0.2, 0.3, 0.4]}
    base.update(overrides)
    return base


def write(tmp_path, data, name="calibration.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def calibration(points: list[dict], **extra) -> dict:
    return {"format": "tts-planner-calibration", "version": 1, "points": points, **extra}


def synthetic_points(truth: Curve, strategy: str, reward_model: str | None, unit_tokens: float) -> list[dict]:
    """Points a calibration run would measure if `truth` were the real curve (exact bin means)."""
    rng = np.random.default_rng(3)
    out = []
    for bin_name, (low, high) in {"hard": (0.01, 0.1), "medium": (0.1, 0.5), "easy": (0.5, 0.99)}.items():
        p = np.round(rng.uniform(low, high, 40), 4)
        p = np.clip(p, low, np.nextafter(high, 0))
        for size in (4, 8, 16, 32):
            out.append({"policy": SMALL, "reward_model": reward_model, "strategy": strategy, "bin": bin_name,
                        "size": size, "accuracy": float(truth.accuracy(p, size).mean()),
                        "tokens": 150.0 * 2 + size * unit_tokens, "problems": len(p), "pass_at_1": p.tolist()})
    return out


def test_calibration_fits_measured_points_and_keeps_curves_well_formed(tmp_path):
    truth = Curve(gain=(0.2, 0.7, 0.9), rate=(3.0, 2.0, 0.5))
    points = synthetic_points(truth, "beam_search", PRM, unit_tokens=2500.0)
    path = write(tmp_path, calibration(points, policies={SMALL: {"tokens_per_sample": 640}}))
    table = StrategyTable.default(SMALL, PRM, calibration=path)
    for pt in points:
        fitted = table.accuracy("beam_search", np.array(pt["pass_at_1"]), pt["size"]).mean()
        assert fitted == pytest.approx(pt["accuracy"], abs=0.01)
    acc = table.accuracy("beam_search", P[:, None], N[None, :])
    np.testing.assert_allclose(acc[:, 0], P, atol=1e-12)
    assert np.diff(acc, axis=1).min() >= -1e-12 and np.diff(acc, n=2, axis=1).max() <= 1e-12
    assert sum(table.cost.per_unit("beam_search")) == pytest.approx(2500.0)
    assert table.cost.tokens_per_sample == 640
    assert "calibrated" in table.sources["beam_search"]
    # uncalibrated strategies keep their defaults
    default = StrategyTable.default(SMALL, PRM)
    assert table.curves["best_of_n"] == default.curves["best_of_n"]


def test_calibration_fits_the_majority_wrong_answer_model(tmp_path):
    truth = Curve(plurality=(4.0, 1.0), rate=(1.0, 0.1, 0.4))
    points = synthetic_points(truth, "majority", None, unit_tokens=600.0)
    table = StrategyTable.default(SMALL, calibration=write(tmp_path, calibration(points)))
    for pt in points:
        fitted = table.accuracy("majority", np.array(pt["pass_at_1"]), pt["size"]).mean()
        assert fitted == pytest.approx(pt["accuracy"], abs=0.015)


def test_calibration_of_a_described_policy_applies_to_it(tmp_path):
    """A policy the planner does not know, described by its size, can be calibrated like a known one."""
    from planner.policies import policy

    truth = Curve(plurality=(4.0, 1.0), rate=(1.0, 0.1, 0.4))
    points = synthetic_points(truth, "majority", None, unit_tokens=900.0)
    for pt in points:
        pt["policy"] = "my-org/math-7b"
    mine = policy("my-org/math-7b", 7e9)
    table = StrategyTable.default(mine, calibration=write(tmp_path, calibration(points)))
    assert "calibrated" in table.sources["majority"]
    assert StrategyTable.default(mine).curves["majority"] != table.curves["majority"]


def test_calibration_points_of_other_setups_are_ignored(tmp_path):
    points = [point(policy=MEDIUM), point(reward_model=STEP_TAG)]
    table = StrategyTable.default(SMALL, PRM, calibration=write(tmp_path, calibration(points)))
    assert table.curves == StrategyTable.default(SMALL, PRM).curves


BROKEN = [
    ({"format": "other", "version": 1, "points": [point()]}, "format", "tts-planner-calibration"),
    ({"format": "tts-planner-calibration", "version": 2, "points": [point()]}, "version", "not supported"),
    (calibration([]), "points", "non-empty"),
    (calibration([point(strategy="mcts")]), "points[0].strategy", "unknown strategy"),
    (calibration([point(accuracy=1.5)]), "points[0].accuracy", "not in [0.0, 1.0]"),
    (calibration([point(tokens=0)]), "points[0].tokens", "above 0"),
    (calibration([point(size=True)]), "points[0].size", "positive integer"),
    (calibration([point(strategy="cot", reward_model=None, size=2)]), "points[0].size", "one sample"),
    (calibration([point(pass_at_1=[0.2, 0.6, 0.3])]), "points[0].pass_at_1[1]", "easy bin, not medium"),
    (calibration([point(pass_at_1=[0.2])]), "points[0].pass_at_1", "list of 3"),
    (calibration([point(strategy="majority")]), "points[0].reward_model", "expected null"),
    (calibration([point(reward_model=None)]), "points[0].reward_model", "needs the reward model"),
    (calibration([point(reward_model=ORM)]), "points[0].reward_model", "cannot drive beam_search"),
    (calibration([point(), point(accuracy=0.5)]), "points[1]", "same policy"),
    (calibration([point(extra=1)]), "points[0].extra", "unknown field"),
    (calibration([{k: v for k, v in point().items() if k != "tokens"}]), "points[0].tokens", "missing"),
    (calibration([{k: v for k, v in point().items() if k != "pass_at_1"}]), "points[0].pass_at_1", "missing"),
    (calibration([point()], policies={SMALL: {"tokens_per_sample": -1}}), "policies.", "above 0"),
]


@pytest.mark.parametrize("data,field,message", BROKEN)
def test_broken_calibration_files_name_the_file_and_field(tmp_path, data, field, message):
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        load_calibration(path)
    assert caught.value.path == path
    assert caught.value.field.startswith(field)
    assert message in str(caught.value) and path in str(caught.value)


def test_malformed_or_missing_calibration_files(tmp_path):
    path = write(tmp_path, '{"format": "tts-planner-calibration",\n "version": 1,\n "points": [}')
    with pytest.raises(InputError, match="malformed JSON") as caught:
        load_calibration(path)
    assert caught.value.line == 3
    nan = write(tmp_path, json.dumps(calibration([point()])).replace("0.6", "NaN"), "nan.json")
    with pytest.raises(InputError, match="NaN is not a number"):
        load_calibration(nan)
    with pytest.raises(InputError, match="cannot read"):
        load_calibration(tmp_path / "absent.json")


def test_calibrated_cost_below_the_prompt_is_rejected(tmp_path):
    points = [point(tokens=10.0, mean_pass_at_1=0.3, problems=1)]
    del points[0]["pass_at_1"]
    with pytest.raises(InputError, match="below the prompt cost") as caught:
        StrategyTable.default(SMALL, PRM, calibration=write(tmp_path, calibration(points)))
    assert caught.value.path.endswith("calibration.json")


def test_mean_pass_at_1_is_accepted(tmp_path):
    pt = point(mean_pass_at_1=0.3, problems=50)
    del pt["pass_at_1"]
    loaded = load_calibration(write(tmp_path, calibration([pt])))
    assert loaded.points[0].pass_at_1 == (0.3,) and not math.isnan(loaded.points[0].accuracy)
