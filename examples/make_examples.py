"""Rebuild the README's example files from the shared data (deterministic: the same data gives the same files).

    python examples/make_examples.py --data ../shared/data

- dev.jsonl: 40 MATH-500 problems not in problems.jsonl, for `tts-planner calibrate`: 20 the shipped default
  predictor calls easy and 20 it calls medium or hard, so two bins have enough problems to fit;
- math500_rates.jsonl: every problem of problems.jsonl and dev.jsonl with its reference solution and the success
  rate Qwen2.5-Math-1.5B-Instruct measured on it (50 samples at temperature 0.6): the stand-in server's problems;
- outcomes.jsonl: per-sample outcome records (the shape `tts-planner run` writes) of 100 MATH *train* problems,
  5 records each, as many of them correct as Qwen2.5-Math-7B-Instruct's 5 measured samples at temperature 0.6.

problems.jsonl (24 MATH-500 problems) is kept as it is: the README's first command plans it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

from planner.jsonl import read_jsonl
from planner.prediction.model_store import load_model

HERE = Path(__file__).resolve().parent
RATE_1_5B = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
SAMPLES_7B = "sr__Qwen-Qwen2.5-Math-7B-Instruct_maxlen_3000_k_5_temp_0.6"
POLICY_7B = "Qwen/Qwen2.5-Math-7B-Instruct"
DEV_PER_SIDE, TRAIN_PROBLEMS, TRAIN_SAMPLES = 20, 100, 5


def rows(path: Path) -> list[dict]:
    return [record for _, record in read_jsonl(path)]


def write(name: str, records: list[dict]) -> None:
    with open(HERE / name, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote examples/{name}: {len(records)} lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_PLANNER_DATA", HERE.parent.parent
                                                                          / "shared" / "data")))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    math500 = rows(args.data / "math500" / "test.jsonl")
    rates = {r["unique_id"]: r[RATE_1_5B] for r in rows(args.data / "outcomes" / "math500_success_rates.jsonl")}
    planned = {r["id"] for r in rows(HERE / "problems.jsonl")}
    candidates = [r for r in math500 if r["unique_id"] not in planned]
    rng.shuffle(candidates)
    predicted = load_model(None).predict([r["problem"] for r in candidates])
    easy = [r for r, p in zip(candidates, predicted) if p >= 0.5][:DEV_PER_SIDE]
    harder = [r for r, p in zip(candidates, predicted) if p < 0.5][:DEV_PER_SIDE]
    dev = sorted(easy + harder, key=lambda r: r["unique_id"])
    write("dev.jsonl", [{k: r[k] for k in ("unique_id", "problem", "answer")} for r in dev])
    chosen = planned | {r["unique_id"] for r in dev}
    write("math500_rates.jsonl", [{"unique_id": r["unique_id"], "problem": r["problem"], "answer": r["answer"],
                                   "solution": r["solution"], "pass_rate": rates[r["unique_id"]]}
                                  for r in math500 if r["unique_id"] in chosen])

    train = [r for r in rows(args.data / "outcomes" / "math_success_rates.jsonl") if r["split"] == "train"]
    outcomes = []
    for r in rng.sample(train, TRAIN_PROBLEMS):
        correct = round(r[SAMPLES_7B] * TRAIN_SAMPLES)
        outcomes += [{"problem_id": f"math-train-{r['idx']}", "problem": r["problem"], "policy": POLICY_7B,
                      "sample": i, "correct": i < correct} for i in range(TRAIN_SAMPLES)]
    write("outcomes.jsonl", outcomes)


if __name__ == "__main__":
    main()
