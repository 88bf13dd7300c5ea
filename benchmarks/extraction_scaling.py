"""How answer extraction's time grows with the length of adversarial text (inputs built to make a parser
backtrack: unclosed or nested boxes, runs of dollars, brackets, answer phrases, grouped digits, backslashes).
Linear extraction takes about 10x the time for 10x the text; the script prints the ratio per input and flags
any over 30x.

    python benchmarks/extraction_scaling.py [--small 10000] [--large 100000]
"""

from __future__ import annotations

import argparse
import time

from planner.grading.extract import extract_answer, reference_answer

ADVERSARIAL = {
    "unclosed boxes": "\\boxed{",
    "nested unclosed": "\\boxed{{",
    "closed nested": "\\boxed{x",
    "many joined boxes": "\\boxed{1} and ",
    "dollars": "$1$ ",
    "brackets": "\\[ 1 \\] ",
    "answer phrases": "the answer is ",
    "numbers": "1,000,",
    "backslashes": "\\\\{",
}


def adversarial_text(unit: str, size: int) -> str:
    """`unit` repeated to about `size` characters (closed nested boxes get their closing braces too)."""
    text = unit * (size // len(unit))
    if unit == "\\boxed{x":
        text += "}" * (size // len(unit))
    return text


def seconds(unit: str, size: int, repeats: int = 3) -> float:
    """The best of `repeats` timings of extracting an answer and a reference from the text."""
    text, best = adversarial_text(unit, size), float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        extract_answer(text)
        reference_answer(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    growth = args.large / args.small
    print(f"{'input':<20}{args.small:>12,} chars{args.large:>12,} chars{'ratio':>9}")
    for name, unit in ADVERSARIAL.items():
        small, large = seconds(unit, args.small), seconds(unit, args.large)
        ratio = large / max(small, 1e-6)
        flag = "" if ratio <= 3 * growth else f"  over {3 * growth:.0f}x"
        print(f"{name:<20}{small * 1000:>14.2f} ms{large * 1000:>14.2f} ms{ratio:>8.1f}x{flag}")


if __name__ == "__main__":
    main()
