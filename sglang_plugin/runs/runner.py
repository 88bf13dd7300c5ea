"""The batch runner: many problems at once against one SGLang server (or gateway), each finished problem
written as it ends, so a run can be stopped or killed at any point and resumed.

Problem-level policy (on top of the per-request retries of transport/http.py):
- A problem every planned branch of which ended as a sample of the policy is written with status "ok".
- When any branch failed (its requests gave up after their retries), the servers are checked at once:
  - If the policy server (or the reward server) does not answer, the problem waits for them, checking every
    `health_interval` seconds for up to `server_wait` seconds, then runs again from the start: a short
    outage (a restarted server, a gateway's worker replaced) is ridden out without anyone resuming the run.
    If they stay down (or one problem meets `MAX_OUTAGES` outages), the run stops with `ServerDown` and
    nothing is written for the problem, so resuming runs it again.
  - If they answer, the failure is the problem's own (e.g. a prompt the server refuses, a dropped
    connection): the problem runs once more after `retry_delay` seconds. After the second attempt the
    better of the two is written: status "partial" when it has samples but fewer than planned (answered from
    the rest; `--retry-failed` runs it again), "failed" when no branch finished. Tokens of every attempt count.
- Failed lines are held back until a later problem succeeds (proof the servers work). If
  `max_failures_in_a_row` problems fail in a row, the run stops with `TooManyFailures` and writes none
  of them: a server that answers health checks but fails every request gives one clear error, not a
  file of failures.
- Watchdog: when for `watchdog` seconds no problem finished and no server answered a request or streamed a
  chunk (the solver's `pulse()` did not move), the run stops with `Stalled`: a run never hangs, whatever the
  servers do.
- On KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM to it too) no new problem starts and problems in
  flight are abandoned: nothing partial is written (a signal that arrives while a problem's records are
  written is held until they are all written), and resuming runs them again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from planner.cost import Cost
from planner.errors import RunStopped
from planner.grading import Grader
from planner.logs import logger
from planner.records import OutcomeRecord, ResultLine
from planner.redact import redact
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.problems import RunProblem
from sglang_plugin.runs.results import Judge, Solved, outcome_records, result_line

# Seconds without progress before a run stops: longer than one generation takes at the usual token caps (a
# request without a byte fails by itself after the transport's read timeout); raise it for hour-long traces.
DEFAULT_WATCHDOG = 1800.0
DEFAULT_SERVER_WAIT = 60.0  # seconds a problem waits for servers that stopped answering
MAX_OUTAGES = 3  # outages one problem rides out before the run stops

log = logger(__name__)


class ServerDown(RunStopped):
    """A server stopped answering during the run and did not come back."""


class TooManyFailures(RunStopped):
    """Problem after problem failed although the servers answer."""


class Stalled(RunStopped):
    """Nothing progressed for the watchdog's time."""


class Solver(Protocol):
    def __call__(self, problem: RunProblem) -> Solved: ...

    def pulse(self) -> int:
        """A count that grows with every answer or streamed chunk a server gives (progress for the watchdog)."""
        ...


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
    partial: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    @property
    def wall_time(self) -> float:
        return (self.ended or time.perf_counter()) - self.started


