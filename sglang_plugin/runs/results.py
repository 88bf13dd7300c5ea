"""What a batch run writes for one problem: its result line (the input record plus the outcome of the solve) and
its outcome records, one per independent sample, the labels `tts-planner train --label correct` retrains on."""

from __future__ import annotations

from dataclasses import dataclass

from planner.cost import Cost
from planner.grading import Grader, reference_answer
from planner.records import OutcomeRecord, ResultLine
from sglang_plugin.programs.result import Branch, SolveResult
from sglang_plugin.runs.problems import RunProblem

# A branch that stopped for one of these reasons is a whole sample of the policy; pruned and failed ones are not.
SAMPLE_REASONS = frozenset({"answer", "eos", "length", "max_steps"})


def correct(grader: Grader, answer: str | None, reference: str) -> bool:
    """Whether an answer is right for a reference (MATH-style with a \\boxed{} inside a solution, GSM8K's
    "... #### 42", or bare), by the grader the votes use."""
    return grader.correct(reference_answer(reference), answer)


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
    def failed(self) -> bool:
        """No branch ended as a sample of the policy: every one failed (or none ran)."""
        return not any(is_sample(b) for b in self.result.branches)


def result_line(problem: RunProblem, solved: Solved | None, grader: Grader, *, errors: list[str], cost: Cost,
                answer_field: str = "answer") -> ResultLine:
    """The input record plus the solve's outcome; `solved` None (a solve that raised) or without a finished
    branch gives status "failed". `errors` and `cost` cover every attempt at the problem."""
    record = dict(problem.record)
    if problem.reference is not None and answer_field == "answer":
        record["reference_answer"] = record.pop("answer")
    result = solved.result if solved is not None else None
    answer = result.answer if result is not None else None
    return ResultLine(
        problem_id=problem.problem_id, answer=answer, status="failed" if solved is None or solved.failed else "ok",
        cost=cost, strategy=solved.executed if solved is not None else None,
        correct=correct(grader, answer, problem.reference) if problem.reference is not None else None,
        plan=result.plan if result is not None else None, prediction=result.prediction if result is not None else None,
        errors=tuple(errors), branches=len(result.branches) if result is not None else 0,
        failed_branches=len(result.failed_branches) if result is not None else 0, record=record)


def outcome_records(problem: RunProblem, solved: Solved | None, grader: Grader,
                    policy: str) -> list[OutcomeRecord]:
    """One record per independent sample of the policy (see Solved.samples) of a problem with a reference
    answer, so the records are unbiased pass@1 labels. Failed branches are not samples; the branches of beam
    search, DVTS and the particle filter were selected by a reward model, so they would overstate pass@1 and
    are not written. `strategy` is the sampling strategy that drew the sample."""
    if problem.reference is None or solved is None:
        return []
    trace = solved.result.plan.adaptive if solved.result.plan is not None else None
    strategy = trace.probe_strategy if trace is not None else solved.result.strategy
    return [OutcomeRecord(problem.problem_id, problem.text, policy, strategy, branch.id, branch.answer,
                          correct(grader, branch.answer, problem.reference))
            for branch in solved.samples()]


def is_sample(branch: Branch) -> bool:
    return branch.finish_reason in SAMPLE_REASONS
