"""Shared setup of the batch-runner tests: the demo's MATH-500 sample (shipped in the package: problem, answer,
solution and the measured pass rate of Qwen2.5-Math-1.5B-Instruct) served by the stand-in server over loopback,
input files cut from it, and run settings with short waits."""

import json
import os
import subprocess
import sys
from pathlib import Path

from sglang_plugin.batch import RunSettings
from sglang_plugin.config import SolveConfig

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sglang_plugin" / "demo_data" / "math500_sample.jsonl"
RECORDS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
# Short waits so failure tests stay fast; the policy itself is the documented one.
FAST = SolveConfig(max_retries=1, backoff_initial=0.01, backoff_max=0.05, connect_timeout=2.0, read_timeout=20.0)


def write_problems(path: Path, count: int, start: int = 0, extra: list[dict] = ()) -> list[dict]:
    """An input file of `count` sample problems (problem, answer, unique_id, level) plus `extra` records."""
    records = [{k: r[k] for k in ("unique_id", "problem", "answer", "level")} for r in RECORDS[start:start + count]]
    records += list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def settings(url: str, tmp_path: Path, **changes) -> RunSettings:
    values = dict(endpoint=url, input=tmp_path / "problems.jsonl", output=tmp_path / "results.jsonl",
                  strategy="majority", size=4, config=FAST, progress=False, retry_delay=0.0, concurrency=4)
    values.update(changes)
    return RunSettings(**values)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`tts-planner ARGS` in a child process (the command ends abandoned runs with os._exit)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_args(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--endpoint", url, "--input", str(tmp_path / "problems.jsonl"), "--output",
            str(tmp_path / "results.jsonl"), "--strategy", "majority", "--size", "4", *extra]
