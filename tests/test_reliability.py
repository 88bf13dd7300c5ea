"""The run under faults of the stand-in server, over real loopback HTTP: a stalled server trips the watchdog and
the run stops resumably; a server that dies and comes back within --server-wait is ridden out without anyone
resuming; problems answered from fewer samples than planned are written "partial", counted in the summary and
redone by --retry-failed; answers past Python's 4,300-digit limit and answers that are slow to compare neither
end a run nor hold a problem past its bound; Ctrl-C never cuts a problem's records in half; a huge --size does
not grow threads."""

import json
import signal
import socket
import threading
import time
from dataclasses import replace

import pytest
from conftest import FAST, SAMPLE, Worker, cli, lines, run_args, settings, write_problems

from planner.cost import Cost
from planner.records import OutcomeRecord, ResultLine
from sglang_plugin.config import SolveConfig
from sglang_plugin.runs import files as run_files
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.runs.files import RunFiles, audit
from sglang_plugin.runs.summary import format_summary
from sglang_plugin.sim.problems import Problem
from sglang_plugin.sim.server import SimServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ids(path) -> list[str]:
    return [json.loads(line)["unique_id"] for line in path.read_text().splitlines()]


def test_a_stalled_server_trips_the_watchdog_and_the_run_resumes(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 6)
    with SimServer(SAMPLE, seed=5, stall_rate=1.0, stall_seconds=120) as stalled:
        args = run_args(stalled.url, tmp_path, "--watchdog-seconds", "2")
        started = time.monotonic()
        done = cli(*args, timeout=60)
        seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "Error: no progress for 2 s: no problem finished and no server answered a request" in done.stderr
    assert f"resume with: tts-planner {' '.join(args)}" in done.stderr
    assert seconds < 2 + 10  # the watchdog's time, start-up and the stop; the stalls would last 120 s
    assert lines(tmp_path / "results.jsonl") == []
    with SimServer(SAMPLE, seed=5) as healthy:
        again = cli(*run_args(healthy.url, tmp_path, "--watchdog-seconds", "60"))  # 2 s trips on a loaded machine
    assert again.returncode == 0, again.stderr
    assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl",
                 _ids(tmp_path / "problems.jsonl")) == []


def test_a_server_that_dies_and_comes_back_is_ridden_out(tmp_path, capfd):
    write_problems(tmp_path / "problems.jsonl", 24)
    port = _free_port()
    first = SimServer(SAMPLE, seed=5, port=port, token_delay_ms=0.3).start()
    url = first.url
    back: list[SimServer] = []

    def outage() -> None:
        results = tmp_path / "results.jsonl"
        while not results.exists() or len(results.read_bytes().splitlines()) < 5:
            time.sleep(0.02)
        first.stop()
        time.sleep(3.0)
        back.append(SimServer(SAMPLE, seed=5, port=port, token_delay_ms=0.3).start())

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        report = run_batch(settings(url, tmp_path, concurrency=4, server_wait=30.0, transport=FAST))
    finally:
        thread.join()
        for server in back:
            server.stop()
    results = lines(tmp_path / "results.jsonl")
    assert report.session.written == 24 and all(r["status"] == "ok" for r in results)
    assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl",
                 _ids(tmp_path / "problems.jsonl")) == []
    ridden = [r for r in results if r["errors"]]
    assert ridden and all(e.startswith("attempt 1 ") for r in ridden for e in r["errors"][:1])
    err = capfd.readouterr().err
    assert f"the policy server at {url} stopped answering" in err and "waiting up to 30 s for it to come back" in err


def test_partial_problems_are_shown_and_redone_by_retry_failed(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 16)
    no_retries = replace(FAST, max_retries=0)
    with SimServer(SAMPLE, seed=5, fail_rate=0.2) as flaky:
        report = run_batch(settings(flaky.url, tmp_path, transport=no_retries))
    results = {r["problem_id"]: r for r in lines(tmp_path / "results.jsonl")}
    partial = {k: r for k, r in results.items() if r["status"] == "partial"}
    assert partial, "a fifth of the requests fail, so some problems keep a failed branch after their retry"
    for line in partial.values():
        assert 0 < line["failed_branches"] < line["branches"] and line["answer"] is not None
        assert any(e.startswith("attempt 1 was partial: ") for e in line["errors"])
    summary = format_summary(report.summary)
    assert report.summary.total.partial == len(partial) == report.session.partial
    assert f"({report.summary.total.failed} failed, {len(partial)} partial)" in summary
    assert f"redo          {report.summary.total.failed} failed and {len(partial)} partial problem(s): run the same " \
           "command with --retry-failed" in summary
    ok_before = [line for line in lines(tmp_path / "results.jsonl") if line["status"] == "ok"]
    with SimServer(SAMPLE, seed=5) as healthy:
        again = run_batch(settings(healthy.url, tmp_path, transport=no_retries, retry_failed=True))
    failed = report.summary.total.failed
    assert f"will run the {failed} failed and {len(partial)} partial problem(s) again" in again.notes
    after = lines(tmp_path / "results.jsonl")
    assert after[:len(ok_before)] == ok_before and all(line["status"] == "ok" for line in after)
    assert again.session.written == len(partial) + failed
    assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl",
                 _ids(tmp_path / "problems.jsonl")) == []


