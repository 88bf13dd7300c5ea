"""What a batch run writes for one problem: its result line (the input record plus the outcome of the solve) and
its outcome records, one per independent sample, the labels `tts-planner train --label correct` retrains on.

Judging a problem's answers against its reference is bounded in time like grouping them: every distinct
answer is judged once, by the grader, until the grading config's `time_limit` is spent (the last comparison
started may run its own `timeout`); answers left after that are judged by their exact form only (a
comparison that ran out of time counts as "not the same", as in the grader). A judge that fails counts the
answer wrong and says so in the line's errors, so one problem can never end the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from planner.cost import Cost
from planner.grading import Grader, reference_answer
from planner.grading.equivalence import cheap_verdict
from planner.records import OutcomeRecord, ResultLine
from planner.redact import redact
from sglang_plugin.programs.result import Branch, SolveResult
from sglang_plugin.runs.problems import RunProblem

# A branch that stopped for one of these reasons is a whole sample of the policy; pruned and failed ones are not.
SAMPLE_REASONS = frozenset({"answer", "eos", "length", "max_steps"})


class Judge:
    """The verdicts on one problem's answers against its reference, within the grader's time limit."""

    def __init__(self, grader: Grader, reference: str) -> None:
        self.grader = grader
        self.reference = reference_answer(reference)  # extracted once, not per answer
        self.deadline = time.monotonic() + grader.time_limit
        self.errors: list[str] = []
        self._verdicts: dict[str, bool] = {}
        self._lock = threading.Lock()

    def __call__(self, answer: str | None) -> bool:
        if answer is None:
            return False
        with self._lock:
            if answer not in self._verdicts:
                self._verdicts[answer] = self._judge(answer)
            return self._verdicts[answer]

    def _judge(self, answer: str) -> bool:
        if time.monotonic() >= self.deadline:
            return cheap_verdict(self.reference, answer) is True
        try:
            return self.grader.correct(self.reference, answer)
        except Exception as exc:  # noqa: BLE001 - a judge that fails must not end the run
            self.errors.append(f"judging an answer failed ({type(exc).__name__}: {str(exc)[:200]}); counted wrong")
            return False


@dataclass
class Solved:
    """One problem's solve as the runner records it."""

    result: SolveResult

    @property
    def executed(self) -> str:
        """The strategy that ran: an adaptive solve's search if it ended in one, else its sampling rule."""
        trace = self.result.plan.adaptive if self.result.plan is not None else None
        if trace is None:
            return self.result.strategy
        return trace.search or trace.probe_strategy

    def samples(self) -> list[Branch]:
        """The branches that are independent samples of the policy (the programs mark them: whole samples drawn
        from the prompt and not selected; a search's candidates and traces that survived a confidence cut are
        not)."""
        return [b for b in self.result.branches if b.independent and is_sample(b)]

    @property
    def whole_samples(self) -> int:
        """Branches that ended as a whole sample of the policy."""
        return sum(1 for b in self.result.branches if is_sample(b))

    @property
    def failed(self) -> bool:
        """No branch ended as a sample of the policy: every one failed (or none ran)."""
        return self.whole_samples == 0

    @property
    def complete(self) -> bool:
        """Every branch ran as planned: none failed."""
        return not self.failed and not self.result.failed_branches

    def failure(self) -> str:
        """What went wrong, for the line's errors."""
        failed, total = len(self.result.failed_branches), len(self.result.branches)
        detail = "; ".join(self.result.errors) or "no branch finished"
        return detail if self.failed else f"{failed} of {total} branches failed: {detail}"


def status_of(solved: Solved | None) -> str:
    """"failed" without a sample, "partial" with fewer than planned (some branches failed), else "ok"."""
    if solved is None or solved.failed:
        return "failed"
    return "ok" if solved.complete else "partial"


def result_line(problem: RunProblem, solved: Solved | None, judge: Judge | None, *, errors: list[str], cost: Cost,
                answer_field: str = "answer", secrets: Sequence[str] = ()) -> ResultLine:
    """The input record plus the solve's outcome; `solved` None (a solve that raised) or without a finished
    branch gives status "failed". `errors` and `cost` cover every attempt at the problem; URL credentials and
    `secrets` are masked in the errors."""
    record = dict(problem.record)
    if problem.reference is not None and answer_field == "answer":
        record["reference_answer"] = record.pop("answer")
    result = solved.result if solved is not None else None
    answer = result.answer if result is not None else None
    verdict = judge(answer) if judge is not None else None
    errors = [redact(e, secrets) for e in [*errors, *(judge.errors if judge is not None else [])]]
    return ResultLine(
        problem_id=problem.problem_id, answer=answer, status=status_of(solved), cost=cost,
        strategy=solved.executed if solved is not None else None, correct=verdict,
        plan=result.plan if result is not None else None, prediction=result.prediction if result is not None else None,
        errors=tuple(errors), branches=len(result.branches) if result is not None else 0,
        failed_branches=len(result.failed_branches) if result is not None else 0,
        thinking_tokens=result.thinking_tokens if result is not None else None, record=record)


def outcome_records(problem: RunProblem, solved: Solved | None, judge: Judge | None,
                    policy: str) -> list[OutcomeRecord]:
    """One record per independent sample of the policy (see Solved.samples) of a problem with a reference
    answer, so the records are unbiased pass@1 labels. Failed branches are not samples; the branches of beam
    search, DVTS and the particle filter were selected by a reward model, so they would overstate pass@1 and
    are not written. `strategy` is the sampling strategy that drew the sample."""
    if judge is None or solved is None:
        return []
    trace = solved.result.plan.adaptive if solved.result.plan is not None else None
    strategy = trace.probe_strategy if trace is not None else solved.result.strategy
    return [OutcomeRecord(problem.problem_id, problem.text, policy, strategy, branch.id, branch.answer,
                          judge(branch.answer))
            for branch in solved.samples()]


def is_sample(branch: Branch) -> bool:
    return branch.finish_reason in SAMPLE_REASONS
