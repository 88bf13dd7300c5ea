"""What every strategy program shares: the prompt, branches, generation with its caps, scoring, voting and the
result. A strategy is then only its selection rule (sampling.py, tree_search.py, particle_filter.py), returning a
`Selection` that the program frame (programs/__init__.py) turns into the SolveResult.

The prompt is built in the program's SGLang state (the policy's chat template, inside the caller's own program
when there is one). Branches are records, not forks: the prompt is put into the server's radix cache once, then
every sample is one request generating a whole solution (to end of sequence or the token cap), all in flight at
once on the request loop; steps are recovered by splitting the text at the step delimiter where a step-level
scorer needs them. Step-level search (beam search, DVTS, the particle filter) sends one request per candidate
per step, each stopping at the delimiter (which the server trims and the run adds back); a kept candidate's text
was just generated, so its children find it cached. A branch ends at end of sequence, at a complete \\boxed{}
answer, or at a cap (tokens per step, steps, total tokens).

No thread is started per branch or per request, and no frontend StreamExecutor is created for one, so nothing
a branch owns is ever finalised by the garbage collector at an awkward moment. A request that fails for good
fails only its branch (finish_reason "failed" with the error); scoring failures fail the candidates they were
scoring. Failed branches never count as answers.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from itertools import zip_longest

import sglang as sgl

from planner.confidence import TraceConfidence
from planner.errors import InputError
from planner.grading import Vote, boxed_spans, final_answer, shared_grader
from planner.records import PlanRecord, Prediction
from sglang_plugin.config import SolveConfig
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Branch, Selection, SolveResult
from sglang_plugin.programs.traces import apportioned, generate_traces
from sglang_plugin.scorers import Scorer
from sglang_plugin.transport.endpoint import Endpoint
from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.ledger import CostLedger


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


def sampling_seed(seed: int, branch: int) -> int:
    """A branch's own sampling seed on a deterministic server (SGLang's `sampling_seed`, in [0, 2**63)): the
    same for the same search seed and branch id, so a run is reproducible there and branch k of every strategy
    draws the same sample; different across branches, so they do not all draw one sample."""
    digest = hashlib.blake2b(f"{seed}/{branch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def split_steps(text: str, delimiter: str) -> list[str]:
    """A whole solution as its steps, each keeping the delimiter that ended it ("".join gives the text back);
    a delimiter run with nothing between joins the step before it."""
    pieces = text.split(delimiter)
    steps: list[str] = []
    for index, piece in enumerate(pieces):
        chunk = piece + (delimiter if index < len(pieces) - 1 else "")
        if steps and not piece.strip():
            steps[-1] += chunk
        elif chunk:
            steps.append(chunk)
    return steps


class SearchRun:
    """One strategy run inside one SGLang program: its branches, requests, cost ledger and trace."""

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
            raise TypeError("run the programs with backend=sglang_plugin.Endpoint(url) (or give solve() the URL or "
                            "the sgl.RuntimeEndpoint): a plain RuntimeEndpoint has no timeouts, retries or cost "
                            "accounting")
        self.s, self.strategy, self.problem, self.budget, self.scorer = s, strategy, problem, budget, scorer
        self.planning = planning
        self.served: str | None = self.endpoint.model_info.get("model_path")
        self.policy = (planning or Planning()).policy_of(self.served)
        self.thinking_end = self.policy.thinking.end if self.policy.thinking else None
        self.max_tokens = self.config.sampling.max_tokens or self.policy.max_tokens
        # On a deterministic server every branch needs a seed of its own, or all would draw the same sample.
        self.seeded = self.config.sampling.temperature > 0 and self.endpoint.deterministic
        self.plan: PlanRecord | None = None  # what the planner decided, set before or by the strategy
        self.prediction: Prediction | None = None
        self.ledger = CostLedger()
        self.branches: list[Branch] = []
        self.trace: list[dict] = []
        self.gen_options = scorer.gen_options() if scorer is not None else {}
        self.prompt = ""
        self._warm = False
        self._lock = threading.Lock()
        self._started = time.perf_counter()

    # -- prompt and branches ------------------------------------------------------------------------

    def open(self) -> None:
        """The user turn in the policy's chat template, then an open assistant turn: the prompt every branch
        continues."""
        sampling = self.config.sampling
        if sampling.system_prompt is not None:
            self.s += sgl.system(sampling.system_prompt)
        self.s += sgl.user(self.problem + sampling.instruction)
        self.s += sgl.assistant_begin()
        self.prompt = self.s.text()

    def spawn(self, count: int, parent: Branch | None = None) -> list[Branch]:
        """`count` new running branches: from the prompt, or continuing a running parent (which keeps running
        too)."""
        return [self.new_branch(parent) for _ in range(count)]

    def new_branch(self, parent: Branch | None = None) -> Branch:
        with self._lock:
            branch = Branch(id=len(self.branches), group=parent.group if parent is not None else None)
            if parent is not None:
                branch.parent, branch.fork_step, branch.tokens = parent.id, len(parent.steps), parent.tokens
                branch.steps, branch.step_scores = list(parent.steps), list(parent.step_scores)
            self.branches.append(branch)
            return branch

    def copy_finished(self, parent: Branch) -> Branch:
        """A duplicate of a finished branch (particle resampling): nothing more to generate."""
        child = self.new_branch(parent)
        child.answer, child.finish_reason = parent.answer, parent.finish_reason
        return child

    def close(self, branch: Branch, reason: str | None = None, error: str | None = None) -> None:
        """Finish a branch."""
        if error is not None:
            branch.fail(error)
        elif reason is not None:
            branch.finish_reason = reason

    # -- generation ---------------------------------------------------------------------------------

    def rollouts(self, branches: Sequence[Branch]) -> None:
        """Run branches to the end, one request each (a whole solution), all in flight at once."""
        self._generate([b for b in branches if not b.finished], step=False)
        self._independent(branches)
        if len(branches) > 1:
            self.canonicalize(branches, whole=True)

    def stream_rollouts(self, branches: Sequence[Branch], stop: Callable[[TraceConfidence], bool] | None = None,
                        settled: Callable[[], bool] | None = None) -> None:
        """Run branches to the end with their confidence (programs/traces.py), all in flight at once; a trace
        for which `stop(confidence)` holds is cut there, its tokens so far paid for and counted, and it ends
        "stopped" without an answer. `settled()` is asked each time a trace ends; once it holds, the traces
        still running are cut the same way and end "cancelled"."""
        branches = [b for b in branches if not b.finished]
        if not branches:
            return
        self._warm_for(branches)
        generate_traces(self, branches, stop, settled)
        if stop is None and all(b.finish_reason != "cancelled" for b in branches):
            self._independent(branches)  # not when some were cut: the rest are selected (the first to end)

    @staticmethod
    def _independent(branches: Sequence[Branch]) -> None:
        """Branches from the prompt that ran to their own end are unselected samples of the policy."""
        for branch in branches:
            branch.independent = branch.parent is None and branch.finish_reason in ("answer", "eos", "length")

    def rollout(self, branch: Branch) -> Branch:
        self.rollouts([branch])
        return branch

    def advance(self, branches: Sequence[Branch]) -> None:
        """One step for every running branch, all in flight at once."""
        self._generate([b for b in branches if not b.finished], step=True)

    def sample(self, count: int, streamed: bool = False) -> list[Branch]:
        """`count` more independent samples, run to the end and scored (`streamed`: with their confidence)."""
        branches = self.spawn(count)
        if streamed:
            self.stream_rollouts(branches)
        else:
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

    def _warm_for(self, branches: Sequence[Branch]) -> None:
        if sum(1 for b in branches if not b.steps) > 1 and not self._warm:
            # many requests about to share the prompt: cache it once first
            self.endpoint.warm(self.prompt, self.ledger)
            self._warm = True

    def _generate(self, branches: Sequence[Branch], *, step: bool) -> None:
        if not branches:
            return
        self._warm_for(branches)
        payloads = [self.endpoint.payload(self.prompt + b.text, self.sampling_for(b, step), self.gen_options)
                    for b in branches]
        for branch, result in zip(branches, self.endpoint.generate_all(payloads, self.ledger)):
            if isinstance(result, EndpointError):
                self.close(branch, error=f"{type(result).__name__}: {result}")
            else:
                self.collect(branch, result, step)

    def sampling_for(self, branch: Branch, step: bool = False, generated: int = 0) -> dict:
        """The sampling parameters of a branch's next request (`generated`: tokens it already has beyond
        branch.tokens)."""
        sampling, search = self.config.sampling, self.config.search
        left = max(self.max_tokens - branch.tokens - generated, 1)
        params = {"temperature": sampling.temperature, "top_p": sampling.top_p,
                  "max_new_tokens": min(search.max_step_tokens, left) if step else left}
        if step:
            params["stop"] = [search.step_delimiter]
        if self.seeded:
            params["sampling_seed"] = sampling_seed(search.seed, branch.id)
        if self.policy.thinking is not None and self.policy.thinking.special:
            params.update(skip_special_tokens=False, spaces_between_special_tokens=False)  # the end must stay legible
        return params

    def collect(self, branch: Branch, item: dict, step: bool = False) -> None:
        """Add a generation to its branch (the trimmed delimiter restored) and decide whether the branch ends."""
        text, meta = item["text"], item["meta_info"]
        if self.thinking_end is not None and branch.thinking_tokens is None:
            thinking = apportioned(int(meta.get("completion_tokens", 0)), text, self.thinking_end)
            if thinking is not None:
                branch.thinking_tokens = branch.tokens + thinking
        kind, matched = _finish_reason(meta)
        delimiter = self.config.search.step_delimiter
        at_delimiter = step and kind == "stop" and matched == delimiter
        if at_delimiter and not text.endswith(delimiter):
            text += delimiter
        new_steps = [text] if step else split_steps(text, delimiter) or [text]
        branch.steps += new_steps
        branch.tokens += int(meta.get("completion_tokens", 0))
        if self.scorer is not None and self.scorer.intrinsic:
            try:
                score = self.scorer.step_score(meta)
            except EndpointError as exc:
                self.close(branch, error=f"scoring failed: {exc}")
                return
            branch.step_scores += [None] * (len(new_steps) - 1) + [score]
        if kind == "abort":
            self.close(branch, error=f"server aborted the request: {meta.get('finish_reason')}")
        elif boxed_spans(text):  # a complete \\boxed{} answer ends the solution
            branch.answer = final_answer(branch.text, self.thinking_end)
            self.close(branch, "answer")
        elif kind == "stop" and not at_delimiter:
            branch.answer = final_answer(branch.text, self.thinking_end)  # no box: the stated answer, if any
            self.close(branch, "eos")
        elif branch.tokens >= self.max_tokens or (kind == "length" and not step):
            self.close(branch, "length")
        elif len(branch.steps) >= self.config.search.max_steps:
            self.close(branch, "max_steps")

    def canonicalize(self, branches: Sequence[Branch], whole: bool = False) -> None:
        """Branches that sent the same text are interchangeable, but which of them got which of the
        server's samples depends on arrival order. Handing the samples out in text order (round-robin over
        DVTS groups, so equal samples spread out) makes every strategy a function of the server's samples
        alone: a seeded server gives the same search, branch for branch, every run. `whole`: the branches
        diverged at their spawn (rollouts), else at their latest step."""
        buckets: dict[tuple, list[Branch]] = {}
        for branch in branches:
            if not branch.failed and branch.steps:
                shared = branch.steps[:branch.fork_step] if whole else branch.steps[:-1]
                buckets.setdefault((branch.parent, "".join(shared)) if whole else ("".join(shared),), []).append(branch)
        fields = ("steps", "step_scores", "tokens", "answer", "finish_reason", "error", "thinking_tokens", "confidence")
        for members in buckets.values():
            if len(members) < 2:
                continue
            by_group: dict[int | None, list[Branch]] = {}
            for branch in sorted(members, key=lambda b: (b.group or 0, b.id)):
                by_group.setdefault(branch.group, []).append(branch)
            slots = [b for row in zip_longest(*by_group.values()) for b in row if b is not None]
            samples = sorted(members, key=lambda b: (b.text, b.id))
            contents = [{f: getattr(b, f) for f in fields} for b in samples]
            for slot, content in zip(slots, contents):
                for name, value in content.items():
                    setattr(slot, name, value)

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
        """Put the chosen solution into the caller's state and report."""
        chosen, votes, size = selection.chosen, selection.votes, selection.size
        for branch in self.branches:
            if not branch.finished:
                self.close(branch, "max_steps")
            if self.thinking_end is not None and branch.thinking_tokens is None:
                branch.thinking_tokens = branch.tokens  # its thinking never ended
        answer = chosen.answer if chosen is not None else None
        if chosen is not None:
            self.s += chosen.text
        self.s += sgl.assistant_end()
        self.s.set_var("answer", answer)
        cost = self.ledger.snapshot()
        cost.wall_time = time.perf_counter() - self._started
        errors = list(self.ledger.errors) + [f"branch {b.id}: {b.error}" for b in self.branches if b.failed]
        if answer is None and not errors:
            errors.append("no branch produced an answer")
        return SolveResult(answer=answer, strategy=self.strategy, budget=self.budget, size=size,
                           branches=self.branches, chosen=chosen.id if chosen is not None else None,
                           votes=votes, cost=cost, errors=errors, retries=self.ledger.retries, trace=self.trace,
                           plan=self.plan, prediction=self.prediction)


def _finish_reason(meta: dict) -> tuple[str | None, object]:
    reason = meta.get("finish_reason")
    if isinstance(reason, dict):
        return reason.get("type"), reason.get("matched")
    return reason, None
