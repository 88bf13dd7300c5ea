"""What every strategy program shares: the prompt, forking, one step of generation with its caps, scoring,
voting and the result. A strategy is then only its selection rule (sampling.py, tree_search.py,
particle_filter.py), returning a `Selection` that the program frame (programs/__init__.py) turns into the
SolveResult.

Branches are forks of the program state, so the prompt (and, deeper in a search, a kept beam's text) is
sent once as a warm-up and the server's radix cache serves it to every branch. Each step is one
`sgl.gen` that stops at the step delimiter; the server trims the delimiter, so the program appends it
back to the branch before the next step. A branch ends at end of sequence, at a step holding a final
\\boxed{} answer, or at a cap (tokens per step, steps, total tokens).

A request that fails for good fails only its branch (finish_reason "failed" with the error); scoring
failures fail the candidates they were scoring. Failed branches never count as answers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest

import sglang as sgl

from planner.errors import InputError
from planner.grading import Vote, boxed_spans, extract_answer, shared_grader
from planner.records import PlanRecord, Prediction
from sglang_plugin.config import SolveConfig
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Branch, Selection, SolveResult
from sglang_plugin.scorers import Scorer
from sglang_plugin.transport.endpoint import Endpoint
from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.ledger import CostLedger

STEP_VAR = "step"


def aggregate(scores: Sequence[float | None], how: str) -> float | None:
    """One trajectory score from its step scores (None if the needed scores are missing)."""
    if not scores or scores[-1] is None:
        return None
    if how == "last":
        return float(scores[-1])
    if any(s is None for s in scores):
        return None
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))


class SearchRun:
    """One strategy run inside one SGLang program: its branches, forks, cost ledger and trace."""

    def __init__(self, s, strategy: str, problem: str, budget: int, config: SolveConfig | None,
                 scorer: Scorer | None, planning: Planning | None = None, *, needs_scorer: bool) -> None:
        self.config = config or SolveConfig()
        if not isinstance(self.config, SolveConfig):
            raise InputError(f"expected a SolveConfig, got {type(self.config).__name__}", field="config")
        if not isinstance(problem, str) or not problem.strip():
            raise InputError("must be a non-empty string", field="problem")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise InputError(f"must be a positive integer, got {budget!r}", field="budget")
        if needs_scorer and scorer is None:
            raise InputError(f"{strategy} ranks branches by reward: give it a scorer", field="scorer")
        self.endpoint = s.stream_executor.backend
        if not isinstance(self.endpoint, Endpoint):
            raise TypeError("run the programs with backend=sglang_plugin.Endpoint(url): a plain "
                            "RuntimeEndpoint has no timeouts or retries and hides the fork requests' costs")
        self.s, self.strategy, self.problem, self.budget, self.scorer = s, strategy, problem, budget, scorer
        self.planning = planning
        self.served: str | None = self.endpoint.model_info.get("model_path")
        self.plan: PlanRecord | None = None  # what the planner decided, set before or by the strategy
        self.prediction: Prediction | None = None
        self.ledger = CostLedger()
        self.branches: list[Branch] = []
        self.trace: list[dict] = []
        self.gen_options = scorer.gen_options() if scorer is not None else {}
        self._states: dict[int, object] = {}  # running branch id -> its program state
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._outer: CostLedger | None = None
        self._released = False

    # -- prompt, forks, branches --------------------------------------------------------------------

    def open(self) -> None:
        """The user turn in the policy's chat template, then an open assistant turn."""
        self.s.sync()  # the caller's own requests are not ours to count
        self._outer = self.endpoint.attach(self.s.stream_executor, self.ledger)
        sampling = self.config.sampling
        if sampling.system_prompt is not None:
            self.s += sgl.system(sampling.system_prompt)
        self.s += sgl.user(self.problem + sampling.instruction)
        self.s += sgl.assistant_begin()

    def spawn(self, count: int, parent: Branch | None = None) -> list[Branch]:
        """`count` new running branches: forks of the prompt, or of a running parent (which keeps running
        too). The fork sends the shared text once first so the radix cache holds it."""
        source = self.s if parent is None else self._states[parent.id]
        source.sync()
        states = source.fork(count).states if count else []
        children = []
        for state in states:
            self.endpoint.attach(state.stream_executor, self.ledger)
            child = self.new_branch(parent)
            self._states[child.id] = state
            children.append(child)
        return children

    def new_branch(self, parent: Branch | None = None) -> Branch:
        with self._lock:
            branch = Branch(id=len(self.branches), group=parent.group if parent is not None else None)
            if parent is not None:
                branch.parent, branch.fork_step, branch.tokens = parent.id, len(parent.steps), parent.tokens
                branch.steps, branch.step_scores = list(parent.steps), list(parent.step_scores)
            self.branches.append(branch)
            return branch

    def copy_finished(self, parent: Branch) -> Branch:
        """A duplicate of a finished branch (particle resampling): no state, nothing more to generate."""
        child = self.new_branch(parent)
        child.answer, child.finish_reason = parent.answer, parent.finish_reason
        return child

    def close(self, branch: Branch, reason: str | None = None, error: str | None = None) -> None:
        """Finish a branch (if `reason`/`error` given) and end its fork's worker thread."""
        if error is not None:
            branch.fail(error)
        elif reason is not None:
            branch.finish_reason = reason
        state = self._states.pop(branch.id, None)
        if state is not None:
            state.stream_executor.end()

    # -- generation ---------------------------------------------------------------------------------

    def submit(self, branch: Branch) -> None:
        sampling, search = self.config.sampling, self.config.search
        budget_left = sampling.max_tokens - branch.tokens
        self._states[branch.id] += sgl.gen(
            STEP_VAR, max_tokens=min(search.max_step_tokens, budget_left), stop=search.step_delimiter,
            temperature=sampling.temperature, top_p=sampling.top_p, **self.gen_options)

    def collect(self, branch: Branch) -> None:
        """Wait for the branch's step; append it (delimiter restored) and decide whether the branch ends."""
        state = self._states[branch.id]
        error = state.error()
        if error is not None:
            self.close(branch, error=f"{type(error).__name__}: {error}")
            return
        text, meta = state.get_var(STEP_VAR), state.get_meta_info(STEP_VAR) or {}
        kind, matched = _finish_reason(meta)
        delimiter = self.config.search.step_delimiter
        at_delimiter = kind == "stop" and matched == delimiter
        if at_delimiter and not text.endswith(delimiter):
            text += delimiter
            state += delimiter
        branch.steps.append(text)
        branch.tokens += int(meta.get("completion_tokens", 0))
        if self.scorer is not None and self.scorer.intrinsic:
            try:
                branch.step_scores.append(self.scorer.step_score(meta))
            except EndpointError as exc:
                self.close(branch, error=f"scoring failed: {exc}")
                return
        if boxed_spans(text):  # a step holding a complete \\boxed{} ends the solution
            branch.answer = extract_answer(branch.text)
            self.close(branch, "answer")
        elif kind == "abort":
            self.close(branch, error=f"server aborted the request: {meta.get('finish_reason')}")
        elif kind == "stop" and not at_delimiter:
            branch.answer = extract_answer(branch.text)  # ended without a box: the stated answer, if any
            self.close(branch, "eos")
        elif branch.tokens >= self.config.sampling.max_tokens:
            self.close(branch, "length")
        elif len(branch.steps) >= self.config.search.max_steps:
            self.close(branch, "max_steps")

    def advance(self, branches: Sequence[Branch]) -> None:
        """One step for every running branch, all in flight at once."""
        running = [b for b in branches if not b.finished]
        for branch in running:
            self.submit(branch)
        for branch in running:
            self.collect(branch)

    def sample(self, count: int) -> list[Branch]:
        """`count` more independent samples, run to the end and scored."""
        branches = self.spawn(count)
        self.rollouts(branches)
        self.score_final(branches)
        for branch in branches:
            self.trajectory_score(branch)
        return branches

    def stage(self, body: Callable[[SearchRun], Selection], size: int) -> Selection:
        """Run a strategy's body of `size` on the same prompt as one stage of a larger program (the adaptive
        program's search); its branches join this run's."""
        budget, self.budget = self.budget, size
        try:
            return body(self)
        finally:
            self.budget = budget

    def rollout(self, branch: Branch) -> Branch:
        while not branch.finished:
            self.submit(branch)
            self.collect(branch)
        return branch

    def rollouts(self, branches: Sequence[Branch]) -> None:
        """Run branches to the end independently (no lock step), each on its own thread."""
        if len(branches) == 1:
            self.rollout(branches[0])
            return
        with ThreadPoolExecutor(max_workers=len(branches)) as pool:
            list(pool.map(self.rollout, branches))
        self.canonicalize(branches, whole=True)

    def canonicalize(self, branches: Sequence[Branch], whole: bool = False) -> None:
        """Branches that sent the same text are interchangeable, but which of them got which of the
        server's samples depends on thread timing. Handing the samples out in text order (round-robin over
        DVTS groups, so equal samples spread out) makes every strategy a function of the server's samples
        alone: a seeded server gives the same search, branch for branch, every run. `whole`: the branches
        diverged at their fork (rollouts), else at their latest step."""
        buckets: dict[tuple, list[Branch]] = {}
        for branch in branches:
            if not branch.failed and branch.steps:
                shared = branch.steps[:branch.fork_step] if whole else branch.steps[:-1]
                buckets.setdefault((branch.parent, "".join(shared)) if whole else ("".join(shared),), []).append(branch)
        fields = ("steps", "step_scores", "tokens", "answer", "finish_reason", "error")
        for members in buckets.values():
            if len(members) < 2:
                continue
            by_group: dict[int | None, list[Branch]] = {}
            for branch in sorted(members, key=lambda b: (b.group or 0, b.id)):
                by_group.setdefault(branch.group, []).append(branch)
            slots = [b for row in zip_longest(*by_group.values()) for b in row if b is not None]
            samples = sorted(members, key=lambda b: (b.text, b.id))
            contents = [({f: getattr(b, f) for f in fields}, self._states.pop(b.id, None)) for b in samples]
            for slot, (content, state) in zip(slots, contents):
                for name, value in content.items():
                    setattr(slot, name, value)
                if state is not None:
                    self._states[slot.id] = state

    # -- scoring and selection ----------------------------------------------------------------------

    def score_latest(self, branches: Sequence[Branch]) -> None:
        """Append a score for each branch's newest step (one batched call); failures fail the branches."""
        branches = [b for b in branches if not b.failed]
        if not branches or self.scorer is None or self.scorer.intrinsic:
            return
        self._scored(branches, lambda: self.scorer.score_last(self.problem, [b.steps for b in branches],
                                                               self.ledger), last_only=True)

    def score_final(self, branches: Sequence[Branch]) -> None:
        """Scores finished trajectories for selection: only the last step under aggregation "last"."""
        branches = [b for b in branches if not b.failed and b.answer is not None]
        if not branches or self.scorer is None or self.scorer.intrinsic:
            return
        if self.config.search.aggregation == "last":
            self._scored(branches, lambda: self.scorer.score_last(self.problem, [b.steps for b in branches],
                                                                   self.ledger), last_only=True, pad=True)
        else:
            self._scored(branches, lambda: self.scorer.score_steps(self.problem, [b.steps for b in branches],
                                                                    self.ledger), last_only=False)

    def _scored(self, branches: Sequence[Branch], call: Callable, *, last_only: bool, pad: bool = False) -> None:
        try:
            scores = call()
        except EndpointError as exc:
            for branch in branches:
                self.close(branch, error=f"scoring failed: {exc}")
            return
        for branch, score in zip(branches, scores):
            if not last_only:
                branch.step_scores = [float(s) for s in score]
            elif pad:
                branch.step_scores = [None] * (len(branch.steps) - 1) + [float(score)]
            else:
                branch.step_scores.append(float(score))

    def trajectory_score(self, branch: Branch) -> float | None:
        branch.score = aggregate(branch.step_scores, self.config.search.aggregation)
        return branch.score

    @staticmethod
    def answered(branches: Sequence[Branch]) -> list[Branch]:
        return [b for b in branches if b.answer is not None and not b.failed]

    def vote(self, branches: Sequence[Branch], weights: Sequence[float] | None = None,
             reduce: str = "sum") -> list[Vote]:
        return shared_grader(self.config.grading).vote([b.answer for b in branches], weights,
                            ids=[b.id for b in branches], reduce=reduce)

    def pick_by_score(self, branches: Sequence[Branch]) -> tuple[Branch | None, list[Vote]]:
        """The best-scored answered branch, and the answer groups ranked by their best score."""
        scored = [b for b in self.answered(branches) if self.trajectory_score(b) is not None]
        if not scored:
            return None, []
        best = max(scored, key=lambda b: (b.score, -b.id))
        return best, self.vote(scored, [b.score for b in scored], reduce="max")

    # -- result -------------------------------------------------------------------------------------

    def finish(self, selection: Selection) -> SolveResult:
        """End every fork, put the chosen solution into the caller's state, and report."""
        chosen, votes, size = selection.chosen, selection.votes, selection.size
        for branch in list(self.branches):
            if not branch.finished:
                self.close(branch, "max_steps")
        self.release()
        answer = chosen.answer if chosen is not None else None
        if chosen is not None:
            self.s += chosen.text
        self.s += sgl.assistant_end()
        self.s.set_var("answer", answer)
        cost = self.ledger.snapshot()
        cost.wall_time = time.perf_counter() - self._started
        errors = list(self.ledger.errors) + [f"branch {b.id}: {b.error}" for b in self.branches if b.failed]
        if answer is None and not errors:
            errors.append("no branch produced a \\boxed{} answer")
        return SolveResult(answer=answer, strategy=self.strategy, budget=self.budget, size=size,
                           branches=self.branches, chosen=chosen.id if chosen is not None else None,
                           votes=votes, cost=cost, errors=errors, retries=self.ledger.retries, trace=self.trace,
                           plan=self.plan, prediction=self.prediction)

    def release(self) -> None:
        """End all forks and hand the caller's state back to its previous ledger (adding our costs)."""
        if self._released:
            return
        self._released = True
        for branch_id in list(self._states):
            self._states.pop(branch_id).stream_executor.end()
        self.endpoint.attach(self.s.stream_executor, self._outer)
        if self._outer is not None:
            self._outer.merge(self.ledger)


def _finish_reason(meta: dict) -> tuple[str | None, object]:
    reason = meta.get("finish_reason")
    if isinstance(reason, dict):
        return reason.get("type"), reason.get("matched")
    return reason, None
