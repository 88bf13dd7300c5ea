"""`tts-planner grade` as a user runs it: a child process on real files."""

import json

from conftest import cli


def test_grades_responses_against_math_gsm8k_and_bare_references(tmp_path):
    records = [{"ref": "We find $x = \\boxed{\\frac{1}{2}}$.", "resp": "So the answer is $\\boxed{0.5}$."},
               {"ref": "She pays 3 * 4 = 12.\n#### 1,212", "resp": "The total is \\boxed{1212}."},
               {"ref": "7", "resp": "The answer is 8."},
               {"ref": "3", "resp": None}]
    source = tmp_path / "answers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "graded.jsonl"
    done = cli("grade", str(source), "--reference-field", "ref", "--answer-field", "resp", "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    graded = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [g["correct"] for g in graded] == [True, True, False, False]
    assert [{k: v for k, v in g.items() if k != "correct"} for g in graded] == records
    assert "graded 4, correct 2 (50.0%), 1 unanswered" in done.stderr


def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path):
    source = tmp_path / "answers.jsonl"
    source.write_text('{"ref": "1", "resp": "1"}\n{"ref": "1"}\n', encoding="utf-8")
    done = cli("grade", str(source), "--reference-field", "ref", "--answer-field", "resp", "-o",
               str(tmp_path / "out.jsonl"), "-q")
    assert done.returncode == 1
    assert f"{source}:2: field 'resp'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
