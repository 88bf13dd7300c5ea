"""Final answers out of model responses and references, in time linear in the text.

Policy for a response (`extract_answer`):
1. `\\boxed{...}` / `\\fbox{...}`: the last complete top-level box, joined with the boxes just before it
   when only a connective separates them (", ", "\\quad", or up to four words with "and"/"or", so
   `\\boxed{-2} and \\boxed{1}` gives "-2, 1" and `\\boxed{1} papers and \\boxed{2} bins` "1, 2"); a box
   behind prose (a draft, a re-check) is not joined. A part boxed twice counts once. A box never closed
   (a truncated response) is ignored.
2. A "final answer is $X$" after the last box (Minerva-style endings) overrides it.
3. No box: the whole text when it is itself a bare answer (short, no math delimiters, at most two words
   and no verb: "28 percent", "x^2+y^2=1").
4. Otherwise the last answer-like item (a math span `$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`, or a number)
   after the last "answer is" / "answer:" phrase, else in the text's last part. Inline math, like
   math-verify's, never spans a line break. Truncated responses therefore yield their last number:
   callers that must not count them check the finish reason.
"""

from __future__ import annotations

import re

# A response's answer lies at its end; the fallbacks read only this much of it, so they stay linear and cheap.
TAIL_CHARS = 3_000
MAX_BARE_CHARS = 200  # a bare answer longer than this is taken to be a response
_MAX_BARE_WORDS = 2
_SENTENCE_WORDS = frozenset({"is", "are", "was", "were", "equals", "be", "get", "gives", "answer"})

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*\{")
_BOX_NO_BRACE = re.compile(r"\\boxed +([^\s${}]+)")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)
# What may stand between two boxes that are parts of one answer: delimiters, spacing, punctuation and
# at most a few words that include a joining word ("and", "or").
_CONNECTOR_NOISE = re.compile(r"\$|\\[\[\]()]|\\q?quad\b|\\[,;:! ]|\\text(?:bf|rm|normal)?\b|[{}~.]|\s+")
_JOINING_WORDS = frozenset({"and", "or"})
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_MAX_CONNECTOR_CHARS = 60
_MAX_CONNECTOR_WORDS = 4
_MAX_UNWRAP = 3

_MATH_SPAN = re.compile(
    r"\$\$(?P<dd>[^$]{1,2000}?)\$\$"
    r"|\\\[(?P<db>(?:[^\\]|\\(?!\])){1,2000}?)\\\]"
    r"|\\\((?P<ip>(?:[^\\\n]|\\(?!\))){1,2000}?)\\\)"
    r"|(?<![\\$])\$(?P<id>(?:\\\$|[^\n$]){1,2000}?)(?<!\\)\$"
)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?(?:/\d+)?(?!\d)")
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
# Text between math delimiters that do not make a valid span (inline math broken over lines): not read.
_BROKEN_MATH = re.compile(r"(?<!\\)\$[^$]{0,2000}\$|\\\((?:[^\\]|\\(?!\))){0,2000}\\\)")
_ANSWER_PHRASE = re.compile(r"(?i)\banswer\b(?:[^.\n:]{0,40}?\bis\b|\s*:)")
_FINAL_ANSWER_IS = re.compile(r"(?i)\bfinal answer is\b:?")
_MATH_DELIMITER = re.compile(r"\$|\\[\[(]")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_GSM8K_MARK = "####"


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start of `\\boxed{`, index after its closing brace, content) for each complete top-level box; a
    box nested in another is part of the outer one's content.

    One pass pairs every brace (escaped `\\{`, `\\}` are literal), so an unclosed box costs nothing extra
    and contents never overlap: linear in the text.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    closing = _pair_braces(text)
    spans: list[tuple[int, int, str]] = []
    for match in _BOX.finditer(text):
        opening = match.end() - 1
        end = closing.get(opening)
        if end is not None and (not spans or match.start() >= spans[-1][1]):
            spans.append((match.start(), end + 1, text[opening + 1:end]))
    return spans


def _pair_braces(text: str) -> dict[int, int]:
    open_at: list[int] = []
    closing: dict[int, int] = {}
    for token in _BRACE_TOKEN.finditer(text):
        char = token.group()
        if char == "{":
            open_at.append(token.start())
        elif char == "}" and open_at:
            closing[open_at.pop()] = token.start()
    return closing


def extract_answer(text: str) -> str | None:
    """The final answer of a model response (see the module's policy), or None when it gives none."""
    spans = [s for s in boxed_spans(text) if s[2].strip()]
    stated = _stated_after(text, spans[-1][1] if spans else 0)
    if stated is not None:
        return stated
    if spans:
        return _joined_boxes(text, spans)
    if "\\boxed" in text or "\\fbox" in text:
        loose = _last_match(_BOX_NO_BRACE, text)  # "\boxed 5"
        if loose is not None:
            return loose.group(1).rstrip(".") or None
    if is_bare_answer(text):
        return strip_delimiters(text) or None
    return _last_item(text)


def _stated_after(text: str, position: int) -> str | None:
    """The math or number right after a "final answer is" that comes after `position` (Minerva-style
    "Final Answer: The final answer is $7$. I hope it is correct." after a boxed draft)."""
    start = max(position, len(text) - TAIL_CHARS)
    phrase = _last_match(_FINAL_ANSWER_IS, text[start:])
    if phrase is None:
        return None
    rest = text[start + phrase.end():].lstrip()
    end = _SENTENCE_END.search(rest)
    segment = rest[:end.start()] if end and end.start() > 0 else rest
    spans = [(m.start(), m.end(), _span_content(m)) for m in _MATH_SPAN.finditer(segment)]
    if len(spans) > 1:  # "$12$ and $13$"
        return _joined_boxes(segment, spans)
    return _last_in(segment)


