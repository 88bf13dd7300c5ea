"""The run format: what `tts-planner run` writes for each problem and for each independent sample, and what the
run summary, resuming, `tts-planner report` and `tts-planner calibrate` read back, through the same types.

Every record is a frozen dataclass with `to_dict()` and a validating `from_dict(data, where)`: a bad value is an
InputError naming the file, line and field (a dotted path such as `plan.adaptive.rounds[2].decision`). Lines
carry `format_version`; a line of another version is refused with a message saying which versions this
release reads.

- Prediction: the difficulty predictor's pass@1 for the problem, and which predictor said so.
- PlanRecord: what the planner decided (strategy, size, expected accuracy and tokens); adaptive solves add an
  AdaptiveTrace (the probe, the belief before and after, every round, why it stopped), DeepConf solves a
  DeepConfTrace (how its traces ended, what the cut ones cost, whether its vote settled or its traces to come
  were priced out before N).
- ResultLine: one line per finished problem: the input record plus answer, correctness, plan, prediction,
  cost, status and errors. Status "ok": every planned branch ran; "partial": some branches failed (their
  requests gave up), so the answer rests on fewer samples than planned; "failed": no branch finished.
- OutcomeRecord: one line per independent sample of a problem with a reference (the training labels of
  `tts-planner train --label correct`).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import cache

from planner.cost import COST_FIELDS, Cost
from planner.difficulty import BINS
from planner.errors import InputError

FORMAT_VERSION = 2
STATUSES = ("ok", "partial", "failed")  # partial: answered from fewer samples than planned
DEEPCONF_MODES = ("online", "offline")
STOP_REASONS = ("settled", "confident", "enough", "hopeless", "cap", "searched", "failed")


class Invalid(ValueError):
    """A value its type allows but the record does not, naming the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Where:
    """Where a record came from, for error messages."""

    path: str | None = None
    line: int | None = None

    def error(self, message: str, field_name: str | None = None) -> InputError:
        return InputError(message, path=self.path, line=self.line, field=field_name)


@dataclass(frozen=True)
class Prediction:
    pass_at_1: float
    difficulty: str
    policy: str | None = None  # the policy the predictor was trained for
    model: str | None = None  # the predictor's file name, or "given" when the caller supplied pass@1
    served_model: str | None = None  # the model path the server reported

    def __post_init__(self) -> None:
        if self.difficulty not in BINS:
            raise Invalid("difficulty", f"expected one of {', '.join(BINS)}, got {self.difficulty!r}")
        if not 0.0 <= self.pass_at_1 <= 1.0:
            raise Invalid("pass_at_1", f"{self.pass_at_1} is outside [0, 1]")


@dataclass(frozen=True)
class PosteriorSummary:
    """The adaptive belief after some samples (planner.belief.posterior.Posterior.summary)."""

    samples: int
    pass_at_1: float
    difficulty: str
    hard_probability: float
    answer_probabilities: tuple[float, ...]
    none_probability: float


@dataclass(frozen=True)
class RoundPlan:
    """The plan made after one adaptive round: go on with `strategy` at `size` (`extra` samples still to draw),
    or stop (`extra` 0)."""

    strategy: str
    size: int
    extra: int
    expected_accuracy: float
    expected_cost: float  # tokens: spent so far plus the expected cost of the rest


@dataclass(frozen=True)
class AdaptiveRound:
    samples: int
    tokens: int  # spent so far, as the servers reported
    posterior: PosteriorSummary
    confidence: float | None  # P(the favoured answer is right)
    plan: RoundPlan
    decision: str  # "continue" or a stop reason


