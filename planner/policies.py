"""Policies and reward models by name: sizes for FLOPs, the outcome column a shipped predictor was trained on, the
typical length of one sampled solution, a reward model's kind and ranking quality.

Known models are looked up by Hugging Face id or bare name. Any other model can be described by its size
(`policy(name, params=...)`, `tts-planner plan --policy NAME --policy-params 7e9`): it then has no shipped
predictor (the default policy's is borrowed, and the prediction says so) and gets the default curves of its
size class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from planner.errors import InputError

# Reward-model kinds: "outcome" models score finished solutions (scores of prefixes are out of their
# distribution, so they drive no step-level search), "process" and "step_tag" models score every step.
REWARD_KINDS = ("outcome", "process", "step_tag")
# Whether a reward server finds the already-scored part of a partial solution in its prefix cache when it
# re-scores it one step later: step-tag PRMs run on an ordinary SGLang server (radix cache); Qwen's PRM is
# served by vLLM as a pooling model, where this stack does not assume prefix caching.
RESCORE_CACHED = {"outcome": False, "process": False, "step_tag": True}
# Mean generated tokens of one chain-of-thought sample on MATH for a policy nobody measured: an assumption until
# a calibration file measures it (Qwen2.5-Math-Instruct answers on MATH run a few hundred tokens; the outcome
# labels were sampled with a 3000-token cap).
DEFAULT_TOKENS_PER_SAMPLE = 600
DEFAULT_THINKING_TOKENS = 4000  # the same for a long-thinking policy nobody measured (an assumption)
DEFAULT_RM_QUALITY = 0.8
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")


@dataclass(frozen=True)
class Thinking:
    """How a long-thinking policy writes: reasoning first, ended by `end` (its answer comes after), and the
    generated-token cap a sample gets by default (its traces run to tens of thousands of tokens)."""

    end: str = "</think>"
    max_tokens: int = 32768
    special: bool = False  # `end` is written in special tokens, which requests then ask the server to keep in the text

    @classmethod
    def ending_with(cls, end: str) -> Thinking:
        """A user-described policy's thinking: an end written like special tokens (`<|...|>`, as harmony's) is
        taken to be special tokens, which a server drops from the text by default."""
        return cls(end, special=bool(_SPECIAL_TOKEN.search(end)))


@dataclass(frozen=True)
class Policy:
    """A policy model. `known` is False for a policy the user described by name and size.

    tokens_per_sample: mean generated tokens of one sample on MATH-level problems (the unit of a budget in
    samples; a calibration file measures it). chat_template: the sglang frontend template to use when its own
    pick by model path would be wrong. thinking: set for long-thinking policies."""

    name: str
    params: float
    tokens_per_sample: int = DEFAULT_TOKENS_PER_SAMPLE
    label_column: str | None = None  # the outcome column its shipped predictor was trained on
    model_file: str | None = None  # its shipped predictor's file stem
    known: bool = True
    chat_template: str | None = None
    thinking: Thinking | None = None

    @property
    def max_tokens(self) -> int:
        """Generated tokens a sample gets by default: the thinking cap, or 3,000 (what the outcome labels in
        shared/data were sampled with)."""
        return self.thinking.max_tokens if self.thinking else 3000


@dataclass(frozen=True)
class RewardModel:
    """A reward model: its size (None: unknown, so FLOPs are unknown), its kind, and how well it ranks candidates
    (`quality`, a factor on the gain and rate of every strategy it drives)."""

    name: str
    params: float | None
    kind: str
    quality: float = DEFAULT_RM_QUALITY
    known: bool = True

    @property
    def rescore_cached(self) -> bool:
        return RESCORE_CACHED[self.kind]


# Long-thinking policies: tokens_per_sample is an assumption (their MATH-500 traces run a few thousand tokens,
# AIME traces over ten thousand; a calibration file measures it); thinking ends at </think> (DeepSeek-R1
# distills, Qwen3 in thinking mode). Qwen3 is ChatML, which the sglang frontend does not pick for its name; the
# frontend has no harmony template, so tts-planner registers one ("gpt-oss", sglang_plugin.compat).
_R1 = Thinking("</think>", 32768)
# gpt-oss writes OpenAI's harmony format: reasoning in the analysis channel, the answer in the final channel, every
# marker a special token (a server's default skip_special_tokens would leave "analysis...assistantfinal..."). It is
# a mixture of experts: params is the active parameters per token, what its FLOPs per token follow (OpenAI's
# gpt-oss model card: 5.13B of 116.8B for gpt-oss-120b, 3.61B of 20.9B for gpt-oss-20b).
_HARMONY = Thinking.ending_with("<|channel|>final<|message|>")
POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("Qwen/Qwen2.5-Math-1.5B-Instruct", 1.54e9, 600,
           "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-math-1.5b-instruct"),
    Policy("Qwen/Qwen2.5-Math-7B-Instruct", 7.62e9, 600,
           "sr__Qwen-Qwen2.5-Math-7B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-math-7b-instruct"),
    Policy("Qwen/Qwen2.5-7B-Instruct", 7.62e9, 650,
           "sr__Qwen-Qwen2.5-7B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-7b-instruct"),
    Policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.78e9, 5000, thinking=_R1),
    Policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", 7.62e9, 4000, thinking=_R1),
    Policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", 14.8e9, 3500, thinking=_R1),
    Policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", 32.8e9, 3500, thinking=_R1),
    Policy("Qwen/Qwen3-8B", 8.19e9, 4500, chat_template="chatml", thinking=_R1),
    Policy("Qwen/Qwen3-32B", 32.8e9, 4000, chat_template="chatml", thinking=_R1),
    Policy("openai/gpt-oss-20b", 3.61e9, 4000, chat_template="gpt-oss", thinking=_HARMONY),
    Policy("openai/gpt-oss-120b", 5.13e9, 3500, chat_template="gpt-oss", thinking=_HARMONY),
)}
DEFAULT_POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"

# quality: the ordering follows arXiv 2501.07301 (ProcessBench and best-of-8 comparisons: Qwen2.5-Math-PRM-7B
# well ahead of Math-Shepherd and the RLHFlow PRMs) and 2502.06703 (the PRM shifts the optimal strategy); the
# factors themselves are my choice. Qwen2.5-Math-RM-72B is the outcome model behind the replay file's scores.
REWARD_MODELS: dict[str, RewardModel] = {r.name: r for r in (
    RewardModel("Qwen/Qwen2.5-Math-RM-72B", 72.7e9, "outcome", quality=1.0),
    RewardModel("Qwen/Qwen2.5-Math-PRM-7B", 7.62e9, "process", quality=1.0),
    RewardModel("peiyi9979/math-shepherd-mistral-7b-prm", 7.24e9, "step_tag", quality=0.7),
    RewardModel("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", 8.03e9, "step_tag", quality=0.75),
)}


def _key(name: str) -> str:
    return name.strip().lower().rstrip("/").rsplit("/", 1)[-1]


def _lookup(name: str, registry: dict):
    wanted = _key(name)
    return next((entry for entry_name, entry in registry.items() if _key(entry_name) == wanted), None)


def check_params(params: object, what: str) -> float:
    if isinstance(params, bool) or not isinstance(params, (int, float)) or not math.isfinite(params) or params <= 0:
        raise InputError(f"must be a positive number of parameters (e.g. 7e9), got {params!r}", field=what)
    return float(params)


def policy(name: str, params: float | None = None, thinking: Thinking | None = None) -> Policy:
    """A known policy by Hugging Face id or bare name (ignoring case), or one described by its size (and, for a
    long-thinking one, how its thinking ends)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"expected a policy name, got {name!r}", field="policy")
    found = _lookup(name, POLICIES)
    if found is not None:
        changes = {}
        if params is not None:
            changes["params"] = check_params(params, "policy_params")
        if thinking is not None:
            changes["thinking"] = thinking
        return replace(found, **changes) if changes else found
    if params is None:
        raise InputError(f"unknown policy '{name}'; known: {', '.join(POLICIES)}. To plan for another policy, give "
                         "its size (--policy-params, e.g. 7e9): it then borrows the default curves of its size class",
                         field="policy")
    tokens = DEFAULT_THINKING_TOKENS if thinking else DEFAULT_TOKENS_PER_SAMPLE
    return Policy(name.strip(), check_params(params, "policy_params"), tokens, known=False, thinking=thinking)


