"""Calibration files: measured accuracy and tokens of strategies on the serving stack (written by
`tts-planner calibrate`), their schema and validation, and the fits that replace the default curves and costs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from planner.cost import CostModel
from planner.difficulty import BINS, difficulty_bin
from planner.errors import InputError
from planner.planning.curves import Curve
from planner.policies import Policy, RewardModel, known_policy, known_reward_model
from planner.strategies import REGISTRY, planned_strategies

CALIBRATION_FORMAT = "tts-planner-calibration"
CALIBRATION_VERSION = 1
CALIBRATION_SCHEMA = """\
A calibration file is one JSON object:
{
  "format": "tts-planner-calibration",      required, exactly this
  "version": 1,                              required
  "policies": {                              optional, measured on the serving stack, per policy name
    "<policy>": {"tokens_per_sample": 612.0, "prompt_tokens": 140.0, "steps_per_solution": 9.1}
  },
  "points": [                                required, at least one
    {
      "policy": "Qwen/Qwen2.5-Math-1.5B-Instruct",   a known policy
      "reward_model": "Qwen/Qwen2.5-Math-PRM-7B",   null for cot and majority; required for the others
      "strategy": "beam_search",                     one of cot, majority, best_of_n, weighted_vote,
                                                     beam_search, dvts, particle_filter
      "bin": "medium",                               easy, medium or hard (by predicted pass@1)
      "size": 16,                                    N, beams or particles; 1 for cot
      "accuracy": 0.61,                              measured share of problems solved, in [0, 1]
      "tokens": 20512.0,                             mean planner.cost tokens per problem (> 0)
      "problems": 120,                               how many problems were measured
      "pass_at_1": [0.31, 0.12, ...]                 the predicted pass@1 of each of those problems
                                                     (all in the bin); or "mean_pass_at_1": 0.27
    }
  ]
}
Each (policy, reward_model, strategy, bin, size) appears at most once. The planner fits each strategy's
curve parameters (gain and rate at the three bin anchors; the wrong-answer model and rate for majority) to
the points of the serving policy and reward model, pulled gently towards the defaults where points are few,
and fits tokens per unit of size from "tokens"."""

_POINT_FIELDS = {"policy", "reward_model", "strategy", "bin", "size", "accuracy", "tokens", "problems",
                 "pass_at_1", "mean_pass_at_1"}
_POLICY_FIELDS = {"tokens_per_sample", "prompt_tokens", "steps_per_solution"}


@dataclass(frozen=True)
class CalibrationPoint:
    policy: str
    reward_model: str | None
    strategy: str
    bin: str
    size: int
    accuracy: float
    tokens: float
    problems: int
    pass_at_1: tuple[float, ...]


@dataclass(frozen=True)
class Calibration:
    path: str
    points: tuple[CalibrationPoint, ...]
    policies: dict[str, dict[str, float]]

    def reward_models_for(self, policy: Policy) -> list[str]:
        """The reward models the file measured with this policy, in order of first appearance."""
        names = (pt.reward_model for pt in self.points if pt.policy == policy.name and pt.reward_model is not None)
        return list(dict.fromkeys(names))

    def points_for(self, policy: Policy, reward_model: RewardModel | None) -> list[CalibrationPoint]:
        rm_name = reward_model.name if reward_model else None
        return [pt for pt in self.points if pt.policy == policy.name
                and (pt.reward_model is None or pt.reward_model == rm_name)]


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file; every error names the file and the field."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read calibration file: {exc.strerror}", path=name) from exc
    except UnicodeDecodeError as exc:
        raise InputError("calibration file is not valid UTF-8", path=name) from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path=name, line=exc.lineno) from exc
    except ValueError as exc:
        raise InputError(str(exc), path=name) from exc
    return parse_calibration(data, name)


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def parse_calibration(data: object, path: str) -> Calibration:
    def fail(message: str, where: str | None) -> InputError:
        return InputError(message, path=path, field=where)

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}", None)
    if data.get("format") != CALIBRATION_FORMAT:
        raise fail(f"expected \"{CALIBRATION_FORMAT}\", got {json.dumps(data.get('format'))}", "format")
    if data.get("version") != CALIBRATION_VERSION:
        raise fail(f"version {json.dumps(data.get('version'))} is not supported (this planner reads "
                   f"version {CALIBRATION_VERSION})", "version")
    unknown = set(data) - {"format", "version", "policies", "points", "created", "notes"}
    if unknown:
        raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    policies = _parse_policies(data.get("policies", {}), fail)
    raw_points = data.get("points")
    if not isinstance(raw_points, list) or not raw_points:
        raise fail("expected a non-empty list of measured points", "points")
    points, seen = [], {}
    for i, raw in enumerate(raw_points):
        point = _parse_point(raw, f"points[{i}]", fail)
        key = (point.policy, point.reward_model, point.strategy, point.bin, point.size)
        if key in seen:
            raise fail(f"same policy, reward model, strategy, bin and size as points[{seen[key]}]", f"points[{i}]")
        seen[key] = i
        points.append(point)
    return Calibration(path, tuple(points), policies)


def _parse_policies(raw: object, fail) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict):
        raise fail("expected an object keyed by policy name", "policies")
    out = {}
    for name, values in raw.items():
        where = f"policies.{name}"
        canonical = _canonical(name, known_policy)
        if not isinstance(values, dict):
            raise fail("expected an object", where)
        unknown = set(values) - _POLICY_FIELDS
        if unknown:
            raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", where)
        out[canonical] = {key: _number(values, key, f"{where}.{key}", fail, low=0.0, strict=key != "prompt_tokens")
                          for key in values}
    return out


def _parse_point(raw: object, where: str, fail) -> CalibrationPoint:
    if not isinstance(raw, dict):
        raise fail(f"expected an object, got {type(raw).__name__}", where)
    unknown = set(raw) - _POINT_FIELDS
    if unknown:
        raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", f"{where}.{sorted(unknown)[0]}")
    for key in ("policy", "strategy", "bin", "size", "accuracy", "tokens", "problems"):
        if key not in raw:
            raise fail("missing", f"{where}.{key}")
    policy_name = _canonical(_text(raw, "policy", where, fail), known_policy)
    strategy = _text(raw, "strategy", where, fail)
    if strategy not in planned_strategies():
        raise fail(f"unknown strategy '{strategy}'; known: {', '.join(planned_strategies())}", f"{where}.strategy")
    rm_name = _reward_model_of(raw, strategy, where, fail)
    bin_name = _text(raw, "bin", where, fail)
    if bin_name not in BINS:
        raise fail(f"unknown bin '{bin_name}'; known: {', '.join(BINS)}", f"{where}.bin")
    size = _integer(raw, "size", where, fail)
    if strategy == "cot" and size != 1:
        raise fail(f"cot is one sample; got size {size}", f"{where}.size")
    problems = _integer(raw, "problems", where, fail)
    p = _pass_at_1(raw, bin_name, problems, where, fail)
    return CalibrationPoint(policy_name, rm_name, strategy, bin_name, size,
                            _number(raw, "accuracy", f"{where}.accuracy", fail, low=0.0, high=1.0),
                            _number(raw, "tokens", f"{where}.tokens", fail, low=0.0, strict=True), problems, p)


def _reward_model_of(raw: dict, strategy: str, where: str, fail) -> str | None:
    value = raw.get("reward_model")
    if not REGISTRY[strategy].needs_reward:
        if value is not None:
            raise fail(f"{strategy} uses no reward model; expected null", f"{where}.reward_model")
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{strategy} needs the reward model it was measured with", f"{where}.reward_model")
    rm = known_reward_model(value)
    if rm is None:
        return value.strip()
    if not REGISTRY[strategy].driven_by(rm.kind):
        raise fail(f"{rm.kind} reward model {rm.name} cannot drive {strategy}", f"{where}.reward_model")
    return rm.name


def _canonical(name: str, lookup) -> str:
    """A known model's registry name, else the name as written (a policy or reward model the user described)."""
    found = lookup(name)
    return found.name if found is not None else name.strip()


