"""Accuracy against budget for every strategy, run through the real programs (sglang frontend, forks,
scorers over HTTP) against the stand-in server, on MATH-500 problems of medium difficulty for the default
policy (measured pass rate in [0.1, 0.5) for Qwen2.5-Math-1.5B-Instruct, k=50, T=0.6): the server solves
each at that rate, step by step, and its step-tag PRM ranks correct prefixes above wrong ones with the
given AUROC. An answer counts as correct when math-verify finds it equivalent to MATH-500's reference.

Prints, per strategy, accuracy at each budget N (samples: particles, beam candidates, ...), the mean
tokens per problem at the largest budget (Cost.tokens: generated + uncached prompt + reward tokens), and
whether accuracy rose from the smallest to the largest budget. cot ignores the budget (one sample).

    python benchmarks/strategy_accuracy.py [--problems 24] [--budgets 1,2,4,8,16] [--auroc 0.8]
                                          [--scorer prm|orm] [--seed 0] [--threads 4] [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from plugin_support import SimProcess, data_dir, medium_problems

from planner.grading import shared_grader
from planner.strategies import REGISTRY, planned_strategies
from sglang_plugin import Endpoint, OutcomeRewardScorer, StepTagScorer, solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--budgets", default="1,2,4,8,16")
    parser.add_argument("--auroc", type=float, default=0.8)
    parser.add_argument("--scorer", choices=("prm", "orm"), default="prm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4, help="problems solved at once")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    data = data_dir(args.data)
    problems = medium_problems(data, args.problems)
    grouper = shared_grader()
    started = time.perf_counter()
    print(f"{len(problems)} MATH-500 problems, mean measured pass rate "
          f"{sum(p['sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6'] for p in problems) / len(problems):.3f};"
          f" {args.scorer.upper()} with AUROC {args.auroc}; server seed {args.seed}\n")
    with SimProcess(data, "--seed", str(args.seed), "--reward-auroc", str(args.auroc)) as url:
        endpoint = Endpoint(url)
        scorer = (StepTagScorer.math_shepherd(url) if args.scorer == "prm"
                  else OutcomeRewardScorer(url))
        header = f"{'strategy':<16}" + "".join(f"{'N=' + str(b):>8}" for b in budgets) + f"{'tokens@' + str(budgets[-1]):>12}  rises"
        print(header)
        print("-" * len(header))
        with ThreadPoolExecutor(args.threads) as pool:
            for strategy in planned_strategies():
                row, tokens = [], 0.0
                for budget in ([1] if strategy == "cot" else budgets):
                    use = scorer if REGISTRY[strategy].needs_reward else None
                    results = list(pool.map(lambda p: solve(p["problem"], strategy, budget, endpoint, use),
                                            problems))
                    failed = sum(len(r.failed_branches) for r in results)
                    if failed:
                        print(f"  ({strategy} N={budget}: {failed} failed branches)")
                    correct = [r.answer is not None and grouper.equivalent(r.answer, p["answer"])
                               for r, p in zip(results, problems)]
                    row.append(sum(correct) / len(correct))
                    tokens = sum(r.cost.tokens for r in results) / len(results)
                if strategy == "cot":
                    row = row * len(budgets)
                rises = "-" if strategy == "cot" else ("yes" if row[-1] > row[0] else "NO")
                print(f"{strategy:<16}" + "".join(f"{a:>8.3f}" for a in row) + f"{tokens:>12.0f}  {rises}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
