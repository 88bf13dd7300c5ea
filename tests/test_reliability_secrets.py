"""No secret reaches an output, a log line or a file: an API key (option or environment), credentials in the
endpoint's URL and a reward-option key, through every path that repeats them: error lines written into result
lines, the stop messages and resume hints on stderr, the summary, the manifest and outcome records."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, SAMPLE, cli, write_problems

from sglang_plugin.sim.server import SimServer

API_KEY = "api-key-0123456789"
PASSWORD = "pass-word-98765"
REWARD_KEY = "reward-key-13579"
HEADER = "header-value-24680"
SECRETS = (API_KEY, PASSWORD, REWARD_KEY, HEADER, base64.b64encode(f"user:{PASSWORD}".encode()).decode())


def _leaks(tmp_path: Path, *texts: str) -> list[str]:
    """Every secret found in the texts or in any file under tmp_path."""
    found = [f"{secret} in output" for text in texts for secret in SECRETS if secret in text]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{secret} in {path.name}" for secret in SECRETS if secret.encode() in data]
    return found


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://user:{PASSWORD}@")


def _run(tmp_path: Path, endpoint: str, *extra: str) -> list[str]:
    return ["run", "--endpoint", endpoint, "--input", str(tmp_path / "problems.jsonl"), "-o",
            str(tmp_path / "results.jsonl"), *extra]


def test_url_credentials_and_reward_keys_are_masked_in_lines_messages_and_files(tmp_path):
    huge = {"unique_id": "too-long", "problem": "Compute " + "x + " * 3000 + "1.", "answer": "1"}
    write_problems(tmp_path / "problems.jsonl", 3, extra=[huge])
    quick = tmp_path / "config.json"  # failed requests are not retried: the test is about what errors say
    quick.write_text('{"transport": {"max_retries": 0}}')
    with SimServer(SAMPLE, seed=5) as server:
        args = _run(tmp_path, _with_credentials(server.url), "--strategy", "weighted_vote", "--size", "2",
                    "--reward-endpoint", server.url, "--scorer", "orm", "--reward-option", f"api_key={REWARD_KEY}",
                    "--config", str(quick))
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        failed = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()
                  if json.loads(line)["status"] == "failed"]
        assert failed and "http://<redacted>@127.0.0.1" in failed[0]["errors"][0]
        manifest = json.loads((tmp_path / "results.jsonl.run.json").read_text())
        assert "api_key" not in manifest["settings"]["reward_options"]
    with SimServer(SAMPLE, seed=5, fail_rate=1.0) as broken:  # every request fails: the run stops with a hint
        (tmp_path / "results.jsonl").unlink()
        stopped = cli(*_run(tmp_path, _with_credentials(broken.url), "--strategy", "weighted_vote", "--size", "2",
                            "--reward-endpoint", broken.url, "--scorer", "orm", "--reward-option",
                            f"api_key={REWARD_KEY}", "--max-failures-in-a-row", "2", "--overwrite", "--config",
                            str(quick)))
    assert stopped.returncode == 1
    assert "problems failed in a row" in stopped.stderr and "http://<redacted>@" in stopped.stderr
    assert "resume with: tts-planner run --endpoint 'http://<redacted>@127.0.0.1:" in stopped.stderr
    assert "--reward-option 'api_key=<redacted>'" in stopped.stderr
    assert _leaks(tmp_path, done.stdout, done.stderr, stopped.stdout, stopped.stderr) == []


def test_an_api_key_is_masked_in_the_interrupt_hint_and_every_file(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 40)
    results = tmp_path / "results.jsonl"
    with SimServer(SAMPLE, seed=5, token_delay_ms=0.3) as server:
        for key_args, env in (((f"--api-key={API_KEY}",), {}), ((), {"TTS_PLANNER_API_KEY": API_KEY})):
            process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli",
                                        *_run(tmp_path, server.url, "--strategy", "majority", "--size", "2",
                                              *key_args)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                       env={**os.environ, **env})
            start = results.read_bytes().count(b"\n") if results.exists() else 0
            while process.poll() is None and (not results.exists() or results.read_bytes().count(b"\n") < start + 3):
                time.sleep(0.01)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
            assert process.returncode == 130 and "resume with: tts-planner run" in err, err
            if key_args:
                assert "'--api-key=<redacted>'" in err
            assert _leaks(tmp_path, out, err) == [], err


def test_secret_scorer_options_are_masked_in_errors(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 2)
    done = cli(*_run(tmp_path, "http://127.0.0.1:9", "--strategy", "majority", "--size", "2", "--scorer", "http",
                     "--reward-endpoint", "http://127.0.0.1:9", "--reward-option", f"api_key={REWARD_KEY}",
                     "--reward-option", f'headers={{"X-Token": "{HEADER}"}}', "--reward-option", "request={}"))
    assert done.returncode == 1 and done.stderr.startswith("Error: --reward-option: bad option for scorer 'http'")
    assert _leaks(tmp_path, done.stdout, done.stderr) == []


def test_the_python_api_never_shows_url_credentials():
    import pytest

    from planner.errors import InputError
    from sglang_plugin.transport.endpoint import Endpoint
    from sglang_plugin.transport.http import EndpointError

    with pytest.raises(InputError, match="either in the URL .* or as api_key, not both"):
        Endpoint("http://user:hunter2@127.0.0.1:9", api_key="key")  # refused before any connection
    error = EndpointError("GET http://user:hunter2@host:1/get_model_info: refused", url="http://user:hunter2@host:1",
                          kind="connection")
    assert "hunter2" not in str(error) and "hunter2" not in error.url
    with SimServer(SAMPLE) as server:
        with pytest.raises(EndpointError) as caught:
            Endpoint(server.url.replace("http://", "http://user:hunter2@") + "/missing")
    assert "hunter2" not in str(caught.value) and "/missing/get_model_info" in str(caught.value)