def _pass_at_1(raw: dict, bin_name: str, problems: int, where: str, fail) -> tuple[float, ...]:
    if "pass_at_1" in raw:
        values = raw["pass_at_1"]
        if not isinstance(values, list) or len(values) != problems:
            raise fail(f"expected a list of {problems} numbers (one per problem)", f"{where}.pass_at_1")
        p = tuple(_number(values, i, f"{where}.pass_at_1[{i}]", fail, low=0.0, high=1.0)
                  for i in range(len(values)))
        field_name = "pass_at_1"
    elif "mean_pass_at_1" in raw:
        p = (_number(raw, "mean_pass_at_1", f"{where}.mean_pass_at_1", fail, low=0.0, high=1.0),)
        field_name = "mean_pass_at_1"
    else:
        raise fail("missing; give pass_at_1 (per problem) or mean_pass_at_1", f"{where}.pass_at_1")
    for i, v in enumerate(p):
        if difficulty_bin(v) != bin_name:
            at = f"{where}.{field_name}" + (f"[{i}]" if field_name == "pass_at_1" else "")
            raise fail(f"{v} is in the {difficulty_bin(v)} bin, not {bin_name}", at)
    return p


def _text(raw: dict, key: str, where: str, fail) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(f"expected a non-empty string, got {json.dumps(value)[:40]}", f"{where}.{key}")
    return value


