"""Kill `tts-planner run` at random points and resume it: every problem must end up in the output exactly once,
none lost, and what was written before a kill must stay as it was.

Serves MATH-500 (the default policy's measured success rates, joined with the reference solutions) from the
stand-in server in this process, then starts `tts-planner run` on the 500 problems as a child process
`--kills` times, each time sending SIGKILL or SIGINT (alternately), and finally lets it finish. Kill points:
after a random number of new result lines plus a random fraction of a second (so problems are in flight), and
every fourth kill at a random moment of start-up. Prints each attempt (signal, kill point, exit code, lines
before and after) and the final audit (sglang_plugin.results_file.audit); exits non-zero if anything is wrong.

    python benchmarks/resume_under_kill.py [--data DIR] [--problems 500] [--kills 8] [--seed 0] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planner.jsonl import read_jsonl
from sglang_plugin.runs.files import audit
from sglang_plugin.sim.server import SimServer

RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
ROOT = Path(__file__).resolve().parents[1]


def whole_lines(path: Path) -> bytes:
    data = path.read_bytes() if path.exists() else b""
    return data[:data.rfind(b"\n") + 1]


def count(path: Path) -> int:
    return whole_lines(path).count(b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("TTS_PLANNER_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    data = Path(args.data)
    work = Path(tempfile.mkdtemp(prefix="resume-under-kill-"))
    problems = [{k: r[k] for k in ("unique_id", "problem", "answer")}
                for _, r in read_jsonl(data / "math500" / "test.jsonl")][:args.problems]
    source = work / "problems.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in problems), encoding="utf-8")
    output, outcomes = work / "results.jsonl", work / "results.jsonl.outcomes.jsonl"
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    failures = []
    with SimServer(data / "outcomes" / "math500_success_rates.jsonl", solutions=data / "math500" / "test.jsonl",
                   rate_field=RATE_FIELD, seed=args.seed) as server:
        command = [sys.executable, "-m", "sglang_plugin.cli", "run", "--endpoint", server.url, "--input", str(source),
                   "--output", str(output), "--strategy", "majority", "--size", "4",
                   "--concurrency", str(args.concurrency)]
        print(f"{len(problems)} problems, majority@4, concurrency {args.concurrency}, files in {work}")
        print(f"{'attempt':>7} {'signal':>7} {'kill point':>22} {'exit':>5} {'lines before':>13} {'lines after':>12}")
        kept: list[bytes] = []
        started = time.perf_counter()
        for attempt in range(args.kills + 1):
            sig = None if attempt == args.kills else (signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT)
            before = count(output)
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            point = "none"
            if sig is not None:
                if attempt % 4 == 3:  # while the command starts up, before it writes anything
                    delay = rng.uniform(0.2, 2.0)
                    point = f"{delay:.1f} s after start"
                else:  # while it writes: a random number of new lines, then a random fraction of a second
                    target = before + rng.randint(1, max(1, (len(problems) - before) // (args.kills - attempt + 1)))
                    while count(output) < target and process.poll() is None:
                        time.sleep(0.005)
                    delay = rng.uniform(0.0, 0.5)
                    point = f"line {target} + {delay:.2f} s"
                time.sleep(delay)
                if process.poll() is None:
                    process.send_signal(sig)
                else:
                    point = "ended first"
            _, err = process.communicate(timeout=900)
            sent = sig.name if sig is not None and point != "ended first" else "none"
            print(f"{attempt + 1:>7} {sent:>7} {point:>22} {process.returncode:>5} {before:>13} {count(output):>12}")
            # -2: the signal came while Python was still importing, before the command could handle it.
            # 0: CPython swallowed it inside an import-lock callback ("Exception ignored in ...
            # _get_module_lock"), so the command never saw it and finished the run.
            swallowed = process.returncode == 0 and "Exception ignored" in err and "KeyboardInterrupt" in err
            if sent == "SIGINT" and process.returncode != -signal.SIGINT and not swallowed and (
                    process.returncode != 130 or "resume with:" not in err):
                failures.append(f"attempt {attempt + 1}: SIGINT gave exit {process.returncode}: {err[-300:]}")
            if sent == "none" and process.returncode != 0:
                failures.append(f"attempt {attempt + 1}: exit {process.returncode}: {err[-500:]}")
            kept.append(whole_lines(output))
        wall = time.perf_counter() - started
    final = output.read_bytes()
    failures += [f"lines written before kill {i + 1} changed" for i, prefix in enumerate(kept)
                 if not final.startswith(prefix)]
    failures += audit(output, outcomes, [r["unique_id"] for r in problems])
    records = [json.loads(line) for line in final.splitlines()]
    samples = count(outcomes)
    expected_samples = sum(r["branches"] for r in records if r["status"] == "ok")
    if samples != expected_samples:
        failures.append(f"{samples} outcome records for {expected_samples} finished branches")
    print(f"final: {len(records)} result lines for {len(problems)} problems, {samples} outcome records, "
          f"{sum(r['status'] == 'failed' for r in records)} failed, {wall:.1f} s in all")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures[:20]))
        raise SystemExit(1)
    print("OK: every problem exactly once, no torn line, earlier lines unchanged, outcome records complete")


if __name__ == "__main__":
    main()
