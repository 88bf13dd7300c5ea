"""The long-thinking profile: traces of `<think>...</think>` (or, for gpt-oss, harmony's analysis channel)
thousands of tokens long, then a short answer ending in \\boxed{...}, with per-token top-k logprobs whose
confidence has DeepConf's structure.

Definitions (DeepConf, arXiv 2508.15260, and its reference code): token confidence C_i = -(1/k) * sum of the
k top logprobs at position i (k = the request's top_logprobs_num); group confidence = mean of C_i over a
sliding window (2048 tokens there); a trace's score = its lowest group confidence (the mean of all C_i when
the trace is shorter than the window).

The model. Every trace of a problem draws its correctness at the problem's rate, then:
- length: thinking tokens ~ lognormal around a median that grows as the problem's success rate falls, times
  `wrong_length_ratio` for wrong traces; cut by max_new_tokens (a trace cut inside its thinking has no
  `</think>` and no answer);
- confidence: a per-problem base level plus a per-trace offset, a per-token pattern (mostly confident
  tokens, some low-confidence "forks") that repeats every NOISE_PERIOD tokens and sums to zero over a period,
  and low-confidence stretches ("dips"). The deepest dip of a trace lowers the lowest window mean by D
  below the trace's base; D is lognormal and larger on wrong traces by a shift solved so that the within-
  problem AUROC of the trace score (default window, k = DEFAULT_TOP_K) between correct and wrong traces is
  `confidence_auroc`. Shallower decoy dips lie at least a window away. Because the per-token pattern sums to
  zero over every window whose length is a multiple of NOISE_PERIOD, a trace's score with the default
  window is exactly base - D: the stated AUROC holds by construction, and a client stopping a trace early
  sees the dip only once it has been generated.

CPU: text comes from a fixed tape of filler tokens (sliced, not sampled token by token); per-token levels are
numpy slices; logprob entries are JSON fragments cached per (k, level), joined per chunk.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from sglang_plugin.sim.scores import units

_NORMAL = NormalDist()
DEFAULT_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
DEFAULT_CONTEXT = 131072
DEFAULT_TOP_K = 20
DEFAULT_WINDOW = 2048
NOISE_PERIOD = 256           # divides 2048, 1024, 512, 256: windows of those lengths see a zero-sum pattern
LEVEL_SCALE = 100            # per-token confidence levels are integers in hundredths of C (k = DEFAULT_TOP_K)
MIN_X = 3.0                  # smallest alternative gap (nats): keeps the sampled token the most likely one
MAX_X = 40.0
MAX_TOP_K = 128
TAPE_TOKENS = 1 << 16


@dataclass(frozen=True)
class ThinkingFormat:
    """How a family of long-thinking models writes a trace: the text that opens and closes its thinking (special
    tokens in it are single tokens), its special tokens (dropped from the text by skip_special_tokens), its added
    tokens (single tokens that are kept), its end of sequence and SGLang's reasoning parser for it."""

    name: str
    open: str
    close: str
    specials: tuple[str, ...]
    eos: str
    reasoning_parser: str
    added: tuple[str, ...] = ()


# DeepSeek-R1 distills (and Qwen3 in thinking mode): "<think>" and "</think>" are added tokens, kept in the text.
R1 = ThinkingFormat("deepseek-r1", "<think>\n", "\n</think>\n\n",
                    ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"),
                    "<｜end▁of▁sentence｜>", "deepseek-r1", added=("<think>", "</think>"))
# gpt-oss (OpenAI's harmony format): reasoning in the analysis channel, the answer in the final channel, every
# marker a special token, so a server's default skip_special_tokens leaves "analysis...assistantfinal..." in the
# text; a generation ends with <|return|>.
HARMONY = ThinkingFormat("gpt-oss", "<|channel|>analysis<|message|>",
                         "<|end|><|start|>assistant<|channel|>final<|message|>",
                         ("<|startoftext|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>",
                          "<|return|>", "<|call|>"), "<|return|>", "gpt-oss")


def thinking_format(model_path: str) -> ThinkingFormat:
    """The format a served model path writes in: harmony for gpt-oss, else R1's."""
    return HARMONY if "gpt-oss" in model_path.lower() else R1

_STARTERS = ("Wait", "So", "Let", "Hmm", "Now", "Then", "Maybe", "Okay", "But", "Also", "Check", "Right")
_WORDS = (" the", " value", " sum", " is", " we", " need", " to", " check", " case", " then", " so", " that",
          " this", " term", " gives", " each", " both", " side", " must", " equal", " if", " it", " works",
          " again", " count", " add", " all", " next", " step", " a", " one", " other", " same", " part",
          " and", " not", " back", " first", " last", " root", " these", " form", " fine", " holds", " means",
          " since", " when", " case", " makes", " sense")
