import json

import numpy as np
import pytest

from planner.errors import InputError
from planner.prediction.labels import load_labels


def _jsonl(tmp_path, records, name="labels.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_success_rate_field(tmp_path):
    data = load_labels(_jsonl(tmp_path, [{"problem": "a", "sr": 0.25}, {"problem": "b", "sr": 1}]), "sr")
    assert data.texts == ["a", "b"]
    np.testing.assert_allclose(data.labels, [0.25, 1.0])
    np.testing.assert_allclose(data.weights, [1, 1])


def test_k_of_n_counts_weigh_by_samples(tmp_path):
    path = _jsonl(tmp_path, [{"problem": "a", "k": 3, "n": 4}, {"problem": "b", "k": 0, "n": 50}])
    data = load_labels(path, "k", total_field="n")
    np.testing.assert_allclose(data.labels, [0.75, 0.0])
    np.testing.assert_allclose(data.weights, [4, 50])


def test_outcome_records_pool_by_problem_id_then_text(tmp_path):
    records = [
        {"problem_id": "p1", "problem": "one", "correct": True},
        {"problem_id": "p1", "problem": "one", "correct": False},
        {"problem_id": "p1", "problem": "one", "correct": True},
        {"problem": "two", "correct": 0},
        {"problem": "two", "correct": 1},
    ]
    data = load_labels(_jsonl(tmp_path, records), "correct")
    assert data.texts == ["one", "two"] and data.lines_read == 5
    np.testing.assert_allclose(data.labels, [2 / 3, 0.5])
    np.testing.assert_allclose(data.weights, [3, 2])


@pytest.mark.parametrize("record, field, reason", [
    ({"problem": "a"}, "sr", "missing"),
    ({"problem": "a", "sr": 1.5}, "sr", "outside"),
    ({"problem": "a", "sr": "high"}, "sr", "expected a number"),
])
def test_bad_labels_name_file_line_and_field(tmp_path, record, field, reason):
    path = _jsonl(tmp_path, [{"problem": "ok", "sr": 0.5}, record])
    with pytest.raises(InputError) as caught:
        load_labels(path, "sr")
    assert (caught.value.line, caught.value.field) == (2, field)
    assert reason in str(caught.value)


def test_k_above_n_is_rejected(tmp_path):
    with pytest.raises(InputError, match="field 'k'"):
        load_labels(_jsonl(tmp_path, [{"problem": "a", "k": 5, "n": 4}]), "k", total_field="n")


def test_no_usable_lines_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no usable labeled lines"):
        load_labels(_jsonl(tmp_path, []), "sr")