class BatchRunner:
    """Runs `solver` on every problem not yet in `files`, `concurrency` at a time, writing each as it ends.

    `health()` returns None when the servers answer, else what is wrong; `policy` names the serving policy
    in the outcome records; `secrets` are masked in every error written.
    """

    def __init__(self, solver: Solver, files: RunFiles, grader: Grader, *, policy: str, concurrency: int = 8,
                 health: Callable[[], str | None] = lambda: None, max_failures_in_a_row: int = 10,
                 retry_delay: float = 2.0, answer_field: str = "answer", progress: bool = True,
                 watchdog: float = DEFAULT_WATCHDOG, server_wait: float = DEFAULT_SERVER_WAIT,
                 health_interval: float = 2.0, secrets: Sequence[str] = ()) -> None:
        if concurrency < 1 or max_failures_in_a_row < 1:
            raise ValueError("concurrency and max_failures_in_a_row must be at least 1")
        if watchdog <= 0 or server_wait < 0 or health_interval <= 0:
            raise ValueError("watchdog and health_interval must be positive, server_wait not negative")
        self.solver, self.files, self.grader, self.policy = solver, files, grader, policy
        self.concurrency, self.health = concurrency, health
        self.max_failures_in_a_row, self.retry_delay = max_failures_in_a_row, retry_delay
        self.answer_field, self.progress = answer_field, progress
        self.watchdog, self.server_wait, self.health_interval = watchdog, server_wait, health_interval
        self.secrets = tuple(secrets)
        self.session = Session()
        self._stop = threading.Event()
        self._held: list[_Finished] = []
        self._waiting_lock = threading.Lock()
        self._waiters = 0  # problems waiting for the servers to come back

    def run(self, problems: Sequence[RunProblem]) -> Session:
        """Run what is left; returns the session, or raises ServerDown, TooManyFailures, Stalled or
        KeyboardInterrupt (after which the output holds every problem finished so far, and nothing partial)."""
        todo = [p for p in problems if p.problem_id not in self.files.finished]
        self.session, self._stop, self._held = Session(), threading.Event(), []
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc="solving", unit="problem",
                   file=sys.stderr, disable=None if self.progress else True, dynamic_ncols=True)
        pending: dict[Future, RunProblem] = {}
        queue = iter(todo)
        pulse, moved = self.solver.pulse(), time.monotonic()
        try:
            self._fill(pending, queue)
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    self._record(future.result(), bar)
                now, beat = time.monotonic(), self.solver.pulse()
                if done or beat != pulse:
                    pulse, moved = beat, now
                elif now - moved > self.watchdog:
                    raise Stalled(f"no progress for {self.watchdog:g} s: no problem finished and no server answered "
                                  "a request or streamed a token (a stalled server? give long unstreamed generations "
                                  "a larger --watchdog-seconds); "
                                  f"{self._so_far()}")
                self._fill(pending, queue)
            self._flush_held(bar)
        finally:
            self._stop.set()
            self.session.ended = time.perf_counter()
            bar.close()
        return self.session

    def _fill(self, pending: dict, queue) -> None:
        while len(pending) < self.concurrency:
            problem = next(queue, None)
            if problem is None:
                return
            pending[self._start(problem)] = problem

    def _start(self, problem: RunProblem) -> Future:
        """Solve a problem in a daemon thread of its own: a problem abandoned when the run stops never keeps
        the process from exiting (a thread pool's threads are joined at exit)."""
        future: Future = Future()

        def work() -> None:
            try:
                future.set_result(self._attempt(problem))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
                future.set_exception(exc)

        threading.Thread(target=work, name="tts-run-problem", daemon=True).start()
        return future

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
        self.session.failed += outcome.line.status == "failed"
        self.session.partial += outcome.line.status == "partial"
        line = outcome.line
        log.debug(f"{line.problem_id}: {line.status}, answer {line.answer!r}"
                  + ("" if line.correct is None else f" ({'right' if line.correct else 'wrong'})")
                  + f", {line.cost.tokens:,} tokens, {line.branches} branches")
        bar.update(1)

    def _so_far(self) -> str:
        return (f"{len(self.files.finished)} problem(s) are in {self.files.output}, nothing partial was written "
                "(failures held back are not written either)")

    # -- worker threads ----------------------------------------------------------------------------------

    def _attempt(self, problem: RunProblem) -> _Finished | _Down | None:
        """Solve under the module's policy; None when the run stopped first."""
        errors: list[str] = []
        cost = Cost()
        kept: Solved | None = None
        tries = outages = 0
        while True:
            if self._stop.is_set():
                return None
            try:
                solved: Solved | None = self.solver(problem)
            except Exception as exc:  # noqa: BLE001 - one problem's error must not end the other problems
                solved, failure = None, f"{type(exc).__name__}: {exc}"
            else:
                cost = cost + solved.result.cost
                if solved.complete:  # the attempt that ran as planned is the one written
                    kept = solved
                    errors += solved.result.errors
                    break
                kept = _better(kept, solved)
                failure = solved.failure()
            how = "failed" if solved is None or solved.failed else "was partial"
            errors.append(f"attempt {tries + outages + 1} {how}: {failure}")
            down = self.health()
            if down is not None:
                outages += 1
                if outages > MAX_OUTAGES or not self._wait_for_servers(down):
                    return None if self._stop.is_set() else _Down(down)
                continue
            tries += 1
            if tries == 2:
                break
            log.info(f"{problem.problem_id}: {redact(errors[-1], self.secrets)[:300]}; running it again in "
                     f"{self.retry_delay:g} s")
            if self._stop.wait(self.retry_delay):
                return None
        if self._stop.is_set():
            return None
        judge = Judge(self.grader, problem.reference) if problem.reference is not None else None
        if judge is not None and kept is not None:
            judge(kept.result.answer)  # the answer first, while the judging time is fresh
        records = outcome_records(problem, kept, judge, self.policy)  # before the line, which lists judge errors
        line = result_line(problem, kept, judge, errors=errors, cost=cost, answer_field=self.answer_field,
                           secrets=self.secrets)
        return _Finished(problem, line, records, line.status == "failed")

    def _wait_for_servers(self, down: str) -> bool:
        """Wait up to `server_wait` seconds for the servers to answer again; True when they do."""
        if self.server_wait <= 0:
            return False
        with self._waiting_lock:
            if not self._waiters:  # one notice per outage, not one per problem in flight
                log.warning(f"{down}; waiting up to {self.server_wait:g} s for it to come back")
            self._waiters += 1
        deadline = time.monotonic() + self.server_wait
        try:
            while not self._stop.wait(max(0.0, min(self.health_interval, deadline - time.monotonic()))):
                if self.health() is None:
                    return True
                if time.monotonic() >= deadline:
                    return False
            return False
        finally:
            with self._waiting_lock:
                self._waiters -= 1


def _better(kept: Solved | None, solved: Solved) -> Solved:
    """Of two attempts that both lost branches, the one to write: more samples of the policy (later on a tie)."""
    return solved if kept is None or solved.whole_samples >= kept.whole_samples else kept
