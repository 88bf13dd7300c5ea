"""A batch run from settings to summary: check what can be checked, connect to the servers, read the problems,
predict their difficulty in one batch, open (or resume) the output, run, summarise. `tts-planner run`, each arm
of `tts-planner calibrate` and `tts-planner demo` are thin layers over this module.

Start-up never waits long in silence: the policy server's first answer is awaited with one retry (a server that
accepts connections but never answers is given up on after two control timeouts, 60 s by default), and a wait
past two seconds is announced. A server that answers /health but not /get_model_info (the SGLang Model Gateway
sends that request to one of its workers without trying another, so it fails while that worker is down) is
waited for up to `server_wait` seconds. During the run the same distinction keeps a gateway that lost that
worker from counting as down: generation still reaches the other workers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from planner.difficulty import BINS, difficulty_bin
from planner.errors import PlannerError, RunInterrupted
from planner.files import check_writable
from planner.grading import shared_grader
from planner.jsonl import SkipLog
from planner.logs import logger
from planner.policies import known_policy
from planner.prediction.model_store import predictor_for, shared_model
from planner.records import Prediction
from planner.redact import redact_url
from sglang_plugin.programs.planning import Planning
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.problems import RunProblem, read_run_problems
from sglang_plugin.runs.results import Solved
from sglang_plugin.runs.runner import BatchRunner, Session
from sglang_plugin.runs.settings import RunSettings
from sglang_plugin.runs.summary import RunSummary, summarize
from sglang_plugin.scorers.base import Scorer
from sglang_plugin.solving import solve
from sglang_plugin.transport.endpoint import Endpoint
from sglang_plugin.transport.http import EndpointError, HttpClient, TransportConfig

STARTUP_NOTICE = 2.0  # seconds of silence at start-up before saying what the run waits for
GATEWAY_POLL = 2.0  # seconds between start-up checks of a server that answers /health only

log = logger(__name__)


@dataclass
class RunReport:
    summary: RunSummary
    session: Session
    notes: list[str]
    skipped: SkipLog | None


def connect(settings: RunSettings) -> tuple[Endpoint, Scorer | None]:
    """The policy endpoint and the scorer, both checked to answer, with a clear error when one does not."""
    startup = replace(settings.transport, max_retries=min(settings.transport.max_retries, 1))
    shown = redact_url(settings.endpoint)
    _await_policy(settings, startup)
    try:
        endpoint = Endpoint(settings.endpoint, api_key=settings.api_key, transport=settings.transport)
    except EndpointError as exc:
        raise PlannerError(f"cannot reach the policy server at {shown}: {exc}") from None
    scorer = settings.make_scorer()
    if settings.reward_endpoint:
        down = reachable(settings.reward_endpoint, startup)
        if down is not None:
            raise PlannerError(f"cannot reach the reward server at {redact_url(settings.reward_endpoint)}: {down}")
    return endpoint, scorer


def _await_policy(settings: RunSettings, startup: TransportConfig) -> None:
    """Return once the policy server answers GET /get_model_info; raise PlannerError saying why it does not."""
    url, shown = settings.endpoint.rstrip("/"), redact_url(settings.endpoint)
    client = HttpClient(startup, api_key=settings.api_key)
    deadline = time.monotonic() + settings.server_wait
    told = told_gateway = False
    while True:
        future = client.submit(client.arequest("GET", url + "/get_model_info", control=True))
        try:
            try:
                future.result(timeout=STARTUP_NOTICE)
            except FutureTimeout:
                if not told:
                    log.info(f"waiting for the policy server at {shown} to answer GET /get_model_info (giving up "
                             f"after {startup.control_timeout * (startup.max_retries + 1):g} s without an answer) ...")
                    told = True
                future.result()
            return
        except EndpointError as exc:
            if exc.kind == "connection":
                raise PlannerError(f"cannot reach the policy server at {shown}: {exc}. Is it running? (Try "
                                   "`tts-planner demo` or `tts-planner sim-server` for a simulated one.)") from None
            if exc.kind == "timeout":
                raise PlannerError(f"the policy server at {shown} accepted the connection but did not answer GET "
                                   f"/get_model_info ({exc}); it may be stuck or overloaded") from None
            healthy = _answers(client, url + "/health")
            if not healthy or time.monotonic() >= deadline:
                hint = (" although it answers /health (behind the SGLang Model Gateway: the worker it asks for the "
                        "model info is down; the gateway drops it after its health checks fail)" if healthy else "")
                raise PlannerError(f"cannot reach the policy server at {shown}: {exc}{hint}") from None
            if not told_gateway:
                log.warning(f"the server at {shown} answers /health but not GET /get_model_info ({str(exc)[:200]}); "
                            "behind the SGLang Model Gateway that is the worker it asks being down: waiting up to "
                            f"{settings.server_wait:g} s for the gateway to drop it ...")
                told_gateway = True
            time.sleep(GATEWAY_POLL)


def _answers(client: HttpClient, url: str) -> bool:
    """Whether GET `url` is answered with a success."""
    try:
        client.request("GET", url, text=True, control=True)
    except EndpointError:
        return False
    return True


def reachable(url: str, transport: TransportConfig) -> str | None:
    """None if a server answers at the origin of `url` (any HTTP status), else the failure."""
    parts = urlsplit(url)
    try:
        HttpClient(transport).get(f"{parts.scheme}://{parts.netloc}/")
    except EndpointError as exc:
        if exc.kind in ("http", "bad_response"):
            return None
        return str(exc)
    return None


def health_check(endpoint: Endpoint, reward_url: str | None, transport: TransportConfig) -> Callable[[], str | None]:
    """None while the servers answer, else what is wrong. A policy server whose /get_model_info fails but whose
    /health answers still counts as up (a gateway that lost the worker it asks for model info routes generation
    to the others)."""
    shown = redact_url(endpoint.base_url)

    def check() -> str | None:
        try:
            endpoint.client.get(endpoint.base_url + "/get_model_info")
        except EndpointError as exc:
            if exc.kind not in ("http", "bad_response") or not _answers(endpoint.client, endpoint.base_url + "/health"):
                return f"the policy server at {shown} stopped answering ({exc})"
        down = reachable(reward_url, transport) if reward_url else None
        return None if down is None else f"the reward server at {redact_url(reward_url)} stopped answering ({down})"
    return check


def planning_for(settings: RunSettings) -> Planning:
    """The run's planning inputs (shared by every problem; each problem adds its batch prediction)."""
    return Planning(adaptive=settings.adaptive, predictor=settings.model, policy=settings.policy,
                    policy_params=settings.policy_params, thinking_end=settings.thinking_end,
                    reward_model=settings.reward_model,
                    calibration=None if settings.calibration is None else str(settings.calibration),
                    max_budget=settings.max_budget, target_confidence=settings.target_confidence,
                    budget_tokens=settings.budget_tokens)