def _joined_boxes(text: str, spans: list[tuple[int, int, str]]) -> str:
    """The last span's content, joined with those just before it that only a connective separates;
    a part repeated (the same answer boxed twice) counts once."""
    first = len(spans) - 1
    while first > 0 and _joins(text[spans[first - 1][1]:spans[first][0]]):
        first -= 1
    parts = dict.fromkeys(_unwrap_box(content.strip()) for _, _, content in spans[first:])
    return ", ".join(parts)


def _joins(between: str) -> bool:
    """Whether the text between two boxes only joins them ("and", ", ", "\\quad", a unit word)."""
    if len(between) > _MAX_CONNECTOR_CHARS or "\n\n" in between:
        return False
    words = _WORD.findall(_CONNECTOR_NOISE.sub(" ", between))
    if not words:  # only punctuation and symbols: ", ", "; ", "\quad"
        return True
    return len(words) <= _MAX_CONNECTOR_WORDS and any(w.lower() in _JOINING_WORDS for w in words)


def _unwrap_box(content: str) -> str:
    """`\\boxed{\\boxed{5}}` is 5 (a few levels deep: each level costs a pass over the content)."""
    for _ in range(_MAX_UNWRAP):
        if not content.startswith(("\\boxed", "\\fbox")):
            break
        inner = boxed_spans(content)
        if not inner or inner[0][0] != 0 or inner[0][1] != len(content):
            break
        content = inner[0][2].strip()
    return content


def is_bare_answer(text: str) -> bool:
    """A short text with no math delimiters and at most two words, none of them a verb ("28 percent",
    "x^2+1", "Evelyn"; not "The total is 18"): an answer on its own, not a response to search."""
    stripped = strip_delimiters(text)
    if not stripped or len(stripped) > MAX_BARE_CHARS or "\n" in stripped:
        return False
    if _MATH_DELIMITER.search(stripped) or "\\boxed" in stripped:
        return False
    words = _WORD.findall(stripped)
    return len(words) <= _MAX_BARE_WORDS and not any(w.lower() in _SENTENCE_WORDS for w in words)


def strip_delimiters(text: str) -> str:
    """`$x$`, `$$x$$`, `\\(x\\)`, `\\[x\\]` and a final full stop around a whole answer removed."""
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            inner = text[len(left):-len(right)]
            if left != "$" or "$" not in inner.replace("\\$", ""):
                text = inner.strip()
                break
    return text.rstrip(".").strip() if not text.endswith("\\.") else text


def _last_item(text: str) -> str | None:
    """The last math span or number after the last answer phrase (up to the sentence's end), else in the
    text's tail."""
    tail = text[-TAIL_CHARS:]
    phrase = _last_match(_ANSWER_PHRASE, tail)
    if phrase is not None:
        rest = tail[phrase.end():]
        end = _SENTENCE_END.search(rest.lstrip())
        segment = rest.lstrip()[:end.start()] if end and end.start() > 0 else rest
        found = _last_in(segment) or _last_in(rest)
        if found is not None:
            return found
    return _last_in(tail)


def _last_in(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for match in _MATH_SPAN.finditer(text):
        inner = _span_content(match)
        if inner:
            best = (match.end(), inner)
    covered = [m.span() for m in _BROKEN_MATH.finditer(text)]
    number = _last_number_outside(text, covered)
    if number is not None and (best is None or number[0] > best[0]):
        best = number
    return best[1] if best else None


def _span_content(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None).strip()


def _last_number_outside(text: str, covered: list[tuple[int, int]]) -> tuple[int, str] | None:
    last = None
    for match in _NUMBER.finditer(text):
        last = match
    if last is None or any(start <= last.start() < end for start, end in covered):
        return None
    number = last.group()
    if number.count(",") == 1 and "." not in number and not _THOUSANDS.fullmatch(number):
        number = number.replace(",", ".")  # a comma that cannot separate thousands, in prose: 2,74 is 2.74
    return last.end(), number


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):
        pass
    return last


def reference_answer(text: str) -> str:
    """The answer of a reference written MATH-style (`\\boxed{}` inside a solution), GSM8K-style
    (`... #### 1,234`) or bare (`$\\frac12$`, `7`)."""
    if _GSM8K_MARK in text:
        final = text.rsplit(_GSM8K_MARK, 1)[1].strip()
        if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", final):
            final = final.replace(",", "")
        return final
    spans = [s for s in boxed_spans(text) if s[2].strip()]
    if spans:
        return _joined_boxes(text, spans)
    unclosed = _last_match(_BOX, text)
    if unclosed is not None:  # a reference cut inside its box still holds the answer
        return strip_delimiters(text[unclosed.end():])
    return strip_delimiters(text)


def final_answer(text: str, thinking_end: str | None = None) -> str | None:
    """The final answer of a response. A long-thinking policy's answer is read after its thinking (the text
    after `thinking_end`); a trace cut inside its thinking has an answer only if it boxed one there."""
    if not thinking_end:
        return extract_answer(text)
    _, ended, after = text.partition(thinking_end)
    if ended:
        return extract_answer(after)
    return extract_answer(text) if boxed_spans(text) else None
