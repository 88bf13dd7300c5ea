"""Is a candidate a correct answer for a reference, are two sampled answers the same, and grouping by it.

Policy:
- `correct(reference, candidate)` is math-verify's verdict with the reference as gold: it is not
  symmetric (a reference `x^2+y^2=1` is not answered by `1`, while a reference `1` accepts `k=1`).
- `equivalent(a, b)` holds when each accepts the other as gold, so it is symmetric by construction and
  never merges what either direction keeps apart (`(3,1)` and `{1,3}`, `7 = 11a+c` and `11a+c`).
- Cheap paths first, and they only decide what math-verify would: the same presentational key
  (normalize.py), or two plain numbers compared exactly. Answers longer than `max_chars` are compared by
  key only, never parsed.
- Everything else goes to worker processes (pool.py) with a per-comparison `timeout`; a comparison that
  overruns counts as "not the same" and in `timeouts`.
- `group` is order-free: answers are first merged by key and by exact plain value, then these classes are
  clustered in a fixed order (most frequent first, then by key), each joining the first earlier
  representative it is equivalent to. The result depends only on the multiset of answers, and at most
  (classes x representatives) comparisons run, all within the call's `time_limit`; past it, the classes
  left stay groups of their own and the result says so (`complete` False, `cut_short` counted).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from planner.grading.config import GradingConfig
from planner.grading.extract import strip_delimiters
from planner.grading.normalize import normalize, plain_number, without_unit_words
from planner.grading.pool import WorkerPool
from planner.grading.vote import Grouping, VoteList, most_common_form, tally

DEFAULT_TIMEOUT = 5.0  # seconds for one math-verify comparison
DEFAULT_TIME_LIMIT = 10.0  # seconds for all the comparisons of one group / vote call
MAX_CHARS = 2_000  # longer answers and references are compared by key only
_CACHE_SIZE = 100_000


class Grader:
    """Grading and grouping of final answers. Thread-safe; `shared_grader()` gives one per process."""

    def __init__(self, workers: int = 1, timeout: float = DEFAULT_TIMEOUT, time_limit: float = DEFAULT_TIME_LIMIT,
                 max_chars: int = MAX_CHARS, start_timeout: float = 120.0, spare: bool = True) -> None:
        self.timeout = timeout
        self.time_limit = time_limit
        self.max_chars = max_chars
        self.comparisons = 0  # pairs sent to math-verify
        self.timeouts = 0  # comparisons that overran `timeout`
        self.cut_short = 0  # group / vote calls that ran out of `time_limit`
        self._pool = WorkerPool(workers, start_timeout=start_timeout, spare=spare)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], list[bool | None]] = {}

    def correct(self, reference: str, candidate: str | None) -> bool:
        """Whether `candidate` (a bare final answer, None when there is none) answers `reference` correctly."""
        if candidate is None:
            return False
        return bool(self._decide(reference, candidate, both=False, deadline=None))

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two answers are the same for voting: each is correct against the other as reference."""
        return bool(self._decide(a, b, both=True, deadline=None))

    def group(self, answers: Sequence[str | None], time_limit: float | None = None) -> Grouping:
        """A group label per answer (None for a missing or empty one), numbered by first appearance; the
        partition does not depend on the order of `answers` (see the module's policy)."""
        deadline = time.monotonic() + (self.time_limit if time_limit is None else time_limit)
        keys = [None if a is None else (normalize(a) or None) for a in answers]
        classes = _exact_classes(answers, keys)
        order = sorted(classes, key=lambda c: (-len(classes[c]), c))
        leaders: list[str] = []
        cluster_of: dict[str, str] = {}
        complete = True
        for name in order:
            form = most_common_form(answers[i] for i in classes[name])
            joined = None
            for leader in leaders:
                same = None
                if time.monotonic() < deadline:
                    leader_form = most_common_form(answers[i] for i in classes[leader])
                    same = self._decide(leader_form, form, both=True, deadline=deadline)
                if same is None:  # out of time: this class and the rest stay as they are
                    complete = False
                    break
                if same:
                    joined = leader
                    break
            cluster_of[name] = joined or name
            if joined is None:
                leaders.append(name)
        if not complete:
            with self._lock:
                self.cut_short += 1
        class_of = {i: name for name, members in classes.items() for i in members}
        numbers: dict[str, int] = {}
        labels = []
        for index in range(len(answers)):
            if index not in class_of:
                labels.append(None)
                continue
            cluster = cluster_of[class_of[index]]
            labels.append(numbers.setdefault(cluster, len(numbers)))
        return Grouping(labels, complete)

    def vote(self, answers: Sequence[str | None], weights: Sequence[float] | None = None,
             ids: Sequence[int] | None = None, reduce: str = "sum", time_limit: float | None = None) -> VoteList:
        """Groups of equivalent answers with their summed (reduce="sum") or best ("max") weight, 1 per answer
        by default; best first, ties broken by group size then a hash of the answer text, never by sample order."""
        return tally(answers, self.group(answers, time_limit), weights, ids, reduce)

    def _decide(self, gold: str, pred: str, both: bool, deadline: float | None) -> bool | None:
        """gold accepts pred (and, with `both`, pred accepts gold); None when cut off by `deadline`."""
        cheap = cheap_verdict(gold, pred)
        if cheap is not None:
            return cheap
        if len(gold) > self.max_chars or len(pred) > self.max_chars:
            return False
        gold_key, pred_key = normalize(gold), normalize(pred)
        verdict = self._verdict(gold, pred, gold_key, pred_key, both, deadline)
        if verdict is None:
            return None
        return verdict[0] and (verdict[1] or not both)

    def _verdict(self, gold: str, pred: str, gold_key: str, pred_key: str, both: bool,
                 deadline: float | None) -> list[bool] | None:
        """[gold accepts pred, pred accepts gold] from the cache or a worker (the second may be None when
        not asked); a comparison that overruns its timeout is [False, False]."""
        with self._lock:
            known = self._cache.get((gold_key, pred_key))
            if known is None and (pred_key, gold_key) in self._cache:
                known = self._cache[(pred_key, gold_key)][::-1]
        if known is not None and (known[1] is not None or not both) and known[0] is not None:
            return known
        timeout = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
        if timeout <= 0:
            return None
        with self._lock:
            self.comparisons += 1
        request = [without_unit_words(strip_delimiters(gold)), without_unit_words(strip_delimiters(pred)), both]
        reply = self._pool.ask(request, timeout, deadline)
        if reply is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None  # the call's time ran out, not necessarily this comparison's
            with self._lock:
                self.timeouts += 1
            reply = [False, False]
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[(gold_key, pred_key)] = reply
        return reply

    def close(self) -> None:
        """Stop the worker processes (they also stop by themselves when this process exits)."""
        self._pool.close()