@dataclass(frozen=True)
class AdaptiveTrace:
    """What the adaptive program did for one problem."""

    chosen_by: str  # the rule that chose the answer: "posterior", a planned strategy's rule, or a search
    budget: int  # samples per problem on average the run allowed (a budget in tokens: as samples of this problem)
    samples: int  # independent samples drawn (probe and rounds); a search after them is not counted here
    probe_size: int
    probe_strategy: str  # the sampling rule of the probe and rounds (majority or weighted_vote)
    probe_tokens: int
    cap: int
    target_confidence: float | None
    stop_confidence: float
    prior_pass_at_1: float
    prior_strength: float
    posterior_pass_at_1: float
    posterior_difficulty: str
    confidence: float | None
    stop_reason: str
    rounds: tuple[AdaptiveRound, ...]
    search: str | None = None  # the step-level search run after the rounds, if any

    def __post_init__(self) -> None:
        if self.stop_reason not in STOP_REASONS:
            raise Invalid("stop_reason", f"expected one of {', '.join(STOP_REASONS)}, got {self.stop_reason!r}")


@dataclass(frozen=True)
class DeepConfTrace:
    """What DeepConf did for one problem: the tokens it saved or spent are in how its traces ended."""

    mode: str  # "online" or "offline"
    traces: int  # started
    stopped: int  # cut when their confidence fell below the threshold (online)
    cancelled: int  # cut because the vote had settled while they ran (online)
    voters: int
    settled: bool  # the vote settled before N traces ended (online)
    stopped_tokens: int  # generated by the stopped traces before their cut
    cancelled_tokens: int  # generated by the cancelled traces before their cut
    warmup: int | None = None  # online
    threshold: float | None = None  # online: the warm-up's stop threshold (None: no warm-up trace had a score)
    priced_out: bool = False  # online: stopped before N because the traces to come were not worth their tokens

    def __post_init__(self) -> None:
        if self.mode not in DEEPCONF_MODES:
            raise Invalid("mode", f"expected one of {', '.join(DEEPCONF_MODES)}, got {self.mode!r}")


@dataclass(frozen=True)
class PlanRecord:
    """The planner's decision for one problem. Expected values are None when no planner priced the run."""

    strategy: str
    size: int
    expected_accuracy: float | None = None
    expected_cost: float | None = None  # tokens (planner.cost's unit)
    beam_width: int | None = None  # beam search and DVTS
    adaptive: AdaptiveTrace | None = None
    deepconf: DeepConfTrace | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise Invalid("size", f"expected a positive integer, got {self.size!r}")


