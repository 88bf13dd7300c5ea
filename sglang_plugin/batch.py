"""A batch run from settings to summary: connect to the servers, read the problems, open (or resume) the
output, run, summarise. `tts-planner run` and `tts-planner demo` are thin layers over `run_batch`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from planner.difficulty import difficulty_bin
from planner.errors import InputError, PlannerError
from planner.files import sha256_of
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog
from planner.model_store import load_model, resolve_model_path
from planner.policies import DEFAULT_POLICY, Policy, policy, reward_model
from sglang_plugin.adaptive import AdaptivePlanner
from sglang_plugin.config import SolveConfig
from sglang_plugin.endpoint import Endpoint, EndpointError, HttpClient
from sglang_plugin.programs import NEEDS_SCORER, program_for
from sglang_plugin.results_file import RunFiles
from sglang_plugin.run_input import RunProblem, read_run_problems
from sglang_plugin.run_records import Judge, Solved
from sglang_plugin.run_summary import RunSummary, summarize
from sglang_plugin.runner import BatchRunner, Session
from sglang_plugin.scorers import SCORER_KINDS, HttpRewardScorer, Scorer, make_scorer
from sglang_plugin.solve import solve

SCORERS = (*SCORER_KINDS, "http")
# The reward model a scorer kind usually serves, for FLOPs when --reward-model is not given.
USUAL_REWARD_MODEL = {"orm": "Qwen/Qwen2.5-Math-RM-72B", "math_shepherd": "peiyi9979/math-shepherd-mistral-7b-prm",
                      "rlhflow": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "vllm_qwen_prm": "Qwen/Qwen2.5-Math-PRM-7B"}
# SolveConfig fields that change how requests are sent, not what a run computes: free to change on resume.
TRANSPORT_FIELDS = frozenset({"connect_timeout", "read_timeout", "max_retries", "backoff_initial", "backoff_max",
                              "answer_workers"})
# Scorer options that are credentials: never written to the run's manifest.
SECRET_OPTIONS = frozenset({"api_key", "headers"})


@dataclass(frozen=True)
class RunSettings:
    """Everything one batch run needs; what `identity()` lists must match to resume an output."""

    endpoint: str
    input: Path
    output: Path
    outcomes: Path | None = None  # default: OUTPUT.outcomes.jsonl
    budget: int = 8  # adaptive: average samples per problem
    strategy: str | None = None  # forced strategy (with `size`); None: the planner decides
    size: int | None = None
    max_budget: int | None = None  # adaptive: per-problem cap (default: the planner's spread x budget)
    target_confidence: float | None = None  # adaptive: stop a problem once its answer is this likely right
    planner_options: dict = field(default_factory=dict)  # AdaptivePlanner keyword arguments
    calibration: Path | None = None  # strategy-table calibration from `tts-planner calibrate`
    reward_endpoint: str | None = None
    scorer: str | None = None  # default: "orm" with a reward endpoint, else "none"
    reward_model: str | None = None
    reward_options: dict = field(default_factory=dict)
    model: str | None = None  # difficulty predictor: policy name or model file
    policy_params: float | None = None
    concurrency: int = 8
    config: SolveConfig = field(default_factory=SolveConfig)
    field: str | None = None
    answer_field: str = "answer"
    skip_bad: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    overwrite: bool = False
    retry_failed: bool = False
    max_failures_in_a_row: int = 10
    retry_delay: float = 2.0
    progress: bool = True
    api_key: str | None = None

    def __post_init__(self) -> None:
        if (self.strategy is None) != (self.size is None):
            raise InputError("give --strategy and --size together (or neither, to let the planner decide)",
                             field="strategy" if self.strategy is None else "size")
        if self.strategy is not None:
            program_for(self.strategy)
            if self.size < 1:
                raise InputError(f"must be at least 1, got {self.size}", field="size")
        if self.scorer_kind not in SCORERS:
            raise InputError(f"unknown scorer '{self.scorer}'; known: {', '.join(SCORERS)}", field="scorer")
        if self.strategy in NEEDS_SCORER and self.scorer_kind == "none":
            raise InputError(f"{self.strategy} ranks branches with a reward model: give --reward-endpoint "
                             "(and --scorer)", field="scorer")
        for name in ("budget", "max_budget"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        if self.strategy is not None and (self.max_budget, self.target_confidence, self.planner_options,
                                          self.calibration) != (None, None, {}, None):
            raise InputError("--max-budget, --target-confidence, --planner-option and --calibration are for the "
                             "planner; a forced --strategy does not use them", field="strategy")
        if self.concurrency < 1:
            raise InputError(f"must be at least 1, got {self.concurrency}", field="concurrency")

    @property
    def scorer_kind(self) -> str:
        return self.scorer or ("orm" if self.reward_endpoint else "none")

    @property
    def outcomes_path(self) -> Path:
        return self.outcomes or self.output.with_name(self.output.name + ".outcomes.jsonl")

    @property
    def reward_model_name(self) -> str | None:
        return self.reward_model or USUAL_REWARD_MODEL.get(self.scorer_kind)

    def identity(self, policy_name: str, predictor: Path | None) -> dict:
        """What decides a run's results: resuming an output needs the same."""
        forced = self.strategy is not None
        settings = {
            "policy": policy_name, "field": self.field, "answer_field": self.answer_field,
            "strategy": self.strategy or "adaptive", "size": self.size, "scorer": self.scorer_kind,
            "reward_model": self.reward_model_name,
            "reward_options": {k: v for k, v in self.reward_options.items() if k not in SECRET_OPTIONS},
            "config": {k: v for k, v in self.config.to_dict().items() if k not in TRANSPORT_FIELDS},
        }
        if not forced:
            settings.update(budget=self.budget, max_budget=self.max_budget, target_confidence=self.target_confidence,
                            planner_options=self.planner_options,
                            predictor=None if predictor is None else sha256_of(predictor),
                            calibration=None if self.calibration is None else sha256_of(self.calibration))
        return {"input_sha256": sha256_of(self.input), "settings": settings}


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run: `written` of `total` problems are in the output, nothing partial."""

    def __init__(self, written: int, total: int) -> None:
        super().__init__(f"{written} of {total} problems written")
        self.written, self.total = written, total


@dataclass
class RunReport:
    summary: RunSummary
    session: Session
    notes: list[str]
    skipped: SkipLog | None


def connect(settings: RunSettings) -> tuple[Endpoint, Scorer | None]:
    """The policy endpoint and the scorer, both checked to answer, with a clear error when one does not."""
    try:
        endpoint = Endpoint(settings.endpoint, api_key=settings.api_key, config=settings.config)
    except EndpointError as exc:
        raise PlannerError(f"cannot reach the policy server at {settings.endpoint}: {exc}. Is it running? "
                           "(Try `tts-planner demo` or `tts-planner sim-server` for a simulated one.)") from None
    kind = settings.scorer_kind
    if kind == "http":
        if not settings.reward_endpoint:
            raise InputError("the http scorer needs --reward-endpoint", field="scorer")
        scorer = HttpRewardScorer(settings.reward_endpoint, config=settings.config, **settings.reward_options)
    else:
        options = dict(settings.reward_options)
        if kind not in ("none", "self_certainty"):
            options.setdefault("config", settings.config)
        try:
            scorer = make_scorer(kind, settings.reward_endpoint, **options)
        except TypeError as exc:
            raise InputError(f"bad --reward-option for scorer '{kind}': {exc}", field="reward_options") from None
    if settings.reward_endpoint:
        down = reachable(settings.reward_endpoint, settings.config)
        if down is not None:
            raise PlannerError(f"cannot reach the reward server at {settings.reward_endpoint}: {down}")
    return endpoint, scorer


def reachable(url: str, config: SolveConfig) -> str | None:
    """None if a server answers at the origin of `url` (any HTTP status), else the failure."""
    parts = urlsplit(url)
    try:
        HttpClient(config).get(f"{parts.scheme}://{parts.netloc}/")
    except EndpointError as exc:
        if exc.kind in ("http", "bad_response"):
            return None
        return str(exc)
    return None


def health_check(endpoint: Endpoint, reward_url: str | None, config: SolveConfig) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            endpoint.client.get(endpoint.base_url + "/get_model_info")
        except EndpointError as exc:
            return f"the policy server at {endpoint.base_url} stopped answering ({exc})"
        down = reachable(reward_url, config) if reward_url else None
        return None if down is None else f"the reward server at {reward_url} stopped answering ({down})"
    return check


def load_predictor(settings: RunSettings, policy_name: str):
    """The difficulty predictor (and its file): --model, else the shipped one of the server's policy, else
    none (a forced run then writes no prediction)."""
    name = settings.model
    if name is None:
        known = known_policy(policy_name)
        if known is None:
            return None, None
        name = known.name
    path = resolve_model_path(name)
    return load_model(str(path)), path


class ForcedSolver:
    """Every problem gets the same strategy and size. With a planner the plan carries the strategy table's
    expected accuracy and cost for the problem's predicted pass@1."""

    def __init__(self, strategy: str, size: int, endpoint: Endpoint, scorer: Scorer | None, config: SolveConfig,
                 predictions: dict[str, dict], planner: AdaptivePlanner | None = None) -> None:
        self.strategy, self.size, self.endpoint, self.scorer, self.config = strategy, size, endpoint, scorer, config
        self.predictions, self.planner = predictions, planner

    def __call__(self, problem: RunProblem) -> Solved:
        prediction = self.predictions.get(problem.problem_id)
        if prediction is None:
            result = solve(problem.text, self.strategy, self.size, self.endpoint, self.scorer, self.config)
        else:
            result = solve(problem.text, self.strategy, self.size, self.endpoint, self.scorer, self.config,
                           self.planner, pass_at_1=prediction["pass_at_1"])
        return Solved(result, result.plan, prediction)


