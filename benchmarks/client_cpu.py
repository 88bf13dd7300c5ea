"""Client CPU per sample: `tts-planner run` (majority@N through the batch runner: prompt through the sglang
frontend, one request per sample on the request loop, answer grouping, result and outcome lines written and
synced) against a plain HTTP client that sends one request per sample and reads the answer, both against the
same zero-delay stand-in server (a child process, so its CPU is not counted).

Both measure CPU time (user + system) of this process and its child processes (the grader's math-verify
workers), from just before the first request to just after the last, start-up excluded: the predictor is
loaded, the grader's workers started and one warm-up problem solved before timing. The plain client builds the
same chat-template prompts, keeps the same number of requests in flight and parses every JSON answer.

    python benchmarks/client_cpu.py [--problems 100] [--size 8] [--concurrency 16] [--repeats 3]

Prints, per arm, CPU ms per sample (median of the repeats) and the ratio run / plain (the bar: at most 3.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from plugin_support import SimProcess, data_dir

from planner.grading import shared_grader
from planner.jsonl import read_jsonl
from planner.prediction.model_store import shared_model
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.runs.settings import RunSettings

BAR = 3.0
TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{problem} Let's think "
            "step by step and output the final answer within \\boxed{{}}.<|im_end|>\n<|im_start|>assistant\n")


def cpu_seconds() -> float:
    """User + system CPU of this process and of its living child processes (from /proc)."""
    times = os.times()
    total = times.user + times.system
    tick = os.sysconf("SC_CLK_TCK")
    children = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children.update((task / "children").read_text().split())
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def problems(data: Path, count: int) -> list[dict]:
    rows = [r for _, r in read_jsonl(data / "math500" / "test.jsonl")]
    return [{"unique_id": r["unique_id"], "problem": r["problem"], "answer": r["answer"]} for r in rows[:count]]


async def plain_client(url: str, items: list[dict], size: int, concurrency: int) -> int:
    """One request per sample, `concurrency * size` in flight; returns the samples answered."""
    limit = asyncio.Semaphore(concurrency * size)
    async with aiohttp.ClientSession() as session:
        async def one(problem: str) -> int:
            async with limit:
                body = {"text": TEMPLATE.format(problem=problem),
                        "sampling_params": {"max_new_tokens": 3000, "temperature": 0.6}}
                async with session.post(url + "/generate", json=body) as response:
                    answer = json.loads(await response.read())
                    return int("text" in answer)

        done = await asyncio.gather(*(one(item["problem"]) for item in items for _ in range(size)))
    return sum(done)


def measure_run(url: str, folder: Path, items: list[dict], size: int, concurrency: int, tag: str) -> float:
    source = folder / f"{tag}.input.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    settings = RunSettings(endpoint=url, input=source, output=folder / f"{tag}.jsonl", strategy="majority", size=size,
                           concurrency=concurrency, progress=False)
    started = cpu_seconds()
    report = run_batch(settings)
    spent = cpu_seconds() - started
    assert report.summary.total.problems == len(items), report.summary.total.problems
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16, help="problems in flight")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = data_dir(args.data)
    items = problems(data, args.problems)
    samples = len(items) * args.size
    shared_model()  # start-up costs, excluded: the predictor and the grader's workers
    shared_grader().equivalent("1/2", "0.5")
    plain, run = [], []
    with SimProcess(data, "--seed", "0") as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measure_run(url, folder, items[:2], args.size, args.concurrency, "warm")
        asyncio.run(plain_client(url, items[:2], args.size, args.concurrency))
        for repeat in range(args.repeats):
            started = cpu_seconds()
            answered = asyncio.run(plain_client(url, items, args.size, args.concurrency))
            plain.append((cpu_seconds() - started) / samples)
            assert answered == samples, answered
            run.append(measure_run(url, folder, items, args.size, args.concurrency, f"run{repeat}") / samples)
            print(f"repeat {repeat + 1}: plain {plain[-1] * 1e3:.2f} ms/sample, run {run[-1] * 1e3:.2f} ms/sample",
                  flush=True)
    plain_ms, run_ms = statistics.median(plain) * 1e3, statistics.median(run) * 1e3
    ratio = run_ms / plain_ms
    print(f"\n{len(items)} problems x majority@{args.size} = {samples} samples, {args.concurrency} problems in flight, "
          f"zero-delay stand-in server; CPU per sample, median of {args.repeats}:")
    print(f"  plain HTTP client   {plain_ms:6.2f} ms")
    print(f"  tts-planner run     {run_ms:6.2f} ms")
    print(f"  ratio               {ratio:6.2f}x  (bar: at most {BAR:.1f}x: {'met' if ratio <= BAR else 'NOT met'})")
    print(f"  at this CPU cost one core keeps up with {1e3 / run_ms:,.0f} samples/s (plain: {1e3 / plain_ms:,.0f})")
    print(f"time {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
