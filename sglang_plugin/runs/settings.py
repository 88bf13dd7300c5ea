"""The settings of one batch run, checked before the first request: what `tts-planner run` (and each arm of
`tts-planner calibrate`) needs, and which of them decide the results, so a resume must match them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from planner.adaptive import MAX_SAMPLES, AdaptiveConfig, check_budget, check_budget_tokens, check_target
from planner.errors import InputError
from planner.files import sha256_of
from planner.jsonl import DEFAULT_MAX_CHARS
from planner.planning.calibration import load_calibration
from planner.policies import Policy, check_params
from planner.redact import SECRET_KEYS
from planner.strategies import strategy as find_strategy
from sglang_plugin.config import SolveConfig
from sglang_plugin.runs.runner import DEFAULT_SERVER_WAIT, DEFAULT_WATCHDOG
from sglang_plugin.scorers.base import Scorer
from sglang_plugin.scorers.kinds import SCORER_KINDS, make_scorer
from sglang_plugin.transport.http import TransportConfig

DEFAULT_BUDGET = 8  # adaptive: average samples per problem when no budget is given


@dataclass(frozen=True)
class RunSettings:
    """Everything one batch run needs; what `identity()` lists must match to resume an output."""

    endpoint: str
    input: Path
    output: Path
    outcomes: Path | None = None  # default: OUTPUT.outcomes.jsonl
    budget: int | None = None  # adaptive: average samples per problem (None: the default, see with_budget_for)
    budget_tokens: float | None = None  # adaptive: average generated tokens per problem instead (thinking policies)
    strategy: str | None = None  # forced strategy (with `size`); None: the planner decides
    size: int | None = None
    max_budget: int | None = None  # adaptive: per-problem cap (default: the planner's spread x budget)
    target_confidence: float | None = None  # adaptive: stop a problem once its answer is this likely right
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    calibration: Path | None = None  # strategy-table calibration from `tts-planner calibrate`
    reward_endpoint: str | None = None
    scorer: str | None = None  # default: "orm" with a reward endpoint, else "none"
    reward_model: str | None = None
    reward_options: dict = field(default_factory=dict)
    model: str | None = None  # difficulty predictor: policy name or model file
    policy: str | None = None  # the policy served, when the server's model path is not a name the planner knows
    policy_params: float | None = None
    thinking_end: str | None = None  # a long-thinking policy the planner does not know: where its thinking ends
    concurrency: int = 8
    config: SolveConfig = field(default_factory=SolveConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    field: str | None = None
    answer_field: str = "answer"
    skip_bad: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    overwrite: bool = False
    retry_failed: bool = False
    max_failures_in_a_row: int = 10
    retry_delay: float = 2.0
    watchdog_seconds: float | None = None  # stop when nothing progressed for this long (None: see watchdog_for)
    server_wait: float = DEFAULT_SERVER_WAIT  # how long a problem waits for servers that stopped answering
    progress: bool = True
    api_key: str | None = None

    def __post_init__(self) -> None:
        if (self.strategy is None) != (self.size is None):
            raise InputError("give --strategy and --size together (or neither, to let the planner decide)",
                             field="strategy" if self.strategy is None else "size")
        if self.strategy is not None:
            spec = find_strategy(self.strategy)
            check_budget(self.size, "size")
            if self.size > MAX_SAMPLES:
                raise InputError(f"at most {MAX_SAMPLES} samples per problem, got {self.size}", field="size")
            if spec.needs_reward and self.scorer_kind == "none":
                raise InputError(f"{self.strategy} ranks branches with a reward model: give --reward-endpoint "
                                 "(and --scorer)", field="scorer")
            if (self.max_budget, self.target_confidence, self.calibration, self.budget_tokens) != (None,) * 4 \
                    or self.adaptive != AdaptiveConfig():
                raise InputError("--max-budget, --budget-tokens, --target-confidence, --planner-option and "
                                 "--calibration are for the planner; a forced --strategy does not use them",
                                 field="strategy")
        if self.scorer_kind not in SCORER_KINDS:
            raise InputError(f"unknown scorer '{self.scorer}'; known: {', '.join(SCORER_KINDS)}", field="scorer")
        if self.budget_tokens is not None:
            check_budget_tokens(self.budget_tokens)
        for name in ("budget", "max_budget"):
            value = getattr(self, name)
            if value is not None and check_budget(value, name) > MAX_SAMPLES:
                raise InputError(f"at most {MAX_SAMPLES} samples per problem, got {value}", field=name)
        check_target(self.target_confidence)
        if self.policy_params is not None:
            check_params(self.policy_params, "policy_params")
        if self.thinking_end is not None and (not isinstance(self.thinking_end, str) or not self.thinking_end.strip()):
            raise InputError("must be the non-empty text that ends the policy's thinking, e.g. </think>",
                             field="thinking_end")
        for name in ("concurrency", "max_failures_in_a_row", "max_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"must be an integer of at least 1, got {value!r}", field=name)
        for name in ("retry_delay", "server_wait", "watchdog_seconds"):
            value, positive = getattr(self, name), name == "watchdog_seconds"
            if value is None and positive:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (positive and value == 0):
                raise InputError(f"must be a {'positive' if positive else 'non-negative'} number of seconds, got "
                                 f"{value!r}", field=name)
        for url, key, option in ((self.endpoint, self.api_key, "api_key"),
                                 (self.reward_endpoint, self.reward_options.get("api_key"), "reward_options")):
            if key and url and urlsplit(url).username is not None:
                raise InputError("give the server's credentials in its URL (user:password@) or as a key, not both",
                                 field=option)
        if self.calibration is not None:
            load_calibration(self.calibration)  # a bad file is refused before the first request
        self.make_scorer()  # bad scorer options too
        if self.input.resolve() in (self.output.resolve(), self.outcomes_path.resolve()):
            raise InputError("the output would overwrite the input; choose another --output", field="output")
        if self.outcomes_path.resolve() == self.output.resolve():
            raise InputError("the outcome records need a file of their own", field="outcomes")

    def with_budget_for(self, policy: Policy, tokens_per_sample: float) -> RunSettings:
        """The settings with the default budget filled in for the served policy: DEFAULT_BUDGET samples per problem,
        or for a long-thinking policy, whose budgets are in generated tokens, as many samples' worth of tokens
        (DEFAULT_BUDGET times `tokens_per_sample`, the planner's figure: the calibration's if one is given; each
        problem's budget is then that over its own traces' length, so problems whose traces run long get fewer).
        `budget` stays DEFAULT_BUDGET beside a budget in tokens, as it did when tokens were given."""
        if self.budget is not None:
            return self
        tokens = self.budget_tokens
        if tokens is None and self.strategy is None and policy.thinking is not None:
            tokens = float(DEFAULT_BUDGET * tokens_per_sample)
        return replace(self, budget=DEFAULT_BUDGET, budget_tokens=tokens)

    def watchdog_for(self, policy: Policy) -> float:
        """--watchdog-seconds, else DEFAULT_WATCHDOG or, when longer, the time one non-streamed sample may take
        before its own read timeout (a long-thinking policy's 32k-token samples: 3,877 s by default), so the
        watchdog never calls a run stalled while a request may still legitimately answer."""
        if self.watchdog_seconds is not None:
            return self.watchdog_seconds
        longest = self.config.sampling.max_tokens or policy.max_tokens
        return max(DEFAULT_WATCHDOG, self.transport.generation_timeout(longest))

    @property
    def scorer_kind(self) -> str:
        return self.scorer or ("orm" if self.reward_endpoint else "none")

    def make_scorer(self) -> Scorer | None:
        """The scorer of --scorer, --reward-endpoint and --reward-option (built without sending a request)."""
        options = dict(self.reward_options)
        if self.reward_endpoint:
            options.setdefault("transport", self.transport)
        return make_scorer(self.scorer_kind, self.reward_endpoint, **options)

    @property
    def reward_model_name(self) -> str | None:
        """--reward-model, else the reward model the scorer says it reads (None without one)."""
        if self.reward_model:
            return self.reward_model
        scorer = self.make_scorer()
        return scorer.reward_model if scorer is not None else None

    @property
    def secrets(self) -> list[str]:
        """The values never to show: the API key and secret scorer options (each header value too)."""
        found = [self.api_key]
        for key, value in self.reward_options.items():
            if key.lower() in SECRET_KEYS:
                found += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
        return [s for s in found if s]

    @property
    def outcomes_path(self) -> Path:
        return self.outcomes or self.output.with_name(self.output.name + ".outcomes.jsonl")

    def identity(self, policy_name: str, predictor: Path | None) -> dict:
        """What decides a run's results: resuming an output needs the same."""
        forced = self.strategy is not None
        settings = {
            "policy": policy_name, "thinking_end": self.thinking_end, "field": self.field,
            "answer_field": self.answer_field,
            "strategy": self.strategy or "adaptive", "size": self.size, "scorer": self.scorer_kind,
            "reward_model": self.reward_model,
            "reward_options": {k: v for k, v in self.reward_options.items() if k.lower() not in SECRET_KEYS},
            "config": _without_workers(self.config.to_dict()),
        }
        if not forced:
            settings.update(budget=self.budget, max_budget=self.max_budget, target_confidence=self.target_confidence,
                            adaptive=self.adaptive.to_dict(),
                            predictor=None if predictor is None else sha256_of(predictor),
                            calibration=None if self.calibration is None else sha256_of(self.calibration))
            if self.budget_tokens is not None:  # only when given, so runs from before it still resume
                settings["budget_tokens"] = self.budget_tokens
        return {"input_sha256": sha256_of(self.input), "settings": settings}


def _without_workers(config: dict) -> dict:
    """The solve config as it decides results: how many processes compare answers does not."""
    grading = {k: v for k, v in config["grading"].items() if k != "answer_workers"}
    return {**config, "grading": grading}