def borrowed_note(chosen: Policy, size_class: str) -> str | None:
    """What planning for a policy tts-planner does not know borrows, for the user to read (None for a known one)."""
    if chosen.known:
        return None
    return (f"{chosen.name} is not a policy tts-planner knows: planning it as a {chosen.params / 1e9:.3g}B-parameter policy "
            f"with the default curves of {size_class} policies and {chosen.tokens_per_sample} tokens per sample "
            "(published orderings, not measurements); `tts-planner calibrate` on your stack replaces them")


def known_policy(name: str | None) -> Policy | None:
    """The registry's entry for a name (e.g. a server's model path), or None."""
    return _lookup(name, POLICIES) if isinstance(name, str) and name.strip() else None


def known_reward_model(name: str | None) -> RewardModel | None:
    return _lookup(name, REWARD_MODELS) if isinstance(name, str) and name.strip() else None


def reward_model(name: str, params: float | None = None, kind: str | None = None) -> RewardModel:
    """A known reward model by name, or one described by its kind (and size, for FLOPs)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"expected a reward model name, got {name!r}", field="reward_model")
    found = _lookup(name, REWARD_MODELS)
    if found is not None:
        return found
    if kind is None:
        raise InputError(f"unknown reward model '{name}'; known: {', '.join(REWARD_MODELS)}. To use another one, "
                         f"say its kind ({', '.join(REWARD_KINDS)})", field="reward_model")
    return described_reward_model(name.strip(), kind, params)


def described_reward_model(name: str, kind: str, params: float | None = None) -> RewardModel:
    if kind not in REWARD_KINDS:
        raise InputError(f"unknown reward model kind {kind!r}; known: {', '.join(REWARD_KINDS)}", field="reward_kind")
    return RewardModel(name, None if params is None else check_params(params, "reward_params"), kind, known=False)
