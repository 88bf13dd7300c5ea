"""--verbose and --quiet as a user runs them: child processes of `tts-planner` against the stand-in server, each
checked for what it logs on stderr and for its result on stdout."""

import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import SAMPLE, cli, run_args, write_problems

from sglang_plugin.sim.server import SimServer

STAMPED = re.compile(r"^\d\d:\d\d:\d\d [\w.]+: ")  # a --verbose line: time, module, message


@pytest.fixture(scope="module")
def server():
    with SimServer(SAMPLE, seed=3) as sim:
        yield sim


def test_run_logs_at_the_level_asked_and_always_prints_its_summary(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 3)
    normal = cli(*run_args(server.url, tmp_path, "--overwrite"))
    verbose = cli(*run_args(server.url, tmp_path, "--overwrite", "--verbose"))
    quiet = cli(*run_args(server.url, tmp_path, "--overwrite", "-q"))
    for done in (normal, verbose, quiet):
        assert done.returncode == 0, done.stderr
        assert "accuracy" in done.stdout  # the run's summary is the result, printed at every level
    assert "results: " in normal.stderr and not any(STAMPED.match(line) for line in normal.stderr.splitlines())
    stamped = [line for line in verbose.stderr.splitlines() if STAMPED.match(line)]
    assert any(f"sglang_plugin.runs.batch: {server.url} serves Qwen/Qwen2.5-Math-1.5B-Instruct" in line
               for line in stamped)
    finished = [line for line in stamped if "sglang_plugin.runs.runner: " in line and ": ok, answer " in line]
    assert len(finished) == 3  # one line per problem written
    assert quiet.stderr == ""


def test_verbose_and_quiet_together_is_a_usage_error(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 1)
    done = cli(*run_args(server.url, tmp_path, "-v", "-q"))
    assert done.returncode == 2 and "give --verbose or --quiet, not both" in done.stderr
    assert not (tmp_path / "results.jsonl").exists()


def test_quiet_still_reports_errors(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 1)
    with SimServer(SAMPLE) as gone:
        url = gone.url
    done = cli(*run_args(url, tmp_path, "--quiet"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"Error: cannot reach the policy server at {url}")


def test_verbose_logs_never_show_secrets(server, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    host = server.url.removeprefix("http://")
    done = cli(*run_args(f"http://reader:hunter22@{host}", tmp_path, "--verbose"))
    assert done.returncode == 0, done.stderr
    assert "serves Qwen" in done.stderr and "hunter22" not in done.stderr + done.stdout


def test_a_problem_run_again_after_a_failure_says_so(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 4)
    config = tmp_path / "config.json"
    config.write_text('{"transport": {"max_retries": 0}}', encoding="utf-8")  # every failed request fails its branch
    with SimServer(SAMPLE, seed=1, fail_rate=0.3) as flaky:
        done = cli(*run_args(flaky.url, tmp_path, "--config", str(config)))
    assert done.returncode == 0, done.stderr
    again = [line for line in done.stderr.splitlines() if line.endswith("; running it again in 2 s")]
    assert again and all(": attempt 1 " in line for line in again)
    assert "Traceback" not in done.stderr


def test_sim_server_logs_its_settings_under_verbose_and_nothing_under_quiet():
    for flag, expect_settings in (("--verbose", True), ("--quiet", False)):
        process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", "sim-server", "--port", "0", flag],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = process.stdout.readline()
            assert "SIMULATED SGLang server" in ready and "ready at http://127.0.0.1:" in ready
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 0
        assert ("simulator settings: SimConfig(" in err) == expect_settings
        assert ("stopped" in err) == expect_settings
        if not expect_settings:
            assert err == ""


def test_train_under_quiet_prints_only_its_error(tmp_path):
    data = tmp_path / "few.jsonl"
    data.write_text("".join(f'{{"problem": "p{i}", "rate": 0.5}}\n' for i in range(5)), encoding="utf-8")
    started = time.perf_counter()
    done = cli("train", str(data), "--label", "rate", "-o", str(tmp_path / "m.npz"), "--quiet")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: ") and "only 5 distinct problems" in done.stderr
    assert time.perf_counter() - started < 60
