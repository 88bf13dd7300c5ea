"""The one cost unit every strategy is measured in: tokens the serving stack had to compute.

A token is counted once whether a policy generated it, prefilled it without a cache hit, or a reward model
read it. Prefix-cache hits are free. Tokens convert to FLOPs with the usual 2 x parameters per token
(Kaplan et al., arXiv 2001.08361), so policies and reward models of different sizes compare on one axis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Cost:
    """What one solve spent, as reported by the servers (meta_info), never estimated after the fact."""

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
