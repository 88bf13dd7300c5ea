"""The cheap, exact side of grading: a presentational key and exact plain numbers.

Both only ever decide what the full (math-verify) check would decide too: two answers with the same key
are written the same way up to presentation (`\\left(`, `\\dfrac`, `$`, `\\$`, spaces that LaTeX ignores),
and plain numbers are compared exactly, declared different only where math-verify's own float rounding
(6 decimal places, 15 significant digits) could not make them equal. Nothing here converts a long digit
string to int, so a 5,000-digit answer is handled like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\s+|.", re.DOTALL)
_DROPPED = frozenset({"\\left", "\\right", "\\displaystyle", "\\$", "$", "\\big", "\\Big", "\\bigg", "\\Bigg",
                      "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl", "\\Biggr"})
_RENAMED = {"\\dfrac": "\\frac", "\\tfrac": "\\frac"}
_WORDLIKE = re.compile(r"[A-Za-z0-9]")

# Plain numbers: 12, -0.5, .5, 1,234 / 1{,}234 / 1,\!234 / 1\,234 / 1 234 (thousands), \frac{3}{4}, 3/4.
_SEPARATOR = r"(?:,\\!|\{,\}|\\,|,| )"
# A comma after 4 or more digits and before 1 or 2 can separate no thousands: 1000,99 is 1000.99.
_DECIMAL = re.compile(rf"([-+]?)((?:[1-9]\d{{0,2}}(?:{_SEPARATOR}\d{{3}})+)|\d+|(?=\.\d))(?:\.(\d*))?"
                      r"|([-+]?)([1-9]\d{3,}),(\d{1,2})")
_FRACTION = re.compile(r"([-+]?)(?:\\frac\{([-+]?\d+)\}\{(\d+)\}|\\frac(\d)(\d)|(\d+)/(\d+))")
# A number followed only by plain words ("10 weeks", "125 miles"): the words are a unit, as MARIO_EVAL and the
# MATH grader read them (math-verify already drops units written with \text or "square units").
_NUMBER_THEN_WORDS = re.compile(r"([-+]?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z]{3,}(?:\s+[A-Za-z]{3,}){0,2}")
MAX_DIGITS = 1_000  # longer numbers are compared as text, never converted
_FLOAT_PLACES = 6  # math-verify rounds floats to this many decimal places
_FLOAT_DIGITS = 15  # and evaluates numbers to this many significant digits


def normalize(answer: str) -> str:
    """A key that two answers share only when they are written the same way up to presentation."""
    parts: list[str] = []
    pending_space = False
    for token in _TOKEN.findall(answer.strip()):
        if token in _DROPPED:
            continue
        if token.isspace():
            pending_space = bool(parts)
            continue
        token = _RENAMED.get(token, token)
        if pending_space and _space_matters(parts[-1], token):
            parts.append(" ")
        pending_space = False
        parts.append(token)
    while parts and parts[-1] in (".", " "):
        parts.pop()
    return "".join(parts)


def _space_matters(before: str, after: str) -> bool:
    """A space separates two words or digits ("1 2" is not "12"), ends a command before a letter
    ("\\pi r"), and follows a comma before a digit ("32, 349" is a list, "32,349" a number)."""
    if before == ",":
        return after[0].isdigit()
    return bool(_WORDLIKE.match(before[-1]) and _WORDLIKE.match(after[0]))


def without_unit_words(answer: str) -> str:
    """`10 weeks` is 10; anything else is returned as it is."""
    match = _NUMBER_THEN_WORDS.fullmatch(answer)
    return match.group(1) if match else answer


@dataclass(frozen=True)
class PlainNumber:
    """An exactly known number and whether math-verify would see it as a float (and how precisely)."""

    value: Fraction
    places: int | None  # decimal places as written; None for an integer or a fraction
    digits: int

    def surely_different(self, other: PlainNumber) -> bool:
        """Unequal, and no float rounding could make math-verify call them equal (1/3 and 0.333333 could)."""
        if self.value == other.value:
            return False
        if self.places is None and other.places is None:  # integers and fractions: exact on both sides
            return True
        return self._rounds_to_itself() and other._rounds_to_itself()

    def _rounds_to_itself(self) -> bool:
        """Rounding to math-verify's 6 places at 15 significant digits leaves this number unchanged."""
        if self.digits > _FLOAT_DIGITS:
            return False
        if self.places is not None:
            return self.places <= _FLOAT_PLACES
        return (self.value * 10 ** _FLOAT_PLACES).denominator == 1


def plain_number(key: str) -> PlainNumber | None:
    """The exact value of a normalised answer that is a plain number, else None."""
    if len(key) > MAX_DIGITS + 20:
        return None
    match = _DECIMAL.fullmatch(key)
    if match:
        sign, whole, fraction = match.groups()[:3] if match.group(2) is not None else match.groups()[3:]
        whole = re.sub(_SEPARATOR, "", whole) or "0"
        fraction = fraction or ""
        value = Fraction(int(whole + fraction), 10 ** len(fraction))
        places = len(fraction) if match.group(3) is not None or match.group(6) is not None else None
        digits = len((whole + fraction).lstrip("0")) or 1
        return PlainNumber(-value if sign == "-" else value, places, digits)
    match = _FRACTION.fullmatch(key)
    if match:
        sign, top, bottom, short_top, short_bottom, slash_top, slash_bottom = match.groups()
        numerator = int(top or short_top or slash_top)
        denominator = int(bottom or short_bottom or slash_bottom)
        if denominator == 0:
            return None
        value = Fraction(numerator, denominator)
        return PlainNumber(-value if sign == "-" else value, None, len(str(numerator)) + len(str(denominator)))
    return None
