"""The runner's documented problem-level policy, on real failures of the stand-in server: a server that is down
or dies is one clear error with nothing partial written; a server failing every request stops the run after
a streak; a problem the server refuses is retried once, then written as failed; resuming repairs a torn
last line and drops outcome records of problems that never got their result line."""

import json
import socket
import threading
import time

import pytest
from conftest import SAMPLE, cli, lines, run_args, settings, write_problems

from planner.errors import InputError
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.runs.runner import ServerDown, TooManyFailures
from sglang_plugin.sim.server import SimServer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_after(server: SimServer, results, count: int) -> None:
    """Stop the server once `count` results are written."""
    while not results.exists() or len(results.read_bytes().splitlines()) < count:
        time.sleep(0.02)
    server.stop()


def test_a_server_that_is_down_is_one_clear_error(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 3)
    url = f"http://127.0.0.1:{_closed_port()}"
    done = cli(*run_args(url, tmp_path))
    assert done.returncode == 1
    assert f"Error: cannot reach the policy server at {url}" in done.stderr and "Is it running?" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results.jsonl").exists() or lines(tmp_path / "results.jsonl") == []


def test_a_server_that_dies_mid_run_stops_it_and_resuming_finishes(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 30)
    slow = SimServer(SAMPLE, seed=5, token_delay_ms=0.2).start()
    killer = threading.Thread(target=_stop_after, args=(slow, tmp_path / "results.jsonl", 5))
    killer.start()
    try:
        with pytest.raises(ServerDown, match=f"the policy server at {slow.url} stopped answering") as error:
            run_batch(settings(slow.url, tmp_path, concurrency=3, server_wait=0.0))
    finally:
        killer.join()
    written = lines(tmp_path / "results.jsonl")
    assert 0 < len(written) < 30 and all(line["status"] == "ok" for line in written)
    assert f"{len(written)} problem(s) are in" in str(error.value)
    with SimServer(SAMPLE, seed=5) as again:  # a new port: the endpoint is not part of a run's identity
        report = run_batch(settings(again.url, tmp_path))
    results = lines(tmp_path / "results.jsonl")
    assert report.session.written == 30 - len(written)
    assert results[:len(written)] == written
    assert sorted(r["problem_id"] for r in results) == sorted(json.loads(x)["unique_id"]
                                                              for x in (tmp_path / "problems.jsonl").open())


def test_a_server_failing_every_request_stops_after_a_streak_writing_nothing(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 12)
    with SimServer(SAMPLE, seed=5, fail_rate=1.0) as broken:
        with pytest.raises(TooManyFailures, match="3 problems failed in a row although the servers answer; the last: "
                                                  "attempt 1 failed: .*HTTP 500"):
            run_batch(settings(broken.url, tmp_path, max_failures_in_a_row=3, concurrency=2))
    assert lines(tmp_path / "results.jsonl") == []


def test_a_problem_the_server_refuses_is_retried_once_then_written_as_failed(tmp_path):
    huge = {"unique_id": "too-long", "problem": "Compute " + "x + " * 3000 + "1.", "answer": "1"}
    write_problems(tmp_path / "problems.jsonl", 3, extra=[huge])
    with SimServer(SAMPLE, seed=5) as server:
        report = run_batch(settings(server.url, tmp_path, concurrency=1))
        results = {r["problem_id"]: r for r in lines(tmp_path / "results.jsonl")}
        failed = results["too-long"]
        assert failed["status"] == "failed" and failed["answer"] is None and failed["correct"] is False
        assert [e.split(":")[0] for e in failed["errors"]] == ["attempt 1 failed", "attempt 2 failed"]
        assert "longer than the model's context length" in failed["errors"][1]
        assert report.summary.total.failed == 1 and report.session.failed == 1
        assert all(r["status"] == "ok" for k, r in results.items() if k != "too-long")
        assert "too-long" not in {r["problem_id"] for r in lines(tmp_path / "results.jsonl.outcomes.jsonl")}
        again = run_batch(settings(server.url, tmp_path, retry_failed=True))
    assert again.session.written == 1 and "will run the 1 failed and 0 partial problem(s) again" in again.notes
    assert sorted(r["problem_id"] for r in lines(tmp_path / "results.jsonl")) == sorted(results)


def test_a_run_where_every_problem_failed_exits_non_zero(tmp_path):
    huge = {"unique_id": "too-long", "problem": "Compute " + "x + " * 3000 + "1.", "answer": "1"}
    write_problems(tmp_path / "problems.jsonl", 0, extra=[huge])
    with SimServer(SAMPLE, seed=5) as server:
        done = cli(*run_args(server.url, tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Error: every problem failed (1)" in done.stderr and "--retry-failed" in done.stderr
    assert [r["status"] for r in lines(tmp_path / "results.jsonl")] == ["failed"]


def test_resuming_cuts_a_torn_line_and_orphan_outcomes(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 8)
    results_path, outcomes_path = tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl"
    with SimServer(SAMPLE, seed=5) as server:
        run_batch(settings(server.url, tmp_path))
        whole = results_path.read_bytes().splitlines(keepends=True)
        kept_ids = {json.loads(line)["problem_id"] for line in whole[:5]}
        orphan = json.loads(whole[5])["problem_id"]  # its outcomes were written, its result line was torn
        records = outcomes_path.read_bytes().splitlines(keepends=True)
        results_path.write_bytes(b"".join(whole[:5]) + whole[5][:40])
        outcomes_path.write_bytes(b"".join(r for r in records if json.loads(r)["problem_id"] in kept_ids | {orphan})
                                  + b'{"problem_id": "torn')
        report = run_batch(settings(server.url, tmp_path))
    assert report.session.written == 3
    assert any("cut a torn last line (40 bytes)" in note for note in report.notes)
    assert any("dropped 4 outcome record(s) of unfinished problems and a torn last line" in note
               for note in report.notes)
    results = lines(results_path)
    assert results_path.read_bytes().startswith(b"".join(whole[:5]))
    assert sorted(r["problem_id"] for r in results) == sorted(json.loads(line)["problem_id"] for line in whole)
    pairs = [(r["problem_id"], r["branch"]) for r in lines(outcomes_path)]
    assert len(pairs) == len(set(pairs)) == 4 * 8


def test_a_damaged_line_before_the_end_is_not_repaired_silently(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 3)
    with SimServer(SAMPLE, seed=5) as server:
        run_batch(settings(server.url, tmp_path))
        path = tmp_path / "results.jsonl"
        first, *rest = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(first + b"garbage\n" + b"".join(rest))
        with pytest.raises(InputError, match=f"{path}:2: unreadable line"):
            run_batch(settings(server.url, tmp_path))
