import json

import pytest

from planner.errors import InputError
from planner.jsonl import SkipLog, read_jsonl, read_problems, write_jsonl


def _write(tmp_path, content: bytes, name="in.jsonl"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_reads_records_with_their_line_numbers(tmp_path):
    path = _write(tmp_path, b'{"problem": "a"}\n\n{"problem": "b"}\n')
    assert [(n, r["problem"]) for n, r in read_jsonl(path)] == [(1, "a"), (3, "b")]


@pytest.mark.parametrize("line, reason", [
    (b'{"problem": "a"', "malformed JSON"),
    (b'["problem"]', "expected a JSON object"),
    (b'{"problem": "\xff\xfe"}', "not valid UTF-8"),
    (b'{"problem": NaN}', "NaN is not a number JSON allows"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path, b'{"problem": "fine"}\n' + line + b"\n")
    with pytest.raises(InputError) as caught:
        list(read_jsonl(path))
    assert caught.value.path == str(path) and caught.value.line == 2
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"{path}:2:")


@pytest.mark.parametrize("record, field, reason", [
    ({"text": "x"}, "problem", "missing"),
    ({"problem": "   "}, "problem", "empty text"),
    ({"problem": 3}, "problem", "expected text"),
    ({"problem": "x" * 2_000_000}, "problem", "over the limit"),
])
def test_bad_problem_text_names_the_field(tmp_path, record, field, reason):
    path = _write(tmp_path, (json.dumps(record) + "\n").encode())
    with pytest.raises(InputError) as caught:
        read_problems(path)
    assert caught.value.field == field and caught.value.line == 1
    assert reason in str(caught.value)


def test_question_field_is_accepted_and_field_can_be_chosen(tmp_path):
    path = _write(tmp_path, b'{"question": "q1"}\n{"problem": "p2", "question": "q2"}\n')
    assert read_problems(path)[1] == ["q1", "p2"]
    with pytest.raises(InputError, match="field 'question'"):
        read_problems(_write(tmp_path, b'{"problem": "p"}\n', "b.jsonl"), "question")


def test_skip_bad_counts_every_skipped_line(tmp_path):
    path = _write(tmp_path, b'{"problem": "a"}\nnot json\n{"problem": ""}\n{"problem": "b"}\n\xff\n')
    skip = SkipLog()
    records, texts = read_problems(path, skip=skip)
    assert texts == ["a", "b"]
    assert [e.line for e in skip.errors] == [2, 3, 5]
    assert "skipped 3 bad line(s)" in skip.summary()


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out" / "result.jsonl"
    write_jsonl([{"a": 1}, {"b": "é"}], target)
    assert target.read_text(encoding="utf-8").splitlines() == ['{"a": 1}', '{"b": "é"}']

    def exploding():
        yield {"a": 2}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_jsonl(exploding(), target)
    assert target.read_text(encoding="utf-8").splitlines()[0] == '{"a": 1}'  # old content intact
    assert [p.name for p in target.parent.iterdir()] == ["result.jsonl"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    target = tmp_path / "plans.jsonl"
    write_jsonl([{"a": 1}], target)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
