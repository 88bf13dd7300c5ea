"""Shared setup of the program and scorer tests: the stand-in server over real loopback HTTP, with four
MATH-500 problems of medium difficulty (tests/data/programs_problems.jsonl: problem, answer, reference
solution and the measured pass rate of Qwen2.5-Math-1.5B-Instruct)."""

from pathlib import Path

from planner.jsonl import read_jsonl
from sglang_plugin.config import SolveConfig
from sglang_plugin.sim.problems import Problem

DATA = Path(__file__).parent / "data" / "programs_problems.jsonl"
PROBLEMS = [Problem(r["problem"], r["answer"], r["pass_rate"], r["solution"]) for _, r in read_jsonl(DATA)]
# Short waits so fault tests stay fast; the policy itself is the documented one.
FAST = SolveConfig(max_retries=3, backoff_initial=0.01, backoff_max=0.05, connect_timeout=2.0, read_timeout=20.0)


def sim_stats(server) -> dict:
    """The stand-in server's own counters (requests, tokens) as it reports them over HTTP."""
    import json
    import urllib.request

    with urllib.request.urlopen(server.url + "/get_server_info", timeout=5) as response:
        return json.loads(response.read())["internal_states"][0]["sim_stats"]


def comparable(result) -> dict:
    """A result without its wall-clock time, for determinism checks."""
    data = result.to_dict()
    data["cost"].pop("wall_time")
    return data
