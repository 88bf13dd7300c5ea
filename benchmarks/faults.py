"""`tts-planner run` under every fault class the reliability review probed, several runs each, on MATH-500
problems: does every run finish (or stop resumably), and is any problem lost or written twice?

Each run is the command as a user runs it (a child process) against stand-in servers in their own processes
(`tts-planner sim-server`, MATH-500's measured success rates): majority@4, `--concurrency 8`. A run that exits
non-zero (a resumable stop) is resumed by running the same command again, and counts as needing intervention;
so does a run whose runner the benchmark kills. Fault classes:

- HTTP 500s on 5% and 20% of generation requests (`--fail-rate`);
- dropped connections on 5% and 20% (`--drop-rate`; the class that used to hang runs);
- 3 s stalls on 5% (`--stall-rate`, `--stall-seconds 3`);
- the server killed (SIGKILL) a quarter of the way in and started again on its port 4 s or 20 s later;
- the runner killed (SIGKILL) three times at random points, resumed each time;
- behind the SGLang Model Gateway (`smg`, two workers): one worker killed a quarter of the way in, alternately the
  one the gateway asks for /get_model_info and the other.

Prints per class: runs, runs finished without intervention, resumes, problems lost, problems duplicated (result
lines and outcome records, by `sglang_plugin.runs.files.audit`), problems written partial or failed, and the
median wall time against the clean runs'. Exits non-zero if any run hung, lost or duplicated a problem.

    python benchmarks/faults.py [--data DIR] [--problems 200] [--runs 3] [--classes clean,500,...] [--token-delay-ms 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway import Gateway, Worker, free_port, smg_binary
from plugin_support import RATE_FIELD, data_dir

from planner.jsonl import read_jsonl
from sglang_plugin.runs.files import audit

ROOT = Path(__file__).resolve().parents[1]
HANG = 900.0  # seconds one command may take before the benchmark calls it hung


@dataclass(frozen=True)
class FaultClass:
    name: str
    server: tuple[str, ...] = ()  # sim-server fault options
    outage: float | None = None  # kill the server a quarter in, back after this many seconds
    runner_kills: int = 0
    gateway: bool = False


CLASSES = [
    FaultClass("clean"),
    FaultClass("HTTP 500 on 5%", ("--fail-rate", "0.05")),
    FaultClass("HTTP 500 on 20%", ("--fail-rate", "0.2")),
    FaultClass("dropped connections 5%", ("--drop-rate", "0.05")),
    FaultClass("dropped connections 20%", ("--drop-rate", "0.2")),
    FaultClass("3 s stalls on 5%", ("--stall-rate", "0.05", "--stall-seconds", "3")),
    FaultClass("server dead for 4 s", outage=4.0),
    FaultClass("server dead for 20 s", outage=20.0),
    FaultClass("runner kill -9 x3", runner_kills=3),
    FaultClass("gateway worker killed", gateway=True),
]


@dataclass
class Outcome:
    finished_alone: bool = False
    resumes: int = 0
    hung: bool = False
    lost: int = 0
    duplicated: int = 0
    partial: int = 0
    failed: int = 0
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)


def math500(data: Path, count: int, token_delay_ms: float) -> tuple[list[dict], list[str]]:
    """The first `count` MATH-500 problems (id, text, reference), and the sim-server options that serve them at
    the default policy's measured success rates with a per-token delay."""
    problems = [{k: r[k] for k in ("unique_id", "problem", "answer")}
                for _, r in read_jsonl(data / "math500" / "test.jsonl")][:count]
    options = ["--problems", str(data / "outcomes" / "math500_success_rates.jsonl"), "--solutions",
               str(data / "math500" / "test.jsonl"), "--rate-field", RATE_FIELD,
               "--token-delay-ms", str(token_delay_ms)]
    return problems, options


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(path: Path, count: int, alive: Callable[[], bool]) -> bool:
    """Wait until `path` has `count` lines; False if the run ended first."""
    while count_lines(path) < count:
        if not alive():
            return False
        time.sleep(0.01)
    return True


