"""Rebuild the demo's problem sample (sglang_plugin/demo_data/math500_sample.jsonl): 20 MATH-500 problems per
level (fixed seed), each with its reference solution and answer and the measured success rate of
Qwen2.5-Math-1.5B-Instruct (50 samples at T 0.6, outcomes/math500_success_rates.jsonl) as `pass_rate`.
The stand-in server solves each problem at that rate, so the demo's accuracies are the real policy's.

    python benchmarks/make_demo_sample.py [--data DIR] [--per-level 20]
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

from planner.jsonl import read_jsonl, write_jsonl

RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
TARGET = Path(__file__).resolve().parents[1] / "sglang_plugin" / "demo_data" / "math500_sample.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("TTS_PLANNER_DATA",
                                                         Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--per-level", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = Path(args.data)
    rates = {r["unique_id"]: r[RATE_FIELD] for _, r in read_jsonl(data / "outcomes" / "math500_success_rates.jsonl")}
    by_level: dict[int, list[dict]] = {}
    for _, record in read_jsonl(data / "math500" / "test.jsonl"):
        by_level.setdefault(record["level"], []).append(record)
    rng = random.Random(args.seed)
    chosen = []
    for level in sorted(by_level):
        for record in rng.sample(by_level[level], args.per_level):
            chosen.append({"unique_id": record["unique_id"], "problem": record["problem"], "answer": record["answer"],
                           "subject": record["subject"], "level": level, "solution": record["solution"],
                           "pass_rate": rates[record["unique_id"]]})
    rng.shuffle(chosen)
    count = write_jsonl(chosen, TARGET)
    print(f"wrote {count} problems to {TARGET}")


if __name__ == "__main__":
    main()
