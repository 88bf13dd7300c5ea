"""Bad input to `tts-planner run` and `tts-planner calibrate` is one line naming the file, line and field (or the
option), a non-zero exit, and no request: every case here runs against a listener that counts connections and
must count none. Also: start-up against a server that accepts connections but never answers says it is
waiting and gives up, and input nested too deeply is reported (or skipped) by line everywhere."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SAMPLE, cli, lines, settings, write_problems

from sglang_plugin.cli.main import main
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.sim.server import SimServer

DEEP = "[" * 100_000 + "\n"


class Listener:
    """A TCP port that accepts connections, counts them and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent():
    listener = Listener()
    yield listener
    listener.close()


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _run(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--endpoint", url, "--input", str(tmp_path / "problems.jsonl"), "-o",
            str(tmp_path / "results.jsonl"), *extra]


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


def _bad_input_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(extra run options, the error line expected) for settings that must be refused before any request."""
    bad_calibration = _write(tmp_path, "cal.json", json.dumps({"format": "something else"}))
    torn_calibration = _write(tmp_path, "torn.json", '{"format": "tts-planner-calibration", "points": [')
    config = {name: _write(tmp_path, f"{name}.json", text) for name, text in {
        "types": '{"sampling": {"temperature": "hot"}}', "list": '{"transport": []}',
        "retries": '{"transport": {"max_retries": 1.5}}', "deep": DEEP, "unknown": '{"nope": {}}'}.items()}
    card = _write(tmp_path, "card.json", json.dumps({"policy": "x", "metrics": {}}))
    problems = str(tmp_path / "problems.jsonl")
    return [
        (["--calibration", bad_calibration], f"Error: {bad_calibration}: field 'format'"),
        (["--calibration", torn_calibration], f"Error: {torn_calibration}"),
        (["--target-confidence", "nan"], "Error: --target-confidence: must be a number in (0, 1), got nan"),
        (["--watchdog-seconds", "0"], "Error: --watchdog-seconds: must be a positive number of seconds, got 0.0"),
        (["--server-wait", "nan"], "Error: --server-wait: must be a non-negative number of seconds, got nan"),
        (["--strategy", "majority", "--size", "20000"], "Error: --size: at most 4096 samples per problem, got 20000"),
        (["--budget", "5000"], "Error: --budget: at most 4096 samples per problem, got 5000"),
        (["--max-budget", "5000"], "Error: --max-budget: at most 4096 samples per problem, got 5000"),
        (["--planner-option", "alpha=NaN"], "Error: --planner-option alpha: must be a number, got 'NaN'"),
        (["--policy-params", "nan"], "Error: --policy-params: must be a positive number of parameters"),
        (["--config", config["types"]], (f"Error: {config['types']}: field 'sampling.temperature': must be a finite "
                                         "number, got 'hot'")),
        (["--config", config["list"]], f"Error: {config['list']}: field 'transport': expected an object, got list"),
        (["--config", config["retries"]], f"Error: {config['retries']}: field 'transport.max_retries'"),
        (["--config", config["deep"]], f"Error: {config['deep']}: not valid JSON"),
        (["--config", config["unknown"]], f"Error: {config['unknown']}: field 'nope': unknown section(s) nope"),
        (["--model", card], f"Error: {card}: not a tts-planner model file: it is JSON (a model card?"),
        (["-o", problems], "Error: --output: the output would overwrite the input"),
        (["--outcomes", str(tmp_path / "results.jsonl")], "Error: --outcomes: the outcome records need a file"),
        (["--scorer", "orm", "--reward-endpoint", "http://127.0.0.1:9", "--reward-option", "nope=1"],
         "Error: --reward-option: bad option for scorer 'orm'"),
    ]


def test_bad_settings_are_one_line_each_before_any_request(tmp_path, silent):
    write_problems(tmp_path / "problems.jsonl", 3)
    for extra, expected in _bad_input_cases(tmp_path):
        result = _invoke(_run(silent.url, tmp_path, *extra))
        assert result.exit_code == 1, (extra, result.output)
        assert result.stderr.startswith(expected), (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (extra, result.stderr)
    assert silent.connections == []
    assert not (tmp_path / "results.jsonl.run.json").exists()  # nothing of a run was started


def test_bad_problem_lines_name_file_line_and_field_before_any_request(tmp_path, silent):
    path = tmp_path / "problems.jsonl"
    good = write_problems(path, 2)
    cases = {
        DEEP: f"{path}:3: JSON nested more than 100 levels deep",
        json.dumps({"problem": "What is 1+1?", "answer": "2" * 60_000}) + "\n":
            f"{path}:3: field 'answer': reference has 60,000 characters, over the limit of 50,000",
        '{"problem": "What is 1+1?", "answer": NaN}\n':
            f"{path}:3: NaN is not a number JSON allows",
        json.dumps(dict(good[0])) + "\n": f"{path}:3: field 'unique_id': repeats id",
    }
    for line, expected in cases.items():
        write_problems(path, 2, extra=[])
        path.write_text(path.read_text() + line)
        for command in (_run(silent.url, tmp_path), ["calibrate", "--endpoint", silent.url, "--input", str(path),
                                                      "-o", str(tmp_path / "cal.json")]):
            result = _invoke(command)
            assert result.exit_code == 1 and result.stderr.startswith(f"Error: {expected}"), result.stderr
    assert silent.connections == []


def test_calibrate_checks_its_settings_before_any_request(tmp_path, silent):
    write_problems(tmp_path / "problems.jsonl", 3)
    base = ["calibrate", "--endpoint", silent.url, "--input", str(tmp_path / "problems.jsonl"), "--runs-dir",
            str(tmp_path / "runs")]
    config = _write(tmp_path, "config.json", '{"grading": {"timeout": -1}}')
    cases = [
        (["--strategies", "nope", "-o", str(tmp_path / "c.json")], "Error: --strategies: unknown strategy nope"),
        (["--sizes", "20000", "--strategies", "majority", "-o", str(tmp_path / "c.json")],
         "Error: --sizes: none of the sizes 20000"),
        (["-o", str(tmp_path / "problems.jsonl")], "Error: --output: the output would overwrite the input"),
        (["-o", str(tmp_path / "c.json"), "--config", config],
         f"Error: {config}: field 'grading.timeout': must be a positive number"),
    ]
    for extra, expected in cases:
        result = _invoke(base + extra)
        assert result.exit_code == 1 and result.stderr.startswith(expected), (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text(json.dumps({"problem": "What is 1+1?"}) + "\n")
    result = _invoke(["calibrate", "--endpoint", silent.url, "--input", str(unlabeled), "-o", str(tmp_path / "c.json")])
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {unlabeled}:1: field 'answer': calibration "
                                                              "measures accuracy")
    assert silent.connections == []


def _mounted(folder: Path, options: str) -> Path:
    """A tmpfs mounted at `folder` with `options` (the caller unmounts it); skips where mounting is not allowed."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a file system ({options}) here: {mounted.stderr.decode().strip()}")
    return folder


