"""How cheaply the stand-in serves long-thinking traces: starts `tts-planner sim-server --thinking --port 0`
as a subprocess (AIME 2025 problems are unknown to it: --default-rate), streams many concurrent traces
(tens of thousands of tokens each, top-20 logprobs, SGLang 0.5.23-style incremental chunks) and prints, for
each stream_interval, the tokens served per second of wall time and per second of the server's own CPU
(from /proc), so benchmark clients know how little of the machine the server takes. The clients only
split the event stream and count tokens (no JSON decoding of the logprobs), to load the server, not
themselves. (The confidence AUROC a client computes from those logprobs is checked by
tests/test_sim_thinking.py.)

    python benchmarks/sim_thinking_throughput.py [--intervals 1 16 64 256] [--streams 16] [--traces 32]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def start_server(extra: list[str]) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-c", "from planner.cli import main; main()", "sim-server", "--port", "0",
               "--thinking", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "ready at " not in line:
        process.kill()
        raise SystemExit(f"sim-server did not start: {line!r}")
    return process, line.split("ready at ")[1].split()[0]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def problems(data: Path, count: int) -> list[str]:
    path = data / "aime25" / "test.jsonl"
    if path.exists():
        texts = [json.loads(line)["problem"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    else:
        texts = [f"Problem {i}: find the number of ordered pairs with property {i}." for i in range(30)]
    return [f"<｜User｜>{texts[i % len(texts)]}<｜Assistant｜><think>\n" for i in range(count)]


def stream_tokens(url: str, body: dict) -> int:
    """Tokens received in one streamed trace."""
    host, port = url.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.request("POST", "/generate", json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
    response = conn.getresponse()
    tokens = 0
    for line in response:
        if line.startswith(b"data: {"):
            ids = line[line.index(b'"output_ids": [') + 15:]
            ids = ids[:ids.index(b"]")]
            tokens += ids.count(b",") + 1 if ids.strip() else 0
    conn.close()
    return tokens


def run_interval(url: str, pid: int, prompts: list[str], interval: int, streams: int) -> tuple[float, float, int]:
    queue = list(prompts)
    lock = threading.Lock()
    total = [0]

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                text = queue.pop()
            body = {"text": text, "sampling_params": {"max_new_tokens": 64000, "stream_interval": interval,
                                                      "temperature": 0.6, "top_p": 0.95},
                    "return_logprob": True, "top_logprobs_num": 20}
            tokens = stream_tokens(url, body)
            with lock:
                total[0] += tokens

    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pid) - cpu0
    return total[0] / wall, total[0] / max(cpu, 1e-9), total[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("TTS_PLANNER_DATA",
                                                         str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    parser.add_argument("--intervals", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--streams", type=int, default=16, help="concurrent streamed traces")
    parser.add_argument("--traces", type=int, default=32, help="traces per stream_interval")
    parser.add_argument("--default-rate", type=float, default=0.5)
    args = parser.parse_args()
    process, url = start_server(["--default-rate", str(args.default_rate), "--seed", "1"])
    try:
        prompts = problems(Path(args.data), args.traces)
        print(f"sim-server --thinking at {url}: {args.traces} AIME 2025 traces per row, {args.streams} concurrent "
              f"streams, top-20 logprobs, incremental chunks")
        print(f"{'stream_interval':>15} {'tokens':>10} {'tokens/s (wall)':>16} {'tokens/s of server CPU':>23}")
        for interval in args.intervals:
            per_wall, per_cpu, tokens = run_interval(url, process.pid, prompts, interval, args.streams)
            print(f"{interval:>15} {tokens:>10} {per_wall:>16,.0f} {per_cpu:>23,.0f}")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