def _integer(raw: dict, key: str, where: str, fail) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"expected a positive integer, got {json.dumps(value)[:40]}", f"{where}.{key}")
    return value


def _number(raw, key, where: str, fail, *, low: float = -math.inf, high: float = math.inf,
            strict: bool = False) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"expected a number, got {json.dumps(value)[:40]}", where)
    if value < low or value > high or (strict and value <= low):
        bound = f"above {low}" if strict and high == math.inf else f"in [{low}, {high}]"
        raise fail(f"{value} is not {bound}", where)
    return float(value)


# Pull towards the defaults, in residual units per unit of parameter (gain, or log of rate and of the
# wrong-answer Beta), against data residuals of sqrt(problems) x accuracy error: an error of 0.01 on a point
# of 40 problems weighs about as much as moving a parameter by 1. Parameters the points do not identify (an
# anchor far from every measured bin) stay near their defaults.
PRIOR_WEIGHT = 0.05


def fit_curve(curve: Curve, points: Sequence[CalibrationPoint], prior_weight: float = PRIOR_WEIGHT) -> Curve:
    """Least-squares fit of a curve's free parameters to measured bin accuracies, regularised to `curve`.

    Points weigh by the square root of their problem count (the inverse of a binomial standard error, up to
    the accuracy's own spread). Several starting rates guard against the flat regions of the rate.
    """
    theta0 = curve.free_parameters()
    weights = np.sqrt([pt.problems for pt in points])
    targets = np.array([pt.accuracy for pt in points])
    ps = [np.array(pt.pass_at_1) for pt in points]
    sizes = [pt.size for pt in points]

    def residuals(theta: np.ndarray) -> np.ndarray:
        fitted = curve.with_free_parameters(theta)
        predicted = np.array([fitted.accuracy(p, n).mean() for p, n in zip(ps, sizes)])
        return np.concatenate([weights * (predicted - targets), prior_weight * (theta - theta0)])

    head = 2 if curve.plurality is not None else 3
    head_low, head_high = (-5.0, 5.0) if curve.plurality is not None else (0.0, 1.0)
    low = np.array([head_low] * head + [math.log(0.02)] * 3)
    high = np.array([head_high] * head + [math.log(50.0)] * 3)
    best = None
    for shift in (0.0, math.log(0.2), math.log(3.0)):
        start = theta0 + np.r_[np.zeros(head), np.full(3, shift)]
        result = least_squares(residuals, np.clip(start, low + 1e-9, high - 1e-9), bounds=(low, high))
        if best is None or result.cost < best.cost:
            best = result
    return curve.with_free_parameters(best.x)


def fit_unit_tokens(cost: CostModel, strategy: str, points: Sequence[CalibrationPoint],
                     path: str) -> tuple[float, float]:
    """Measured tokens per unit of size, split between policy and reward model as the default model does."""
    fixed = cost.prompt_tokens * (2.0 if cost.uses_reward_prefix(strategy) else 1.0)
    sizes = np.array([pt.size for pt in points], dtype=float)
    extra = np.array([pt.tokens for pt in points]) - fixed
    unit = float(sizes @ extra / (sizes @ sizes))
    if unit <= 0:
        raise InputError(f"the {strategy} points' tokens are below the prompt cost ({fixed:.0f}); "
                         "tokens must count generated, uncached prompt and reward-model tokens",
                         path=path, field="points")
    policy_unit, reward_unit = cost.per_unit(strategy)
    share = policy_unit / (policy_unit + reward_unit)
    return unit * share, unit * (1.0 - share)
