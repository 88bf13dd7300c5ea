"""How fast the simulated SGLang server answers on loopback, so tests and benchmarks built on it know what
its own overhead is. Starts `tts-planner sim-server --port 0` on MATH-500 (rates joined with solutions) as a
subprocess, then prints:

- per-request latency with one client on a keep-alive connection, per request kind;
- the same for a new connection per request (what sglang's frontend does: urllib, Connection: close);
- requests/s with several client threads;
- how concurrent requests with simulated decode time overlap (batching), with --token-delay-ms;
- how long finding a prompt's problem takes with all 12,500 MATH problems loaded (in process).

    python benchmarks/sim_server_throughput.py [--data DIR] [--seconds 3] [--threads 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from planner.jsonl import read_jsonl
from sglang_plugin.sim.problems import Problem, ProblemBank

RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"
TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{problem} Let's think "
            "step by step and output the final answer within \\boxed{{}}.<|im_end|>\n<|im_start|>assistant\n")


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return Path(os.environ.get("TTS_PLANNER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def start_server(data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-c", "from sglang_plugin.cli.main import main; main()", "sim-server", "--port", "0",
               "--problems", str(data / "outcomes" / "math500_success_rates.jsonl"),
               "--solutions", str(data / "math500" / "test.jsonl"), "--rate-field", RATE_FIELD, *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "ready at " not in line:
        process.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return process, line.split("ready at ")[1].split()[0]


def kinds(problem: str) -> dict[str, tuple[str, str, dict | None]]:
    text = TEMPLATE.format(problem=problem)
    return {
        "GET /health": ("GET", "/health", None),
        "cache warm-up (max_new_tokens 0)": ("POST", "/generate", {"text": text, "sampling_params": {"max_new_tokens": 0}}),
        "one step (stop at blank line)": ("POST", "/generate", {"text": text, "sampling_params": {
            "max_new_tokens": 512, "stop": ["\n\n"], "temperature": 0.7}}),
        "whole solution": ("POST", "/generate", {"text": text, "sampling_params": {"max_new_tokens": 3000,
                                                                                   "temperature": 0.7}}),
        "whole solution + top-5 logprobs": ("POST", "/generate", {
            "text": text, "sampling_params": {"max_new_tokens": 3000, "temperature": 0.7},
            "return_logprob": True, "top_logprobs_num": 5}),
        "ORM /classify (8 texts)": ("POST", "/classify", {"text": [text + "We have x = 1.<|im_end|>"] * 8}),
    }


def keep_alive_latency(url: str, method: str, path: str, payload, count: int) -> list[float]:
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = None if payload is None else json.dumps(payload)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        times.append(time.perf_counter() - started)
    connection.close()
    return times


def new_connection_latency(url: str, method: str, path: str, payload, count: int) -> list[float]:
    data = None if payload is None else json.dumps(payload).encode()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        request = urllib.request.Request(url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        times.append(time.perf_counter() - started)
    return times


def throughput(url: str, payload: dict, threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        host, port = url.split("//")[1].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        body = json.dumps(payload)
        while time.perf_counter() < stop:
            connection.request("POST", "/generate", body=body, headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            done[i] += 1
        connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / seconds


def overlap(url: str, problem: str, concurrent: int) -> tuple[float, float, int]:
    """(wall seconds for `concurrent` simultaneous 64-token requests, seconds for one, tokens each)."""
    payload = {"text": TEMPLATE.format(problem=problem), "sampling_params": {"max_new_tokens": 64, "temperature": 0.7,
                                                                                "ignore_eos": True}}
    one = new_connection_latency(url, "POST", "/generate", payload, 1)[0]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        list(pool.map(lambda _: new_connection_latency(url, "POST", "/generate", payload, 1), range(concurrent)))
    return time.perf_counter() - started, one, 64


def lookup_speed(data: Path) -> tuple[int, float, int]:
    """(problems, ms per lookup, prompt chars) for a prompt holding a problem and 20 steps of text."""
    problems = []
    for _, record in read_jsonl(data / "outcomes" / "math_success_rates.jsonl"):
        problems.append(Problem(record["problem"], str(record.get("answer") or "0"), 0.5))
    bank = ProblemBank(problems)
    prompts = [TEMPLATE.format(problem=p.text) + "We note that the sum equals 3 here.\n\n" * 20 for p in problems[:2000]]
    started = time.perf_counter()
    for text in prompts:
        bank.find(text)
    return len(bank), (time.perf_counter() - started) / len(prompts) * 1e3, int(statistics.mean(map(len, prompts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the shared data folder (default: $TTS_PLANNER_DATA or ../shared/data)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--count", type=int, default=200, help="requests per latency measurement")
    args = parser.parse_args()
    data = data_dir(args.data)
    problem = next(r for _, r in read_jsonl(data / "math500" / "test.jsonl") if len(r["solution"]) > 800)["problem"]

    process, url = start_server(data)
    try:
        print(f"simulator at {url}, {os.cpu_count()} CPUs, client and server on the same machine\n")
        print(f"{'request':40s} {'keep-alive ms':>14s} {'new conn. ms':>13s}   (median, {args.count} requests)")
        for name, (method, path, payload) in kinds(problem).items():
            warm = keep_alive_latency(url, method, path, payload, args.count)
            fresh = new_connection_latency(url, method, path, payload, max(20, args.count // 4))
            print(f"{name:40s} {statistics.median(warm) * 1e3:14.2f} {statistics.median(fresh) * 1e3:13.2f}")
        for name in ("one step (stop at blank line)", "whole solution"):
            rate = throughput(url, kinds(problem)[name][2], args.threads, args.seconds)
            print(f"\nthroughput, {name}, {args.threads} client threads: {rate:.0f} requests/s")
    finally:
        process.terminate()
        process.wait()

    process, url = start_server(data, "--token-delay-ms", "10")
    try:
        wall, one, tokens = overlap(url, problem, 32)
        print(f"\nwith --token-delay-ms 10: one {tokens}-token request {one:.2f} s; 32 at once {wall:.2f} s "
              f"(serial would be {32 * one:.1f} s)")
    finally:
        process.terminate()
        process.wait()

    count, ms, chars = lookup_speed(data)
    print(f"\nproblem lookup with {count} known problems: {ms:.3f} ms per prompt of {chars} characters")


if __name__ == "__main__":
    main()
