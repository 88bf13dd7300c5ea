"""The scorer interface and what reward scorers share: templates, reading the tokens a reward server computed,
and bad-answer errors. Scorers turn partial solutions into one score per step and are kept apart from search."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.ledger import CostLedger

# ChatML as used by Qwen2.5-Math reward models, with the system prompt of their model cards.
QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_ORM_TEMPLATE = ("<|im_start|>system\n" + QWEN_MATH_SYSTEM + "<|im_end|>\n<|im_start|>user\n{problem}"
                     "<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>\n<|endoftext|>")
QWEN_PRM_TEMPLATE = ("<|im_start|>system\n" + QWEN_MATH_SYSTEM + "<|im_end|>\n<|im_start|>user\n{problem}"
                     "<|im_end|>\n<|im_start|>assistant\n{steps}<|im_end|><|endoftext|>")
_FIELDS = re.compile(r"\{(problem|response|steps)\}")

Steps = Sequence[str]


def render(template: str, **values: str) -> str:
    """Fill {problem}, {response} or {steps} in one pass (so braces in the values are left alone)."""
    return _FIELDS.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class Scorer(ABC):
    """Scores candidate partial solutions (lists of steps as generated) of one problem. Thread-safe."""

    name = "scorer"
    intrinsic = False  # scores come from the policy's own generation, no reward requests
    # The reward model's kind (planner.policies.REWARD_KINDS: which strategies it can drive) and its name when
    # known (for FLOPs and the planner's curves); None for scorers without a reward model.
    kind: str | None = None
    reward_model: str | None = None

    def gen_options(self) -> dict:
        """Extra `sgl.gen` arguments the programs must send for this scorer."""
        return {}

    def step_score(self, meta_info: dict) -> float:
        """Intrinsic scorers: the score of a step from its generation's meta_info."""
        raise NotImplementedError(f"{self.name} scores with reward requests, not from generation")

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        """The score of each candidate's latest step, in one batched call."""
        return [steps[-1] for steps in self.score_steps(problem, candidates, ledger)]

    @abstractmethod
    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        """A score for every step of every candidate."""


class PrefixScorer(Scorer):
    """Scorers that read one scalar per text: step k's score is the score of steps[:k]."""

    @abstractmethod
    def score_texts(self, problem: str, responses: list[str], ledger: CostLedger) -> list[float]:
        ...

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        return self.score_texts(problem, ["".join(steps) for steps in candidates], ledger)

    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        prefixes = ["".join(steps[:k + 1]) for steps in candidates for k in range(len(steps))]
        flat = iter(self.score_texts(problem, prefixes, ledger))
        return [[next(flat) for _ in steps] for steps in candidates]



def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))



def computed_tokens(item) -> int:
    """Tokens a reward server computed for one text: its prompt tokens minus its cache hits."""
    meta = item.get("meta_info", {}) if isinstance(item, dict) else {}
    return int(meta.get("prompt_tokens", 0)) - int(meta.get("cached_tokens", 0))



def bad_answer(url: str, message: str) -> EndpointError:
    return EndpointError(f"{url}: {message}", url=url, kind="bad_response", status=200)


