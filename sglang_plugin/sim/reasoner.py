"""The simulated policy's reasoning: a trajectory is a list of steps separated by a blank line; it stays on
the reference path until, at each step, it goes wrong with a hazard h chosen so that a full trajectory of S
steps ends correct with the problem's true success rate (h = 1 - rate**(1/S)); once wrong it stays wrong and
ends in a wrong answer from a small, skewed per-problem pool.

The server keeps no per-trajectory state: each request's state (steps done, still correct or not, a step cut
short by max_new_tokens) is read back from the prompt by recognising the simulator's own steps. Text the
simulator did not write is treated conservatively: before its first step it is just prompt; between or in
place of its steps it derails the trajectory (wrong from there on), so a client can never raise accuracy by
editing the reasoning. Reward labels use the same reading: a step is correct only if it and every step
before it are recognised correct steps.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from sglang_plugin.sim.problems import Problem, ProblemBank, boxed_span, last_boxed, normalize
from sglang_plugin.sim.steps import STEP_SEPARATOR, perturb_step, split_steps, wrong_answer_pool

WRONG_VARIANTS = 2
LEADS = (("", "First, ", "To begin, "), ("", "Next, ", "Now, "), ("", "Finally, ", "So, "))
_STARTERS = frozenset(
    "We The Since Then Thus Therefore Let This Note Now First Hence To If In For By Our It There Each Using "
    "Adding Multiplying Subtracting Dividing Substituting Solving Simplifying Expanding Setting Plugging From "
    "Because When Taking Writing Squaring Combining Factoring Recall After As Also All Both Rearranging "
    "Applying Consider Notice Observe That These Given".split())
_FIRST_WORD = re.compile(r"[A-Z][a-z]+\b")
_TRAILING_SPECIALS = re.compile(r"(?:\s|<\|[^|<>\s]{1,40}\|>|</s>)+$")
SYNTHETIC_MARKER = "Step 1: "
_SYNTHETIC = re.compile(r"Step (\d+): [^$]*\$(\d+) (\+|-|\\times) (\d+) = (-?\d+)\$")
_PHRASES = ("Collecting the quantities given in the problem", "Combining the two relations",
            "Rewriting the condition in terms of one unknown", "Substituting the value found so far",
            "Counting the remaining cases", "Simplifying the expression")


@dataclass(frozen=True)
class Step:
    """One way to write step `index`: its text, whether it is correct, and the boxed answer of a last step."""
    index: int
    text: str
    correct: bool
    answer: str | None = None


@dataclass
class Spec:
    """Everything the simulator knows about one problem's trajectories."""
    key: str
    rate: float
    answer: str | None
    options: list[list[Step]]
    wrong_answers: list[str]
    wrong_weights: list[float]
    synthetic: bool = False
    _lookup: list[dict[str, Step]] = field(default_factory=list, repr=False)
    _longest_first: list[list[Step]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._lookup = [{o.text: o for o in opts} for opts in self.options]
        self._longest_first = [sorted(opts, key=lambda o: -len(o.text)) for opts in self.options]

    @property
    def num_steps(self) -> int:
        return len(self.options)

    @property
    def hazard(self) -> float:
        return 1.0 - self.rate ** (1.0 / self.num_steps) if self.rate > 0 else 1.0

    def match(self, index: int, segment: str) -> Step | None:
        """The option of step `index` that `segment` is, or ends with (a client may prefix a label)."""
        if index >= self.num_steps:
            return None
        found = self._lookup[index].get(segment)
        if found is None:
            for option in self._longest_first[index]:
                if segment.endswith(option.text) and _boundary(segment, len(segment) - len(option.text)):
                    return option
            if self.synthetic:
                return judge_synthetic(segment, index, self.answer, self.num_steps)
        return found

    def draw(self, index: int, correct: bool, rng: random.Random) -> Step:
        options = [o for o in self.options[index] if o.correct == correct]
        if not correct and index == self.num_steps - 1 and self.wrong_answers:
            answer = rng.choices(self.wrong_answers, weights=self.wrong_weights)[0]
            options = [o for o in options if o.answer == answer] or options
        return options[rng.randrange(len(options))]


@dataclass
class State:
    """A trajectory read back from a prompt. `next_step` is the step being written (if `partial`) or to
    write next; `separator` is what must precede the next step; `spans` locate the steps in the text."""
    next_step: int = 0
    correct: bool = True
    finished: bool = False
    partial: str = ""
    partial_options: list[Step] = field(default_factory=list)
    separator: str = ""
    spans: list[tuple[int, int, Step | None, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """Generated text with the step it belongs to (None for separators), the trajectory's correctness, and
    where in the step's text it starts (a step cut short is resumed mid-way)."""
    text: str
    step: Step | None
    correct: bool
    offset: int = 0


class Reasoner:
    """Maps prompts to problem specs and samples continuations. `default_rate` is used for problems that are
    not in the bank; their steps are synthetic arithmetic steps ("Step k: ... $a + b = c$.") whose
    correctness a reward model can check without knowing the problem."""

    def __init__(self, bank: ProblemBank | None = None, *, default_rate: float = 0.5,
                 wrong_pool_size: int = 4, wrong_skew: float = 0.5, cache_size: int = 4096) -> None:
        if not 0.0 <= default_rate <= 1.0:
            raise ValueError(f"default_rate must be in [0, 1], got {default_rate}")
        if wrong_pool_size < 1:
            raise ValueError(f"wrong_pool_size must be at least 1, got {wrong_pool_size}")
        if not 0.0 < wrong_skew <= 1.0:
            raise ValueError(f"wrong_skew must be in (0, 1], got {wrong_skew}")
        self.bank = bank if bank is not None else ProblemBank([])
        self.default_rate = default_rate
        self.wrong_pool_size = wrong_pool_size
        self.wrong_skew = wrong_skew
        self._known: dict[str, Spec] = {}
        self._unknown: OrderedDict[str, Spec] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def spec_for(self, problem: Problem | str) -> Spec:
        """The spec of a known problem (or of a problem text, known or not) — for tests and benchmarks."""
        if isinstance(problem, str):
            known = self.bank.get(problem)
            return self.spec_for(known) if known else self._unknown_spec(normalize(problem))
        spec = self._known.get(problem.text)
        if spec is None:
            spec = self._build_known(problem)
            self._known[problem.text] = spec
        return spec

    def locate(self, text: str) -> tuple[Spec, int, bool]:
        """(spec, offset where the trajectory may start, whether the problem is known) for a prompt."""
        found = self.bank.find(text)
        if found is not None:
            problem, end = found
            return self.spec_for(problem), end, True
        marker = text.rfind(SYNTHETIC_MARKER)
        start = marker if marker >= 0 else len(text)
        return self._unknown_spec(normalize(text[:start])), start, False

    def parse(self, spec: Spec, text: str) -> State:
        """Read the trajectory written so far in `text` (the prompt after the problem)."""
        state = State()
        segments, offsets, pos = text.split(STEP_SEPARATOR), [], 0
        for segment in segments:
            offsets.append(pos)
            pos += len(segment) + len(STEP_SEPARATOR)
        start = next((t for t in range(len(segments) - 1) if spec.match(0, segments[t].strip())), None)
        if start is not None:
            for t in range(start, len(segments) - 1):
                self._consume(spec, state, segments[t], offsets[t])
        last, last_at = segments[-1], offsets[-1]
        if state.finished:
            return state
        if start is None:
            complete = spec.match(0, last.rstrip())
            if complete is None:
                return self._partial_first(spec, state, last)
        else:
            complete = spec.match(state.next_step, last.strip()) if last.strip() else None
        if not last.strip():
            state.separator = ""
            return state
        if complete is not None:
            self._consume(spec, state, last, last_at)
            trailing = last[len(last.rstrip()):]
            state.separator = STEP_SEPARATOR[len(trailing):] if STEP_SEPARATOR.startswith(trailing) \
                else STEP_SEPARATOR
            return state
        body = last.lstrip()
        options = [o for o in spec.options[state.next_step] if o.text.startswith(body)] \
            if state.next_step < len(spec.options) else []
        if options:
            state.partial, state.partial_options = body, options
        else:
            self._derail(spec, state)
        return state

    def _consume(self, spec: Spec, state: State, segment: str, at: int) -> None:
        if state.finished:
            return
        stripped = segment.strip()
        step = spec.match(state.next_step, stripped)
        begin = at + segment.find(stripped) if stripped else at
        if step is None:
            state.correct = False
        else:
            state.correct = state.correct and step.correct
            begin = at + segment.rfind(step.text) if step.text in segment else begin
        state.spans.append((begin, at + len(segment.rstrip()), step, state.correct))
        state.next_step += 1
        if state.next_step >= spec.num_steps:
            if step is not None and step.index == spec.num_steps - 1:
                state.finished = True
            else:
                state.next_step = spec.num_steps - 1
        state.separator = STEP_SEPARATOR

    def _partial_first(self, spec: Spec, state: State, last: str) -> State:
        """The prompt has no complete step yet: it may end with the beginning of step 0 after the template."""
        best = 0
        for option in spec.options[0] if spec.options and last else ():
            text = option.text
            i = text.rfind(last[-1], 0, min(len(text), len(last)))
            while i + 1 > best:
                if last.endswith(text[:i + 1]) and _boundary(last, len(last) - i - 1):
                    best = i + 1
                    break
                i = text.rfind(last[-1], 0, i)
        if best:
            body = last[len(last) - best:]
            state.partial = body
            state.partial_options = [o for o in spec.options[0] if o.text.startswith(body)]
        return state

    def _derail(self, spec: Spec, state: State) -> None:
        """Text in place of the next step that is none of its versions: wrong from here on."""
        state.correct = False
        state.next_step = min(state.next_step, spec.num_steps - 1)
        state.separator = STEP_SEPARATOR

    def continue_trajectory(self, spec: Spec, state: State, rng: random.Random) -> list[Chunk]:
        """Sample the rest of the trajectory (without the end-of-sequence token)."""
        if state.finished:
            return []
        chunks, correct, index, hazard = [], state.correct, state.next_step, spec.hazard
        separator = state.separator
        if state.partial:
            options = state.partial_options
            right = [o for o in options if o.correct]
            wrong = [o for o in options if not o.correct]
            if correct and right and wrong:
                correct = rng.random() >= hazard
            elif correct and not right:
                correct = False
            pool = (right if correct else wrong) or options
            step = _pick(spec, pool, index, correct, rng)
            chunks.append(Chunk(step.text[len(state.partial):], step, correct, len(state.partial)))
            index, separator = index + 1, STEP_SEPARATOR
        while index < spec.num_steps:
            if correct and rng.random() < hazard:
                correct = False
            step = spec.draw(index, correct, rng)
            if separator:
                chunks.append(Chunk(separator, None, correct))
            chunks.append(Chunk(step.text, step, correct))
            index, separator = index + 1, STEP_SEPARATOR
        return chunks

    def step_labels(self, text: str, cuts: list[tuple[int, int]]) -> list[bool]:
        """Correct-so-far label of the step that ends at each cut (start, end) of `text`: the pieces between
        cuts (e.g. PRM step tags) are read as consecutive steps of the problem found before the first cut."""
        head = text[:cuts[0][0]] if cuts else text
        found = self.bank.find(head)
        spec = self.spec_for(found[0]) if found else _JUDGE
        begin = found[1] if found else max(0, head.rfind(SYNTHETIC_MARKER))
        labels, correct, index = [], True, 0
        for start, end in cuts:
            piece = text[begin:start].strip()
            step = spec.match(index, piece) if index < spec.num_steps else None
            correct = correct and step is not None and step.correct
            labels.append(correct)
            index, begin = index + 1, end
        return labels

    def outcome_label(self, text: str) -> bool:
        """Whether a (possibly partial) solution is still correct: some step recognised, every step
        recognised and correct, and a last step cut short still able to become the correct step. Special
        tokens closing the text (a reward model's chat template: "<|im_end|>", "<|endoftext|>") are ignored."""
        text = _TRAILING_SPECIALS.sub("", text)
        spec, start, known = self.locate(text)
        if not known:
            spec = _JUDGE
        state = self.parse(spec, text[start:])
        if state.partial:
            return state.correct and any(o.correct for o in state.partial_options)
        return state.correct and bool(state.spans)

    def _build_known(self, problem: Problem) -> Spec:
        key = _digest(normalize(problem.text))
        if problem.solution:
            steps = split_steps(problem.solution, problem.answer)
            return self._spec_from_steps(key, problem.rate, problem.answer, steps)
        return self._synthetic(key, problem.rate, problem.answer)

    def _unknown_spec(self, identity: str) -> Spec:
        key = _digest(identity)
        with self._lock:
            spec = self._unknown.get(key)
        if spec is None:
            spec = self._synthetic(key, self.default_rate, None)
            with self._lock:
                self._unknown[key] = spec
                if len(self._unknown) > self._cache_size:
                    self._unknown.popitem(last=False)
        return spec

    def _spec_from_steps(self, key: str, rate: float, answer: str, steps: list[str]) -> Spec:
        pool = wrong_answer_pool(answer, self.wrong_pool_size, key)
        options = []
        for index, text in enumerate(steps):
            leads = LEADS[0] if index == 0 else LEADS[2] if index == len(steps) - 1 else LEADS[1]
            right = [Step(index, _lead(lead, text), True, answer if index == len(steps) - 1 else None)
                     for lead in leads]
            if index < len(steps) - 1:
                wrong = [Step(index, _lead(lead, perturb_step(text, v, f"{key}/{index}")), False)
                         for lead in leads for v in range(WRONG_VARIANTS)]
            else:
                start, end = boxed_span(text)
                wrong = [Step(index, _lead(lead, text[:start] + a + text[end:]), False, a)
                         for lead in leads for a in pool]
            options.append(_unique(right + wrong))
        return Spec(key, rate, answer, options, pool, self._weights(len(pool)))

    def _synthetic(self, key: str, rate: float, answer: str | None) -> Spec:
        """Arithmetic steps; the last gives the known answer, or for an unknown problem the last result."""
        rng = random.Random(f"{key}/synthetic")
        count = rng.randint(3, 6)
        options = []
        for index in range(count - (1 if answer is not None else 0)):
            a, b = rng.randint(2, 60), rng.randint(2, 40)
            op = rng.choice(("+", "-", "\\times"))
            value = a + b if op == "+" else a - b if op == "-" else a * b
            phrase = _PHRASES[rng.randrange(len(_PHRASES))]
            last = answer is None and index == count - 1
            results = [(value, True)] + [(value + d, False) for d in (1, 2, -1) if not last]
            if last:
                pool = wrong_answer_pool(str(value), self.wrong_pool_size, key)
                results += [(int(p), False) for p in pool]
            steps = []
            for result, right in results:
                text = f"Step {index + 1}: {phrase}, we get ${a} {op} {b} = {result}$."
                if last:
                    text += f" So the final answer is $\\boxed{{{result}}}$."
                steps.append(Step(index, text, right, str(result) if last else None))
            options.append(steps)
        if answer is not None:
            pool = wrong_answer_pool(answer, self.wrong_pool_size, key)
            options.append([Step(count - 1, f"Step {count}: Therefore, the final answer is $\\boxed{{{a}}}$.",
                                 a == answer, a) for a in [answer] + pool])
        else:
            answer = options[-1][0].answer
            pool = [o.answer for o in options[-1][1:]]
        return Spec(key, rate, answer, options, pool, self._weights(len(pool)), synthetic=True)

    def _weights(self, count: int) -> list[float]:
        raw = [self.wrong_skew ** i for i in range(count)]
        total = sum(raw)
        return [w / total for w in raw]


def judge_synthetic(segment: str, index: int, answer: str | None, num_steps: int | None) -> Step | None:
    """Check a synthetic step by its own arithmetic (and boxed answer when the problem's answer is known)."""
    if answer is not None and num_steps is not None and index == num_steps - 1:
        if segment.startswith(f"Step {index + 1}: ") or f" Step {index + 1}: " in segment:
            boxed = last_boxed(segment)
            return Step(index, segment, boxed == answer, boxed) if boxed else None
        return None
    match = _SYNTHETIC.search(segment)
    if match is None or int(match.group(1)) != index + 1:
        return None
    a, op, b, result = int(match.group(2)), match.group(3), int(match.group(4)), int(match.group(5))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    boxed = last_boxed(segment)
    right = value == result and (boxed is None or boxed == str(result))
    return Step(index, segment, right, boxed)


class _Judge(Spec):
    """Reads synthetic steps of a problem the simulator does not know, by their arithmetic alone."""

    def __init__(self) -> None:
        super().__init__("judge", 0.0, None, [], [], [], synthetic=True)

    @property
    def num_steps(self) -> int:
        return 1 << 30

    def match(self, index: int, segment: str) -> Step | None:
        return judge_synthetic(segment, index, None, None)


_JUDGE = _Judge()


def _pick(spec: Spec, options: list[Step], index: int, correct: bool, rng: random.Random) -> Step:
    if not correct and index == spec.num_steps - 1 and spec.wrong_answers:
        answers = {o.answer for o in options}
        weighted = [(a, w) for a, w in zip(spec.wrong_answers, spec.wrong_weights) if a in answers]
        if weighted:
            answer = rng.choices([a for a, _ in weighted], weights=[w for _, w in weighted])[0]
            options = [o for o in options if o.answer == answer]
    return options[rng.randrange(len(options))]


def _lead(lead: str, text: str) -> str:
    if not lead:
        return text
    first = _FIRST_WORD.match(text)
    if first and first.group() in _STARTERS:
        if first.group().lower() == lead.rstrip(", ").lower():
            return text
        return lead + text[0].lower() + text[1:]
    return lead + text


def _unique(steps: list[Step]) -> list[Step]:
    seen, out = set(), []
    for step in steps:
        if step.text not in seen:
            seen.add(step.text)
            out.append(step)
    return out


def _boundary(text: str, at: int) -> bool:
    """Whether a match starting at `at` begins a word (start of text, or after whitespace or punctuation)."""
    return at == 0 or not text[at - 1].isalnum()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