def predict_all(planning: Planning, served: str, problems: list[RunProblem]) -> tuple[dict[str, Prediction], Path]:
    """Every problem's prediction in one batch (each solve is handed its pass@1 instead of predicting again), and
    the predictor's file."""
    policy = planning.policy_of(served)
    model = planning.predictor if isinstance(planning.predictor, str) else None
    predictor, path = predictor_for(policy.name if policy.known else None, model)
    pass_at_1 = np.round(predictor.predict([p.text for p in problems]), 4)  # the bin follows the number written
    predictions = {p.problem_id: Prediction(float(v), difficulty_bin(float(v)), policy.name, path.name, served)
                   for p, v in zip(problems, pass_at_1)}
    return predictions, path


class Solver:
    """Solves one problem of the run: the forced strategy at its size, or the adaptive program at the budget."""

    def __init__(self, settings: RunSettings, endpoint: Endpoint, scorer: Scorer | None, planning: Planning,
                 predictions: dict[str, Prediction]) -> None:
        self.strategy = settings.strategy or "adaptive"
        self.size = settings.size if settings.strategy else settings.budget
        self.endpoint, self.scorer, self.config, self.planning = endpoint, scorer, settings.config, planning
        self.predictions = predictions

    def __call__(self, problem: RunProblem) -> Solved:
        planning = self.planning.for_problem(pass_at_1=self.predictions[problem.problem_id].pass_at_1)
        result = solve(problem.text, self.strategy, self.size, self.endpoint, self.scorer, self.config, planning)
        if result.prediction is not None:  # the batch's prediction, naming its predictor file
            result.prediction = self.predictions[problem.problem_id]
        return Solved(result)

    def pulse(self) -> int:
        """Answers the policy server gave so far, and chunks it streamed (the runner's watchdog sees progress in
        it: a long-thinking trace streams for many minutes before its request ends)."""
        return self.endpoint.totals.snapshot().requests + self.endpoint.stream_events