class AdaptiveSolver:
    """The planner decides: probe each problem, update the belief, plan the rest, stop early
    (sglang_plugin.adaptive), spending the settings' budget per problem on average."""

    def __init__(self, settings: RunSettings, endpoint: Endpoint, scorer: Scorer | None, planner: AdaptivePlanner,
                 predictions: dict[str, dict]) -> None:
        self.settings, self.endpoint, self.scorer, self.planner = settings, endpoint, scorer, planner
        self.predictions = predictions

    def __call__(self, problem: RunProblem) -> Solved:
        settings, prediction = self.settings, self.predictions[problem.problem_id]
        result = solve(problem.text, "adaptive", settings.budget, self.endpoint, self.scorer, settings.config,
                       self.planner, max_budget=settings.max_budget, target_confidence=settings.target_confidence,
                       pass_at_1=prediction["pass_at_1"])
        return Solved(result, result.plan, prediction)


def predictions_of(predictor, path: Path | None, problems: list[RunProblem]) -> dict[str, dict]:
    """Every problem's prediction in one batch (the planner is handed its pass@1 instead of predicting again)."""
    if predictor is None:
        return {}
    pass_at_1 = np.round(predictor.predict([p.text for p in problems]), 4)  # the bin follows the number written
    model = Path(path).name
    policy_name = (getattr(predictor, "metadata_", None) or {}).get("policy")
    return {p.problem_id: {"pass_at_1": float(v), "difficulty": difficulty_bin(float(v)), "model": model,
                           "policy": policy_name} for p, v in zip(problems, pass_at_1)}


