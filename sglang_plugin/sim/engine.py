"""What the simulated SGLang server computes, without the HTTP: generation with stop strings, lengths and
logprobs in SGLang's formats, the radix prefix cache, reward scores, sampling draws and fault decisions.

Sampling randomness: the k-th request with a given (text, sampling parameters) uses draw k of a generator
keyed by (seed, text, parameters, k), so identical concurrent requests (forks) get different samples while
the multiset of outcomes is the same whatever order the threads run in. temperature 0 (or top_k 1) is
greedy: always draw 0. A request's `sampling_seed` picks the draw itself. With deterministic inference on
(SGLang's --enable-deterministic-inference), a sampled request without a seed gets SGLang's default seed, 42, as
there: identical requests then get identical samples.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from planner import __version__
from sglang_plugin.sim import thinking as think
from sglang_plugin.sim.generation import DictLogprobs, Generation
from sglang_plugin.sim.problems import ProblemBank
from sglang_plugin.sim.protocol import Sampling, Single, rejected
from sglang_plugin.sim.radix_cache import RadixCache
from sglang_plugin.sim.reasoner import Chunk, Reasoner
from sglang_plugin.sim.runs import Run, RunRegistry
from sglang_plugin.sim.scores import PRM_MASS, ScoreModel, unit
from sglang_plugin.sim.thinking import ThinkingLogprobs, ThinkingModel
from sglang_plugin.sim.tokens import DEFAULT_SPECIALS, SimTokenizer

DEFAULT_MODEL = "Qwen/Qwen2.5-Math-1.5B-Instruct"
DEFAULT_CONTEXT = 4096
SGLANG_VERSION = "0.5.2"  # the protocol version the stand-in speaks (what /get_server_info's "version" says)
FILLER = "\n\nThe solution above is complete."
DRAW_MEMORY = 1_000_000
DETERMINISTIC_DEFAULT_SEED = 42  # SGLang's seed for requests without one under deterministic inference
UNFINISHED_MEMORY = 100_000
MAX_RUNNING_REQUESTS = 4096
_ALTERNATIVES = (" the", " a", ",", ".", " =", " $", "\n", "1", "2", " is", " of", " we", " and", " +", " to", "0")


@dataclass
class SimConfig:
    """Every knob of the simulator (the CLI flags and SimServer keyword arguments map onto these)."""
    model_path: str | None = None        # None: DEFAULT_MODEL, or the thinking profile's model
    served_model_name: str | None = None  # None: model_path (SGLang's default)
    thinking: bool = False                # the long-thinking profile (see thinking.py)
    confidence_auroc: float = 0.8         # thinking: AUROC of the lowest-window confidence, correct vs wrong
    confidence_window: int = think.DEFAULT_WINDOW
    thinking_params: think.ThinkingParams | None = None  # None: the published/assumed defaults (README table)
    stream_interval: int = 1              # tokens per streamed chunk (a request's own stream_interval wins)
    incremental_streaming_output: bool | None = None  # None: on for the thinking profile, off otherwise
    enable_deterministic_inference: bool = False  # a request without sampling_seed samples with seed 42
    seed: int = 0
    default_rate: float = 0.5
    reward_auroc: float = 0.9
    confidence_gap: float = 0.3
    wrong_pool_size: int = 4
    wrong_skew: float = 0.5
    step_tag: str = "ки"
    step_tag_id: int = 12902
    plus_token_id: int = 648
    minus_token_id: int = 387
    context_length: int | None = None  # None: 4096, or the thinking model's 131072
    cache_tokens: int | None = 2_000_000  # about the KV a 1.5B model gets on an 80 GB GPU; None: no limit
    token_delay_ms: float = 0.0
    prefill_delay_ms: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.model_path is None:
            self.model_path = think.DEFAULT_MODEL if self.thinking else DEFAULT_MODEL
        if self.context_length is None:
            self.context_length = think.DEFAULT_CONTEXT if self.thinking else DEFAULT_CONTEXT
        if self.incremental_streaming_output is None:
            self.incremental_streaming_output = self.thinking
        if self.served_model_name is None:
            self.served_model_name = self.model_path
        if not 0.0 < self.confidence_auroc < 1.0:
            raise ValueError(f"confidence_auroc must be strictly between 0 and 1, got {self.confidence_auroc}")
        if self.stream_interval < 1:
            raise ValueError(f"stream_interval must be at least 1, got {self.stream_interval}")
        if self.confidence_window < 1 or self.confidence_window % think.NOISE_PERIOD:
            raise ValueError(f"confidence_window must be a positive multiple of {think.NOISE_PERIOD}, got "
                             f"{self.confidence_window}")
        for name in ("default_rate", "fail_rate", "drop_rate", "stall_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.fail_rate + self.drop_rate + self.stall_rate > 1.0:
            raise ValueError("fail_rate + drop_rate + stall_rate must not exceed 1")
        for name in ("token_delay_ms", "prefill_delay_ms", "stall_seconds", "confidence_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.context_length < 2:
            raise ValueError(f"context_length must be at least 2, got {self.context_length}")
        if not self.model_path:
            raise ValueError("model_path must not be empty")


@dataclass
class Stats:
    requests: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    classify_texts: int = 0
    aborted_requests: int = 0     # sequences stopped by /abort_request or a client that went away
    aborted_tokens: int = 0       # tokens those sequences had generated (counted in completion_tokens too)
    streamed_chunks: int = 0
    running: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: dict = field(default_factory=lambda: {"error": 0, "drop": 0, "stall": 0})
    profiling: bool = False


class SimEngine:
    """Thread-safe; one per server."""

    def __init__(self, config: SimConfig, bank: ProblemBank | None = None) -> None:
        self.config = config
        self.format = think.thinking_format(config.model_path) if config.thinking else None
        if self.format is not None:
            specials = DEFAULT_SPECIALS + tuple(t for t in self.format.specials if t not in DEFAULT_SPECIALS)
            self.tokenizer = SimTokenizer({config.step_tag: config.step_tag_id},
                                          {config.plus_token_id: "+", config.minus_token_id: "-"},
                                          base_specials=specials, eos_token=self.format.eos, added=self.format.added)
        else:
            self.tokenizer = SimTokenizer({config.step_tag: config.step_tag_id},
                                          {config.plus_token_id: "+", config.minus_token_id: "-"})
        self.cache = RadixCache(config.cache_tokens)
        self.reasoner = Reasoner(bank, default_rate=config.default_rate, wrong_pool_size=config.wrong_pool_size,
                                 wrong_skew=config.wrong_skew)
        self.scores = ScoreModel(config.seed, reward_auroc=config.reward_auroc,
                                 confidence_gap=config.confidence_gap)
        self.thinking = ThinkingModel(self.tokenizer, seed=config.seed, confidence_auroc=config.confidence_auroc,
                                      window=config.confidence_window, params=config.thinking_params,
                                      form=self.format) if self.format is not None else None
        self.runs = RunRegistry()
        self.stats = Stats()
        self._profile_steps: int | None = None
        self._draws: OrderedDict[bytes, int] = OrderedDict()
        self._unfinished: OrderedDict[bytes, tuple] = OrderedDict()  # thinking traces a client may continue
        self._lock = threading.Lock()
        self._alternatives = [self.tokenizer.encode(t)[0] for t in _ALTERNATIVES]
        self._filler = self.tokenizer.encode(FILLER)

    # -- generation ---------------------------------------------------------------------------------

    def generate(self, req: Single) -> Generation:
        tok, cfg = self.tokenizer, self.config
        if req.input_ids is not None:
            try:
                text = tok.decode(req.input_ids)
            except ValueError as exc:
                raise rejected(f"The input_ids {req.input_ids[:8]}... are not valid: {exc}") from None
            prompt_ids = list(req.input_ids)
            ends = _ends([tok.token_text(i) for i in prompt_ids])
        else:
            text = req.text
            prompt_ids, ends = tok.encode_with_offsets(text)
        length = len(prompt_ids)
        if length == 0:
            raise rejected("The input is empty: the prompt has no tokens.")
        if length >= cfg.context_length:
            raise rejected(f"The input ({length} tokens) is longer than the model's context length "
                           f"({cfg.context_length} tokens).")
        sampling = req.sampling
        if sampling.max_new_tokens is not None and sampling.max_new_tokens + length >= cfg.context_length:
            raise rejected(
                f"Requested token count exceeds the model's maximum context length of {cfg.context_length} "
                f"tokens. You requested a total of {sampling.max_new_tokens + length} tokens: {length} tokens "
                f"from the input messages and {sampling.max_new_tokens} tokens for the completion. Please "
                "reduce the number of tokens in the input messages or the completion to fit within the limit.")
        start = req.logprob_start_len if req.return_logprob and req.logprob_start_len != -1 else length - 1
        if req.return_logprob and not 0 <= start < length:
            raise rejected(f"req.logprob_start_len={start} is higher than the number of input tokens "
                           f"len(req.origin_input_ids)={length}. Please use a smaller logprob_start_len.")
        limit = min(length - 1, start) if req.return_logprob else length - 1
        cached = min(self.cache.match_prefix(prompt_ids), limit)
        self.cache.insert(prompt_ids)

        budget = sampling.max_new_tokens if sampling.max_new_tokens is not None else cfg.context_length - length - 1
        spans, levels = None, None
        if self.thinking is not None and budget > 0:
            out_ids, out_texts, levels, trace = self._think(text, sampling, budget)
            plan = trace[0]
            labels: list = []
        else:
            chunks: list[Chunk] = []
            if budget > 0 or req.return_logprob:
                spec, offset, _ = self.reasoner.locate(text)
                state = self.reasoner.parse(spec, text[offset:])
                spans = [(b + offset, e + offset, step, ok) for b, e, step, ok in state.spans]
                chunks = self.reasoner.continue_trajectory(spec, state, self._rng(text, sampling))
            out_ids, out_texts, labels = self._continuation(chunks, sampling, budget, req.return_logprob)
        count, reason, text_out = self._finish(out_ids, out_texts, sampling, budget)
        if levels is not None:
            self._remember(text, text_out, trace, count, reason)

        logprobs = None
        if req.return_logprob:
            if levels is not None:
                meta = self._logprobs(req, text, prompt_ids, ends, spans, [], [], start)
                logprobs = ThinkingLogprobs(self.thinking, levels[:count], out_ids[:count], req.top_logprobs_num,
                                            req.return_text_in_logprobs, req.token_ids_logprob, meta, plan)
            else:
                lp_ids = out_ids[:count] if count else out_ids[:1]
                logprobs = DictLogprobs(self._logprobs(req, text, prompt_ids, ends, spans, lp_ids, labels, start),
                                        whole=not count)
        with self._lock:
            self.stats.sequences += 1
            self.stats.prompt_tokens += length
            self.stats.cached_tokens += cached
        skip = self.tokenizer.skip_ids if sampling.skip_special_tokens else frozenset()
        shown = [("" if i in skip else t) for t, i in zip(out_texts[:count], out_ids[:count])] if skip \
            else out_texts[:count]
        return Generation(req.rid, length, cached, out_ids[:count], shown, count, reason, text_out, logprobs,
                          prompt_ids)

    def _think(self, text: str, sampling: Sampling, budget: int):
        """A long-thinking trace for this prompt in the served model's format: the opening ("<think>", or
        harmony's analysis channel) unless the prompt opened it, thinking, the closing, the answer and the
        end-of-sequence token; tokens past the budget are not built. A prompt that ends with an unfinished trace
        this server generated (a client continuing it in segments) continues that trace where it stopped, as a
        model conditioned on its own text would."""
        model, tok = self.thinking, self.tokenizer
        with self._lock:
            known = self._unfinished.get(_text_key(text))
        if known is not None:
            plan, head, at = known
        else:
            spec, _, _ = self.reasoner.locate(text)
            rng = self._rng(text, sampling, sampling.draw_key)  # where the trace stops does not change it
            correct = rng.random() < spec.rate
            if correct or not spec.wrong_answers:
                answer = spec.answer or "0"
            else:
                answer = rng.choices(spec.wrong_answers, weights=spec.wrong_weights)[0]
            plan = model.plan(spec.key, spec.rate, correct, answer, rng)
            head, at = (0 if text.rstrip().endswith(model.format.open.strip()) else len(model.open_ids)), 0
        ids = list(model.open_ids[:head])
        body_ids, body_texts = model.thinking_pieces(plan, plan.thinking_tokens)
        tail_ids, tail_texts = model.answer_pieces(plan)
        ids += body_ids + model.close_ids + tail_ids
        texts = [tok.token_text(i) for i in ids[:head]] + body_texts
        texts += [tok.token_text(i) for i in model.close_ids] + tail_texts
        natural = len(ids) + 1
        end = at + budget
        if sampling.ignore_eos or natural < at + sampling.min_new_tokens:
            more_ids, more_texts = model.thinking_pieces(plan, max(0, end - len(ids)))
            ids += more_ids
            texts += more_texts
        else:
            ids.append(tok.eos_token_id)
            texts.append(tok.token_text(tok.eos_token_id))
        levels = model.levels(plan, head, natural, min(len(ids), end))
        return ids[at:end], texts[at:end], levels[at:end], (plan, head, at)

    def _remember(self, text: str, output: str, trace: tuple, count: int, reason: dict) -> None:
        """Keep an unfinished trace (cut by its token budget or a stop string) so that a prompt ending with
        it continues it."""
        if reason.get("type") not in ("length", "stop") or isinstance(reason.get("matched"), int):
            return
        plan, head, at = trace
        endings = [output]
        if isinstance(reason.get("matched"), str) and not output.endswith(reason["matched"]):
            endings.append(output + reason["matched"])  # a trimmed stop string the client puts back
        with self._lock:
            for ending in endings:
                self._unfinished[_text_key(text + ending)] = (plan, head, at + count)
            while len(self._unfinished) > UNFINISHED_MEMORY:
                self._unfinished.popitem(last=False)

    def _rng(self, text: str, sampling: Sampling, key: str | None = None) -> random.Random:
        """The draw of a request: the same for the same text, parameters (`key`: by default all of them) and
        seed, else the next for them."""
        key = hashlib.blake2b(f"{text}\x00{sampling.key if key is None else key}".encode("utf-8"),
                              digest_size=16).digest()
        if sampling.sampling_seed is not None:
            draw = f"seed{sampling.sampling_seed}"
        elif sampling.greedy:
            draw = "0"
        elif self.config.enable_deterministic_inference:
            draw = f"seed{DETERMINISTIC_DEFAULT_SEED}"
        else:
            with self._lock:
                count = self._draws.pop(key, 0)
                self._draws[key] = count + 1
                if len(self._draws) > DRAW_MEMORY:
                    self._draws.popitem(last=False)
            draw = str(count)
        seed = hashlib.blake2b(f"{self.config.seed}/{key.hex()}/{draw}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(seed, "big"))

    def _continuation(self, chunks: list[Chunk], sampling: Sampling, budget: int, with_labels: bool):
        """Output token ids and texts and, if asked, per token what its confidence depends on: (key, correct
        or None). Tokenizes only as far as needed: past the budget or a stop string nothing is generated;
        the end-of-sequence token closes a finished trajectory."""
        tok = self.tokenizer
        ids, texts, labels, written = [], [], [], ""
        correct = True
        for chunk in chunks:
            pieces = tok.pieces(chunk.text)
            ids += map(tok.piece_id, pieces)
            texts += pieces
            if with_labels:
                if chunk.step is None:
                    labels += [(f"sep/{p}", None) for p in pieces]
                else:
                    digest, at = _digest(chunk.step.text), chunk.offset
                    for piece, token_id in zip(pieces, ids[len(ids) - len(pieces):]):
                        labels.append((f"{digest}/{at}/{token_id}", chunk.correct))
                        at += len(piece)
            correct = chunk.correct
            written += chunk.text
            if len(ids) >= budget or any(stop in written for stop in sampling.stop) \
                    or any(re.search(pattern, written) for pattern in sampling.stop_regex) \
                    or not set(sampling.stop_token_ids).isdisjoint(ids):
                return ids, texts, labels
        while (sampling.ignore_eos or len(ids) < sampling.min_new_tokens) and len(ids) < budget:
            ids += self._filler
            texts += [tok.token_text(i) for i in self._filler]
            labels += [(f"fill/{i}", None) for i in self._filler]
        ids.append(tok.eos_token_id)
        texts.append(tok.token_text(tok.eos_token_id))
        labels.append((f"eos/{correct}", correct))
        return ids, texts, labels

    def _finish(self, ids: list[int], texts: list[str], sampling: Sampling, budget: int):
        """(tokens generated, finish_reason, returned text) under SGLang's rules: at each token the length
        limit is checked first, then stop token ids / end of sequence, then stop strings; the matched stop
        string is cut from the text at its first occurrence (unless no_stop_trim)."""
        if budget == 0:
            return 0, {"type": "length", "length": 0}, ""
        events = [(budget - 1, 0, {"type": "length", "length": budget})]
        stop_ids = set(sampling.stop_token_ids)
        eos = self.tokenizer.eos_token_id
        if not sampling.ignore_eos:
            stop_ids.add(eos)
        hits = []
        for token_id in stop_ids.intersection(ids):
            at = ids.index(token_id)
            if token_id == eos and at < sampling.min_new_tokens:
                at = next((i for i in range(sampling.min_new_tokens, len(ids)) if ids[i] == eos), None)
            if at is not None:
                hits.append(at)
        if hits:
            first = min(hits)
            events.append((first, 1, {"type": "stop", "matched": ids[first]}))
        full, ends = "".join(texts), None
        for order, stop in enumerate(sampling.stop):
            at = full.find(stop)
            if at >= 0:
                ends = ends or _ends(texts)
                events.append((bisect.bisect_left(ends, at + len(stop)), 2 + order, {"type": "stop", "matched": stop}))
        for order, pattern in enumerate(sampling.stop_regex, start=len(sampling.stop)):
            match = re.search(pattern, full)
            if match:
                ends = ends or _ends(texts)
                events.append((bisect.bisect_left(ends, match.end()), 2 + order, {"type": "stop",
                                                                                   "matched": match.group(0)}))
        index, _, reason = min(events, key=lambda e: (e[0], e[1]))
        count = index + 1
        matched = reason.get("matched")
        shown = count - 1 if isinstance(matched, int) and not sampling.no_stop_trim else count
        specials = self.tokenizer.skip_ids if sampling.skip_special_tokens else ()
        text = "".join(t for t, i in zip(texts[:shown], ids[:shown]) if i not in specials)
        if isinstance(matched, str) and not sampling.no_stop_trim and matched in text:
            text = text[:text.find(matched)]
        return count, reason, text

    # -- logprobs -----------------------------------------------------------------------------------

    def _logprobs(self, req: Single, text: str, prompt_ids: list[int], ends: list[int], spans, out_ids: list[int],
                  out_labels: list, start: int) -> dict:
        """SGLang's logprob fields: per input position from `start` (the first is None, as SGLang pads it)
        and per output token, each an entry (logprob, token id, text or None)."""
        tok = self.tokenizer
        seq = prompt_ids + out_ids
        length = len(prompt_ids)
        prm = self._prm_at_tags(text, prompt_ids, ends)
        prompt_label = self._prompt_labeller(prompt_ids, ends, spans)
        want_text = req.return_text_in_logprobs
        spare: dict[int, float] = {}

        def entry(logprob, token_id):
            return [logprob, token_id, tok.token_text(token_id) if want_text else None]

        def dist(t: int) -> dict[int, float]:
            """The next-token distribution that produced seq[t] (computed after seq[t - 1])."""
            actual = seq[t]
            if seq[t - 1] == self.config.step_tag_id and t - 1 in prm:
                plus = prm[t - 1]
                probs = {self.config.plus_token_id: PRM_MASS * plus,
                         self.config.minus_token_id: PRM_MASS * (1.0 - plus)}
                probs.setdefault(actual, (1.0 - PRM_MASS) / 2)
                return probs
            key, correct = prompt_label(t) if t < length else out_labels[t - length]
            p, extra, spare[t] = self.scores.token_probability(key, correct)
            probs = {actual: p}
            bits, share, count = int(extra * (1 << 30)), 0.5, len(self._alternatives)
            for j in range(3):
                probs.setdefault(self._alternatives[(bits >> (6 * j)) % count], (1.0 - p) * share)
                share /= 2
            return probs

        def other(t: int, token_id: int, probs: dict[int, float]) -> float:
            """Any other token: a small share of what is left, varying by token."""
            jitter = (spare.get(t, 0.5) * 7919 + token_id * 0.6180339887) % 1.0
            return math.log(max(1e-12, (1.0 - sum(probs.values())) * 1e-3 * (0.5 + jitter)))

        positions = list(range(start + 1, length)) + list(range(length, length + len(out_ids)))
        dists = {t: dist(t) for t in positions}
        lp = {t: math.log(dists[t][seq[t]]) for t in positions}
        meta = {
            "input_token_logprobs": [entry(None, seq[start])] + [entry(lp[t], seq[t]) for t in range(start + 1, length)],
            "output_token_logprobs": [entry(lp[t], seq[t]) for t in range(length, len(seq))],
        }
        k = req.top_logprobs_num
        if k > 0:
            def top(t):
                ranked = sorted(dists[t].items(), key=lambda kv: -kv[1])[:k]
                return [entry(math.log(p), i) for i, p in ranked]
            meta["input_top_logprobs"] = [None] + [top(t) for t in range(start + 1, length)]
            meta["output_top_logprobs"] = [top(t) for t in range(length, len(seq))]
        if req.token_ids_logprob:
            def chosen(t):
                probs = dists[t]
                return [entry(math.log(probs[i]) if i in probs else other(t, i, probs), i)
                        for i in req.token_ids_logprob]
            meta["input_token_ids_logprobs"] = [None] + [chosen(t) for t in range(start + 1, length)]
            meta["output_token_ids_logprobs"] = [chosen(t) for t in range(length, len(seq))]
        return meta

    def _prm_at_tags(self, text: str, prompt_ids: list[int], ends: list[int]) -> dict[int, float]:
        """P("+") after each step tag in the prompt, from the correctness of the steps before it."""
        tag_id = self.config.step_tag_id
        tags = [t for t, i in enumerate(prompt_ids) if i == tag_id]
        if not tags:
            return {}
        cuts = [(ends[t] - len(self.config.step_tag), ends[t]) for t in tags]
        labels = self.reasoner.step_labels(text, cuts)
        out, digest, done = {}, hashlib.blake2b(digest_size=16), 0
        for t, (_, end), label in zip(tags, cuts, labels):
            digest.update(text[done:end].encode("utf-8"))
            done = end
            out[t] = self.scores.prm_plus(digest.copy().hexdigest(), label)
        return out

    def _prompt_labeller(self, prompt_ids: list[int], ends: list[int], spans):
        """Per prompt token: (confidence key, correct or None), keyed like generated tokens when the token is
        inside a recognised step, so re-scoring a trajectory by prefill gives the logprobs it was made with."""
        spans = [s for s in spans or [] if s[2] is not None]
        starts = [s[0] for s in spans]
        digests = [_digest(s[2].text) for s in spans]

        def label(t: int) -> tuple[str, bool | None]:
            begin = ends[t - 1] if t else 0
            i = bisect.bisect_right(starts, begin) - 1
            if i >= 0 and begin < spans[i][1]:
                return f"{digests[i]}/{begin - spans[i][0]}/{prompt_ids[t]}", spans[i][3]
            return f"ctx/{t}/{prompt_ids[t]}", None

        return label

    # -- rewards, cache, info -----------------------------------------------------------------------

    def classify(self, inputs: list) -> list[dict]:
        """Outcome reward scores, one per text (or token id list)."""
        out = []
        for value in inputs:
            text = value if isinstance(value, str) else self._decode(value)
            length = len(self.tokenizer.encode(text)) if isinstance(value, str) else len(value)
            if length >= self.config.context_length:
                raise rejected(f"The input ({length} tokens) is longer than the model's context length "
                               f"({self.config.context_length} tokens).")
            score = self.scores.orm_score(text, self.reasoner.outcome_label(text))
            out.append({"embedding": [score], "meta_info": {
                "id": uuid.uuid4().hex,
                "finish_reason": {"type": "length", "length": 0}, "prompt_tokens": length,
                "weight_version": "default"}})
        with self._lock:
            self.stats.classify_texts += len(inputs)
        return out

    def _decode(self, ids: list[int]) -> str:
        try:
            return self.tokenizer.decode(ids)
        except ValueError as exc:
            raise rejected(f"input_ids are not valid: {exc}") from None

    def flush(self) -> None:
        self.cache.reset()

    def fault(self, key: bytes) -> str | None:
        """The fault to inject for this request ("error", "drop", "stall") or None; keyed like sampling
        draws, so the k-th identical request always meets the same fate and a retry can succeed."""
        cfg = self.config
        if not cfg.fail_rate + cfg.drop_rate + cfg.stall_rate:
            return None
        digest = hashlib.blake2b(key, digest_size=16).digest() + b"fault"
        with self._lock:
            count = self._draws.pop(digest, 0)
            self._draws[digest] = count + 1
        u = unit(cfg.seed, "fault", digest.hex(), count)
        for kind, rate in (("error", cfg.fail_rate), ("drop", cfg.drop_rate), ("stall", cfg.stall_rate)):
            if u < rate:
                with self._lock:
                    self.stats.faults[kind] += 1
                return kind
            u -= rate
        return None

    # -- running requests -----------------------------------------------------------------------------

    def start(self, generation: Generation) -> Run:
        """The sequence starts running: its clock (prefill, then one token per token delay) and its rid, which
        /abort_request can now stop."""
        cfg = self.config
        run = Run(generation.rid, generation.count, generation.prompt_tokens,
                  cfg.prefill_delay_ms * generation.uncached_tokens / 1000.0, cfg.token_delay_ms / 1000.0)
        self.runs.add(run)
        with self._lock:
            self.stats.running += 1
        return run

    def finish(self, generation: Generation, run: Run, generated: int) -> None:
        """The sequence is over after `generated` tokens (all of them unless aborted): count them and cache the
        sequence as SGLang does when a request finishes."""
        self.runs.remove(run, generated)
        if generated:
            self.cache.insert(generation.prompt_ids + generation.ids[:generated - 1])
        with self._lock:
            self.stats.running -= 1
            self.stats.completion_tokens += generated
            if run.aborted:
                self.stats.aborted_requests += 1
                self.stats.aborted_tokens += generated
            if self._profile_steps is not None:
                self._profile_steps -= 1
                if self._profile_steps <= 0:
                    self._profile_steps, self.stats.profiling = None, False

    def abort(self, rid: str, abort_all: bool) -> int:
        return self.runs.abort(rid, abort_all)

    def count_chunk(self) -> None:
        with self._lock:
            self.stats.streamed_chunks += 1

    def start_profile(self, num_steps: int | None) -> str | None:
        """SGLang's profiler switch (no trace is written here); an error message when already profiling."""
        with self._lock:
            if self.stats.profiling:
                return "Profiling is already in progress. Call /stop_profile first."
            self.stats.profiling = True
            self._profile_steps = num_steps
        return None

    def stop_profile(self) -> str | None:
        with self._lock:
            if not self.stats.profiling:
                return "Profiling is not in progress. Call /start_profile first."
            self.stats.profiling, self._profile_steps = False, None
        return None

    # -- info ---------------------------------------------------------------------------------------------

    @property
    def max_total_num_tokens(self) -> int:
        return self.config.cache_tokens or 1 << 30

    @property
    def max_req_input_len(self) -> int:
        """SGLang's: min(context length - 1, KV capacity - 1) - 5."""
        return min(self.config.context_length - 1, self.max_total_num_tokens - 1) - 5

    def load(self) -> int:
        """SGLang's /get_load figure: tokens held in the KV cache by running requests (queued prompts: none)."""
        return sum(prompt + generated for prompt, generated in self.runs.snapshot())

    def loads(self) -> dict:
        """SGLang 0.5.23's /v1/loads answer (core, memory and queues sections) for the one DP rank."""
        running = self.runs.snapshot()
        used = sum(prompt + generated for prompt, generated in running)
        capacity = self.max_total_num_tokens
        with self._lock:
            prompt, cached = self.stats.prompt_tokens, self.stats.cached_tokens
        now = datetime.now(UTC)
        return {
            "timestamp": now.isoformat(), "version": SGLANG_VERSION, "accelerator": None, "num_accelerators": 1,
            "loads": [{
                "timestamp": now.timestamp(), "dp_rank": 0, "num_running_reqs": len(running),
                "num_waiting_reqs": 0, "num_waiting_uncached_tokens": 0, "num_used_tokens": used,
                "num_total_tokens": used, "num_active_tokens": used, "num_prealloc_ready_tokens": 0,
                "max_total_num_tokens": capacity, "max_running_requests": MAX_RUNNING_REQUESTS,
                "token_usage": round(used / capacity, 6), "gen_throughput": round(self.runs.throughput(), 3),
                "cache_hit_rate": round(cached / prompt, 6) if prompt else 0.0,
                "utilization": round(min(1.0, len(running) / MAX_RUNNING_REQUESTS), 6),
                "total_prefill_uncached_tokens": prompt - cached, "total_prefill_busy_us": 0,
                "memory": {"weight_gb": 0.0, "kv_cache_gb": 0.0, "graph_gb": 0.0, "token_capacity": capacity},
                "queues": {"waiting": 0, "grammar": 0, "paused": 0, "retracted": 0, "prealloc_ready": 0},
            }],
        }

    def models(self) -> dict:
        """The OpenAI-style /v1/models list SGLang serves (one card; owned_by "sglang" tells gateways what the
        backend is)."""
        cfg = self.config
        return {"object": "list", "data": [{"id": cfg.served_model_name, "object": "model", "created": int(
            self.runs.started_wall), "owned_by": "sglang", "root": cfg.served_model_name,
            "max_model_len": cfg.context_length}]}

    def model_info(self) -> dict:
        """0.5.2's /get_model_info fields, 0.5.23's additions (served_model_name, model_type, architectures,
        reasoning_parser, ...) and the simulator's own description."""
        cfg, tok = self.config, self.tokenizer
        model_type, architectures = _architecture(cfg.model_path)
        info = {
            "model_path": cfg.model_path, "tokenizer_path": cfg.model_path, "is_generation": True,
            "preferred_sampling_params": None, "weight_version": "default",
            "served_model_name": cfg.served_model_name, "load_format": "auto",
            "reasoning_parser": self.format.reasoning_parser if self.format else None, "tool_call_parser": None,
            "disaggregation_mode": "null", "has_image_understanding": False, "has_audio_understanding": False,
            "model_type": model_type, "architectures": architectures, "simulated": True,
            "simulator": {
                "description": "tts-planner's SIMULATED SGLang server: no model, no GPU; text, rewards and "
                               "logprobs are synthetic, drawn to match each known problem's success rate",
                "version": __version__, "seed": cfg.seed, "known_problems": len(self.reasoner.bank),
                "default_rate": cfg.default_rate, "reward_auroc": cfg.reward_auroc,
                "eos_token_id": tok.eos_token_id, "step_separator": "\n\n", "step_tag": cfg.step_tag,
                "step_tag_id": cfg.step_tag_id, "plus_token_id": cfg.plus_token_id,
                "minus_token_id": cfg.minus_token_id, "context_length": cfg.context_length,
                "profile": "thinking" if cfg.thinking else "steps",
            },
        }
        if cfg.thinking:
            info["simulator"].update({
                "confidence_auroc": cfg.confidence_auroc, "confidence_window": cfg.confidence_window,
                "confidence_top_k": think.DEFAULT_TOP_K,
                "thinking_format": self.format.name, "thinking_open": self.format.open,
                "thinking_close": self.format.close,
            })
        return info

    def server_info(self, host: str, port: int) -> dict:
        """0.5.2's /get_server_info: the server arguments, the scheduler's (status, max_total_num_tokens,
        max_req_input_len), internal_states (one per DP rank: load, last_gen_throughput, memory_usage) and
        version; the simulator adds sim_config and, in internal_states[0], sim_stats."""
        cfg = self.config
        with self._lock:
            stats = asdict(self.stats)
        stats["cache_tokens"] = self.cache.total_tokens
        stats["evicted_tokens"] = self.cache.evicted_tokens
        load = self.load()
        args = {
            "model_path": cfg.model_path, "tokenizer_path": cfg.model_path, "tokenizer_mode": "auto",
            "skip_tokenizer_init": False, "load_format": "auto", "trust_remote_code": False,
            "context_length": cfg.context_length, "is_embedding": False, "revision": None,
            "served_model_name": cfg.served_model_name, "weight_version": "default", "host": host, "port": port,
            "mem_fraction_static": None, "max_running_requests": MAX_RUNNING_REQUESTS,
            "max_total_tokens": cfg.cache_tokens, "chunked_prefill_size": 8192, "max_prefill_tokens": 16384,
            "schedule_policy": "fcfs", "page_size": 1, "tp_size": 1, "pp_size": 1, "dp_size": 1,
            "stream_interval": cfg.stream_interval, "stream_output": False,
            "incremental_streaming_output": cfg.incremental_streaming_output, "random_seed": cfg.seed,
            "log_level": "info", "enable_metrics": False, "api_key": None, "disable_radix_cache": False,
            "load_balance_method": "round_robin", "disaggregation_mode": "null",
            "reasoning_parser": self.format.reasoning_parser if self.format else None, "tool_call_parser": None,
        }
        if cfg.enable_deterministic_inference:  # a later release's argument, absent from 0.5.2's info
            args["enable_deterministic_inference"] = True
        return {
            **args, "status": "ready", "max_total_num_tokens": self.max_total_num_tokens,
            "max_req_input_len": self.max_req_input_len, "simulated": True, "sim_config": asdict(cfg),
            "internal_states": [{
                "last_gen_throughput": round(self.runs.throughput(), 3), "load": load,
                "memory_usage": {"weight": 0.0, "kvcache": 0.0, "token_capacity": self.max_total_num_tokens,
                                 "graph": 0.0},
                "sim_stats": stats,
            }],
            "version": SGLANG_VERSION, "simulator_version": __version__,
        }

    def count_request(self) -> None:
        with self._lock:
            self.stats.requests += 1

    def enter(self) -> int:
        """A request starts being served; returns how many are in flight now (itself included)."""
        with self._lock:
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
            return self.stats.in_flight

    def leave(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1


def _architecture(model_path: str) -> tuple[str | None, list[str] | None]:
    """(model_type, architectures) a Hugging Face config of this model family declares."""
    name = model_path.lower()
    if "gpt-oss" in name:
        return "gpt_oss", ["GptOssForCausalLM"]
    if "qwen3" in name:
        return "qwen3", ["Qwen3ForCausalLM"]
    if "qwen" in name:
        return "qwen2", ["Qwen2ForCausalLM"]
    if "llama" in name:
        return "llama", ["LlamaForCausalLM"]
    return None, None


def _ends(texts: list[str]) -> list[int]:
    out, pos = [], 0
    for piece in texts:
        pos += len(piece)
        out.append(pos)
    return out


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
