"""The cost ledger: what one solve spent, summed from every server response, plus the errors and retries met."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from planner.cost import Cost


@dataclass
class CostLedger:
    """Thread-safe sum of what one solve spent, plus the errors and retries met on the way."""

    cost: Cost = field(default_factory=Cost)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_policy(self, meta: dict) -> None:
        """One policy-server response: its prompt, completion and cached tokens, as reported."""
        with self._lock:
            self.cost.prompt_tokens += int(meta.get("prompt_tokens", 0))
            self.cost.completion_tokens += int(meta.get("completion_tokens", 0))
            self.cost.cached_tokens += int(meta.get("cached_tokens", 0))
            self.cost.requests += 1

    def add_reward(self, tokens: int) -> None:
        """One reward-server response: the tokens it had to compute (prompt tokens minus cache hits)."""
        with self._lock:
            self.cost.reward_tokens += int(tokens)
            self.cost.requests += 1

    def add_error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def merge(self, other: CostLedger) -> None:
        """Add another ledger's costs, errors and retries (a solve run inside an accounted program)."""
        with other._lock:
            cost, errors, retries = replace(other.cost), list(other.errors), other.retries
        with self._lock:
            self.cost = self.cost + cost
            self.errors += errors
            self.retries += retries

    def snapshot(self) -> Cost:
        with self._lock:
            return replace(self.cost)
