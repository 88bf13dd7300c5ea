"""`tts-planner demo` as a newcomer runs it: a simulated server in the process, adaptive against uniform at equal
compute on the shipped sample, a table whose numbers are those of the files it leaves behind."""

import json
import re

from click.testing import CliRunner
from conftest import lines

from sglang_plugin.cli.main import main
from sglang_plugin.demo import next_size, sample_path


def test_the_shipped_sample_has_what_the_simulator_and_the_runner_need():
    records = [json.loads(line) for line in sample_path().read_text(encoding="utf-8").splitlines()]
    assert len(records) == 100 and len({r["unique_id"] for r in records}) == 100
    assert sorted({r["level"] for r in records}) == [1, 2, 3, 4, 5]
    for record in records:
        assert record["problem"] and record["answer"] and "\\boxed" in record["solution"]
        assert 0.0 <= record["pass_rate"] <= 1.0


def test_next_size_brackets_the_target_in_few_runs_and_stops_when_nothing_lies_between():
    sizes = [1, 3, 4, 5, 6, 7, 8, 16, 32]
    assert next_size(sizes, {1: 1.0}, 6.6) == 7  # through the origin from one chain of thought, first size past it
    assert next_size(sizes, {1: 1.0, 7: 7.2}, 6.6) == 6  # bracketed by cot and @7: refine with the family's sizes
    assert next_size(sizes, {1: 1.0, 6: 6.1, 7: 7.2}, 6.6) is None  # adjacent sizes bracket it
    assert next_size(sizes, {1: 1.0, 32: 30.0}, 300.0) is None  # nothing larger to try: the table says so
    assert next_size(sizes, {1: 1.0, 8: 40.0, 16: 80.0}, 100.0) == 32  # extrapolates past the largest measured


def _table(stdout: str) -> list[str]:
    block = stdout.split("\n\n")[1]
    return block.splitlines()


def test_demo_compares_adaptive_with_uniform_at_equal_compute(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--problems", "16", "--budget", "2", "--output-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "SIMULATED SGLang server (no model, no GPU)" in result.stderr
    assert "The server was SIMULATED" in result.stdout
    assert result.stdout.startswith("Adaptive against uniform at equal compute (FLOPs, reward-model reads included)")
    adaptive = lines(tmp_path / "adaptive.jsonl")
    assert len(adaptive) == 16 and all(line["plan"]["adaptive"] for line in adaptive)
    uniform_files = sorted(tmp_path.glob("uniform-*@*.jsonl"))
    uniform_files = [f for f in uniform_files if not f.name.endswith(".outcomes.jsonl")]
    assert 2 <= len(uniform_files) <= 4 and (tmp_path / "uniform-cot@1.jsonl") in uniform_files
    table = _table(result.stdout)
    rows = {}
    for row in table[1:]:
        label = re.split(r"\s{2,}", row.strip())[0]
        rows[label] = row[len(label):].split()
    measured = {}
    for path in [tmp_path / "adaptive.jsonl"] + uniform_files:
        written = lines(path)
        assert len(written) == 16
        accuracy = sum(line["correct"] for line in written) / 16
        tokens = sum(line["cost"]["tokens"] for line in written) / 16
        label = "adaptive" if path.name == "adaptive.jsonl" else "uniform " + path.stem.split("-", 1)[1]
        assert rows[label][:2] == [f"{accuracy:.3f}", f"{tokens:,.0f}"], label
        measured[label] = (accuracy, float(rows[label][2]))
    # the equal-spend row mixes two runs so that it spends what adaptive spends, and lies between them
    equal = rows["uniform at equal spend"]
    assert equal[2] == rows["adaptive"][2]
    accuracies = [acc for label, (acc, _) in measured.items() if label != "adaptive"]
    assert min(accuracies) - 5e-4 <= float(equal[0]) <= max(accuracies) + 5e-4  # printed to 3 places
    assert rows["adaptive - equal spend"][0] == f"{measured['adaptive'][0] - float(equal[0]):+.3f}"
    assert "chains of thought" in result.stdout and (tmp_path / "adaptive.jsonl.outcomes.jsonl").exists()


def test_demo_table_columns_are_aligned(tmp_path):
    """Every value ends where its column's header ends (the issue: columns drifted with long labels)."""
    result = CliRunner().invoke(main, ["demo", "--problems", "12", "--budget", "2", "--scorer", "orm",
                                       "--output-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = result.stdout.splitlines()
    starts = [i for i, line in enumerate(text) if line.strip().startswith(("accuracy ", "problems "))]
    blocks = [text[i:text.index("", i)] for i in starts]
    assert len(blocks) == 2  # the overall table and the per-difficulty one
    for block in blocks:
        header = block[0]
        ends = [m.end() - 1 for m in re.finditer(r"\S+(?: \S+)*", header)]
        for row in block[1:]:
            for end in ends:
                if end < len(row) and row[end] != " ":
                    assert end + 1 == len(row) or row[end + 1] == " ", (header, row)
            cells = re.findall(r"\S+(?: \S+)*", row)
            assert len(row.rstrip()) - 1 in ends or row.rstrip() == cells[0], (header, row)