def cheap_verdict(gold: str, pred: str) -> bool | None:
    """True or False when the exact paths settle the pair (the same key, two plain numbers, an empty
    answer), None when it needs math-verify. Symmetric, and never True where math-verify would say False."""
    gold_key, pred_key = normalize(gold), normalize(pred)
    if not gold_key or not pred_key:
        return False
    if gold_key == pred_key:
        return True
    gold_number, pred_number = plain_number(gold_key), plain_number(pred_key)
    if gold_number is not None and pred_number is not None:
        if gold_number.value == pred_number.value:
            return True
        if gold_number.surely_different(pred_number):
            return False
    return None


def _exact_classes(answers: Sequence[str | None], keys: Sequence[str | None]) -> dict[str, list[int]]:
    """Answer indexes by exact identity: the same key, or the same plain number (1/2, 0.5, \\frac{1}{2})."""
    classes: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        if key is None:
            continue
        number = plain_number(key)
        name = f"\x00{number.value}" if number is not None else key
        classes.setdefault(name, []).append(index)
    return classes


_shared: dict[GradingConfig, Grader] = {}
_shared_lock = threading.Lock()


def shared_grader(config: GradingConfig | None = None) -> Grader:
    """The process-wide grader of these settings (its workers start on first use and are reused after)."""
    config = config or GradingConfig()
    with _shared_lock:
        if config not in _shared:
            _shared[config] = Grader(config.workers, config.timeout, config.time_limit)
        return _shared[config]
