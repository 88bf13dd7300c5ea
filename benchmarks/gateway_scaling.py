"""Scale-out through the SGLang Model Gateway (`smg`): problems per second of `tts-planner run` with 1, 2 and 4
stand-in workers behind the gateway, the prefix-cache hit share under the cache_aware and round_robin policies,
and a run during which one of two workers is killed.

Workers are `tts-planner sim-server` processes (MATH-500's measured success rates) with a per-token delay. The
stand-in runs any number of requests at once on their own clocks, which no GPU does, so each worker is given a
capacity here: a forwarder in this process lets at most `--slots` generation requests reach it at a time (as
SGLang's --max-running-requests does) and queues the rest. With the run keeping more requests in flight than
one worker's slots (`--concurrency` problems x 4 samples), the workers, not the client, are the limit, and
adding workers should add throughput until the client is. Every run is the command a user runs (a child
process): majority@4; the problems per second is the run's own (its summary: start-up excluded).

    python benchmarks/gateway_scaling.py [--data DIR] [--problems 120] [--slots 16] [--token-delay-ms 2]
                                         [--concurrency 48]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from faults import math500
from gateway import Gateway, Worker, smg_binary
from plugin_support import data_dir

from sglang_plugin.runs.files import audit

ROOT = Path(__file__).resolve().parents[1]


class Capacity:
    """A stand-in worker (its own process) behind a forwarder that runs at most `slots` of its /generate requests
    at once; `url` is the forwarder's. `kill()` takes both down, as a dead GPU server would go."""

    def __init__(self, slots: int, *options: str) -> None:
        self.worker = Worker(*options)
        self.loop = asyncio.new_event_loop()
        self.url = asyncio.run_coroutine_threadsafe(self._start(slots), self._running()).result(timeout=30)

    def _running(self) -> asyncio.AbstractEventLoop:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        return self.loop

    async def _start(self, slots: int) -> str:
        gate = asyncio.Semaphore(slots)
        self.client = client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            guard = gate if request.path == "/generate" else contextlib.nullcontext()
            async with guard:
                try:
                    async with client.request(request.method, self.worker.url + request.path_qs, data=body,
                                              headers={"Content-Type": request.headers.get("Content-Type",
                                                                                           "application/json")}) as r:
                        data = await r.read()
                        return web.Response(status=r.status, body=data,
                                            headers={"Content-Type": r.headers.get("Content-Type", "text/plain")})
                except aiohttp.ClientError:  # the worker died under it
                    return web.Response(status=502, text="the worker is gone")

        app = web.Application(client_max_size=1 << 26)
        app.router.add_route("*", "/{path:.*}", forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    def kill(self) -> None:
        self.worker.kill()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.client.close()


def run(url: str, folder: Path, problems: list[dict], concurrency: int, kill: Capacity | None = None) -> dict:
    """`tts-planner run` majority@4 through `url`; the summary's figures (and the audit of its files)."""
    folder.mkdir(parents=True)
    source, output = folder / "problems.jsonl", folder / "results.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", "run", "--endpoint", url, "--input",
                                str(source), "-o", str(output), "--strategy", "majority", "--size", "4",
                                "--concurrency", str(concurrency)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    killed_at = None
    if kill is not None:
        while (output.read_bytes().count(b"\n") if output.exists() else 0) < len(problems) // 4:
            time.sleep(0.01)
        killed_at = output.read_bytes().count(b"\n")
        kill.kill()
    out, err = process.communicate(timeout=1800)
    if process.returncode != 0:
        raise SystemExit(f"the run failed (exit {process.returncode}): {err[-800:]}")
    rate = float(re.search(r"\(([\d.]+) problems/s\)", out).group(1))
    share = float(re.search(r"prefix cache\s+([\d.]+)%", out).group(1))
    statuses = re.search(r"written \((\d+) failed, (\d+) partial\)", out)
    wrong = audit(output, folder / "results.jsonl.outcomes.jsonl", [p["unique_id"] for p in problems])
    return {"rate": rate, "cache": share, "failed": int(statuses.group(1)), "partial": int(statuses.group(2)),
            "wrong": wrong, "killed_at": killed_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--problems", type=int, default=120)
    parser.add_argument("--slots", type=int, default=16, help="generation requests one worker runs at once")
    parser.add_argument("--token-delay-ms", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=48, help="problems the run solves at once")
    args = parser.parse_args()
    if smg_binary() is None:
        raise SystemExit("smg (the SGLang Model Gateway) is not installed: pip install smg")
    problems, options = math500(data_dir(args.data), args.problems, args.token_delay_ms)
    work = Path(tempfile.mkdtemp(prefix="gateway-scaling-"))
    print(f"{len(problems)} problems, majority@4, run concurrency {args.concurrency} ({4 * args.concurrency} samples "
          f"in flight), {args.slots} slots per worker, token delay {args.token_delay_ms} ms; files in {work}")
    print(f"{'workers':>7}  {'policy':<12} {'problems/s':>10} {'x 1 worker':>10} {'cache hits':>10} "
          f"{'failed':>6} {'partial':>7}  lost or duplicated")
    base = None
    bad = []
    for count, policy in ((1, "cache_aware"), (2, "cache_aware"), (4, "cache_aware"), (2, "round_robin"),
                          (4, "round_robin")):
        workers = [Capacity(args.slots, *options, "--seed", str(i + 1)) for i in range(count)]
        front = Gateway([w.url for w in workers], policy)
        try:
            figures = run(front.url, work / f"{count}-{policy}", problems, args.concurrency)
        finally:
            front.close()
            for worker in workers:
                worker.kill()
        base = base or figures["rate"]
        bad += figures["wrong"]
        print(f"{count:>7}  {policy:<12} {figures['rate']:>10.2f} {figures['rate'] / base:>10.2f} "
              f"{figures['cache']:>9.1f}% {figures['failed']:>6} {figures['partial']:>7}  "
              f"{len(figures['wrong']) or 'none'}", flush=True)
    workers = [Capacity(args.slots, *options, "--seed", str(i + 1)) for i in range(2)]
    front = Gateway([w.url for w in workers], "cache_aware")
    try:
        figures = run(front.url, work / "killed", problems, args.concurrency, kill=workers[1])
    finally:
        front.close()
        for worker in workers:
            worker.kill()
    bad += figures["wrong"]
    print(f"2 workers, cache_aware, one killed after {figures['killed_at']} of {len(problems)} problems: "
          f"{figures['rate']:.2f} problems/s, cache hits {figures['cache']:.1f}%, {figures['failed']} failed, "
          f"{figures['partial']} partial, lost or duplicated: {len(figures['wrong']) or 'none'}")
    if bad:
        print("FAILED:\n  " + "\n  ".join(bad[:20]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
