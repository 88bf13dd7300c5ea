"""What the simulated SGLang server computes, without the HTTP: generation with stop strings, lengths and
logprobs in SGLang's formats, the radix prefix cache, reward scores, sampling draws and fault decisions.

Sampling randomness: the k-th request with a given (text, sampling parameters) uses draw k of a generator
keyed by (seed, text, parameters, k), so identical concurrent requests (forks) get different samples while
the multiset of outcomes is the same whatever order the threads run in. temperature 0 (or top_k 1) is
greedy: always draw 0. A request's `sampling_seed` picks the draw itself.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

from planner import __version__
from sglang_plugin.sim.problems import ProblemBank
from sglang_plugin.sim.protocol import Sampling, Single, rejected
from sglang_plugin.sim.radix_cache import RadixCache
from sglang_plugin.sim.reasoner import Chunk, Reasoner
from sglang_plugin.sim.scores import PRM_MASS, ScoreModel, unit
from sglang_plugin.sim.tokens import SimTokenizer

DEFAULT_MODEL = "Qwen/Qwen2.5-Math-1.5B-Instruct"
FILLER = "\n\nThe solution above is complete."
DRAW_MEMORY = 1_000_000
_ALTERNATIVES = (" the", " a", ",", ".", " =", " $", "\n", "1", "2", " is", " of", " we", " and", " +", " to", "0")


@dataclass
class SimConfig:
    """Every knob of the simulator (the CLI flags and SimServer keyword arguments map onto these)."""
    model_path: str = DEFAULT_MODEL
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
    context_length: int = 4096
    cache_tokens: int | None = 2_000_000  # about the KV a 1.5B model gets on an 80 GB GPU; None: no limit
    token_delay_ms: float = 0.0
    prefill_delay_ms: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0

    def __post_init__(self) -> None:
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
class Generation:
    """One finished sequence: the response item SGLang would send, and the timing it should take."""
    item: dict
    token_texts: list[str]
    completion_tokens: int
    uncached_tokens: int


@dataclass
class Stats:
    requests: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    classify_texts: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: dict = field(default_factory=lambda: {"error": 0, "drop": 0, "stall": 0})


class SimEngine:
    """Thread-safe; one per server."""

    def __init__(self, config: SimConfig, bank: ProblemBank | None = None) -> None:
        self.config = config
        self.tokenizer = SimTokenizer({config.step_tag: config.step_tag_id},
                                      {config.plus_token_id: "+", config.minus_token_id: "-"})
        self.cache = RadixCache(config.cache_tokens)
        self.reasoner = Reasoner(bank, default_rate=config.default_rate, wrong_pool_size=config.wrong_pool_size,
                                 wrong_skew=config.wrong_skew)
        self.scores = ScoreModel(config.seed, reward_auroc=config.reward_auroc,
                                 confidence_gap=config.confidence_gap)
        self.stats = Stats()
        self._draws: OrderedDict[bytes, int] = OrderedDict()
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
        chunks: list[Chunk] = []
        spans = None
        if budget > 0 or req.return_logprob:
            spec, offset, _ = self.reasoner.locate(text)
            state = self.reasoner.parse(spec, text[offset:])
            spans = [(b + offset, e + offset, step, ok) for b, e, step, ok in state.spans]
            chunks = self.reasoner.continue_trajectory(spec, state, self._rng(text, sampling))
        out_ids, out_texts, labels = self._continuation(chunks, sampling, budget, req.return_logprob)
        count, reason, text_out = self._finish(out_ids, out_texts, sampling, budget)

        if count:
            self.cache.insert(prompt_ids + out_ids[:count - 1])
        meta = {"id": req.rid, "finish_reason": reason, "prompt_tokens": length, "weight_version": "default"}
        if req.return_logprob:
            lp_ids = out_ids[:count] if count else out_ids[:1]
            meta.update(self._logprobs(req, text, prompt_ids, ends, spans, lp_ids, labels, start))
        meta["completion_tokens"] = count
        meta["cached_tokens"] = cached
        with self._lock:
            self.stats.sequences += 1
            self.stats.prompt_tokens += length
            self.stats.cached_tokens += cached
            self.stats.completion_tokens += count
        item = {"text": text_out, "output_ids": out_ids[:count], "meta_info": meta}
        return Generation(item, out_texts[:count], count, length - cached)

    def _rng(self, text: str, sampling: Sampling) -> random.Random:
        key = hashlib.blake2b(f"{text}\x00{sampling.key}".encode("utf-8"), digest_size=16).digest()
        if sampling.sampling_seed is not None:
            draw = f"seed{sampling.sampling_seed}"
        elif sampling.greedy:
            draw = "0"
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
        if not sampling.ignore_eos:
            stop_ids.add(self.tokenizer.eos_token_id)
        for i, token_id in enumerate(ids):
            if token_id in stop_ids and (i >= sampling.min_new_tokens or token_id != self.tokenizer.eos_token_id):
                events.append((i, 1, {"type": "stop", "matched": token_id}))
                break
        full, ends = "".join(texts), _ends(texts)
        for order, stop in enumerate(sampling.stop):
            at = full.find(stop)
            if at >= 0:
                events.append((bisect.bisect_left(ends, at + len(stop)), 2 + order, {"type": "stop", "matched": stop}))
        index, _, reason = min(events, key=lambda e: (e[0], e[1]))
        count = index + 1
        matched = reason.get("matched")
        shown = count - 1 if isinstance(matched, int) and not sampling.no_stop_trim else count
        specials = self.tokenizer.special_ids.values() if sampling.skip_special_tokens else ()
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

    def model_info(self) -> dict:
        cfg, tok = self.config, self.tokenizer
        return {
            "model_path": cfg.model_path, "tokenizer_path": cfg.model_path, "is_generation": True,
            "preferred_sampling_params": None, "weight_version": "default", "simulated": True,
            "simulator": {
                "description": "tts-planner's SIMULATED SGLang server: no model, no GPU; text, rewards and "
                               "logprobs are synthetic, drawn to match each known problem's success rate",
                "version": __version__, "seed": cfg.seed, "known_problems": len(self.reasoner.bank),
                "default_rate": cfg.default_rate, "reward_auroc": cfg.reward_auroc,
                "eos_token_id": tok.eos_token_id, "step_separator": "\n\n", "step_tag": cfg.step_tag,
                "step_tag_id": cfg.step_tag_id, "plus_token_id": cfg.plus_token_id,
                "minus_token_id": cfg.minus_token_id, "context_length": cfg.context_length,
            },
        }

    def server_info(self, host: str, port: int) -> dict:
        cfg = self.config
        with self._lock:
            stats = asdict(self.stats)
        stats["cache_tokens"] = self.cache.total_tokens
        stats["evicted_tokens"] = self.cache.evicted_tokens
        return {
            "model_path": cfg.model_path, "tokenizer_path": cfg.model_path, "host": host, "port": port,
            "context_length": cfg.context_length, "page_size": 1, "disable_radix_cache": False,
            "max_total_num_tokens": cfg.cache_tokens, "random_seed": cfg.seed, "simulated": True,
            "sim_config": asdict(cfg), "internal_states": [{"sim_stats": stats}], "version": f"sim-{__version__}",
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


def _ends(texts: list[str]) -> list[int]:
    out, pos = [], 0
    for piece in texts:
        pos += len(piece)
        out.append(pos)
    return out


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