def test_a_read_only_output_is_refused_before_any_request(tmp_path, silent):
    folder = _mounted(tmp_path / "ro", "ro,size=1m")
    try:
        write_problems(tmp_path / "problems.jsonl", 2)
        result = _invoke(_run(silent.url, tmp_path, "-o", str(folder / "results.jsonl")))
        assert result.exit_code == 1
        assert result.stderr.strip() == f"Error: {folder / 'results.jsonl'}: cannot write here: {folder} is on a " \
                                        "read-only file system"
        result = _invoke(["calibrate", "--endpoint", silent.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                          str(folder / "sub" / "cal.json")])
        assert result.exit_code == 1, result.stderr
        assert f"cannot write here: {folder} is on a read-only file system" in result.stderr
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert silent.connections == []


def test_start_up_against_a_server_that_never_answers_says_so_and_gives_up(tmp_path, silent):
    write_problems(tmp_path / "problems.jsonl", 2)
    config = _write(tmp_path, "config.json", json.dumps({"transport": {"control_timeout": 1.5}}))
    started = time.monotonic()
    done = cli(*_run(silent.url, tmp_path, "--strategy", "majority", "--size", "2", "--config", config), timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip().splitlines()
    assert err[0] == (f"waiting for the policy server at {silent.url} to answer GET /get_model_info (giving up after "
                      "3 s without an answer) ...")
    assert err[1].startswith(f"Error: the policy server at {silent.url} accepted the connection but did not answer "
                             "GET /get_model_info") and len(err) == 2
    assert seconds < 3 + 8  # two control timeouts and the interpreter's start-up
    assert len(silent.connections) == 2  # one attempt and one retry, no more


def test_deeply_nested_lines_are_skipped_by_line_everywhere(tmp_path):
    path = tmp_path / "problems.jsonl"
    records = write_problems(path, 2)
    parseable = json.dumps({**records[0], "unique_id": "deep", "meta": json.loads("[" * 950 + "]" * 950)})
    path.write_text(path.read_text() + DEEP + parseable + "\n")  # past the parser's limit, and just within it
    for command in (["predict", str(path), "--skip-bad"], ["plan", str(path), "--budget", "2", "--skip-bad"]):
        result = _invoke(command)
        assert result.exit_code == 0, result.output
        for line in (3, 4):
            assert f"{path}:{line}: JSON nested more than 100 levels deep" in result.stderr
        assert len([line for line in result.stdout.splitlines() if line.strip()]) == 2
    result = _invoke(["predict", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {path}:3: JSON nested more than 100 levels deep"
    with SimServer(SAMPLE, seed=5) as server:
        result = _invoke(_run(server.url, tmp_path, "--strategy", "majority", "--size", "2", "--skip-bad"))
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad line(s)" in result.stderr and f"{path}:4: JSON nested more than 100" in result.stderr
    assert len(lines(tmp_path / "results.jsonl")) == 2


def test_a_results_file_damaged_by_deep_nesting_names_its_line(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    with SimServer(SAMPLE, seed=5) as server:
        args = _run(server.url, tmp_path, "--strategy", "majority", "--size", "2")
        assert _invoke(args).exit_code == 0
        results = tmp_path / "results.jsonl"
        results.write_text(DEEP + results.read_text())
        result = _invoke(args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {results}:1: unreadable line")


def test_a_model_card_or_empty_file_given_as_model_is_named_for_what_it_is(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 1)
    card = _write(tmp_path, "card.json", '{"policy": "x"}')
    empty = _write(tmp_path, "empty.npz", "")
    for model, kind in ((card, "JSON (a model card? give the .npz model file beside it)"), (empty, "empty")):
        result = _invoke(["predict", str(tmp_path / "problems.jsonl"), "--model", model])
        assert result.exit_code == 1
        assert result.stderr.strip() == (f"Error: {model}: not a tts-planner model file: it is {kind}; model files "
                                         "are the .npz files `tts-planner train` writes")
        assert "pickle" not in result.stderr


def test_retry_failed_keeps_the_results_files_permissions(tmp_path):
    huge = {"unique_id": "too-long", "problem": "Compute " + "x + " * 3000 + "1.", "answer": "1"}
    write_problems(tmp_path / "problems.jsonl", 2, extra=[huge])
    results = tmp_path / "results.jsonl"
    with SimServer(SAMPLE, seed=5) as server:
        run_batch(settings(server.url, tmp_path, size=2))
        os.chmod(results, 0o600)
        again = run_batch(settings(server.url, tmp_path, size=2, retry_failed=True))
    assert "will run the 1 failed and 0 partial problem(s) again" in again.notes
    assert results.stat().st_mode & 0o777 == 0o600
    assert [line["problem_id"] for line in lines(results)][-1] == "too-long"


def test_a_disk_that_fills_up_mid_run_stops_it_resumably(tmp_path):
    folder = _mounted(tmp_path / "small", "size=24k")
    try:
        write_problems(tmp_path / "problems.jsonl", 40)
        with SimServer(SAMPLE, seed=5) as server:
            args = _run(server.url, tmp_path, "-o", str(folder / "results.jsonl"), "--strategy", "majority", "--size",
                        "2")
            done = cli(*args)
            assert done.returncode == 1, done.stderr
            first = done.stderr.strip().splitlines()
            assert first[-2].startswith(f"Error: cannot write the results to {folder / 'results.jsonl'} (No space "
                                        "left on device); nothing is lost")
            assert first[-1] == f"resume with: tts-planner {' '.join(args)}"
            written = (folder / "results.jsonl").read_bytes().count(b"\n")  # it may end in a torn line
            assert 0 < written < 40
            subprocess.run(["mount", "-o", "remount,size=4m", str(folder)], check=True)  # room made: resume
            again = cli(*args)
        assert again.returncode == 0, again.stderr
        assert "problems      40 written" in again.stdout
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_manifest_never_holds_a_bare_nan(tmp_path):
    from planner.errors import InputError
    from sglang_plugin.runs.files import RunFiles

    with pytest.raises(InputError, match=r"results.jsonl.run.json: a setting is not a finite number"):
        RunFiles(tmp_path / "results.jsonl", tmp_path / "o.jsonl", {"settings": {"target_confidence": float("nan")}})
    assert not (tmp_path / "results.jsonl.run.json").exists()


def test_ctrl_c_while_waiting_for_the_server_at_start_up_says_how_to_resume(tmp_path, silent):
    write_problems(tmp_path / "problems.jsonl", 2)
    args = _run(silent.url, tmp_path, "--strategy", "majority", "--size", "2")
    process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    while not silent.connections and process.poll() is None:  # it is waiting for its first answer
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    output = tmp_path / "results.jsonl"
    assert err.strip().splitlines()[-2:] == [f"interrupted while starting: nothing was written to {output}.",
                                             f"resume with: tts-planner {' '.join(args)}"]
