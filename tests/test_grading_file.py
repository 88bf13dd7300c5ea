"""grade_file, behind `tts-planner grade`: real dataset references, whole responses or bare answers, bad
lines named by file and line, atomic output, the summary line."""

import json
from pathlib import Path

import pytest

from planner.errors import InputError
from planner.grading import Grader
from planner.grading.grade_file import format_grade_summary, grade_file

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def grader():
    g = Grader()
    yield g
    g.close()


def rows(path: Path, count: int) -> list[dict]:
    if not path.exists():
        pytest.skip(f"{path} not found (the shared data folder sits beside the project)")
    with open(path) as handle:
        return [json.loads(next(handle)) for _ in range(count)]


def write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_math_solutions_against_whole_responses_and_bare_answers(tmp_path, grader):
    records = rows(DATA / "math500" / "test.jsonl", 20)
    for index, record in enumerate(records):
        if index % 4 == 0:
            record["response"] = f"Working... so the answer is $\\boxed{{{record['answer']}}}$."
        elif index % 4 == 1:
            record["response"] = record["answer"]  # a bare answer
        elif index % 4 == 2:
            record["response"] = "I think it is \\boxed{-12345}."
        else:
            record["response"] = None  # unanswered
    source = write(tmp_path / "math.jsonl", records)
    summary = grade_file(source, "solution", "response", tmp_path / "graded.jsonl", progress=False, grader=grader)
    graded = read(tmp_path / "graded.jsonl")
    assert [r["correct"] for r in graded] == [i % 4 < 2 for i in range(20)]
    assert all({k: v for k, v in r.items() if k != "correct"} == s for r, s in zip(graded, records))
    assert (summary.graded, summary.correct, summary.unanswered) == (20, 10, 5)
    line = format_grade_summary(summary)
    assert "graded 20" in line and "correct 10 (50.0%)" in line and "5 unanswered" in line and "\n" not in line


def test_gsm8k_references_and_numbers(tmp_path, grader):
    records = rows(DATA / "gsm8k" / "test.jsonl", 10)
    for index, record in enumerate(records):
        final = record["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        record["pred"] = int(final) if index % 2 else f"The total is {final}."
    summary = grade_file(write(tmp_path / "gsm.jsonl", records), "answer", "pred", tmp_path / "out.jsonl",
                         progress=False, grader=grader)
    assert summary.correct == summary.graded == 10


def test_olympiadbench_list_references(tmp_path, grader):
    records = [{"final_answer": ["$x=3$"], "pred": "\\boxed{3}"},
               {"final_answer": ["$2$", "$-2$"], "pred": "\\boxed{-2} and \\boxed{2}"},
               {"final_answer": ["$2$", "$-2$"], "pred": "\\boxed{2}"}]
    grade_file(write(tmp_path / "ob.jsonl", records), "final_answer", "pred", tmp_path / "out.jsonl",
               progress=False, grader=grader)
    assert [r["correct"] for r in read(tmp_path / "out.jsonl")] == [True, True, False]


BAD_LINES = [
    ('{"ref": "1", "ans": "1"}', None),
    ("{not json", "malformed JSON"),
    ('{"ans": "1"}', "field 'ref': missing"),
    ('{"ref": "1"}', "field 'ans': missing"),
    ('{"ref": {"a": 1}, "ans": "1"}', "field 'ref': expected a reference"),
    ('{"ref": "  ", "ans": "1"}', "field 'ref': empty reference"),
    ('{"ref": "1", "ans": [1]}', "field 'ans': expected a response"),
    ("[1, 2]", "expected a JSON object"),
]


@pytest.mark.parametrize("bad, message", BAD_LINES[1:], ids=[m for _, m in BAD_LINES[1:]])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, grader, bad, message):
    source = write(tmp_path / "in.jsonl", [BAD_LINES[0][0], "", bad])
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError) as error:
        grade_file(source, "ref", "ans", out, progress=False, grader=grader)
    assert str(error.value).startswith(f"{source}:3: ") and message in str(error.value)
    assert not out.exists()  # no half-written output
    assert list(tmp_path.iterdir()) == [source]


def test_skip_bad_grades_the_rest_and_lists_what_it_skipped(tmp_path, grader):
    source = write(tmp_path / "in.jsonl", [line for line, _ in BAD_LINES] + ['{"ref": "2", "ans": "\\\\boxed{2}"}'])
    summary = grade_file(source, "ref", "ans", tmp_path / "out.jsonl", progress=False, skip_bad=True,
                         grader=grader)
    assert [r["correct"] for r in read(tmp_path / "out.jsonl")] == [True, True]
    assert len(summary.skipped) == len(BAD_LINES) - 1
    assert [e.line for e in summary.skipped] == list(range(2, len(BAD_LINES) + 1))
    assert f"{len(BAD_LINES) - 1} bad line(s) skipped" in format_grade_summary(summary)


def test_regrades_a_file_in_place_and_writes_stdout(tmp_path, grader, capsys):
    source = write(tmp_path / "results.jsonl", [{"reference": "\\frac12", "answer": "0.5", "correct": False}])
    grade_file(source, "reference", "answer", source, progress=False, grader=grader)
    assert read(source) == [{"reference": "\\frac12", "answer": "0.5", "correct": True}]
    grade_file(source, "reference", "answer", progress=False, grader=grader)
    assert json.loads(capsys.readouterr().out) == {"reference": "\\frac12", "answer": "0.5", "correct": True}


def test_missing_input_file(tmp_path, grader):
    with pytest.raises(InputError, match="cannot open"):
        grade_file(tmp_path / "nope.jsonl", "a", "b", tmp_path / "out.jsonl", progress=False, grader=grader)


def test_progress_goes_to_stderr(tmp_path, grader, capsys):
    source = write(tmp_path / "in.jsonl", [{"r": "1", "a": "1"}] * 3)
    grade_file(source, "r", "a", tmp_path / "out.jsonl", progress=True, grader=grader)
    captured = capsys.readouterr()
    assert captured.out == "" and "grading" in captured.err
