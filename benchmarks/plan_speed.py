"""How long planning takes for a large batch: allocation, the uniform baseline, per-problem plans, and
turning plans into JSONL, for 100,000 problems by default (pass@1 drawn like MATH's: mostly easy, a long hard
tail). The requirement is well under 2 s of allocation and under 10 s for the whole `plan` command.

    python benchmarks/plan_speed.py [--problems 100000] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from planner.jsonl import write_jsonl
from planner.planning.allocation import Budget, allocate, plan_each, uniform
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY

SETUPS = {"no reward model": None, "Qwen2.5-Math-PRM-7B": "Qwen/Qwen2.5-Math-PRM-7B"}


def timed(step: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(problems: int, repeats: int, seed: int) -> list[dict]:
    p = np.random.default_rng(seed).beta(0.6, 0.3, size=problems)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "plans.jsonl"
        for label, rm in SETUPS.items():
            table_time, table = timed(lambda: StrategyTable.default(DEFAULT_POLICY, rm), repeats)
            budget = Budget(4)
            alloc_time, plan = timed(lambda: allocate(p, table, budget), repeats)
            uniform_time, _ = timed(lambda: uniform(p, table, budget), repeats)
            each_time, _ = timed(lambda: plan_each(p, table, budget), repeats)
            write_time, _ = timed(lambda: write_jsonl(plan.records(), out), repeats)
            rows.append({"setup": label, "problems": problems, "table_s": table_time, "allocate_s": alloc_time,
                         "uniform_s": uniform_time, "plan_each_s": each_time, "records_jsonl_s": write_time,
                         "expected_accuracy": float(plan.expected_accuracy.mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.problems, args.repeats, args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"planning {args.problems:,} problems, median of {args.repeats} runs (seconds)")
    print(f"{'setup':<22}{'table':>8}{'allocate':>10}{'uniform':>9}{'plan_each':>11}{'to JSONL':>10}")
    for r in rows:
        print(f"{r['setup']:<22}{r['table_s']:>8.3f}{r['allocate_s']:>10.3f}{r['uniform_s']:>9.3f}"
              f"{r['plan_each_s']:>11.3f}{r['records_jsonl_s']:>10.3f}")


if __name__ == "__main__":
    main()
