"""Scorers by kind name, for the command line and config files: the one table of scorer kinds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from planner.errors import InputError
from sglang_plugin.scorers.base import Scorer
from sglang_plugin.scorers.http_reward import HttpRewardScorer
from sglang_plugin.scorers.outcome import OutcomeRewardScorer
from sglang_plugin.scorers.self_certainty import SelfCertaintyScorer
from sglang_plugin.scorers.step_tag import StepTagScorer


@dataclass(frozen=True)
class ScorerKind:
    name: str
    factory: Callable[..., Scorer] | None  # None: no scorer
    needs_url: bool
    summary: str


KINDS: dict[str, ScorerKind] = {k.name: k for k in (
    ScorerKind("none", None, False, "no reward model (voting)"),
    ScorerKind("orm", OutcomeRewardScorer, True, "an outcome reward model on SGLang (/classify)"),
    ScorerKind("math_shepherd", StepTagScorer.math_shepherd, True, "Math-Shepherd step-tag PRM on SGLang"),
    ScorerKind("rlhflow", StepTagScorer.rlhflow, True, "RLHFlow Llama3.1-8B step-tag PRM on SGLang"),
    ScorerKind("step_tag", StepTagScorer, True, "another step-tag PRM (give its token ids as options)"),
    ScorerKind("vllm_qwen_prm", HttpRewardScorer.vllm_qwen_prm, True, "Qwen2.5-Math-PRM-7B on vLLM (/pooling)"),
    ScorerKind("http", HttpRewardScorer, True, "any HTTP reward endpoint (request template and JSON paths)"),
    ScorerKind("self_certainty", SelfCertaintyScorer, False, "the policy's own top-k logprobs, no reward model"),
)}
SCORER_KINDS = tuple(KINDS)


def make_scorer(kind: str, url: str | None = None, **options) -> Scorer | None:
    """A scorer by kind name; options are the scorer's keyword arguments (a wrong one is an InputError)."""
    entry = KINDS.get(kind)
    if entry is None:
        raise InputError(f"unknown scorer kind {kind!r}; known: {', '.join(SCORER_KINDS)}", field="scorer")
    if entry.factory is None:
        return None
    if entry.needs_url and not url:
        raise InputError(f"scorer {kind!r} needs the reward server's URL (--reward-endpoint)", field="scorer")
    try:
        return entry.factory(url, **options) if entry.needs_url else entry.factory(**options)
    except TypeError as exc:
        raise InputError(f"bad option for scorer {kind!r}: {exc}", field="reward_options") from None
