"""A batch run from settings to summary: connect to the servers, read the problems, open (or resume) the
output, run, summarise. `tts-planner run` and `tts-planner demo` are thin layers over `run_batch`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from planner.difficulty import difficulty_bin
from planner.errors import InputError, PlannerError
from planner.files import sha256_of
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog
from planner.policies import Policy, policy, reward_model
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


@dataclass(frozen=True)
class RunSettings:
    """Everything one batch run needs; the fields marked in `identity()` must match to resume an output."""

    endpoint: str
    input: Path
    output: Path
    outcomes: Path | None = None  # default: OUTPUT.outcomes.jsonl
    budget: float = 4.0
    strategy: str | None = None  # forced strategy (with `size`); None: the planner decides
    size: int | None = None
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
        if not self.budget > 0:
            raise InputError(f"must be positive, got {self.budget}", field="budget")
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
        return {
            "input_sha256": sha256_of(self.input),
            "settings": {
                "policy": policy_name, "field": self.field, "answer_field": self.answer_field,
                "strategy": self.strategy or "adaptive", "size": self.size, "budget": None if forced else self.budget,
                "scorer": self.scorer_kind, "reward_model": self.reward_model_name,
                "reward_options": self.reward_options,
                "predictor": None if forced or predictor is None else sha256_of(predictor),
                "config": {k: v for k, v in self.config.to_dict().items() if k not in TRANSPORT_FIELDS},
            },
        }


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
    from planner.model_store import load_model, resolve_model_path

    name = settings.model
    if name is None:
        known = known_policy(policy_name)
        if known is None:
            return None, None
        name = known.name
    path = resolve_model_path(name)
    return load_model(str(path)), path


class ForcedSolver:
    """Every problem gets the same strategy and size; the prediction is recorded for the summary."""

    def __init__(self, strategy: str, size: int, endpoint: Endpoint, scorer: Scorer | None, config: SolveConfig,
                 predictions: dict[str, dict]) -> None:
        self.strategy, self.size, self.endpoint, self.scorer, self.config = strategy, size, endpoint, scorer, config
        self.predictions = predictions

    def __call__(self, problem: RunProblem) -> Solved:
        result = solve(problem.text, self.strategy, self.size, self.endpoint, self.scorer, self.config)
        return Solved(result, {"strategy": self.strategy, "size": self.size, "forced": True},
                      self.predictions.get(problem.problem_id))


def predictions_of(predictor, path: Path | None, problems: list[RunProblem]) -> dict[str, dict]:
    if predictor is None:
        return {}
    pass_at_1 = predictor.predict([p.text for p in problems])
    model = Path(path).name
    policy_name = (getattr(predictor, "metadata_", None) or {}).get("policy")
    return {p.problem_id: {"pass_at_1": round(float(v), 4), "difficulty": difficulty_bin(float(v)), "model": model,
                           "policy": policy_name} for p, v in zip(problems, np.asarray(pass_at_1))}


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
    if settings.strategy is None:
        raise InputError("the adaptive planner is not available yet: give --strategy and --size", field="strategy")
    solver = ForcedSolver(settings.strategy, settings.size, endpoint, scorer, settings.config,
                          predictions_of(predictor, predictor_path, problems))
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