def test_answers_and_references_past_the_digit_limit_finish_the_run(tmp_path):
    sevens, eights = "1+2+3+4+" + "7" * 5000, "1+2+3+4+" + "8" * 5000
    problems = [Problem("Add one, two, three, four and the number written with five thousand sevens.", sevens, 1.0),
                Problem("Add one, two, three, four and the number written with five thousand eights.", eights, 0.0),
                Problem("Add one, two, three, four and the number written with 4,400 nines.",
                        "1+2+3+4+" + "9" * 4400, 1.0)]
    records = [{"unique_id": "sevens", "problem": problems[0].text, "answer": f"So it is $\\boxed{{{sevens}}}$."},
               {"unique_id": "eights", "problem": problems[1].text, "answer": eights},
               {"unique_id": "nines", "problem": problems[2].text, "answer": "9" * 4400}]  # a plain integer
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = SolveConfig.from_dict({"sampling": {"max_tokens": 24000}}, "test")
    with SimServer(problems, seed=1, context_length=32768) as server:
        report = run_batch(settings(server.url, tmp_path, config=config))
    results = {r["problem_id"]: r for r in lines(tmp_path / "results.jsonl")}
    assert report.session.written == 3 and {r["status"] for r in results.values()} == {"ok"}
    assert results["sevens"]["answer"] == sevens and results["sevens"]["correct"] is True
    assert results["eights"]["answer"] != eights and results["eights"]["correct"] is False
    assert results["nines"]["answer"] == "1+2+3+4+" + "9" * 4400 and results["nines"]["correct"] is False


def test_answers_slow_to_compare_do_not_hold_a_problem_past_its_bound(tmp_path):
    slow = "\\int_0^1 e^{-x^{40}}\\sin(x^{30}) dx"  # math-verify runs out of time comparing its variants
    text = "Evaluate the integral from zero to one of e to the minus x to the fortieth times sine of x to the 30th."
    (tmp_path / "problems.jsonl").write_text(json.dumps({"unique_id": "slow", "problem": text, "answer": slow}) + "\n")
    timeout, time_limit = 6.0, 1.0
    config = SolveConfig.from_dict({"grading": {"timeout": timeout, "time_limit": time_limit}}, "test")
    with SimServer([Problem(text, slow, 0.05)], seed=1) as server:
        started = time.monotonic()
        run_batch(settings(server.url, tmp_path, size=16, config=config))
        seconds = time.monotonic() - started
    line = lines(tmp_path / "results.jsonl")[0]
    answers = {r["answer"] for r in lines(tmp_path / "results.jsonl.outcomes.jsonl")} - {slow}
    assert line["status"] == "ok" and len(answers) >= 2  # two or more wrong variants, each slow to judge
    # grouping within time_limit, judging within time_limit plus one comparison's timeout; comparing each wrong
    # variant with the reference to its timeout would take 1 + 2 x 6 s and more
    assert seconds < time_limit + (time_limit + timeout) + 3


def _stop(signum, frame):
    raise KeyboardInterrupt  # what the CLI does on SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_never_separates_a_problems_records_from_its_line(tmp_path, monkeypatch, sig):
    identity = {"input_sha256": "x", "settings": {}}
    write_all = run_files._write_all

    def interrupted_write(fd, data):  # Ctrl-C or SIGTERM arrives right after the outcome records are written
        write_all(fd, data)
        if b'"branch"' in data:
            signal.raise_signal(sig)

    monkeypatch.setattr(run_files, "_write_all", interrupted_write)
    line = ResultLine("p1", "7", "ok", Cost(), record={"problem": "x"})
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with RunFiles(tmp_path / "r.jsonl", tmp_path / "o.jsonl", identity, sync_interval=None) as files:
            with pytest.raises(KeyboardInterrupt):
                files.append(line, [OutcomeRecord("p1", "x", None, "majority", 0, "7", True)])
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [r["problem_id"] for r in lines(tmp_path / "r.jsonl")] == ["p1"]
    assert [r["problem_id"] for r in lines(tmp_path / "o.jsonl")] == ["p1"]
    assert handlers == (signal.default_int_handler, _stop)  # the handlers in place before are back


def test_a_huge_size_keeps_threads_to_the_problems_in_flight(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    peak = [threading.active_count()]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.01)

    with Worker("--problems", str(SAMPLE), "--seed", "5", "--token-delay-ms", "0.05") as server:  # its own process
        watcher = threading.Thread(target=watch)
        before = threading.active_count()
        watcher.start()
        try:
            report = run_batch(settings(server.url, tmp_path, size=1024, concurrency=2))
        finally:
            done.set()
            watcher.join()
    assert report.session.written == 2 and lines(tmp_path / "results.jsonl")[0]["branches"] == 1024
    assert peak[0] - before < 12  # two problem threads, the request loop, the grader's: not one per sample