_ALTERNATIVES = (" but", " those", " there", " which", " would", " could", " where", " after", " while",
                 " until", " whole", " every", " might", " maybe", " about", " whose", " still", " only",
                 " just", " never", " here", " thus", " hence", " more", " less", " some", " many", " much",
                 " any", " few")


@dataclass(frozen=True)
class ThinkingParams:
    """The profile's parameters (see the README table for which are published measurements)."""
    easy_median_tokens: float = 1500.0     # median thinking tokens of a correct trace at success rate 1
    hard_median_tokens: float = 24000.0    # ... at success rate 0 (log-linear in between)
    problem_length_sigma: float = 0.25     # per-problem lognormal spread of that median
    trace_length_sigma: float = 0.35       # per-trace lognormal spread around the problem's median
    wrong_length_ratio: float = 1.5        # wrong traces' median length / correct traces'
    min_thinking_tokens: int = 64
    answer_tokens: tuple[int, int] = (40, 200)   # the text after </think> before the boxed line
    base_confidence: float = 17.0          # per-token confidence outside dips (k = 20 scale)
    problem_confidence_sigma: float = 1.2  # per-problem spread of that base
    trace_confidence_sigma: float = 0.35   # per-trace offset (label-free)
    dip_median: float = 1.0                # median drop of a correct trace's lowest window below its base
    dip_sigma: float = 0.5                 # lognormal spread of that drop
    dip_length: tuple[float, float] = (0.5, 1.5)  # deepest dip's length, in windows
    decoys_per_window: float = 0.12        # shallower dips per window of thinking
    fork_share: float = 0.15               # tokens that are low-confidence forks
    fork_drop: float = 4.0                 # mean extra drop of a fork (exponential), in C units


def d_prime_shift(auroc: float, dip_sigma: float, dip_median: float, trace_sigma: float) -> float:
    """The log-shift s of wrong traces' dip depth (D = m * exp(dip_sigma * z + s)) that makes
    P(score_correct > score_wrong) = auroc, where score = offset - D and offset ~ N(0, trace_sigma^2);
    by Gauss-Hermite quadrature over the two depths and bisection on s."""
    if not 0.0 < auroc < 1.0:
        raise ValueError(f"confidence AUROC must be strictly between 0 and 1, got {auroc}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    zc, zw = np.meshgrid(nodes, nodes, indexing="ij")
    wgt = np.outer(weights, weights)
    spread = max(trace_sigma * math.sqrt(2.0), 1e-9)
    erf = np.vectorize(math.erf)

    def auc(shift: float) -> float:
        dc = dip_median * np.exp(dip_sigma * zc)
        dw = dip_median * np.exp(dip_sigma * zw + shift)
        x = (dw - dc) / spread
        return float((wgt * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))).sum())

    low, high = -12.0, 12.0
    for _ in range(60):
        mid = (low + high) / 2
        if auc(mid) < auroc:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass
class TracePlan:
    """One trace: its thinking length, answer, and confidence layout (levels in hundredths of C)."""
    correct: bool
    answer: str
    thinking_tokens: int
    answer_tokens: int
    base: int
    depth: float                      # D: the trace score is base - D (default window, complete trace)
    dips: list[tuple[int, int, float]] = field(default_factory=list)  # (start, length, drop in C units)
    noise_phase: int = 0
    tape_offset: int = 0
    answer_offset: int = 0


