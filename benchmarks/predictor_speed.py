"""Speed of the predictor and the planner, against the targets: `plan` handles 100,000 problems in under
10 s after the model is loaded; predict + plan for one problem in process, p99 under 2 ms; model load under 1 s.

    python benchmarks/predictor_speed.py [--problems 100000] [--singles 2000] [--skip-cli]

Problems are MATH test texts (repeated to reach the count), written to a temporary JSONL file; the 100k run
times each phase of `tts-planner plan` in process (read, predict, allocate + uniform baseline, write) and
then the command itself in a fresh process, whose wall time also includes Python start-up and model load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from planner.cost import estimate_prompt_tokens
from planner.jsonl import read_problems, write_jsonl
from planner.planning.allocation import Budget, allocate, plan_problem, uniform
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY
from planner.prediction.build_models import default_data_dir
from planner.prediction.model_store import load_model, resolve_model_path
from planner.prediction.predictor import DifficultyPredictor


def model_load(repeats: int) -> dict:
    path = resolve_model_path(None)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        DifficultyPredictor.load(path)
        times.append(time.perf_counter() - start)
    cold = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                           "from planner.prediction.model_store import load_model; load_model(); "
                           "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
    return {"load_s_median": statistics.median(times), "load_s_max": max(times),
            "cold_import_and_load_s": float(cold.stdout)}


def single_problem(texts: list[str], count: int) -> dict:
    model = load_model()
    table = StrategyTable.default(DEFAULT_POLICY, "Qwen/Qwen2.5-Math-PRM-7B")
    budget = Budget(8)
    for text in texts[:50]:  # warm-up
        plan_problem(float(model.predict([text])[0]), table, budget)
    times = []
    for text in texts[:count]:
        start = time.perf_counter()
        plan_problem(float(model.predict([text])[0]), table, budget)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {"problems": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def batch_plan(path: Path, out: Path) -> dict:
    model = load_model()
    table = StrategyTable.default(DEFAULT_POLICY)
    phases, start = {}, time.perf_counter()
    records, texts = read_problems(path)
    phases["read_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    p = model.predict(texts)
    phases["predict_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    prompt = estimate_prompt_tokens(texts)
    planned = allocate(p, table, Budget(4), prompt_tokens=prompt)
    uniform(p, table, Budget(4), prompt_tokens=prompt)
    phases["allocate_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    write_jsonl(({**r, "plan": row} for r, row in zip(records, planned.records())), out)
    phases["write_s"] = time.perf_counter() - mark
    phases["total_after_load_s"] = time.perf_counter() - start
    return {"problems": len(texts), **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--skip-cli", action="store_true", help="do not also time the command in a new process")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = args.data or default_data_dir()
    texts = [json.loads(line)["problem"] for line in (data / "math" / "test.jsonl").open(encoding="utf-8")]
    results = {"model_load": model_load(5), "single_problem": single_problem(texts, args.singles)}
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "problems.jsonl", Path(folder) / "plans.jsonl"
        write_jsonl(({"id": i, "problem": texts[i % len(texts)]} for i in range(args.problems)), source)
        results["batch_in_process"] = batch_plan(source, out)
        if not args.skip_cli:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sglang_plugin.cli", "plan", str(source), "--budget", "4",
                            "--output", str(out)], check=True, capture_output=True)
            results["cli_wall_s"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(results, indent=2))
        return
    load, single, batch = results["model_load"], results["single_problem"], results["batch_in_process"]
    print(f"model load: median {load['load_s_median']:.3f} s, max {load['load_s_max']:.3f} s "
          f"(new process, imports included: {load['cold_import_and_load_s']:.2f} s)   target < 1 s")
    print(f"predict + plan one problem ({single['problems']} problems): p50 {single['p50_ms']:.2f} ms, "
          f"p99 {single['p99_ms']:.2f} ms, max {single['max_ms']:.2f} ms   target p99 < 2 ms")
    print(f"plan {batch['problems']:,} problems after load: {batch['total_after_load_s']:.2f} s "
          f"(read {batch['read_s']:.2f}, predict {batch['predict_s']:.2f}, allocate {batch['allocate_s']:.2f}, "
          f"write {batch['write_s']:.2f})   target < 10 s")
    if "cli_wall_s" in results:
        print(f"`tts-planner plan` in a new process, wall time including start-up and load: {results['cli_wall_s']:.2f} s")


if __name__ == "__main__":
    main()
