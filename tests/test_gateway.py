"""Scale-out through the SGLang Model Gateway (`smg`): `solve` and `tts-planner run` through the gateway in front
of two stand-in workers (child processes), and a run riding out a worker's death (SIGKILL) mid-run, whichever
worker it is, with nothing lost or duplicated. smg sends /get_model_info to one worker only (without
retrying another), so a run that starts while that worker is down waits (saying why) until the gateway
drops it. Skipped only where the smg
binary is not installed."""

import json
import threading
import time
import urllib.request

from conftest import FAST, SAMPLE, cli, needs_smg, sim_stats, write_problems

from sglang_plugin.runs.files import audit
from sglang_plugin.solving import solve
from sglang_plugin.transport.endpoint import Endpoint

pytestmark = needs_smg


def _run(url: str, tmp_path, *extra: str) -> list[str]:
    return ["run", "--endpoint", url, "--input", str(tmp_path / "problems.jsonl"), "-o",
            str(tmp_path / "results.jsonl"), "--strategy", "majority", "--size", "4", *extra]


def _info_worker(front, workers):
    """The worker the gateway sends /get_model_info to (smg picks one, not always the first listed); the
    fixture's workers have seeds 1, 2, ... and the stand-in reports its seed."""
    with urllib.request.urlopen(front.url + "/get_model_info", timeout=10) as response:
        return workers[json.loads(response.read())["simulator"]["seed"] - 1]


def _ids(tmp_path) -> list[str]:
    return [json.loads(line)["unique_id"] for line in (tmp_path / "problems.jsonl").read_text().splitlines()]


def test_solve_through_the_gateway(gateway):
    front, _ = gateway(2, "round_robin")
    problem = json.loads(SAMPLE.read_text().splitlines()[0])["problem"]
    result = solve(problem, "majority", 4, front.url)
    assert result.answer is not None and len(result.branches) == 4 and not result.failed_branches
    assert result.cost.requests == 5 and result.cost.cached_tokens > 0  # the warm-up and four samples


def test_run_through_the_gateway_keeps_the_prefix_cache(gateway, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 24)
    front, _ = gateway(2, "cache_aware")
    done = cli(*_run(front.url, tmp_path, "--concurrency", "6"))
    assert done.returncode == 0, done.stderr
    assert "problems      24 written (0 failed, 0 partial)" in done.stdout
    share = float(done.stdout.split("prefix cache  ")[1].split("%")[0])
    assert share > 60.0  # each problem's samples reach the worker that holds its prompt
    assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl", _ids(tmp_path)) == []


def _kill_after(worker, results, count: int) -> None:
    while not results.exists() or results.read_bytes().count(b"\n") < count:
        time.sleep(0.01)
    worker.kill()


def test_a_run_rides_out_a_workers_death(gateway, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 60)
    for answers_model_info in (True, False):  # the gateway's /get_model_info goes to one worker only
        front, workers = gateway(2, "round_robin", ("--token-delay-ms", "1"))
        info = _info_worker(front, workers)
        victim = info if answers_model_info else next(w for w in workers if w is not info)
        (tmp_path / "results.jsonl").unlink(missing_ok=True)
        killer = threading.Thread(target=_kill_after, args=(victim, tmp_path / "results.jsonl", 10))
        killer.start()
        done = cli(*_run(front.url, tmp_path, "--concurrency", "8", "--overwrite"), timeout=300)
        killer.join()
        assert victim.process.poll() is not None, "the worker died mid-run"
        assert done.returncode == 0, (answers_model_info, done.stderr)
        assert "problems      60 written (0 failed" in done.stdout, done.stdout
        assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl", _ids(tmp_path)) == []
        front.close()


def test_starting_while_the_gateways_model_info_worker_is_down_waits_for_the_gateway(gateway, tmp_path):
    write_problems(tmp_path / "problems.jsonl", 6)
    # the gateway drops a dead worker after two failed checks 4 s apart: well after the run has started
    front, workers = gateway(2, "round_robin", smg=("--health-check-interval-secs", "4",
                                                    "--health-failure-threshold", "2"))
    _info_worker(front, workers).kill()
    done = cli(*_run(front.url, tmp_path, "--server-wait", "60"), timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"the server at {front.url} answers /health but not GET /get_model_info" in done.stderr
    assert audit(tmp_path / "results.jsonl", tmp_path / "results.jsonl.outcomes.jsonl", _ids(tmp_path)) == []
    slow, others = gateway(2, "round_robin")  # default health checks keep a dead worker for minutes
    _info_worker(slow, others).kill()
    stopped = cli(*_run(slow.url, tmp_path, "--server-wait", "3", "--overwrite"), timeout=60)
    assert stopped.returncode == 1
    assert stopped.stderr.strip().splitlines()[-1].startswith(f"Error: cannot reach the policy server at {slow.url}")
    assert "although it answers /health (behind the SGLang Model Gateway: the worker it asks for the model info is " \
        "down" in stopped.stderr


def test_an_endpoint_finds_the_model_when_the_gateways_info_worker_is_down(gateway):
    """smg asks one worker for /get_model_info and answers 500 while it is down; /v1/models names the model."""
    front, workers = gateway(2, "round_robin")
    _info_worker(front, workers).kill()
    endpoint = Endpoint(front.url, transport=FAST)
    assert endpoint.model_info == {"model_path": "Qwen/Qwen2.5-Math-1.5B-Instruct", "source": "/v1/models"}
    assert solve(json.loads(SAMPLE.read_text().splitlines()[0])["problem"], "majority", 3, endpoint).answer is not None


def test_a_generation_that_outlasts_the_gateways_timeout_fails_once_saying_so(gateway):
    """smg ends a request after --request-timeout-secs (default 1800 s, less than a 32k-token trace may take),
    retrying a plain one on its workers first. The client does not retry its 504 (each attempt is generated and
    billed, and would time out again) and names the gateway's flag; a streamed trace ends the same way."""
    front, workers = gateway(1, "round_robin", options=("--thinking", "--token-delay-ms", "2"),
                             smg=("--request-timeout-secs", "1"))
    endpoint = Endpoint(front.url, transport=FAST)
    problem = json.loads(SAMPLE.read_text().splitlines()[0])["problem"]
    before = sim_stats(workers[0])
    plain = solve(problem, "cot", 1, endpoint)
    assert sim_stats(workers[0])["requests"] - before["requests"] > 1  # smg itself tried it again
    (branch,) = plain.branches
    assert branch.failed and "HTTP 504" in branch.error and "--request-timeout-secs" in branch.error
    assert plain.retries == 0 and "gave up after" not in branch.error  # sent once
    before = sim_stats(workers[0])
    streamed = solve(problem, "deepconf", 2, endpoint)
    time.sleep(0.5)  # the worker sees the gateway close the streams
    generated = sim_stats(workers[0])["completion_tokens"] - before["completion_tokens"]
    assert all(b.failed and "--request-timeout-secs" in b.error for b in streamed.branches)
    # what the failed streams generated until their last chunk is counted (not what the worker generated after
    # the gateway stopped reading, before it noticed; uncounted, the streams' tokens would be missing altogether)
    assert generated / 2 <= streamed.cost.completion_tokens <= generated and generated > 200
