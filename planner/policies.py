"""Policies and reward models the planner knows by name: sizes for FLOPs, the outcome column its shipped
predictor was trained on, and the typical length of one sampled solution."""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import InputError


@dataclass(frozen=True)
class Policy:
    name: str
    params: float
    label_column: str
    model_file: str
    tokens_per_sample: int


@dataclass(frozen=True)
class RewardModel:
    name: str
    params: float
    kind: str


# tokens_per_sample: mean generated tokens of one chain-of-thought sample on MATH. An assumption until a
# calibration file measures it for the serving stack (Qwen2.5-Math-Instruct answers on MATH run a few
# hundred tokens; the outcome labels were sampled with a 3000-token cap).
POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("Qwen/Qwen2.5-Math-1.5B-Instruct", 1.54e9,
           "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-math-1.5b-instruct", 600),
    Policy("Qwen/Qwen2.5-Math-7B-Instruct", 7.62e9,
           "sr__Qwen-Qwen2.5-Math-7B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-math-7b-instruct", 600),
    Policy("Qwen/Qwen2.5-7B-Instruct", 7.62e9,
           "sr__Qwen-Qwen2.5-7B-Instruct_maxlen_3000_k_50_temp_0.6", "qwen2.5-7b-instruct", 650),
)}
DEFAULT_POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"

REWARD_MODELS: dict[str, RewardModel] = {r.name: r for r in (
    RewardModel("Qwen/Qwen2.5-Math-RM-72B", 72.7e9, "outcome"),
    RewardModel("Qwen/Qwen2.5-Math-PRM-7B", 7.62e9, "process"),
    RewardModel("peiyi9979/math-shepherd-mistral-7b-prm", 7.24e9, "step_tag"),
    RewardModel("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", 8.03e9, "step_tag"),
)}


def _key(name: str) -> str:
    return name.strip().lower().rsplit("/", 1)[-1]


def resolve(name: str, registry: dict, kind: str):
    """Look a model up by its Hugging Face id or its bare name, ignoring case."""
    wanted = _key(name)
    for entry_name, entry in registry.items():
        if _key(entry_name) == wanted:
            return entry
    known = ", ".join(registry)
    raise InputError(f"unknown {kind} '{name}'; known: {known}")


def policy(name: str) -> Policy:
    return resolve(name, POLICIES, "policy")


def reward_model(name: str) -> RewardModel:
    return resolve(name, REWARD_MODELS, "reward model")
