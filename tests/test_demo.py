"""`tts-planner demo` as a newcomer runs it: a simulated server in the process, adaptive against uniform on the
shipped sample, a table whose numbers are those of the files it leaves behind."""

import json

from click.testing import CliRunner
from conftest import lines

from sglang_plugin.cli.main import main
from sglang_plugin.demo import sample_path


def test_the_shipped_sample_has_what_the_simulator_and_the_runner_need():
    records = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()]
    assert len(records) == 100 and len({r["unique_id"] for r in records}) == 100
    assert sorted({r["level"] for r in records}) == [1, 2, 3, 4, 5]
    for record in records:
        assert record["problem"] and record["answer"] and "\\boxed" in record["solution"]
        assert 0.0 <= record["pass_rate"] <= 1.0


def test_demo_runs_adaptive_against_uniform_and_says_the_server_is_simulated(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--problems", "16", "--budget", "2", "--output-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "SIMULATED SGLang server (no model, no GPU)" in result.stderr
    assert "The server was SIMULATED" in result.stdout
    adaptive, uniform = lines(tmp_path / "adaptive.jsonl"), lines(tmp_path / "uniform.jsonl")
    assert len(adaptive) == len(uniform) == 16
    assert all(line["plan"]["adaptive"] for line in adaptive)
    assert {line["strategy"] for line in uniform} == {uniform[0]["plan"]["strategy"]}
    table = result.stdout.splitlines()
    rows = {name: next(line.split() for line in table if line.startswith(name + " ")) for name in ("adaptive",
                                                                                                 "uniform")}
    for name, written in (("adaptive", adaptive), ("uniform", uniform)):
        accuracy = sum(line["correct"] for line in written) / len(written)
        tokens = sum(line["cost"]["tokens"] for line in written) / len(written)
        row = rows[name][2:] if name == "uniform" else rows[name][1:]
        assert row[0] == f"{accuracy:.3f}" and row[1] == f"{tokens:,.0f}"
    assert f"uniform {uniform[0]['plan']['strategy']}@{uniform[0]['plan']['size']}" in result.stdout
    assert (tmp_path / "adaptive.jsonl.outcomes.jsonl").exists()
