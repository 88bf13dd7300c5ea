"""A token-level prefix cache with RadixAttention semantics: each request reuses the longest prefix of its
prompt that any earlier sequence left in the tree, and an optional capacity evicts least recently used
leaves, as SGLang's radix cache does under memory pressure. It holds token ids only, no KV tensors."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Sequence


class _Node:
    __slots__ = ("key", "children", "parent", "last_access")

    def __init__(self, key: list[int], parent: _Node | None, stamp: int) -> None:
        self.key = key
        self.children: dict[int, _Node] = {}
        self.parent = parent
        self.last_access = stamp


SLACK = 20  # an eviction frees 1/SLACK of the capacity more than needed, so the tree is walked rarely


class RadixCache:
    """Thread-safe prefix tree over token ids. `capacity` (tokens) of None means never evict; when a sequence
    overflows it, least recently used leaves go until the tree is 1/SLACK below capacity (exactly at
    capacity for capacities under SLACK tokens)."""

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"cache capacity must be at least 1 token, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._clock = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._root = _Node([], None, 0)
            self.total_tokens = 0
            self.evicted_tokens = 0

    def match_prefix(self, tokens: Sequence[int]) -> int:
        """Length of the longest cached prefix of `tokens`; marks the matched path as recently used."""
        with self._lock:
            return self._walk(list(tokens), next(self._clock))[0]

    def insert(self, tokens: Sequence[int]) -> int:
        """Add `tokens` to the tree; returns how many of them were already cached."""
        tokens = list(tokens)
        with self._lock:
            stamp = next(self._clock)
            matched, node, split_at = self._walk(tokens, stamp)
            if split_at:
                node = self._split(node, split_at)
            if matched < len(tokens):
                leaf = _Node(tokens[matched:], node, stamp)
                node.children[tokens[matched]] = leaf
                self.total_tokens += len(leaf.key)
            if self.capacity is not None and self.total_tokens > self.capacity:
                self._evict(self.total_tokens - self.capacity + self.capacity // SLACK)
            return matched

    def _walk(self, tokens: list[int], stamp: int) -> tuple[int, _Node, int]:
        """(matched length, deepest node touched, tokens of that node's edge matched if only partly, else 0)."""
        node, i, n = self._root, 0, len(tokens)
        while i < n:
            child = node.children.get(tokens[i])
            if child is None:
                break
            child.last_access = stamp
            common = _common_prefix(child.key, tokens, i)
            i += common
            if common < len(child.key):
                return i, child, common
            node = child
        return i, node, 0

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut `node`'s edge after `at` tokens; returns the new upper node."""
        parent = node.parent
        upper = _Node(node.key[:at], parent, node.last_access)
        parent.children[upper.key[0]] = upper
        node.key = node.key[at:]
        node.parent = upper
        upper.children[node.key[0]] = node
        return upper

    def _evict(self, excess: int) -> None:
        leaves = [(n.last_access, id(n), n) for n in self._nodes() if not n.children]
        heapq.heapify(leaves)
        while excess > 0 and leaves:
            _, _, leaf = heapq.heappop(leaves)
            parent = leaf.parent
            del parent.children[leaf.key[0]]
            self.total_tokens -= len(leaf.key)
            self.evicted_tokens += len(leaf.key)
            excess -= len(leaf.key)
            if parent is not self._root and not parent.children:
                heapq.heappush(leaves, (parent.last_access, id(parent), parent))

    def _nodes(self):
        stack = list(self._root.children.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())


def _common_prefix(edge: list[int], tokens: list[int], start: int) -> int:
    """Length of the common prefix of `edge` and tokens[start:], by binary search on C-level slice compares."""
    limit = min(len(edge), len(tokens) - start)
    if edge[:limit] == tokens[start:start + limit]:
        return limit
    low, high = 0, limit
    while high - low > 1:
        mid = (low + high) // 2
        if edge[:mid] == tokens[start:start + mid]:
            low = mid
        else:
            high = mid
    return low
