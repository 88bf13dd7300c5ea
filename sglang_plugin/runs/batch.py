"""A batch run from settings to summary: connect to the servers, read the problems, predict their difficulty in
one batch, open (or resume) the output, run, summarise. `tts-planner run`, each arm of `tts-planner calibrate`
and `tts-planner demo` are thin layers over this module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from planner.difficulty import difficulty_bin
from planner.errors import PlannerError, RunInterrupted
from planner.grading import shared_grader
from planner.jsonl import SkipLog
from planner.policies import known_policy
from planner.prediction.model_store import predictor_for
from planner.records import Prediction
from sglang_plugin.programs.planning import Planning
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.problems import RunProblem, read_run_problems
from sglang_plugin.runs.results import Solved
from sglang_plugin.runs.runner import BatchRunner, Session
from sglang_plugin.runs.settings import RunSettings
from sglang_plugin.runs.summary import RunSummary, summarize
from sglang_plugin.scorers.base import Scorer
from sglang_plugin.solve import solve
from sglang_plugin.transport.endpoint import Endpoint
from sglang_plugin.transport.http import EndpointError, HttpClient, TransportConfig


@dataclass
class RunReport:
    summary: RunSummary
    session: Session
    notes: list[str]
    skipped: SkipLog | None


def connect(settings: RunSettings) -> tuple[Endpoint, Scorer | None]:
    """The policy endpoint and the scorer, both checked to answer, with a clear error when one does not."""
    try:
        endpoint = Endpoint(settings.endpoint, api_key=settings.api_key, transport=settings.transport)
    except EndpointError as exc:
        raise PlannerError(f"cannot reach the policy server at {settings.endpoint}: {exc}. Is it running? "
                           "(Try `tts-planner demo` or `tts-planner sim-server` for a simulated one.)") from None
    scorer = settings.make_scorer()
    if settings.reward_endpoint:
        down = reachable(settings.reward_endpoint, settings.transport)
        if down is not None:
            raise PlannerError(f"cannot reach the reward server at {settings.reward_endpoint}: {down}")
    return endpoint, scorer


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
    def check() -> str | None:
        try:
            endpoint.client.get(endpoint.base_url + "/get_model_info")
        except EndpointError as exc:
            return f"the policy server at {endpoint.base_url} stopped answering ({exc})"
        down = reachable(reward_url, transport) if reward_url else None
        return None if down is None else f"the reward server at {reward_url} stopped answering ({down})"
    return check


def planning_for(settings: RunSettings) -> Planning:
    """The run's planning inputs (shared by every problem; each problem adds its batch prediction)."""
    return Planning(adaptive=settings.adaptive, predictor=settings.model, policy=settings.policy,
                    policy_params=settings.policy_params, reward_model=settings.reward_model,
                    calibration=None if settings.calibration is None else str(settings.calibration),
                    max_budget=settings.max_budget, target_confidence=settings.target_confidence)


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


def run_batch(settings: RunSettings, echo: Callable[[str], object] = print) -> RunReport:
    """Run (or resume) a batch; raises PlannerError (ServerDown, TooManyFailures, bad input) or
    KeyboardInterrupt, each leaving the output whole and resumable."""
    skip = SkipLog() if settings.skip_bad else None
    problems = read_run_problems(settings.input, settings.field, answer_field=settings.answer_field, skip=skip,
                                 max_chars=settings.max_chars)
    endpoint, scorer = connect(settings)
    served = endpoint.model_info["model_path"]
    planning = planning_for(settings)
    policy = planning.policy_of(served)
    if settings.policy is None and known_policy(served) is None:
        echo(f"the server's model '{served}' is not a policy tts-planner knows; planning as {policy.name} and "
             f"predicting with its predictor (give --policy NAME --policy-params N for your policy, and train a "
             "predictor on its outcomes with `tts-planner train`, then give --model)")
    predictions, predictor_path = predict_all(planning, served, problems)
    solver = Solver(settings, endpoint, scorer, planning, predictions)
    grader = shared_grader(settings.config.grading)
    with RunFiles(settings.output, settings.outcomes_path, settings.identity(policy.name, predictor_path),
                  overwrite=settings.overwrite, retry_failed=settings.retry_failed) as files:
        for note in files.notes:
            echo(note)
        runner = BatchRunner(solver, files, grader, policy=served, concurrency=settings.concurrency,
                             health=health_check(endpoint, settings.reward_endpoint, settings.transport),
                             max_failures_in_a_row=settings.max_failures_in_a_row, retry_delay=settings.retry_delay,
                             answer_field=settings.answer_field, progress=settings.progress)
        try:
            session = runner.run(problems)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(len(files.finished), len(problems), str(settings.output)) from exc
        rm = planning.reward_model_of(scorer)
        summary = summarize(files.finished.values(), wall_time=session.wall_time, session_problems=session.written,
                            policy_params=policy.params, reward_params=rm.params if rm else 0.0)
        return RunReport(summary, session, files.notes, skip)
