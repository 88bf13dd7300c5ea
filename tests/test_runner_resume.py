"""A small version of benchmarks/resume_under_kill.py: `tts-planner run` as a child process, killed with SIGKILL
and stopped with SIGINT while it writes, then resumed; every problem ends up in the output exactly once and
nothing written before a kill changes."""

import signal
import subprocess
import sys
import time

from conftest import ROOT, SAMPLE, lines, run_args, write_problems

from sglang_plugin.runs.files import audit
from sglang_plugin.sim.server import SimServer


def _count(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _start(url, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", *run_args(url, tmp_path, "--concurrency", "4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _stop_at(process: subprocess.Popen, results, count: int, sig: int) -> str:
    while _count(results) < count and process.poll() is None:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before the kill point"
    process.send_signal(sig)
    return process.communicate(timeout=120)[1]


def test_killed_and_interrupted_runs_resume_to_every_problem_exactly_once(tmp_path):
    problems = write_problems(tmp_path / "problems.jsonl", 60)
    results, outcomes = tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl"
    with SimServer(SAMPLE, seed=5, token_delay_ms=0.1) as server:
        process = _start(server.url, tmp_path)
        _stop_at(process, results, 8, signal.SIGKILL)
        assert process.returncode == -signal.SIGKILL
        after_kill = results.read_bytes()
        process = _start(server.url, tmp_path)
        err = _stop_at(process, results, _count(results) + 10, signal.SIGINT)
        assert process.returncode == 130
        assert "interrupted: " in err and "nothing partial was written" in err
        assert f"resume with: tts-planner {' '.join(run_args(server.url, tmp_path, '--concurrency', '4'))}" in err
        after_interrupt = results.read_bytes()
        assert after_interrupt.startswith(after_kill[:after_kill.rfind(b"\n") + 1])
        process = _start(server.url, tmp_path)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert results.read_bytes().startswith(after_interrupt)
    assert audit(results, outcomes, [p["unique_id"] for p in problems]) == []
    assert len(lines(outcomes)) == sum(line["branches"] for line in lines(results))
    resumed = 60 - after_interrupt.count(b"\n")
    assert f"problems      60 written (0 failed, 0 partial); {resumed} in this session" in out