def batch_runner(settings: RunSettings, solver: Solver, files: RunFiles, grader, endpoint: Endpoint,
                 served: str) -> BatchRunner:
    """The runner of one output file under the run's settings (watchdog, server wait, secrets masked)."""
    return BatchRunner(solver, files, grader, policy=served, concurrency=settings.concurrency,
                       health=health_check(endpoint, settings.reward_endpoint, settings.transport),
                       max_failures_in_a_row=settings.max_failures_in_a_row, retry_delay=settings.retry_delay,
                       answer_field=settings.answer_field, progress=settings.progress,
                       watchdog=settings.watchdog_for(solver.planning.policy_of(served)),
                       server_wait=settings.server_wait, secrets=settings.secrets)


def run_batch(settings: RunSettings) -> RunReport:
    """Run (or resume) a batch; raises PlannerError (ServerDown, TooManyFailures, Stalled, bad input) or
    KeyboardInterrupt, each leaving the output whole and resumable."""
    skip = SkipLog() if settings.skip_bad else None
    problems = read_run_problems(settings.input, settings.field, answer_field=settings.answer_field, skip=skip,
                                 max_chars=settings.max_chars)
    for path in (settings.output, settings.outcomes_path):
        check_writable(path)
    if settings.model is not None:
        shared_model(settings.model)  # a missing or unreadable model file is refused before the first request
    endpoint, scorer = connect(settings)
    served = endpoint.model_info["model_path"]
    planning = planning_for(settings)
    policy = planning.policy_of(served)
    per_sample = planning.table_for(served, scorer, settings.config.search).cost.tokens_per_sample
    given, settings = settings, settings.with_budget_for(policy, per_sample)
    if settings.budget_tokens != given.budget_tokens:
        log.info(f"{policy.name} thinks at length: budgeting {settings.budget_tokens:,.0f} generated tokens per "
                 f"problem ({settings.budget} samples' worth; --budget {settings.budget} budgets samples instead)")
    planning = planning_for(settings)
    if settings.policy is None and known_policy(served) is None:
        log.warning(f"the server's model '{served}' is not a policy tts-planner knows; planning as {policy.name} "
                    "and predicting with its predictor (give --policy NAME --policy-params N for your policy, and "
                    "train a predictor on its outcomes with `tts-planner train`, then give --model)")
    log.debug(f"{redact_url(settings.endpoint)} serves {served}"
             + (f"; reward model {settings.reward_model_name} at {redact_url(settings.reward_endpoint)}"
                if settings.reward_endpoint else ""))
    predictions, predictor_path = predict_all(planning, served, problems)
    bins = Counter(p.difficulty for p in predictions.values())
    log.debug(f"predicted with {predictor_path.name}: " + ", ".join(f"{b} {bins[b]}" for b in BINS))
    what = f"{settings.strategy}@{settings.size}" if settings.strategy else "adaptive at budget " + (
        f"{settings.budget}" if settings.budget_tokens is None else f"{settings.budget_tokens:g} tokens")
    log.debug(f"{what}, {settings.concurrency} problems at a time, sampling {settings.config.sampling}")
    solver = Solver(settings, endpoint, scorer, planning, predictions)
    grader = shared_grader(settings.config.grading)
    with RunFiles(settings.output, settings.outcomes_path, settings.identity(policy.name, predictor_path),
                  overwrite=settings.overwrite, retry_failed=settings.retry_failed) as files:
        for note in files.notes:
            log.info(note)
        runner = batch_runner(settings, solver, files, grader, endpoint, served)
        try:
            session = runner.run(problems)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(len(files.finished), len(problems), str(settings.output)) from exc
        rm = planning.reward_model_of(scorer)
        summary = summarize(files.finished.values(), wall_time=session.wall_time, session_problems=session.written,
                            policy_params=policy.params, reward_params=rm.params if rm else 0.0)
        return RunReport(summary, session, files.notes, skip)