def known_policy(name: str) -> Policy | None:
    """The registry's entry for a server's model path (a hub id or a local directory), if there is one."""
    try:
        return policy(name)
    except InputError:
        return None


def params_of(settings: RunSettings, policy_name: str) -> tuple[float | None, float]:
    policy_params = settings.policy_params
    known = known_policy(policy_name)
    if policy_params is None and known is not None:
        policy_params = known.params
    name = settings.reward_model_name
    reward_params = reward_model(name).params if name else 0.0
    return policy_params, reward_params


def make_planner(settings: RunSettings, predictor) -> AdaptivePlanner:
    try:
        return AdaptivePlanner(predictor=predictor, reward_model=settings.reward_model_name,
                               calibration=settings.calibration, **settings.planner_options)
    except TypeError as exc:
        raise InputError(f"bad --planner-option: {exc}", field="planner_options") from None


def run_batch(settings: RunSettings, echo: Callable[[str], object] = print) -> RunReport:
    """Run (or resume) a batch; raises PlannerError (ServerDown, TooManyFailures, bad input) or
    KeyboardInterrupt, each leaving the output whole and resumable."""
    if settings.reward_model:
        reward_model(settings.reward_model)
    skip = SkipLog() if settings.skip_bad else None
    problems = read_run_problems(settings.input, settings.field, answer_field=settings.answer_field, skip=skip,
                                 max_chars=settings.max_chars)
    endpoint, scorer = connect(settings)
    policy_name = endpoint.model_info["model_path"]
    predictor, predictor_path = load_predictor(settings, policy_name)
    if predictor is None and settings.strategy is None:
        echo(f"the server's model '{policy_name}' is not a policy tts-planner knows; predicting its difficulty with "
             f"the predictor of {DEFAULT_POLICY} (train your own with `tts-planner train`, then give --model)")
        predictor, predictor_path = load_predictor(replace(settings, model=DEFAULT_POLICY), policy_name)
    planner = make_planner(settings, predictor) if predictor is not None else None
    predictions = predictions_of(predictor, predictor_path, problems)
    solver = ForcedSolver(settings.strategy, settings.size, endpoint, scorer, settings.config, predictions, planner) \
        if settings.strategy else AdaptiveSolver(settings, endpoint, scorer, planner, predictions)
    judge = Judge(settings.config.answer_timeout, settings.config.answer_workers)
    with RunFiles(settings.output, settings.outcomes_path, settings.identity(policy_name, predictor_path),
                  overwrite=settings.overwrite, retry_failed=settings.retry_failed) as files:
        for note in files.notes:
            echo(note)
        runner = BatchRunner(solver, files, judge, policy=policy_name, concurrency=settings.concurrency,
                             health=health_check(endpoint, settings.reward_endpoint, settings.config),
                             max_failures_in_a_row=settings.max_failures_in_a_row, retry_delay=settings.retry_delay,
                             answer_field=settings.answer_field, progress=settings.progress)
        try:
            session = runner.run(problems)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(len(files.finished), len(problems)) from exc
        policy_params, reward_params = params_of(settings, policy_name)
        summary = summarize(files.finished.values(), wall_time=session.wall_time, session_problems=session.written,
                            policy_params=policy_params, reward_params=reward_params)
        return RunReport(summary, session, files.notes, skip)
