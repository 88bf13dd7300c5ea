"""Answer extraction and grouping, on hand-made cases and on real sampled answers (tests/data/
replay_answers.jsonl: 18 MATH problems x 8 Qwen2.5-Math responses, their tails, from
shared/data/replay/math_cot_100.jsonl)."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sglang_plugin.answers import AnswerGrouper, extract_answer, normalize

SAMPLE = Path(__file__).parent / "data" / "replay_answers.jsonl"
# A comparison math-verify does not finish (sympy works on the integral for minutes).
SLOW = ("\\int_0^1 e^{-x^{40}}\\sin(x^{30}) dx", "2")


@pytest.fixture(scope="module")
def grouper():
    g = AnswerGrouper(workers=1)
    yield g
    g.close()


@pytest.fixture(scope="module")
def sample():
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


@pytest.mark.parametrize("text, expected", [
    ("so $x = \\boxed{5}$.", "5"),
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
    ("first \\boxed{3} then \\boxed{4}", "4"),
    ("\\fbox{7}", "7"),
    ("The answer is \\boxed 12.", "12"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("done \\boxed{2} and then \\boxed{\\frac{1}{", "2"),  # a truncated last box does not count
    ("no box here", None),
    ("\\boxed{}", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extracts_the_recorded_answers_of_real_responses(sample):
    checked = 0
    for record in sample:
        for tail, pred in zip(record["responses_tail"], record["pred"]):
            extracted = extract_answer(tail)
            if "\\text" in extracted:  # the recorded pred had its units stripped by Qwen's post-processing
                assert extracted.startswith(pred)
            else:
                assert normalize(extracted) == normalize(pred)
            checked += 1
    assert checked == 8 * len(sample)


def test_equivalence_matches_recorded_correctness(grouper, sample):
    agree = total = 0
    for record in sample:
        for pred, correct in zip(record["pred"], record["score"]):
            agree += grouper.equivalent(pred, record["gt"]) == correct
            total += 1
    # One recorded label is a grader error of the source (gt "10{,}000" vs "10000" marked wrong).
    assert agree >= total - 1


def test_groups_real_answers(grouper, sample):
    for record in sample:
        labels = grouper.group(record["pred"])
        for i, a in enumerate(record["pred"]):
            for j, b in enumerate(record["pred"]):
                if a == b:
                    assert labels[i] == labels[j]
        correct = {labels[i] for i, ok in enumerate(record["score"]) if ok}
        assert len(correct) <= 1, record["pred"]  # all correct answers fall in one group


def test_groups_equivalent_forms(grouper):
    answers = ["\\frac{1}{2}", "0.5", "\\dfrac12", "1/2", "2", "x", None, "\\frac{2}{4}"]
    labels = grouper.group(answers)
    assert labels[0] == labels[1] == labels[2] == labels[3] == labels[7] == 0
    assert labels[4] == 1 and labels[5] == 2 and labels[6] is None


def test_unparseable_answer_is_its_own_group(grouper):
    labels = grouper.group(["\\frac{", "]]", "\\frac{", "3"])
    assert labels == [0, 1, 0, 2]


def test_vote_sums_weights_and_breaks_ties_by_first_appearance(grouper):
    votes = grouper.vote(["3", "0.5", "\\frac{1}{2}", "3"], [0.1, 0.3, 0.3, 0.4])
    assert [v.answer for v in votes] == ["0.5", "3"]
    assert votes[0].branches == [1, 2] and votes[0].score == pytest.approx(0.6)
    tied = grouper.vote(["7", "8"])
    assert [v.answer for v in tied] == ["7", "8"]
    best = grouper.vote(["1", "2", "1"], [0.2, 0.5, 0.4], reduce="max")
    assert [(v.answer, v.score) for v in best] == [("2", 0.5), ("1", 0.4)]


def test_time_limit_works_off_the_main_thread_and_the_pool_recovers(grouper):
    outcome = {}

    def compare():
        start = time.monotonic()
        outcome["same"] = grouper.equivalent(*SLOW, timeout=1.0)
        outcome["seconds"] = time.monotonic() - start

    before = grouper.timeouts
    thread = threading.Thread(target=compare)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert outcome["same"] is False
    assert grouper.timeouts == before + 1
    assert outcome["seconds"] < 60  # the deadline, not sympy, ended it (it runs for minutes)
    assert grouper.equivalent("\\frac{3}{6}", "0.5")  # a fresh worker took over


def test_many_threads_share_one_grouper(grouper):
    pairs = [("\\frac{1}{4}", "0.25", True), ("\\sqrt{4}", "2", True), ("3", "4", False),
             ("\\frac{\\pi}{2}", "\\pi/2", True)] * 4
    results = [None] * len(pairs)

    def check(i):
        a, b, _ = pairs[i]
        results[i] = grouper.equivalent(a, b)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected for _, _, expected in pairs]


def test_works_from_a_script_that_calls_it_at_top_level(tmp_path):
    """No `if __name__ == "__main__"` guard needed: the worker does not re-run the caller's script."""
    script = tmp_path / "group.py"
    script.write_text("from sglang_plugin.answers import shared_grouper\n"
                      "print(shared_grouper().group(['\\\\frac{1}{2}', '0.5', 'x+1', '1+x']))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 0, 1, 1]"
