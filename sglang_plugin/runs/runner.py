"""The batch runner: many problems at once against one SGLang server (or gateway), each finished problem
written as it ends, so a run can be stopped or killed at any point and resumed.

Problem-level policy (on top of the per-request retries of endpoint.py):
- A problem none of whose branches finished (every request failed for good, or the solve raised) is run
  once more after `retry_delay` seconds.
- If it fails again, the servers are checked: when the policy server (or the reward server) does not
  answer, the run stops with `ServerDown` and nothing is written for that problem, so resuming runs it
  again. When they answer, the failure is the problem's own (e.g. a prompt the server refuses): its line
  is written with status "failed" and the errors of both attempts.
- Failed lines are held back until a later problem succeeds (proof the servers work). If
  `max_failures_in_a_row` problems fail in a row, the run stops with `TooManyFailures` and writes none
  of them: a server that answers health checks but fails every request gives one clear error, not a
  file of failures.
- On KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM to it too) no new problem starts and problems in
  flight are abandoned: nothing partial is written, and resuming runs them again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from planner.cost import Cost
from planner.errors import RunStopped
from planner.grading import Grader
from planner.records import OutcomeRecord, ResultLine
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.problems import RunProblem
from sglang_plugin.runs.results import Solved, outcome_records, result_line


class ServerDown(RunStopped):
    """A server stopped answering during the run."""


class TooManyFailures(RunStopped):
    """Problem after problem failed although the servers answer."""


class Solver(Protocol):
    def __call__(self, problem: RunProblem) -> Solved: ...


@dataclass
class _Finished:
    problem: RunProblem
    line: ResultLine
    outcomes: list[OutcomeRecord]
    failed: bool


@dataclass
class _Down:
    message: str


@dataclass
class Session:
    """What this session did (the output may hold more, from earlier sessions)."""

    written: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    @property
    def wall_time(self) -> float:
        return (self.ended or time.perf_counter()) - self.started


class BatchRunner:
    """Runs `solver` on every problem not yet in `files`, `concurrency` at a time, writing each as it ends.

    `health()` returns None when the servers answer, else what is wrong; `policy` names the serving policy
    in the outcome records.
    """

    def __init__(self, solver: Solver, files: RunFiles, grader: Grader, *, policy: str, concurrency: int = 8,
                 health: Callable[[], str | None] = lambda: None, max_failures_in_a_row: int = 10,
                 retry_delay: float = 2.0, answer_field: str = "answer", progress: bool = True) -> None:
        if concurrency < 1 or max_failures_in_a_row < 1:
            raise ValueError("concurrency and max_failures_in_a_row must be at least 1")
        self.solver, self.files, self.grader, self.policy = solver, files, grader, policy
        self.concurrency, self.health = concurrency, health
        self.max_failures_in_a_row, self.retry_delay = max_failures_in_a_row, retry_delay
        self.answer_field, self.progress = answer_field, progress
        self.session = Session()
        self._stop = threading.Event()
        self._held: list[_Finished] = []

    def run(self, problems: Sequence[RunProblem]) -> Session:
        """Run what is left; returns the session, or raises ServerDown, TooManyFailures or KeyboardInterrupt
        (after which the output holds every problem finished so far, and nothing partial)."""
        todo = [p for p in problems if p.problem_id not in self.files.finished]
        self.session, self._stop, self._held = Session(), threading.Event(), []
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc="solving", unit="problem",
                   file=sys.stderr, disable=None if self.progress else True, dynamic_ncols=True)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="tts-run")
        pending: dict[Future, RunProblem] = {}
        queue = iter(todo)
        try:
            self._fill(pool, pending, queue)
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    self._record(future.result(), bar)
                self._fill(pool, pending, queue)
            self._flush_held(bar)
        finally:
            self._stop.set()
            self.session.ended = time.perf_counter()
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()
        return self.session

    def _fill(self, pool: ThreadPoolExecutor, pending: dict, queue) -> None:
        while len(pending) < self.concurrency:
            problem = next(queue, None)
            if problem is None:
                return
            pending[pool.submit(self._attempt, problem)] = problem

    # -- main thread: the only writer -----------------------------------------------------------------

    def _record(self, outcome: _Finished | _Down | None, bar: tqdm) -> None:
        if outcome is None:
            return
        if isinstance(outcome, _Down):
            raise ServerDown(f"{outcome.message}; {self._so_far()}")
        if outcome.failed:
            self._held.append(outcome)
            if len(self._held) >= self.max_failures_in_a_row:
                raise TooManyFailures(f"{len(self._held)} problems failed in a row although the servers answer; "
                                      f"the last: {'; '.join(outcome.line.errors)[:600]}; {self._so_far()}")
            return
        self._flush_held(bar)
        self._write(outcome, bar)

    def _flush_held(self, bar: tqdm) -> None:
        held, self._held = self._held, []
        for outcome in held:
            self._write(outcome, bar)

    def _write(self, outcome: _Finished, bar: tqdm) -> None:
        self.files.append(outcome.line, outcome.outcomes)
        self.session.written += 1
        self.session.failed += outcome.failed
        bar.update(1)

    def _so_far(self) -> str:
        return (f"{len(self.files.finished)} problem(s) are in {self.files.output}, nothing partial was written "
                "(failures held back are not written either)")

    # -- worker threads ----------------------------------------------------------------------------------

    def _attempt(self, problem: RunProblem) -> _Finished | _Down | None:
        """Solve with one retry; None when the run stopped first."""
        errors: list[str] = []
        cost = Cost()
        solved: Solved | None = None
        for attempt in (1, 2):
            if self._stop.is_set():
                return None
            try:
                solved = self.solver(problem)
            except Exception as exc:  # noqa: BLE001 - one problem's error must not end the other problems
                solved, failure = None, f"{type(exc).__name__}: {exc}"
            else:
                cost = cost + solved.result.cost
                if not solved.failed:
                    errors += solved.result.errors
                    break
                failure = "; ".join(solved.result.errors) or "no branch finished"
            errors.append(f"attempt {attempt} failed: {failure}")
            if attempt == 1 and self._stop.wait(self.retry_delay):
                return None
        else:
            down = self.health()
            if down is not None:
                return _Down(down)
        if self._stop.is_set():
            return None
        line = result_line(problem, solved, self.grader, errors=errors, cost=cost, answer_field=self.answer_field)
        records = outcome_records(problem, solved, self.grader, self.policy)
        return _Finished(problem, line, records, line.status == "failed")
