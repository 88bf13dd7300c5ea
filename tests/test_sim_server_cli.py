"""`tts-planner sim-server` as a user runs it: a subprocess on port 0 that prints its URL when ready, serves,
and exits cleanly on SIGTERM; bad problem files stop it with an error naming file, line and field."""

import signal
import subprocess
import sys
import threading

from sim_http import RATE_FIELD, RATES, SOLUTIONS, ok, prompt, sample_records

COMMAND = [sys.executable, "-c", "from sglang_plugin.cli.main import main; main()", "sim-server"]


def start(*args):
    process = subprocess.Popen(COMMAND + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))
    reader.start()
    reader.join(timeout=60)
    if not lines or not lines[0]:
        process.kill()
        raise AssertionError(f"no ready line; stderr: {process.stderr.read()}")
    return process, lines[0]


def test_cli_serves_until_sigterm():
    process, line = start("--port", "0", "--problems", str(RATES), "--solutions", str(SOLUTIONS),
                          "--rate-field", RATE_FIELD, "--seed", "9", "--token-delay-ms", "0")
    try:
        assert "SIMULATED" in line and "ready at http://127.0.0.1:" in line
        url = line.split("ready at ")[1].split()[0]
        assert ok(url, "/get_model_info")["simulator"]["known_problems"] == 12
        record = sample_records()[2]
        answer = ok(url, "/generate", {"text": prompt(record["problem"]), "sampling_params": {"max_new_tokens": 3000}})
        assert "\\boxed{" in answer["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0
    assert "stopped" in process.stderr.read()


def test_cli_rejects_a_bad_problem_file(tmp_path):
    bad = tmp_path / "problems.jsonl"
    bad.write_text('{"problem": "What is 1+1?", "answer": "2", "pass_rate": 0.5}\n'
                   '{"problem": "What is 2+2?", "answer": "4", "pass_rate": "high"}\n', encoding="utf-8")
    result = subprocess.run(COMMAND + ["--port", "0", "--problems", str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert f"{bad}:2" in result.stderr and "pass_rate" in result.stderr
    missing = subprocess.run(COMMAND + ["--port", "0", "--problems", str(RATES)], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode != 0 and "pass_rate" in missing.stderr and "missing" in missing.stderr


def test_cli_says_when_problems_repeat(tmp_path):
    problems = tmp_path / "problems.jsonl"
    line = '{"problem": "What is 1+1?", "answer": "2", "pass_rate": 0.5}\n'
    problems.write_text(line + line + line.replace("1+1", "2+2").replace('"2"', '"4"'), encoding="utf-8")
    process, ready = start("--port", "0", "--problems", str(problems))
    try:
        assert "(2 known problems, 1 repeated problem text(s) kept once," in ready
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
