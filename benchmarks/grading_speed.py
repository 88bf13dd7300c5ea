"""Grading speed on 10,000 typical answers: the 800 real Qwen2.5-Math responses of
shared/data/replay/math_cot_100.jsonl, repeated with their boxed answers rewritten the ways models write
them (`$..$`, `\\dfrac`, a trailing unit, `x = ...`, a decimal, an off-by-k wrong value), each graded as a
whole response against its reference through grade_file, with a cold grader (worker start-up included).

Run: .venv/bin/python benchmarks/grading_speed.py [--answers 10000] [--workers 1]
Target: under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from planner.grading.equivalence import Grader
from planner.grading.extract import boxed_spans, reference_answer
from planner.grading.grade_file import format_grade_summary, grade_file

REPLAY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "replay" / "math_cot_100.jsonl"


def rewrite(answer: str, variant: int) -> str:
    """One of the ways a model writes an answer (or a wrong one), chosen by `variant`."""
    kind = variant % 8
    if kind == 1:
        return f"${answer}$"
    if kind == 2:
        return answer.replace("\\frac", "\\dfrac")
    if kind == 3:
        return answer + "\\text{ units}"
    if kind == 4:
        return f"x = {answer}"
    if kind == 5 and answer.lstrip("-").isdigit():
        return answer + ".0"
    if kind == 6 and answer.lstrip("-").isdigit():
        return str(int(answer) + 1 + variant // 8)  # wrong
    if kind == 7:
        return f"{answer} + {variant // 8 + 1}"  # wrong, needs the full check
    return answer


def responses(count: int, seed: int = 0) -> list[dict]:
    rows = [json.loads(line) for line in REPLAY.read_text().splitlines()]
    rng = random.Random(seed)
    records = []
    for index in range(count):
        row = rows[index % len(rows)]
        response = row["response"][rng.randrange(len(row["response"]))]
        spans = boxed_spans(response)
        if spans:
            start, end, content = spans[-1]
            response = f"{response[:start]}\\boxed{{{rewrite(content, rng.randrange(64))}}}{response[end:]}"
        records.append({"reference": row["gt"], "response": response})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    records = responses(args.answers)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "responses.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        grader = Grader(workers=args.workers)
        start = time.monotonic()
        summary = grade_file(path, "reference", "response", Path(folder) / "graded.jsonl", progress=False,
                             grader=grader)
        seconds = time.monotonic() - start
        grader.close()
    distinct = len({(reference_answer(r["reference"]), r["response"][-200:]) for r in records})
    print(format_grade_summary(summary))
    print(f"{summary.graded:,} answers ({distinct:,} distinct) in {seconds:.1f} s: "
          f"{1000 * seconds / summary.graded:.2f} ms per answer; {grader.comparisons:,} math-verify comparisons, "
          f"{grader.timeouts} timeouts "
          f"({'under' if seconds < 30 else 'OVER'} the 30 s target)")


if __name__ == "__main__":
    main()
