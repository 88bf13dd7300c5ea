"""Text surgery for the simulated reasoner: reference solutions cut into steps, wrong variants of a step, and
a per-problem pool of wrong final answers that are really different from the reference answer."""

from __future__ import annotations

import bisect
import random
import re
from fractions import Fraction

from sglang_plugin.sim.problems import boxed_span

STEP_SEPARATOR = "\n\n"
MIN_STEP_CHARS = 40
MIN_TAIL_CHARS = 20

_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])\$?\s+|(?<=\\\])\s*|(?<=\\end\{align\*\})\s*)(?=[A-Z])")
_MATH_TOGGLE = re.compile(r"\\\$|\$\$|\$|\\\[|\\\]|\\begin\{|\\end\{")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "Mr.", "Mrs.", "Dr.", "St.")
_INTEGER = re.compile(r"\d+")
_TEXT_ANSWER = re.compile(r"\\text\{\s*([^{}]*?)\s*\}")
_CHOICE = re.compile(r"^(\\text\{\s*)?\(?([A-E])\)?(\s*\})?$")
_NUMBER = re.compile(r"(-?)(?:(\d+(?:\.\d+)?)|\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?|(\d+)/(\d+))")
_TEXT_ALTERNATIVES = ("even", "odd", "neither", "none", "yes", "no", "Monday", "Friday")
_SWAPS = (("<", ">"), ("\\le", "\\ge"), ("increasing", "decreasing"), ("positive", "negative"),
          ("maximum", "minimum"), ("+", "-"))
_WRONG_CLAIMS = (" This means the two cases must give the same count.",
                 " So we may drop the last condition without changing anything.",
                 " Hence only the positive case needs to be considered.")


def split_steps(solution: str, answer: str) -> list[str]:
    """Reference steps: paragraphs, long ones cut at sentence ends outside math, tiny pieces merged. The
    last step holds \\boxed{answer} (steps after the last \\boxed are dropped; one is added if none has it)."""
    paragraphs = [p.strip() for p in _PARAGRAPH.split(_ASY.sub("", solution)) if p.strip()]
    merged: list[str] = []
    for paragraph in paragraphs:
        if merged and len(merged[-1]) < MIN_TAIL_CHARS:
            merged[-1] = merged[-1] + "\n" + paragraph
        else:
            merged.append(paragraph)
    steps = [group for paragraph in merged for group in _sentence_groups(paragraph)]
    boxed_at = [i for i, step in enumerate(steps) if boxed_span(step)]
    if not boxed_at:
        return steps + [f"Therefore, the final answer is $\\boxed{{{answer}}}$."]
    steps = steps[:boxed_at[-1] + 1]
    start, end = boxed_span(steps[-1])
    steps[-1] = steps[-1][:start] + answer + steps[-1][end:]
    return steps


def _sentence_groups(paragraph: str) -> list[str]:
    """Cut a paragraph into groups of whole sentences of at least MIN_STEP_CHARS characters."""
    toggles = [m.start() for m in _MATH_TOGGLE.finditer(paragraph) if m.group() != "\\$"]
    bounds, begin = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        at = match.start()
        if paragraph[:at].endswith(_ABBREVIATIONS) or _in_math(toggles, paragraph, at):
            continue
        end = at + (1 if paragraph[at] == "$" else 0)
        if end - begin >= MIN_STEP_CHARS:
            bounds.append((begin, end))
            begin = match.end()
    if bounds and len(paragraph) - begin < MIN_TAIL_CHARS:
        begin = bounds.pop()[0]
    bounds.append((begin, len(paragraph)))
    return [paragraph[b:e].strip() for b, e in bounds if paragraph[b:e].strip()]


def _in_math(toggles: list[int], text: str, position: int) -> bool:
    """Whether `position` lies inside $...$, $$...$$, \\[...\\] or an environment (a closing "$" just before
    the position counts as outside)."""
    depth_dollar, depth_other = False, 0
    for i in toggles[:bisect.bisect_left(toggles, position)]:
        token = text[i:i + 2]
        if token == "$$" or text[i] == "$":
            depth_dollar = not depth_dollar
        elif token in ("\\[", "\\b"):
            depth_other += 1
        elif depth_other:
            depth_other -= 1
    if depth_dollar and text[position] == "$":
        depth_dollar = False
    return depth_dollar or depth_other > 0