class Servers:
    """The stand-in servers of one run: one worker (restartable on its port), or two behind the gateway."""

    def __init__(self, fault: FaultClass, options: list[str], seed: int) -> None:
        self.options, self.seed = options, seed
        self.port = free_port()
        self.gateway: Gateway | None = None
        if fault.gateway:
            self.workers = [Worker(*options, "--seed", str(seed + i)) for i in (1, 2)]
            self.gateway = Gateway([w.url for w in self.workers], "cache_aware")
            self.url = self.gateway.url
        else:
            self.workers = [Worker(*options, *fault.server, "--seed", str(seed), port=self.port)]
            self.url = self.workers[0].url

    def restart(self, after: float) -> None:
        self.workers[0].kill()
        time.sleep(after)
        self.workers.append(Worker(*self.options, "--seed", str(self.seed), port=self.port))

    def model_info_worker(self) -> Worker:
        """The worker the gateway asks for /get_model_info (the stand-in reports its seed)."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/get_model_info", timeout=10) as response:
            seed = json.loads(response.read())["simulator"]["seed"]
        return self.workers[seed - self.seed - 1]

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.close()
        for worker in self.workers:
            worker.kill()


def run_once(fault: FaultClass, index: int, problems: list[dict], options: list[str], concurrency: int,
             work: Path) -> Outcome:
    folder = work / f"{fault.name.replace(' ', '_').replace('%', 'pc')}-{index}"
    folder.mkdir(parents=True)
    source, output = folder / "problems.jsonl", folder / "results.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    rng = random.Random(index)
    servers = Servers(fault, options, seed=10 * index)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "sglang_plugin.cli", "run", "--endpoint", servers.url, "--input", str(source),
               "--output", str(output), "--strategy", "majority", "--size", "4", "--concurrency", str(concurrency)]
    outcome = Outcome()
    quarter = len(problems) // 4
    kills = sorted(rng.sample(range(5, len(problems) - 5), fault.runner_kills))
    started = time.monotonic()
    try:
        for attempt in range(8):
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       env=env)
            injector = None
            if attempt == 0 and (fault.outage is not None or fault.gateway):
                injector = threading.Thread(target=_inject, args=(fault, servers, output, quarter, process, index),
                                            daemon=True)
                injector.start()
            if attempt < len(kills) and wait_for_lines(output, kills[attempt], lambda p=process: p.poll() is None):
                time.sleep(rng.uniform(0.0, 0.3))
                process.send_signal(signal.SIGKILL)
            try:
                _, err = process.communicate(timeout=HANG)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                outcome.hung = True
                outcome.notes.append(f"attempt {attempt + 1} hung for {HANG:.0f} s")
                break
            if injector is not None:
                injector.join(timeout=60)
            if process.returncode == 0:
                outcome.finished_alone = attempt == 0
                break
            outcome.resumes += 1
            if process.returncode != -signal.SIGKILL:
                outcome.notes.append(f"attempt {attempt + 1} stopped (exit {process.returncode}): "
                                     f"{err.strip().splitlines()[-2 if 'resume with' in err else -1][:160]}")
        else:
            outcome.notes.append("not finished after 8 attempts")
    finally:
        outcome.wall = time.monotonic() - started
        servers.close()
    wrong = audit(output, folder / "results.jsonl.outcomes.jsonl", [p["unique_id"] for p in problems])
    outcome.lost = sum("is missing" in w for w in wrong)
    outcome.duplicated = sum("appears" in w for w in wrong)
    outcome.notes += [w for w in wrong if "is missing" not in w and "appears" not in w][:3]
    for line in output.read_text(encoding="utf-8").splitlines() if output.exists() else []:
        status = json.loads(line)["status"]
        outcome.partial += status == "partial"
        outcome.failed += status == "failed"
    return outcome


def _inject(fault: FaultClass, servers: Servers, output: Path, at: int, process: subprocess.Popen,
            index: int) -> None:
    """The server-side fault of a run, a quarter of the way in (behind the gateway, runs alternate between
    killing the worker that answers /get_model_info and the other)."""
    if not wait_for_lines(output, at, lambda: process.poll() is None):
        return
    if fault.outage is not None:
        servers.restart(fault.outage)
    elif fault.gateway:
        info = servers.model_info_worker()
        victim = info if index % 2 == 0 else next(w for w in servers.workers if w is not info)
        victim.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--token-delay-ms", type=float, default=1.0)
    parser.add_argument("--classes", default=None, help="comma-separated parts of class names (default: all)")
    args = parser.parse_args()
    problems, options = math500(data_dir(args.data), args.problems, args.token_delay_ms)
    chosen = [c for c in CLASSES if args.classes is None or any(part in c.name for part in args.classes.split(","))]
    if any(c.gateway for c in chosen) and smg_binary() is None:
        print("smg (the SGLang Model Gateway) is not installed: the gateway class is left out")
        chosen = [c for c in chosen if not c.gateway]
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    print(f"{len(problems)} problems, majority@4, concurrency {args.concurrency}, token delay {args.token_delay_ms} "
          f"ms, {args.runs} runs per class; files in {work}")
    header = (f"{'fault class':<30} {'runs':>4} {'alone':>5} {'resumes':>7} {'lost':>4} {'dup':>4} {'partial':>7} "
              f"{'failed':>6} {'wall s':>7} {'x clean':>7}")
    print(header)
    clean_wall = None
    bad = []
    for fault in chosen:
        outcomes = [run_once(fault, i, problems, options, args.concurrency, work) for i in range(args.runs)]
        wall = statistics.median(o.wall for o in outcomes)
        if fault.name == "clean":
            clean_wall = wall
        ratio = f"{wall / clean_wall:.2f}" if clean_wall else "-"
        print(f"{fault.name:<30} {len(outcomes):>4} {sum(o.finished_alone for o in outcomes):>5} "
              f"{sum(o.resumes for o in outcomes):>7} {sum(o.lost for o in outcomes):>4} "
              f"{sum(o.duplicated for o in outcomes):>4} {sum(o.partial for o in outcomes):>7} "
              f"{sum(o.failed for o in outcomes):>6} {wall:>7.1f} {ratio:>7}", flush=True)
        for i, o in enumerate(outcomes):
            for note in o.notes:
                print(f"    run {i + 1}: {note}")
            if o.hung or o.lost or o.duplicated:
                bad.append(f"{fault.name} run {i + 1}")
    if bad:
        print("FAILED: " + ", ".join(bad))
        raise SystemExit(1)
    print("OK: every run finished or stopped resumably and was resumed; no problem lost or duplicated")


if __name__ == "__main__":
    main()
