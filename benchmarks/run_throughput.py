"""How fast `tts-planner run` gets through MATH-500 against the stand-in server (its own process), by mode and
concurrency: problems per second of the run itself (the summary's wall time, start-up excluded) and of the
whole command, with the summary's accuracy and tokens per problem.

    python benchmarks/run_throughput.py [--data DIR] [--problems 500] [--concurrency 4,8,16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planner.jsonl import read_jsonl

RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
ROOT = Path(__file__).resolve().parents[1]
MODES = {"majority@4": ["--strategy", "majority", "--size", "4"], "adaptive (budget 4)": ["--budget", "4"],
         "adaptive + PRM (budget 4)": ["--budget", "4", "--reward-endpoint", "{url}", "--scorer", "math_shepherd"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("TTS_PLANNER_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--concurrency", default="4,8,16")
    args = parser.parse_args()
    data = Path(args.data)
    work = Path(tempfile.mkdtemp(prefix="run-throughput-"))
    source = work / "problems.jsonl"
    records = [{k: r[k] for k in ("unique_id", "problem", "answer")}
               for _, r in read_jsonl(data / "math500" / "test.jsonl")][:args.problems]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", "sim-server", "--port", "0", "--problems",
                               str(data / "outcomes" / "math500_success_rates.jsonl"), "--solutions",
                               str(data / "math500" / "test.jsonl"), "--rate-field", RATE_FIELD],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = server.stdout.readline().split("ready at ")[1].split()[0]
        print(f"{len(records)} problems; stand-in server at {url} in its own process; files in {work}")
        print(f"{'mode':<28}{'conc':>5}{'run problems/s':>16}{'command s':>11}{'accuracy':>10}{'tokens/problem':>16}")
        for mode, extra in MODES.items():
            for concurrency in args.concurrency.split(","):
                slug = re.sub(r"[^a-z0-9]+", "-", mode.lower())
                output = work / f"{slug}-{concurrency}.jsonl"
                command = [sys.executable, "-m", "sglang_plugin.cli", "run", "--endpoint", url, "--input", str(source),
                           "--output", str(output), "--concurrency", concurrency, *[e.format(url=url) for e in extra]]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"{mode}: exit {done.returncode}: {done.stderr[-500:]}")
                rate = re.search(r"\(([\d.]+) problems/s\)", done.stdout).group(1)
                accuracy = re.search(r"accuracy\s+([\d.]+)", done.stdout).group(1)
                tokens = re.search(r"tokens\s+([\d,]+) per problem", done.stdout).group(1)
                print(f"{mode:<28}{concurrency:>5}{rate:>16}{elapsed:>11.1f}{accuracy:>10}{tokens:>16}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
