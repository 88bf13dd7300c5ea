"""How much of each strategy's prompt the server's radix cache serves, as the server reports it
(meta_info.cached_tokens, summed over every policy request, fork warm-ups included).

"Could have been shared", precisely: the policy cache is flushed before each solve; a prompt token of
request r could have been shared if it lies in the longest common prefix of r's prompt tokens with the
token sequence of some earlier request q of the same solve that had already been answered when r was
sent, q's sequence being its prompt tokens followed by its generated tokens except the last (the last
sampled token was never fed through the model, so no server holds its KV). r's last prompt token never
counts (a server always computes the last position to sample from it). Prompts are tokenized by the
server's own /tokenize, generated tokens are the response's output_ids. Tokens shared only with requests
still in flight do not count: a batching server prefills those together and cannot share them.

Prints, per strategy at the given budget: requests, prompt tokens, tokens that could have been shared,
tokens reported cached, cached / prompt and cached / could-have-been-shared, and whether beam_search and
particle_filter reach the 90% bar.

    python benchmarks/prefix_cache.py [--problems 4] [--budget 16] [--seed 0] [--cache-tokens N] [--data DIR]

--cache-tokens limits the policy server's cache (least recently used evicted; default unlimited), to see
how much of the sharing survives a server short of KV memory.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

from plugin_support import SimProcess, data_dir, medium_problems

from planner.strategies import REGISTRY, planned_strategies
from sglang_plugin import Endpoint, StepTagScorer, solve

BAR = 0.9
CHECKED = ("beam_search", "particle_filter")


class RecordingEndpoint(Endpoint):
    """Logs every policy request with when it was sent and answered."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[float, float, dict, object]] = []
        self._log_lock = threading.Lock()

    def post(self, path, payload, executor=None):
        sent = time.perf_counter()
        answer = super().post(path, payload, executor)
        with self._log_lock:
            self.log.append((sent, time.perf_counter(), payload, answer))
        return answer


def shareable(log: list, tokenize) -> tuple[int, int, int, int]:
    """(requests, prompt tokens, could-have-been-shared tokens, reported cached tokens) of one solve."""
    prompts = tokenize([payload["text"] for _, _, payload, _ in log])
    entries = [(sent, done, ids, answer["meta_info"], answer.get("output_ids") or [])
               for (sent, done, _, answer), ids in zip(log, prompts)]
    trie: dict = {}
    answered = sorted(entries, key=lambda e: e[1])
    inserted = prompt = could = cached = 0
    for sent, _, ids, meta, _ in sorted(entries, key=lambda e: e[0]):
        while inserted < len(answered) and answered[inserted][1] <= sent:
            _, _, q_ids, _, q_out = answered[inserted]
            _insert(trie, q_ids + q_out[:-1])
            inserted += 1
        prompt += len(ids)
        could += min(_common_prefix(trie, ids), len(ids) - 1)
        cached += meta["cached_tokens"]
        assert meta["prompt_tokens"] == len(ids), "the server tokenized differently from /tokenize"
    return len(entries), prompt, could, cached


def _insert(trie: dict, ids: list[int]) -> None:
    node = trie
    for token in ids:
        node = node.setdefault(token, {})


def _common_prefix(trie: dict, ids: list[int]) -> int:
    node, depth = trie, 0
    for token in ids:
        node = node.get(token)
        if node is None:
            break
        depth += 1
    return depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-tokens", type=int, default=None)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = data_dir(args.data)
    problems = medium_problems(data, args.problems)
    limit = ("--cache-tokens", str(args.cache_tokens)) if args.cache_tokens else ()
    with SimProcess(data, "--seed", str(args.seed), *limit) as policy_url, \
            SimProcess(data, "--seed", str(args.seed)) as reward_url:
        endpoint = RecordingEndpoint(policy_url)
        scorer = StepTagScorer.math_shepherd(reward_url)

        def tokenize(texts: list[str]) -> list[list[int]]:
            request = urllib.request.Request(policy_url + "/tokenize", json.dumps({"prompt": texts}).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["tokens"]

        capacity = f"{args.cache_tokens} tokens" if args.cache_tokens else "unlimited"
        print(f"{len(problems)} medium MATH-500 problems, budget {args.budget}, policy cache ({capacity}) "
              "flushed before each solve\n")
        header = (f"{'strategy':<16}{'requests':>9}{'prompt':>10}{'shareable':>11}{'cached':>10}"
                  f"{'cached/prompt':>15}{'cached/shareable':>18}")
        print(header)
        print("-" * len(header))
        verdicts = {}
        for strategy in planned_strategies():
            totals = [0, 0, 0, 0]
            for problem in problems:
                endpoint.flush_cache()
                endpoint.log = []
                solve(problem["problem"], strategy, args.budget, endpoint,
                      scorer if REGISTRY[strategy].needs_reward else None)
                totals = [a + b for a, b in zip(totals, shareable(endpoint.log, tokenize))]
            requests, prompt, could, cached = totals
            share = cached / could if could else 0.0
            verdicts[strategy] = share
            print(f"{strategy:<16}{requests:>9}{prompt:>10}{could:>11}{cached:>10}{cached / prompt:>15.3f}{share:>18.3f}")
    print()
    for strategy in CHECKED:
        status = "PASS" if verdicts[strategy] >= BAR else "FAIL"
        print(f"{status}: {strategy} at budget {args.budget} reports {verdicts[strategy]:.1%} of the shareable "
              f"prompt tokens cached (bar {BAR:.0%})")


if __name__ == "__main__":
    main()
