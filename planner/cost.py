"""The one cost unit every strategy is measured in, what a solve spent, and the one estimator of what it will.

A token is counted once whether a policy generated it, prefilled it without a cache hit, or a reward model
read it. Prefix-cache hits are free. Tokens convert to FLOPs with the usual 2 x parameters per token
(Kaplan et al., arXiv 2001.08361), so policies and reward models of different sizes compare on one axis.

`Cost` is what the servers reported (meta_info), never estimated after the fact. `CostModel.expected` is the
only estimate of a strategy's cost before it runs: offline plans, forced runs and the adaptive planner all
price options with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from planner.strategies import strategy as find_strategy

# Mean "\n\n"-separated steps per solution: 7.4 measured on the replay file's 800 Qwen2.5-Math answers
# (mostly easy problems; harder ones run longer).
STEPS_PER_SOLUTION = 8.0
# Prompt (chat template + problem + instruction) when the caller gives no per-problem count; MATH problems
# run about 50-150 tokens, the template and instruction about 40.
PROMPT_TOKENS = 150.0
# Characters per token of LaTeX-heavy problem text, and the chat template and instruction around it.
CHARS_PER_TOKEN = 3.2
TEMPLATE_TOKENS = 45.0


@dataclass
class Cost:
    """What one solve spent, as reported by the servers (meta_info)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reward_tokens: int = 0
    requests: int = 0
    wall_time: float = 0.0

    @property
    def tokens(self) -> int:
        """The cost unit: generated + uncached prompt + reward-model tokens."""
        return self.completion_tokens + (self.prompt_tokens - self.cached_tokens) + self.reward_tokens

    @property
    def cache_hit_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def flops(self, policy_params: float, reward_params: float = 0.0) -> float:
        """Forward-pass FLOPs: 2 x parameters per computed token, policy and reward model apart."""
        policy = self.completion_tokens + self.prompt_tokens - self.cached_tokens
        return 2.0 * (policy_params * policy + reward_params * self.reward_tokens)

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens": self.tokens}


COST_FIELDS = tuple(f.name for f in fields(Cost))
PRICE_UNITS = ("flops", "tokens")


@dataclass(frozen=True)
class Pricing:
    """The axis plans are priced and compared on. In FLOPs a token costs 2 x the parameters of the model that
    computes it, so a 72B reward model's token weighs 47 tokens of a 1.5B policy; in tokens every token weighs
    one. Planning works in policy-token equivalents (a reward token counts `reward_weight`), so the allocator's
    arithmetic is the same in both units; `per_policy_token` converts back to the unit.

    The sizes are kept in both units so FLOPs can still be reported beside a token-priced plan.
    `reward_params` is None without a reward model or for one of unknown size (then FLOPs are unknown).
    """

    unit: str = "tokens"
    policy_params: float | None = None
    reward_params: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in PRICE_UNITS:
            raise ValueError(f"unknown pricing unit {self.unit!r}; use one of {', '.join(PRICE_UNITS)}")
        if self.unit == "flops" and not self.policy_params:
            raise ValueError("pricing in FLOPs needs the policy's size")

    @property
    def reward_weight(self) -> float:
        """One reward-model token's price in policy tokens."""
        if self.unit == "tokens":
            return 1.0
        return (self.reward_params or 0.0) / self.policy_params

    @property
    def per_policy_token(self) -> float:
        """One policy token in this unit (FLOPs or tokens)."""
        return 2.0 * self.policy_params if self.unit == "flops" else 1.0

    def of(self, cost: Cost) -> float:
        """A Cost in this unit."""
        if self.unit == "tokens":
            return float(cost.tokens)
        return cost.flops(self.policy_params, self.reward_params or 0.0)

    def describe(self, amount: float) -> str:
        """An amount in this unit, for messages and tables: '61,225 tokens' or '0.19 PFLOPs'."""
        return f"{amount:,.0f} tokens" if self.unit == "tokens" else format_flops(amount)


def format_flops(flops: float) -> str:
    """FLOPs with the largest SI prefix that keeps the number readable: '1.85 TFLOPs', '0.19 PFLOPs'."""
    for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if abs(flops) >= scale / 10:
            return f"{flops / scale:.3g} {prefix}FLOPs"
    return f"{flops:.3g} FLOPs"


def estimate_prompt_tokens(texts: Iterable[str]) -> np.ndarray:
    """Prompt length per problem before any server has seen it: the text at CHARS_PER_TOKEN plus the chat
    template and instruction. Only used to price plans; servers report the real counts."""
    lengths = np.fromiter((len(t) for t in texts), dtype=float)
    return lengths / CHARS_PER_TOKEN + TEMPLATE_TOKENS


@dataclass(frozen=True)
class CostModel:
    """Expected tokens of each strategy, under stated assumptions.

    - Policy: the prompt is prefilled once (every sample or beam shares it through the radix cache), then
      each unit of size generates one solution of `tokens_per_sample` tokens. In beam search and DVTS each
      step expands N candidates, in the particle filter N particles, so a run of size N generates about N
      solutions' worth of tokens too.
    - Reward model: reads its problem prefix once (cached after), then each candidate once for best-of-N and
      weighted voting. Step-level search re-scores every partial solution after each of
      `steps_per_solution` steps; with a prefix-caching reward server only the new step is read (one
      solution per unit in total), without it the whole prefix is re-read: (steps + 1) / 2 solutions per unit.
    - Partial solutions re-sent to the policy at each search step are prefix-cache hits and cost nothing.
    - A strategy that cuts traces or stops sampling early generates its entry's `token_share` of that.
    - `unit_tokens` holds measured (policy, reward) tokens per unit of size from a calibration file.
    """

    tokens_per_sample: float
    prompt_tokens: float = PROMPT_TOKENS
    steps_per_solution: float = STEPS_PER_SOLUTION
    rescore_cached: bool = False
    reward_reads: bool = True
    unit_tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def per_unit(self, strategy: str) -> tuple[float, float]:
        """(policy, reward-model) tokens per unit of size, beyond the prompt."""
        if strategy in self.unit_tokens:
            return self.unit_tokens[strategy]
        spec = find_strategy(strategy)
        generated = float(self.tokens_per_sample) * spec.token_share
        if not spec.needs_reward or not self.reward_reads:
            return generated, 0.0
        if spec.step_level and not self.rescore_cached:
            return generated, generated * (self.steps_per_solution + 1.0) / 2.0
        return generated, generated

    def uses_reward_prefix(self, strategy: str) -> bool:
        return find_strategy(strategy).needs_reward and self.reward_reads

    def expected(self, strategy: str, size: int, prompt_tokens: float | None = None) -> Cost:
        """The expected Cost of one run; `.tokens` is the budget unit, `.flops()` converts it."""
        prompt = self.prompt_tokens if prompt_tokens is None else float(prompt_tokens)
        policy_unit, reward_unit = self.per_unit(strategy)
        steps = self.steps_per_solution if find_strategy(strategy).step_level else 1.0
        requests = int(round(size * steps))
        reward = size * reward_unit + (prompt if self.uses_reward_prefix(strategy) else 0.0)
        return Cost(prompt_tokens=prompt * requests, completion_tokens=size * policy_unit,
                    cached_tokens=prompt * (requests - 1), reward_tokens=reward, requests=requests)
