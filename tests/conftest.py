"""What the tests share: data samples, the stand-in server's problems, transport settings with short waits, run
settings, result files written as `tts-planner run` writes them, and readers for what the commands write."""

import json
import os
import random
import struct
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from planner.cost import Cost
from planner.difficulty import difficulty_bin
from planner.jsonl import read_jsonl
from planner.records import (
    AdaptiveRound,
    AdaptiveTrace,
    PlanRecord,
    PosteriorSummary,
    Prediction,
    ResultLine,
    RoundPlan,
)
from sglang_plugin.sim.problems import Problem
from sglang_plugin.transport.http import TransportConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the gateway and worker helpers the benchmarks use
from benchmarks.gateway import Gateway, Worker, smg_binary

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Short waits so fault tests stay fast; the policy itself is the documented one.
FAST = TransportConfig(max_retries=3, backoff_initial=0.01, backoff_max=0.05, connect_timeout=2.0, read_timeout=20.0)
ONE_RETRY = replace(FAST, max_retries=1)

# Four MATH-500 problems of medium difficulty: problem, answer, reference solution and the measured pass rate of
# Qwen2.5-Math-1.5B-Instruct.
PROBLEMS = [Problem(r["problem"], r["answer"], r["pass_rate"], r["solution"])
            for _, r in read_jsonl(DATA / "programs_problems.jsonl")]
