"""Agreement of the grader with labelled answer pairs: math-verify's own test suite
(shared/data/answer_pairs/math_verify_suite.jsonl) and tests/data/grading_cases.jsonl (other graders'
documented cases). (Version 1's matcher, since removed, agreed on 71.9% of 370 such pairs; see issue 10.)

A false merge is a pair labelled different that was judged the same; a false split the reverse. For the new
grader, false merges made by a cheap path (no math-verify call) are counted apart: there must be none.

Run: .venv/bin/python benchmarks/grading_agreement.py [--list]   (--list prints every disagreement, shortened)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from planner.grading.equivalence import Grader, cheap_verdict
from planner.grading.extract import extract_answer, reference_answer

ROOT = Path(__file__).resolve().parents[1]
SUITES = {
    "math-verify suite": ROOT.parent / "shared" / "data" / "answer_pairs" / "math_verify_suite.jsonl",
    "other graders' cases": ROOT / "tests" / "data" / "grading_cases.jsonl",
}


def score(pairs: list[dict], judge) -> dict:
    """Agreement, false merges and false splits of `judge(gold, pred) -> bool` on labelled pairs."""
    start = time.monotonic()
    verdicts = [judge(p["gold"], p["pred"]) for p in pairs]
    merges = sum(v and not p["same"] for v, p in zip(verdicts, pairs))
    splits = sum(p["same"] and not v for v, p in zip(verdicts, pairs))
    wrong = [p for v, p in zip(verdicts, pairs) if v != p["same"]]
    return {"agree": len(pairs) - merges - splits, "pairs": len(pairs), "false merges": merges,
            "false splits": splits, "seconds": time.monotonic() - start, "disagreements": wrong}


def cheap_merges(pairs: list[dict]) -> int:
    """Pairs labelled different that the cheap paths alone call the same."""
    return sum(bool(cheap_verdict(reference_answer(p["gold"]), extract_answer(p["pred"]) or ""))
               for p in pairs if not p["same"])


def line(name: str, result: dict) -> str:
    return (f"  {name:<8} agree {result['agree']}/{result['pairs']} ({result['agree'] / result['pairs']:.1%}), "
            f"false merges {result['false merges']}, false splits {result['false splits']}, "
            f"{result['seconds']:.1f} s")


def shortened(text: str, keep: int = 60) -> str:
    """A long response's start and end (where its answer is), on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 2 * keep else f"{flat[:keep]} ... {flat[-keep:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every disagreement with the labels")
    args = parser.parse_args()
    grader = Grader()
    for name, path in SUITES.items():
        if not path.exists():
            print(f"{name}: {path} not found, skipped")
            continue
        pairs = [json.loads(text) for text in path.read_text().splitlines() if text.strip()]
        new = score(pairs, lambda gold, pred: grader.correct(reference_answer(gold), extract_answer(pred)))
        print(f"{name} ({path.name}):")
        print(line("grader", new) + f"; false merges from a cheap path: {cheap_merges(pairs)}")
        if args.list:
            for pair in new["disagreements"]:
                kind = "false split" if pair["same"] else "false merge"
                extracted = extract_answer(pair["pred"])
                print(f"    {kind}: gold {shortened(pair['gold'])!r} | pred {shortened(pair['pred'])!r} "
                      f"(read as {extracted!r})")
    grader.close()


if __name__ == "__main__":
    main()
