"""What the sglang frontend machinery costs in wall time: the `majority` program (forks, one stream
executor thread per branch, the retrying Endpoint, answer grouping) against a plain HTTP client that
sends the very same requests at the same concurrency, both against the stand-in server with a fixed
simulated time per generated token.

The program runs first and its requests are recorded per branch (the fork warm-up, then each branch's
steps in order). A fresh server with the same seed then gets the plain replay: the warm-up, then one
thread per branch sending that branch's recorded requests one after another over a keep-alive
http.client connection, one problem at a time like the program. Same texts and same seed mean the same
generated tokens, so the simulated decode time is the same and the difference is the client's. The
program's time includes its answer grouping; the math-verify worker is started once before timing (a
per-process cost, not a per-request one), and one untimed program run takes the frontend's other first-use
costs. Prints both times and the ratio of medians (the bar: at most 1.10).

    python benchmarks/frontend_overhead.py [--problems 6] [--budget 8] [--token-delay-ms 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit

from plugin_support import SimProcess, data_dir, medium_problems

from planner.grading import shared_grader
from sglang_plugin import Endpoint, solve

BAR = 1.10


class RecordingEndpoint(Endpoint):
    """Records each request's payload under the stream executor (branch) that sent it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[int, dict]] = []
        self._ids: dict[int, int] = {}
        self._record_lock = threading.Lock()

    def post(self, path, payload, executor=None):
        with self._record_lock:
            branch = self._ids.setdefault(id(executor), len(self._ids))
            self.sent.append((branch, payload))
        return super().post(path, payload, executor)


def run_program(url: str, problems: list[dict], budget: int) -> tuple[float, list]:
    endpoint = RecordingEndpoint(url)
    recorded = []
    started = time.perf_counter()
    for problem in problems:
        endpoint.sent, endpoint._ids = [], {}
        solve(problem["problem"], "majority", budget, endpoint)
        recorded.append(list(endpoint.sent))
    return time.perf_counter() - started, recorded


def replay(url: str, recorded: list) -> float:
    address = urlsplit(url)

    def send(connection: http.client.HTTPConnection, payload: dict) -> None:
        connection.request("POST", "/generate", json.dumps(payload), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"replay got HTTP {response.status}: {body[:200]!r}")

    def branch(payloads: list[dict]) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=600)
        for payload in payloads:
            send(connection, payload)
        connection.close()

    started = time.perf_counter()
    for requests in recorded:
        by_branch: dict[int, list[dict]] = {}
        for index, payload in requests:
            by_branch.setdefault(index, []).append(payload)
        root, *forks = by_branch.values()  # the root stream sends the warm-up before any fork starts
        branch(root)
        threads = [threading.Thread(target=branch, args=(payloads,)) for payloads in forks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--token-delay-ms", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = data_dir(args.data)
    problems = medium_problems(data, args.problems)
    options = ("--seed", str(args.seed), "--token-delay-ms", str(args.token_delay_ms))
    shared_grader().equivalent("\\frac{1}{2}", "0.5")  # start the math-verify worker (once per process)
    with SimProcess(data, *options) as url:  # first-use costs of the frontend, once per process, untimed
        run_program(url, problems[:1], args.budget)
    program_times, plain_times = [], []
    for _ in range(args.repeats):
        with SimProcess(data, *options) as url:
            elapsed, recorded = run_program(url, problems, args.budget)
            program_times.append(elapsed)
        with SimProcess(data, *options) as url:
            plain_times.append(replay(url, recorded))
    requests = sum(len(r) for r in recorded)
    program, plain = statistics.median(program_times), statistics.median(plain_times)
    ratio = program / plain
    print(f"\nmajority, budget {args.budget}, {len(problems)} problems ({requests} requests), "
          f"{args.token_delay_ms:g} ms per generated token, median of {args.repeats}")
    print(f"  sglang program : {program:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in program_times)})")
    print(f"  plain client   : {plain:7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in plain_times)})")
    print(f"  ratio          : {ratio:7.3f}   {'PASS' if ratio <= BAR else 'FAIL'} (bar {BAR:.2f})")


if __name__ == "__main__":
    main()