@dataclass(frozen=True)
class ResultLine:
    """One finished problem. `record` is the input record (a reference in `answer` is kept as
    `reference_answer`); the other fields are the outcome, written after it."""

    problem_id: str
    answer: str | None
    status: str
    cost: Cost
    strategy: str | None = None  # what ran: an adaptive solve's sampling rule, or its search
    correct: bool | None = None  # None when the problem has no reference
    plan: PlanRecord | None = None
    prediction: Prediction | None = None
    errors: tuple[str, ...] = ()
    branches: int = 0
    failed_branches: int = 0
    thinking_tokens: int | None = None  # long-thinking policies: the branches' tokens spent thinking
    record: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise Invalid("status", f"expected one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def adaptive(self) -> AdaptiveTrace | None:
        return self.plan.adaptive if self.plan is not None else None

    @property
    def difficulty(self) -> str | None:
        return self.prediction.difficulty if self.prediction is not None else None

    def to_dict(self) -> dict:
        """The JSON line: input fields first, then the outcome (which replaces input fields of the same name)."""
        outcome = to_json(self)
        outcome.pop("record")
        if self.correct is None:
            outcome.pop("correct")
        if self.thinking_tokens is None:
            outcome.pop("thinking_tokens")
        return {**self.record, **outcome, "format_version": FORMAT_VERSION}

    @classmethod
    def from_dict(cls, data: object, where: Where = Where()) -> ResultLine:
        if not isinstance(data, dict):
            raise where.error(f"expected a JSON object, got {type(data).__name__}")
        if "cost" not in data and "branch" in data:
            raise where.error("this looks like a per-sample outcome record, not a result line; give outcome files "
                              "with --outcomes")
        check_version(data, where)
        own = {f.name for f in fields(cls)} - {"record"}
        record = {k: v for k, v in data.items() if k not in own and k != "format_version"}
        line = parse(cls, {k: v for k, v in data.items() if k in own}, where, "")
        return _replace_record(line, record)


@dataclass(frozen=True)
class OutcomeRecord:
    """One independent sample of the policy on a problem with a reference answer."""

    problem_id: str
    problem: str
    policy: str | None
    strategy: str  # the sampling rule that drew it
    branch: int
    answer: str | None
    correct: bool

    def to_dict(self) -> dict:
        return {**to_json(self), "format_version": FORMAT_VERSION}

    @classmethod
    def from_dict(cls, data: object, where: Where = Where()) -> OutcomeRecord:
        if not isinstance(data, dict):
            raise where.error(f"expected a JSON object, got {type(data).__name__}")
        check_version(data, where)
        return parse(cls, {k: v for k, v in data.items() if k != "format_version"}, where, "")


def _replace_record(line: ResultLine, record: dict) -> ResultLine:
    object.__setattr__(line, "record", record)
    return line


def check_version(data: dict, where: Where) -> None:
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        found = "no format_version (written before tts-planner 0.2)" if version is None else f"format_version {version!r}"
        raise where.error(f"{found}; this tts-planner reads format_version {FORMAT_VERSION}. Re-run the problems, or "
                          "re-grade the old file with `tts-planner grade`", "format_version")


# -- serialisation ----------------------------------------------------------------------------------------

def to_json(record) -> dict:
    """A record as JSON-ready data: nested records as objects, tuples as lists, non-finite floats as None,
    and a Cost with its `tokens` total."""
    return _jsonable(record)


def _jsonable(value):
    if isinstance(value, Cost):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse(cls, data: object, where: Where, prefix: str):
    """An instance of the dataclass `cls` from decoded JSON, every field checked against its type."""
    if not isinstance(data, dict):
        raise where.error(f"expected an object, got {_show(data)}", prefix or None)
    hints = _hints(cls)
    values = {}
    for f in fields(cls):
        name = f"{prefix}.{f.name}" if prefix else f.name
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise where.error("missing", name)
            continue
        values[f.name] = _value(hints[f.name], data[f.name], where, name)
    try:
        return cls(**values)
    except Invalid as exc:
        raise where.error(str(exc), f"{prefix}.{exc.field}" if prefix else exc.field) from None


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _value(kind, value, where: Where, name: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _value(options[0], value, where, name)
    if kind is Cost:
        return _cost(value, where, name)
    if hasattr(kind, "__dataclass_fields__"):
        return parse(kind, value, where, name)
    if origin is tuple:
        if not isinstance(value, list):
            raise where.error(f"expected a list, got {_show(value)}", name)
        return tuple(_value(args[0], v, where, f"{name}[{i}]") for i, v in enumerate(value))
    if kind is dict:
        if not isinstance(value, dict):
            raise where.error(f"expected an object, got {_show(value)}", name)
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise where.error(f"expected true or false, got {_show(value)}", name)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"expected an integer, got {_show(value)}", name)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise where.error(f"expected a number, got {_show(value)}", name)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise where.error(f"expected text, got {_show(value)}", name)
        return value
    raise TypeError(f"no parser for {kind!r}")


def _cost(value, where: Where, name: str) -> Cost:
    if not isinstance(value, dict):
        raise where.error(f"expected an object, got {_show(value)}", name)
    out = {}
    for key in (*COST_FIELDS, "tokens"):
        if key not in value:
            if key == "tokens":
                continue
            raise where.error("missing", f"{name}.{key}")
        raw = value[key]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
            raise where.error(f"expected a non-negative number, got {_show(raw)}", f"{name}.{key}")
        out[key] = raw
    tokens = out.pop("tokens", None)
    cost = Cost(**out)
    if tokens is not None and tokens != cost.tokens:
        raise where.error(f"{tokens} is not completion + prompt - cached + reward tokens ({cost.tokens})",
                          f"{name}.tokens")
    return cost


def _show(value) -> str:
    import json

    return json.dumps(value)[:40]
