"""What the sglang_plugin benchmarks share: the data folder, MATH-500 problems by difficulty for the default
policy, and the stand-in server as a subprocess (so its work does not share the client's interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from planner.jsonl import read_jsonl

RATE_FIELD = "sr__Qwen-Qwen2.5-Math-1.5B-Instruct_maxlen_3000_k_50_temp_0.6"


def data_dir(arg: str | None = None) -> Path:
    if arg:
        return Path(arg)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("TTS_PLANNER_DATA", default))


def medium_problems(data: Path, count: int, low: float = 0.1, high: float = 0.5) -> list[dict]:
    """MATH-500 problems whose measured pass rate for the default policy is in [low, high), in file order,
    spread evenly over that list when fewer are asked for."""
    rows = [r for _, r in read_jsonl(data / "outcomes" / "math500_success_rates.jsonl") if low <= r[RATE_FIELD] < high]
    if count >= len(rows):
        return rows
    return [rows[int(i * len(rows) / count)] for i in range(count)]


class SimProcess:
    """`tts-planner sim-server` on MATH-500 in a child process: `with SimProcess(data, "--seed", "1") as url`."""

    def __init__(self, data: Path, *options: str) -> None:
        self.command = [sys.executable, "-c", "from sglang_plugin.cli.main import main; main()", "sim-server", "--port", "0",
                        "--problems", str(data / "outcomes" / "math500_success_rates.jsonl"),
                        "--solutions", str(data / "math500" / "test.jsonl"), "--rate-field", RATE_FIELD, *options]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "ready at " not in line:
            self.process.kill()
            raise SystemExit(f"the stand-in server did not start: {line!r}")
        return line.split("ready at ")[1].split()[0]

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