class ThinkingModel:
    """Plans traces and builds their tokens and per-token confidence levels; shared by all requests."""

    def __init__(self, tokenizer, *, seed: int, confidence_auroc: float, window: int = DEFAULT_WINDOW,
                 params: ThinkingParams | None = None, form: ThinkingFormat = R1) -> None:
        self.params = params or ThinkingParams()
        self.seed = seed
        self.window = window
        self.confidence_auroc = confidence_auroc
        p = self.params
        self.shift = d_prime_shift(confidence_auroc, p.dip_sigma, p.dip_median, p.trace_confidence_sigma)
        self.tokenizer = tokenizer
        self._build_tape(random.Random(f"{seed}/thinking-tape"))
        self._build_noise(random.Random(f"{seed}/thinking-noise"))
        self._alt_ids = [tokenizer.piece_id(p) for p in _ALTERNATIVES]
        self._alt_ids += [tokenizer.piece_id(f" q{chr(97 + i // 26)}{chr(97 + i % 26)}")
                          for i in range(MAX_TOP_K - len(self._alt_ids) + 1)]
        self._alt_set = frozenset(self._alt_ids[:MAX_TOP_K - 1])
        self._fragments: dict[tuple[int, bool], dict[int, str]] = {}
        self.format = form
        self.open_ids = tokenizer.encode(form.open)
        self.close_ids = tokenizer.encode(form.close)

    # -- the tapes -------------------------------------------------------------------------------------

    def _build_tape(self, rng: random.Random) -> None:
        """A long run of filler paragraphs whose tokens are exactly the pieces listed (checked)."""
        texts: list[str] = []
        starts: list[int] = []
        while len(texts) < TAPE_TOKENS:
            starts.append(len(texts))
            for sentence in range(rng.randint(2, 6)):
                first = rng.choice(_STARTERS)
                texts.append(first if sentence == 0 else " " + first)
                texts += [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
                texts.append(".")
            texts.append("\n\n")
        tok = self.tokenizer
        ids = [tok.piece_id(t) for t in texts]
        sample = "".join(texts[:4000])
        if tok.encode(sample) != ids[:4000]:
            raise AssertionError("thinking tape pieces do not tokenize back to themselves")
        self.tape_texts = texts
        self.tape_ids = ids
        self.tape_starts = starts

    def _build_noise(self, rng: random.Random) -> None:
        """Per-token confidence offsets (hundredths), NOISE_PERIOD long, summing to exactly zero."""
        p = self.params
        values = []
        for _ in range(NOISE_PERIOD):
            if rng.random() < p.fork_share:
                values.append(-(1.5 + rng.expovariate(1.0 / p.fork_drop)))
            else:
                values.append(rng.gauss(0.6, 0.8))
        values = [min(6.0, max(-9.0, v)) for v in values]
        mean = sum(values) / len(values)
        cents = [round((v - mean) * LEVEL_SCALE) for v in values]
        residue = sum(cents)
        for i in range(abs(residue)):
            cents[i % NOISE_PERIOD] -= 1 if residue > 0 else -1
        assert sum(cents) == 0
        self._noise = np.array(cents, dtype=np.int64)

    def noise(self, phase: int, count: int) -> np.ndarray:
        reps = (phase + count) // NOISE_PERIOD + 2
        return np.tile(self._noise, reps)[phase:phase + count]

    # -- planning --------------------------------------------------------------------------------------

    def problem_traits(self, key: str, rate: float) -> tuple[float, float]:
        """(median thinking tokens of a correct trace, base confidence) of a problem."""
        p = self.params
        u1, u2 = units(self.seed, "thinking-problem", key, count=2)
        z1, z2 = _NORMAL.inv_cdf(u1), _NORMAL.inv_cdf(u2)
        median = math.exp(rate * math.log(p.easy_median_tokens) + (1.0 - rate) * math.log(p.hard_median_tokens)
                          + p.problem_length_sigma * z1)
        return median, p.base_confidence + p.problem_confidence_sigma * z2

    def plan(self, key: str, rate: float, correct: bool, answer: str, rng: random.Random) -> TracePlan:
        p, window = self.params, self.window
        median, base = self.problem_traits(key, rate)
        length = median * math.exp(p.trace_length_sigma * rng.gauss(0.0, 1.0))
        if not correct:
            length *= p.wrong_length_ratio
        thinking = max(p.min_thinking_tokens, round(length))
        base += p.trace_confidence_sigma * rng.gauss(0.0, 1.0)
        depth = p.dip_median * math.exp(p.dip_sigma * rng.gauss(0.0, 1.0) + (0.0 if correct else self.shift))
        plan = TracePlan(correct, answer, thinking, rng.randint(*p.answer_tokens), round(base * LEVEL_SCALE),
                         depth, noise_phase=rng.randrange(NOISE_PERIOD),
                         tape_offset=rng.choice(self.tape_starts), answer_offset=rng.choice(self.tape_starts))
        span = int(window * rng.uniform(*p.dip_length))
        span = max(1, min(span, thinking))
        start = rng.randrange(thinking - span + 1)
        plan.dips.append((start, span, depth))
        for _ in range(_poisson(rng, p.decoys_per_window * thinking / window)):
            d_span = max(1, min(thinking, int(window * rng.uniform(0.3, 1.2))))
            d_start = rng.randrange(thinking - d_span + 1)
            if all(d_start >= s + n + window or d_start + d_span + window <= s for s, n, _ in plan.dips):
                plan.dips.append((d_start, d_span, depth * rng.uniform(0.2, 0.8)))
        return plan

    # -- building --------------------------------------------------------------------------------------

    def thinking_pieces(self, plan: TracePlan, count: int) -> tuple[list[int], list[str]]:
        return _cyclic(self.tape_ids, plan.tape_offset, count), _cyclic(self.tape_texts, plan.tape_offset, count)

    def answer_pieces(self, plan: TracePlan) -> tuple[list[int], list[str]]:
        ids = _cyclic(self.tape_ids, plan.answer_offset, plan.answer_tokens)
        texts = _cyclic(self.tape_texts, plan.answer_offset, plan.answer_tokens)
        if texts and texts[-1] != "\n\n":
            texts.append("\n\n")
            ids.append(self.tokenizer.piece_id("\n\n"))
        line = f"Therefore, the final answer is $\\boxed{{{plan.answer}}}$."
        pieces = self.tokenizer.pieces(line)
        return ids + [self.tokenizer.piece_id(t) for t in pieces], texts + pieces

    def levels(self, plan: TracePlan, thinking_at: int, total: int, length: int) -> list[int]:
        """Per-token confidence levels (hundredths, k = DEFAULT_TOP_K) of the first `length` tokens of a trace
        of `total` tokens (more when generation goes on past the end of sequence) whose thinking starts at
        `thinking_at`, laid out so that the complete trace's lowest `window` mean is base - depth."""
        levels = plan.base + self.noise(plan.noise_phase, max(total, length))
        window = self.window
        for index, (start, span, drop) in enumerate(plan.dips):
            begin = thinking_at + start
            if total >= window:
                cut = drop * window / min(span, window)
                levels[begin:begin + span] -= round(cut * LEVEL_SCALE)
            elif index == 0:  # shorter than a window: the whole-trace mean carries the drop
                residue = int(levels[:total].sum()) - plan.base * total
                cents = (drop * LEVEL_SCALE * total + residue) / span
                levels[begin:begin + span] -= round(cents)
        np.clip(levels, self.floor, self.ceiling, out=levels)
        return levels[:length].tolist()

    @property
    def floor(self) -> int:
        return _level_bounds()[0]

    @property
    def ceiling(self) -> int:
        return _level_bounds()[1]

    # -- logprob fragments -----------------------------------------------------------------------------

    def top_fragments(self, k: int, with_text: bool) -> dict[int, str]:
        """Level -> `, [lp, id, text], ...` for the k - 1 alternatives (empty for k = 1), filled on demand."""
        key = (k, with_text)
        table = self._fragments.get(key)
        if table is None:
            table = self._fragments.setdefault(key, _Fragments(self._alt_ids[:MAX_TOP_K - 1], k, with_text,
                                                               self.tokenizer))
        return table

    def first_logprob(self, level: int) -> str:
        return _first(level)

    def slow_top(self, k: int, level: int, token_id: int, with_text: bool) -> list:
        """The top-k entries as Python lists, for a sampled token that is also one of the alternatives."""
        x = _x_of(level)
        ids = [i for i in self._alt_ids if i != token_id][:k - 1]
        text = self.tokenizer.token_text if with_text else (lambda _: None)
        out = [[float(_first(level)), token_id, text(token_id)]]
        for j, alt in enumerate(ids, start=2):
            out.append([round(-x * _ratio(j), 6), alt, text(alt)])
        return out


def _ratio(j: int) -> float:
    """Alternative j's logprob is -x * ratio(j): spread evenly above the runner-up."""
    return 1.0 + 0.05 * (j - 2)


_RATIOS = np.array([_ratio(j) for j in range(2, MAX_TOP_K + 1)])


def _first_lp(x: np.ndarray) -> np.ndarray:
    """Logprob of the sampled (most likely) token when the runner-up's is -x: what the alternatives and the
    rest of the vocabulary (2 e^-2x) leave."""
    rest = np.exp(-np.multiply.outer(x, _RATIOS)).sum(axis=-1) + 2.0 * np.exp(-2.0 * x)
    return np.log(np.maximum(1e-12, 1.0 - rest))


@lru_cache(maxsize=1)
def _levels() -> tuple[int, np.ndarray, list[str]]:
    """For every level from the lowest to the highest reachable: the runner-up gap x whose k = 20 confidence is
    level / LEVEL_SCALE, and the sampled token's logprob as JSON text."""
    xs = np.linspace(MIN_X, MAX_X, 40001)
    cs = -(_first_lp(xs) - xs * _RATIOS[:DEFAULT_TOP_K - 1].sum()) / DEFAULT_TOP_K
    low, high = math.ceil(cs[0] * LEVEL_SCALE), math.floor(cs[-1] * LEVEL_SCALE)
    x = np.interp(np.arange(low, high + 1) / LEVEL_SCALE, cs, xs)
    return low, x, [repr(round(float(v), 8)) for v in _first_lp(x)]


def _level_bounds() -> tuple[int, int]:
    low, x, _ = _levels()
    return low, low + len(x) - 1


def _x_of(level: int) -> float:
    low, x, _ = _levels()
    return float(x[level - low])


def _first(level: int) -> str:
    low, _, first = _levels()
    return first[level - low]


class _Fragments(dict):
    """Level -> the JSON of the alternatives' top-k entries at that level, computed once per level."""

    def __init__(self, alt_ids: list[int], k: int, with_text: bool, tokenizer) -> None:
        super().__init__()
        self.alt_ids, self.k, self.with_text, self.tokenizer = alt_ids, k, with_text, tokenizer

    def __missing__(self, level: int) -> str:
        x = _x_of(level)
        parts = []
        for j, alt in enumerate(self.alt_ids[:self.k - 1], start=2):
            text = json.dumps(self.tokenizer.token_text(alt), ensure_ascii=False) if self.with_text else "null"
            parts.append(f", [{round(-x * _ratio(j), 6)!r}, {alt}, {text}]")
        self[level] = value = "".join(parts)
        return value


def _cyclic(tape: list, offset: int, count: int) -> list:
    out = tape[offset:offset + count]
    while len(out) < count:
        out += tape[:count - len(out)]
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, prod = math.exp(-mean), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k



class ThinkingLogprobs:
    """Output logprob arrays of a thinking trace built from cached JSON fragments; input arrays as computed by
    the engine (`input_meta`, in SGLang's field order)."""

    def __init__(self, model: ThinkingModel, levels: list[int], ids: list[int], top_k: int, with_text: bool,
                 token_ids: list[int] | None, input_meta: dict, plan: TracePlan | None = None) -> None:
        self.model, self.levels, self.ids, self.plan = model, levels, ids, plan
        self.top_k = min(top_k, MAX_TOP_K)
        self.with_text, self.token_ids = with_text, token_ids
        self.input = {name: json.dumps(value, ensure_ascii=False) for name, value in input_meta.items()
                      if name.startswith("input_")}
        self.order = list(input_meta)
        tok = model.tokenizer
        self._texts: dict[int, str] = {}
        self._text = (lambda i: self._texts.get(i) or self._texts.setdefault(
            i, json.dumps(tok.token_text(i), ensure_ascii=False))) if with_text else (lambda i: "null")

    def fields(self, start: int, end: int) -> list[tuple[str, str]]:
        out = []
        for name in self.order:
            if name.startswith("input_"):
                out.append((name, self.input[name]))
            elif name == "output_token_logprobs":
                out.append((name, self._token(start, end)))
            elif name == "output_top_logprobs":
                out.append((name, self._top(start, end)))
            else:
                out.append((name, self._chosen(start, end)))
        return out

    def _token(self, start: int, end: int) -> str:
        first, text = _first, self._text
        return "[" + ", ".join(f"[{first(lv)}, {i}, {text(i)}]"
                               for lv, i in zip(self.levels[start:end], self.ids[start:end])) + "]"

    def _top(self, start: int, end: int) -> str:
        model, k, with_text, text, first = self.model, self.top_k, self.with_text, self._text, _first
        fragments, collides = model.top_fragments(k, with_text), model._alt_set
        parts = []
        for lv, i in zip(self.levels[start:end], self.ids[start:end]):
            if i in collides:
                parts.append(json.dumps(model.slow_top(k, lv, i, with_text), ensure_ascii=False))
            else:
                parts.append(f"[[{first(lv)}, {i}, {text(i)}]{fragments[lv]}]")
        return "[" + ", ".join(parts) + "]"

    def _chosen(self, start: int, end: int) -> str:
        model, wanted, text = self.model, self.token_ids or [], self._text
        alts = {alt: j for j, alt in enumerate(model._alt_ids[:MAX_TOP_K - 1], start=2)}
        rows = []
        for lv, i in zip(self.levels[start:end], self.ids[start:end]):
            x = _x_of(lv)
            cells = []
            for t in wanted:
                if t == i:
                    value = _first(lv)
                else:
                    value = repr(round(-x * _ratio(alts.get(t, MAX_TOP_K + 8)), 6))
                cells.append(f"[{value}, {t}, {text(t)}]")
            rows.append("[" + ", ".join(cells) + "]")
        return "[" + ", ".join(rows) + "]"