# Integers longer than this are treated as text (Python refuses to convert over 4,300 digits by default).
MAX_DIGITS = 1000


def perturb_step(text: str, variant: int, salt: str) -> str:
    """A wrong version of a step: one number changed, else a relation flipped, else a false claim added."""
    rng = random.Random(f"{salt}/perturb/{variant}")
    numbers = [m for m in _INTEGER.finditer(text) if len(m.group()) <= MAX_DIGITS]
    if numbers:
        match = numbers[rng.randrange(len(numbers))]
        value = int(match.group())
        new = value + 1 + variant if value < 2 or rng.random() < 0.6 else value - 1 - variant
        return text[:match.start()] + str(new) + text[match.end():]
    for a, b in _SWAPS:
        for old, new in ((a, b), (b, a)):
            if old in text:
                i = text.find(old)
                return text[:i] + new + text[i + len(old):]
    return text + _WRONG_CLAIMS[variant % len(_WRONG_CLAIMS)]


def wrong_answer_pool(answer: str, size: int, salt: str) -> list[str]:
    """Up to `size` wrong answers, distinct from the reference and from each other: an integer in the answer
    changed, another choice letter or word, else the answer negated, doubled, shifted or halved. Plain
    numbers and fractions are compared by value. Ordered by a per-problem shuffle; the first is likeliest."""
    answer = answer.strip()
    choice = _CHOICE.match(answer)
    text = _TEXT_ANSWER.fullmatch(answer)
    integers = [m for m in _INTEGER.finditer(answer)
                if not _decoration(answer, m.start()) and len(m.group()) <= MAX_DIGITS][:4]
    candidates = []
    if choice:
        candidates += [answer.replace(choice.group(2), c, 1) for c in "ABCDE" if c != choice.group(2)]
    elif integers:
        for match in integers:
            value = int(match.group())
            for new in (value + 1, value - 1, value + 2, 2 * value, value + 10, 3 * value, value - 2,
                        value + 3, value + 5):
                if new >= 0 and new != value:
                    candidates.append(answer[:match.start()] + str(new) + answer[match.end():])
    elif text:
        candidates += [f"\\text{{{w}}}" for w in _TEXT_ALTERNATIVES if w.lower() != text.group(1).lower()]
    else:
        wrapped = f"({answer})" if re.search(r"[+\-]", answer.lstrip("-")) else answer
        candidates += [answer[1:] if answer.startswith("-") else f"-{wrapped}", f"2{wrapped}",
                       f"{answer}+1", f"\\frac{{{answer}}}{{2}}"]
    random.Random(f"{salt}/pool").shuffle(candidates)
    seen, pool = {_identity(answer)}, []
    for candidate in candidates:
        key = _identity(candidate)
        if key not in seen:
            seen.add(key)
            pool.append(candidate)
        if len(pool) == size:
            break
    return pool


def _decoration(answer: str, at: int) -> bool:
    """Whether the integer at `at` is a base subscript (52_8) or the power of a unit (cm}^2): graders
    ignore those, so changing them would not make the answer wrong."""
    before = answer[:at].rstrip("{")
    return before.endswith("_") or before.endswith("}^") and ("\\mbox" in answer or "\\text" in answer)


def _identity(answer: str) -> object:
    """What two answers must share to count as the same: the value of a plain number or fraction, else the
    text without spaces."""
    squashed = re.sub(r"\s+", "", answer)
    match = _NUMBER.fullmatch(squashed) if len(squashed) <= MAX_DIGITS else None
    if match:
        sign, whole, numerator, denominator, top, bottom = match.groups()
        numerator, denominator = numerator or top, denominator or bottom
        if whole is not None:
            value = Fraction(whole)
        elif int(denominator) == 0:
            return squashed
        else:
            value = Fraction(int(numerator), int(denominator))
        return -value if sign else value
    return squashed
