"""The prefix cache: longest-prefix matches at token level, edge splits, LRU eviction, thread safety."""

import threading

import pytest

from sglang_plugin.sim.radix_cache import RadixCache


def test_empty_cache_matches_nothing():
    cache = RadixCache()
    assert cache.match_prefix([1, 2, 3]) == 0
    assert cache.total_tokens == 0


def test_longest_prefix_over_all_inserted_sequences():
    cache = RadixCache()
    assert cache.insert([1, 2, 3, 4, 5]) == 0
    assert cache.insert([1, 2, 9, 9]) == 2  # splits the first edge after two tokens
    assert cache.total_tokens == 5 + 2
    assert cache.match_prefix([1, 2, 3, 4, 5, 6]) == 5
    assert cache.match_prefix([1, 2, 3, 7]) == 3
    assert cache.match_prefix([1, 2, 9, 9, 9]) == 4
    assert cache.match_prefix([1, 2]) == 2
    assert cache.match_prefix([2, 1]) == 0
    assert cache.insert([1, 2, 3]) == 3  # already there: nothing new
    assert cache.total_tokens == 7


def test_match_inside_a_long_edge():
    cache = RadixCache()
    cache.insert(list(range(1000)))
    assert cache.match_prefix(list(range(637)) + [-1]) == 637
    assert cache.match_prefix(list(range(2000))) == 1000


def test_reset_empties_the_tree():
    cache = RadixCache()
    cache.insert([1, 2, 3])
    cache.reset()
    assert cache.match_prefix([1, 2, 3]) == 0
    assert cache.total_tokens == 0


def test_capacity_evicts_least_recently_used_leaves():
    cache = RadixCache(capacity=10)
    cache.insert([1, 1, 1, 1])          # A
    cache.insert([2, 2, 2, 2])          # B
    cache.match_prefix([1, 1, 1, 1])    # A is now more recent than B
    cache.insert([3, 3, 3, 3])          # 12 tokens > 10: B goes
    assert cache.total_tokens == 8
    assert cache.evicted_tokens == 4
    assert cache.match_prefix([2, 2, 2, 2]) == 0
    assert cache.match_prefix([1, 1, 1, 1]) == 4
    assert cache.match_prefix([3, 3, 3, 3]) == 4


def test_eviction_climbs_to_parents_that_become_leaves():
    cache = RadixCache(capacity=4)
    cache.insert([5, 6, 7])
    cache.insert([5, 6, 8])             # tree: [5, 6] -> [7] | [8]
    assert cache.total_tokens == 4
    cache.insert([1, 2, 3, 4])          # 8 tokens: evict [7], [8], then [5, 6], now a leaf
    assert cache.total_tokens == 4
    assert cache.match_prefix([5, 6]) == 0
    assert cache.match_prefix([1, 2, 3, 4]) == 4


def test_bad_capacity():
    with pytest.raises(ValueError):
        RadixCache(capacity=0)


def test_concurrent_inserts_keep_the_tree_consistent():
    cache = RadixCache()
    prefix = list(range(50))

    def work(k):
        for j in range(50):
            cache.insert(prefix + [1000 + k, j])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.total_tokens == 50 + 8 * (1 + 50)
    for k in range(8):
        assert cache.match_prefix(prefix + [1000 + k, 49, 0]) == 52