# The demo's MATH-500 sample (shipped in the package): 20 problems per level, with their measured pass rates.
SAMPLE = ROOT / "sglang_plugin" / "demo_data" / "math500_sample.jsonl"
RECORDS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def read_sample(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def train_sample() -> list[dict]:
    return read_sample("math_train_sample.jsonl")


@pytest.fixture(scope="session")
def test_sample() -> list[dict]:
    return read_sample("math_test_sample.jsonl")


@pytest.fixture(scope="session")
def small_model(train_sample):
    """A real predictor fitted on 300 MATH train problems, small enough to train in seconds."""
    from planner.prediction.predictor import DifficultyPredictor

    texts = [r["problem"] for r in train_sample]
    rates = np.array([r["pass_rate"] for r in train_sample])
    return DifficultyPredictor(tree_rounds=40, stack_rounds=40, min_df=3).fit(texts, rates)


# -- the stand-in server ----------------------------------------------------------------------------------------

def sim_stats(server) -> dict:
    """The stand-in server's own counters (requests, tokens) as it reports them over HTTP."""
    with urllib.request.urlopen(server.url + "/get_server_info", timeout=5) as response:
        return json.loads(response.read())["internal_states"][0]["sim_stats"]


def comparable(result) -> dict:
    """A result without its wall-clock time, for determinism checks."""
    data = result.to_dict()
    data["cost"].pop("wall_time")
    return data


# -- the SGLang Model Gateway ------------------------------------------------------------------------------------

needs_smg = pytest.mark.skipif(smg_binary() is None, reason="the SGLang Model Gateway binary `smg` is not installed "
                                                           "(pip install smg; it is in the dev extra)")


@pytest.fixture
def gateway():
    """Start the gateway in front of stand-in workers (child processes, killable): call it with the number of
    workers, the routing policy, the workers' sim-server options and smg's own; all are stopped afterwards."""
    started: list = []

    def start(workers: int = 2, policy: str = "cache_aware", options: tuple[str, ...] = (),
              smg: tuple[str, ...] = ()) -> tuple[Gateway, list[Worker]]:
        pool = []
        for seed in range(workers):
            pool.append(Worker("--problems", str(SAMPLE), "--seed", str(seed + 1), *options))
            started.append(pool[-1])
        front = Gateway([w.url for w in pool], policy, *smg)
        started.append(front)
        return front, pool

    yield start
    for process in reversed(started):
        process.close() if isinstance(process, Gateway) else process.kill()


# -- batch runs -------------------------------------------------------------------------------------------------

def write_problems(path: Path, count: int, start: int = 0, extra: list[dict] = ()) -> list[dict]:
    """An input file of `count` sample problems (problem, answer, unique_id, level) plus `extra` records."""
    records = [{k: r[k] for k in ("unique_id", "problem", "answer", "level")} for r in RECORDS[start:start + count]]
    records += list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def settings(url: str, tmp_path: Path, **changes):
    """Run settings for a forced majority@4 run with short waits."""
    from sglang_plugin.runs.settings import RunSettings

    values = dict(endpoint=url, input=tmp_path / "problems.jsonl", output=tmp_path / "results.jsonl",
                  strategy="majority", size=4, transport=ONE_RETRY, progress=False, retry_delay=0.0, concurrency=4)
    values.update(changes)
    return RunSettings(**values)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cli(*args: str, timeout: float = 120.0, env: dict | None = None) -> subprocess.CompletedProcess:
    """`tts-planner ARGS` in a child process (a run that stops early ends with os._exit)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "sglang_plugin.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_args(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--endpoint", url, "--input", str(tmp_path / "problems.jsonl"), "--output",
            str(tmp_path / "results.jsonl"), "--strategy", "majority", "--size", "4", *extra]


# -- result files for the report --------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_problems(count: int, seed: int = 0) -> list[tuple[str, float]]:
    """(problem id, predicted pass@1), spread over every bin."""
    rng = random.Random(seed)
    return [(f"test/algebra/{i}.json", round(rng.random() ** 1.5, 4)) for i in range(count)]


def result_line(problem_id: str, p: float, strategy: str, size: int, correct: bool | None, tokens: int, *,
                adaptive: bool = False, budget: int = 8, status: str = "ok") -> dict:
    """A result line as `tts-planner run` writes it."""
    trace = None
    if adaptive:
        searched = strategy in ("beam_search", "dvts", "particle_filter")
        posterior = PosteriorSummary(2, p, difficulty_bin(p), 0.0, (0.9,), 0.1)
        plan = RoundPlan(strategy, size, 0, 0.9, float(tokens))
        trace = AdaptiveTrace(strategy, budget, 2, 2, "weighted_vote", tokens // 2, 2 * budget, None, 0.99, p, 0.71, p,
                              difficulty_bin(p), 0.9, "searched" if searched else "enough",
                              (AdaptiveRound(2, tokens, posterior, 0.9, plan, "enough"),),
                              strategy if searched else None)
    cost = Cost(120 * size, tokens - 120, 120 * (size - 1), 0, size + 1, 0.5)
    line = ResultLine(problem_id, "7" if correct else "8", status, cost, strategy, correct,
                      PlanRecord(strategy, size, round(min(1.0, p + 0.05), 4), float(tokens), None, trace),
                      Prediction(p, difficulty_bin(p), "Qwen/Qwen2.5-Math-1.5B-Instruct", "qwen2.5-math-1.5b-instruct.npz"),
                      () if status == "ok" else ("EndpointError: 500",), size, 0,
                      record={"problem": f"Problem {problem_id}", "reference_answer": "7"})
    return line.to_dict()


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def uniform_run(path: Path, items: list[tuple[str, float]], strategy: str, size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = [result_line(pid, p, strategy, size, rng.random() < min(1.0, p * 1.2), 150 + 600 * size + rng.randrange(50))
               for pid, p in items]
    write_lines(path, records)
    return records


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def markdown_tables(text: str) -> list[list[dict]]:
    """Every table of a markdown document as rows keyed by header."""
    tables, rows_of = [], text.splitlines()
    i = 0
    while i < len(rows_of):
        if rows_of[i].startswith("| ") and i + 1 < len(rows_of) and rows_of[i + 1].startswith("|---"):
            header = [c.strip() for c in rows_of[i].strip("|").split("|")]
            rows = []
            i += 2
            while i < len(rows_of) and rows_of[i].startswith("| "):
                rows.append(dict(zip(header, (c.strip() for c in rows_of[i].strip("|").split("|")))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables
