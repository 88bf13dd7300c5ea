"""Reward scorers, kept apart from the search: each turns partial solutions into one score per step.

One interface for all of them (`Scorer`): the programs hand over a whole step's candidates at once
(`score_last`) or whole trajectories (`score_steps`), so each scorer makes one batched call per step.
Every request shares the problem prefix, so a server with a radix cache computes it once; the tokens a
reward model had to compute (prompt tokens minus its cache hits, as it reported them) go into the Cost.

- `OutcomeRewardScorer`: an outcome reward model on an SGLang server started with `--is-embedding`
  (`POST /classify`), applied to each partial solution to score its latest step.
- `StepTagScorer`: a step-tag PRM served as a plain causal LM (Math-Shepherd, RLHFlow): the reward of
  step k is P("+") / (P("+") + P("-")) at the k-th tag, from one `/generate` with max_new_tokens 0.
- `HttpRewardScorer`: any other HTTP reward endpoint (e.g. Qwen2.5-Math-PRM-7B on vLLM), configured by
  request template and JSON paths.
- `SelfCertaintyScorer`: no reward model; the policy's own top-k token logprobs.
"""

from __future__ import annotations

import math
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

from planner.errors import InputError
from sglang_plugin.config import SolveConfig
from sglang_plugin.endpoint import CostLedger, EndpointError, HttpClient

# ChatML as used by Qwen2.5-Math reward models, with the system prompt of their model cards.
QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_ORM_TEMPLATE = ("<|im_start|>system\n" + QWEN_MATH_SYSTEM + "<|im_end|>\n<|im_start|>user\n{problem}"
                     "<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>\n<|endoftext|>")
QWEN_PRM_TEMPLATE = ("<|im_start|>system\n" + QWEN_MATH_SYSTEM + "<|im_end|>\n<|im_start|>user\n{problem}"
                     "<|im_end|>\n<|im_start|>assistant\n{steps}<|im_end|><|endoftext|>")
_FIELDS = re.compile(r"\{(problem|response|steps)\}")

Steps = Sequence[str]


def render(template: str, **values: str) -> str:
    """Fill {problem}, {response} or {steps} in one pass (so braces in the values are left alone)."""
    return _FIELDS.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class Scorer(ABC):
    """Scores candidate partial solutions (lists of steps as generated) of one problem. Thread-safe."""

    name = "scorer"
    intrinsic = False  # scores come from the policy's own generation, no reward requests

    def gen_options(self) -> dict:
        """Extra `sgl.gen` arguments the programs must send for this scorer."""
        return {}

    def step_score(self, meta_info: dict) -> float:
        """Intrinsic scorers: the score of a step from its generation's meta_info."""
        raise NotImplementedError(f"{self.name} scores with reward requests, not from generation")

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        """The score of each candidate's latest step, in one batched call."""
        return [steps[-1] for steps in self.score_steps(problem, candidates, ledger)]

    @abstractmethod
    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        """A score for every step of every candidate."""


class _PrefixScorer(Scorer):
    """Scorers that read one scalar per text: step k's score is the score of steps[:k]."""

    @abstractmethod
    def score_texts(self, problem: str, responses: list[str], ledger: CostLedger) -> list[float]:
        ...

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        return self.score_texts(problem, ["".join(steps) for steps in candidates], ledger)

    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        prefixes = ["".join(steps[:k + 1]) for steps in candidates for k in range(len(steps))]
        flat = iter(self.score_texts(problem, prefixes, ledger))
        return [[next(flat) for _ in steps] for steps in candidates]


class OutcomeRewardScorer(_PrefixScorer):
    """An outcome reward model behind SGLang's `/classify` (server started with `--is-embedding`).

    `template` places the problem and the (partial) response in the reward model's chat format. Scores
    are sigmoid(raw score), in (0, 1): Qwen2.5-Math-RM-72B answers raw logits, and summed votes and
    particle weights need probabilities (the ranking is unchanged). `sigmoid=False` keeps them raw.
    """

    name = "orm"

    def __init__(self, url: str, *, template: str = QWEN_ORM_TEMPLATE, sigmoid: bool = True,
                 max_batch: int = 64, config: SolveConfig | None = None, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.template, self.sigmoid, self.max_batch = template, sigmoid, max_batch
        self.client = HttpClient(config, api_key=api_key)

    def score_texts(self, problem: str, responses: list[str], ledger: CostLedger) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(responses), self.max_batch):
            texts = [render(self.template, problem=problem, response=r)
                     for r in responses[start:start + self.max_batch]]
            answer = self.client.post(self.url + "/classify", {"text": texts}, ledger=ledger)
            items = answer if isinstance(answer, list) else [answer]
            if len(items) != len(texts):
                raise _bad(self.url + "/classify", f"{len(texts)} texts sent, {len(items)} scores back")
            ledger.add_reward(sum(_computed_tokens(item) for item in items))
            scores += [self._value(item) for item in items]
        return scores

    def _value(self, item) -> float:
        try:
            value = float(item["embedding"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise _bad(self.url + "/classify", f"no score in {item!r}"[:200]) from exc
        return _sigmoid(value) if self.sigmoid else value


class StepTagScorer(Scorer):
    """A step-tag PRM served as a plain causal LM on an ordinary SGLang server.

    Each candidate becomes `template` with {steps} = the steps, each followed by `step_suffix` (which holds
    the tag). The reward of step k is read at the k-th occurrence of `tag_token_id` + `offset` input
    positions: offset 1 when the PRM predicts "+"/"-" after the tag (Math-Shepherd; `step_suffix` then puts
    a token after the last tag so that position exists), offset 0 when the "+" placeholder itself is the
    tag (RLHFlow). One warm-up request per problem caches the prefix and measures it in tokens, so the
    scoring requests ask for logprobs only after it (or after the candidate's previous step, when only
    the latest step is wanted) and the server's cache serves the rest.
    """

    name = "step_tag"

    def __init__(self, url: str, *, plus_token_id: int, minus_token_id: int, tag_token_id: int,
                 tag: str, template: str = "{problem} {steps}", step_suffix: str = " {tag}\n",
                 offset: int = 1, tag_context: Sequence[int] = (), config: SolveConfig | None = None,
                 api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.plus, self.minus, self.tag_id, self.tag = plus_token_id, minus_token_id, tag_token_id, tag
        self.template, self.suffix, self.offset = template, step_suffix.replace("{tag}", tag), offset
        self.context = list(tag_context)  # token ids right before each tag, when the tag alone is common
        self.client = HttpClient(config, api_key=api_key)
        self._lengths: OrderedDict[str, int] = OrderedDict()  # formatted text -> tokens, as measured
        self._lock = threading.Lock()

    @classmethod
    def math_shepherd(cls, url: str, **options) -> StepTagScorer:
        """peiyi9979/math-shepherd-mistral-7b-prm: "ки" (12902) after each step, "+" 648, "-" 387."""
        return cls(url, **{"plus_token_id": 648, "minus_token_id": 387, "tag_token_id": 12902,
                           "tag": "ки", **options})

    @classmethod
    def rlhflow(cls, url: str, **options) -> StepTagScorer:
        """RLHFlow/Llama3.1-8B-PRM-*: each step a user turn answered by "+" (Llama 3 ids: "+" 10, "-" 12;
        a tag is a "+" right after <|end_header_id|> (128007) and "\n\n" (271), since steps hold "+" too)."""
        template = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{problem} {steps}"
        suffix = ("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{tag}<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\n")
        return cls(url, **{"plus_token_id": 10, "minus_token_id": 12, "tag_token_id": 10, "tag": "+",
                           "template": template, "step_suffix": suffix, "offset": 0,
                           "tag_context": (128007, 271), **options})

    def format(self, problem: str, steps: Steps) -> str:
        """The PRM's input; a tag that is a token of its own is taken out of the step text."""
        body = "".join((step if self.context else step.replace(self.tag, "")).strip() + self.suffix for step in steps)
        return render(self.template, problem=problem, steps=body)

    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        return self._score(problem, candidates, ledger, last_only=False)

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        return [scores[-1] for scores in self._score(problem, candidates, ledger, last_only=True)]

    def _score(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger, *,
               last_only: bool) -> list[list[float]]:
        """One batched /generate. Logprobs are asked from the problem prefix on, or, for the latest step
        only, from the end of the candidate's previous step when an earlier call measured it: a server
        recomputes the positions it returns logprobs for, so everything before them stays cached."""
        if not candidates:
            return []
        prefix = self._tokens(self.format(problem, []), ledger)
        texts = [self.format(problem, steps) for steps in candidates]
        starts = []
        for steps in candidates:
            known = self._known(self.format(problem, steps[:-1])) if last_only else None
            starts.append(max((known or prefix) - 1, 0))
        payload = {"text": texts, "sampling_params": {"max_new_tokens": 0, "temperature": 0.0},
                   "return_logprob": True, "logprob_start_len": starts, "token_ids_logprob": [self.plus, self.minus]}
        answer = self.client.post(self.url + "/generate", payload, ledger=ledger)
        items = answer if isinstance(answer, list) else [answer]
        if len(items) != len(candidates):
            raise _bad(self.url + "/generate", f"{len(candidates)} texts sent, {len(items)} answers back")
        ledger.add_reward(sum(_computed_tokens(item) for item in items))
        for text, item in zip(texts, items):
            if isinstance(item, dict) and isinstance(item.get("meta_info"), dict):
                self._remember(text, item["meta_info"].get("prompt_tokens"))
        return [self._rewards(item, None if last_only else len(steps)) for item, steps in zip(items, candidates)]

    def _tokens(self, text: str, ledger: CostLedger) -> int:
        """The length in tokens of `text`, measured (and cached on the server) by a max_new_tokens 0 call."""
        known = self._known(text)
        if known is not None:
            return known
        answer = self.client.post(self.url + "/generate",
                                  {"text": text, "sampling_params": {"max_new_tokens": 0}}, ledger=ledger)
        ledger.add_reward(_computed_tokens(answer))
        length = answer.get("meta_info", {}).get("prompt_tokens") if isinstance(answer, dict) else None
        if not isinstance(length, int):
            raise _bad(self.url + "/generate", f"no prompt_tokens in {answer!r}"[:200])
        self._remember(text, length)
        return length

    def _known(self, text: str) -> int | None:
        with self._lock:
            return self._lengths.get(text)

    def _remember(self, text: str, length) -> None:
        if isinstance(length, int):
            with self._lock:
                self._lengths[text] = length
                self._lengths.move_to_end(text)
                if len(self._lengths) > 8192:
                    self._lengths.popitem(last=False)

    def _rewards(self, item: dict, expected: int | None) -> list[float]:
        """Rewards at the step tags in the returned positions: all of them (`expected` many), or the last."""
        meta = item.get("meta_info", {}) if isinstance(item, dict) else {}
        tokens, chosen = meta.get("input_token_logprobs"), meta.get("input_token_ids_logprobs")
        if tokens is None or chosen is None:
            raise _bad(self.url + "/generate", "no input_token_logprobs / input_token_ids_logprobs in meta_info")
        ids = [entry[1] if entry else None for entry in tokens]
        width = len(self.context)
        tags = [i for i, token in enumerate(ids) if token == self.tag_id and i >= width
                and ids[i - width:i] == self.context]
        if (len(tags) != expected) if expected is not None else not tags:
            raise _bad(self.url + "/generate", f"found {len(tags)} step tags for {expected or 'the latest'} step(s)")
        rewards = []
        for i in tags if expected is not None else tags[-1:]:
            at = i + self.offset
            if at >= len(chosen) or not chosen[at]:
                raise _bad(self.url + "/generate", f"no +/- logprobs at input position {at}")
            logprob = {entry[1]: entry[0] for entry in chosen[at]}
            plus, minus = logprob.get(self.plus), logprob.get(self.minus)
            if plus is None or minus is None:
                raise _bad(self.url + "/generate", f"+/- token ids missing at input position {at}")
            rewards.append(_sigmoid(plus - minus))
        return rewards


class HttpRewardScorer(Scorer):
    """Any HTTP reward endpoint, for reward models SGLang cannot serve.

    `request` is the JSON body; a string value "{texts}" becomes the list of candidate texts (one request
    per step), "{text}" one text (one request per candidate). `scores_path` finds, per text, either one
    scalar (an outcome score: steps are then scored through prefixes) or one entry per step
    (`per_step=True`); an entry that is a list is read at `pair_index` (e.g. [P(bad), P(good)]: 1).
    `tokens_path` reads the reward tokens the server computed (e.g. vLLM's "usage.prompt_tokens"); a
    server that does not report them adds nothing to reward_tokens.
    Paths are dot-separated keys with [i] and [*], e.g. "data[*].data".
    """

    name = "http"

    def __init__(self, url: str, *, request: dict, scores_path: str, template: str = QWEN_PRM_TEMPLATE,
                 step_separator: str = "<extra_0>", per_step: bool = True, pair_index: int | None = None,
                 tokens_path: str | None = None, config: SolveConfig | None = None,
                 api_key: str | None = None, headers: dict | None = None) -> None:
        self.url, self.request, self.scores_path = url, request, scores_path
        self.template, self.separator, self.per_step = template, step_separator, per_step
        self.pair_index, self.tokens_path = pair_index, tokens_path
        self.one_per_request = _holds(request, "{text}")
        if not self.one_per_request and not _holds(request, "{texts}"):
            raise InputError('needs a "{text}" or "{texts}" placeholder value', field="request")
        self.client = HttpClient(config, api_key=api_key, headers=headers)

    @classmethod
    def vllm_qwen_prm(cls, url: str, model: str = "Qwen/Qwen2.5-Math-PRM-7B", **options) -> HttpRewardScorer:
        """Qwen2.5-Math-PRM-7B on `vllm serve ... --task reward`: POST /pooling, [P(bad), P(good)] per
        <extra_0> step marker."""
        return cls(url.rstrip("/") + "/pooling", **{
            "request": {"model": model, "input": "{texts}"}, "scores_path": "data[*].data",
            "pair_index": 1, "tokens_path": "usage.prompt_tokens", **options})

    def format(self, problem: str, steps: Steps) -> str:
        if self.per_step:
            body = "".join(step.strip() + self.separator for step in steps)
            return render(self.template, problem=problem, steps=body, response=body)
        return render(self.template, problem=problem, response="".join(steps), steps="".join(steps))

    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        if not self.per_step:
            prefixes = [steps[:k + 1] for steps in candidates for k in range(len(steps))]
            flat = iter(self._entries(problem, prefixes, ledger))
            return [[self._scalar(next(flat)) for _ in steps] for steps in candidates]
        results = []
        for entries, steps in zip(self._entries(problem, candidates, ledger), candidates):
            if not isinstance(entries, list) or len(entries) != len(steps):
                raise _bad(self.url, f"expected {len(steps)} step scores, got {entries!r}"[:200])
            results.append([self._scalar(entry) for entry in entries])
        return results

    def score_last(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[float]:
        if self.per_step:
            return super().score_last(problem, candidates, ledger)
        return [self._scalar(entry) for entry in self._entries(problem, candidates, ledger)]

    def _entries(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list:
        texts = [self.format(problem, steps) for steps in candidates]
        batches = [[t] for t in texts] if self.one_per_request else [texts] if texts else []
        entries = []
        for batch in batches:
            body = _fill(self.request, batch)
            answer = self.client.post(self.url, body, ledger=ledger)
            found = json_path(answer, self.scores_path)
            found = found if isinstance(found, list) and not self.one_per_request else [found]
            if len(found) != len(batch):
                raise _bad(self.url, f"{len(batch)} texts sent, {len(found)} results at {self.scores_path}")
            tokens = json_path(answer, self.tokens_path) if self.tokens_path else 0
            ledger.add_reward(int(tokens) if isinstance(tokens, (int, float)) else 0)
            entries += found
        return entries

    def _scalar(self, entry) -> float:
        if isinstance(entry, list) and self.pair_index is not None:
            entry = entry[self.pair_index]
        while isinstance(entry, list) and len(entry) == 1:
            entry = entry[0]
        if not isinstance(entry, (int, float)):
            raise _bad(self.url, f"score is not a number: {entry!r}"[:200])
        return float(entry)


class SelfCertaintyScorer(Scorer):
    """No reward model: self-certainty (Kang et al., arXiv 2502.18581), the KL divergence of the uniform
    distribution from the policy's next-token distribution, averaged over a step's tokens. The server
    returns only the top-k logprobs, so the distribution is the top-k renormalised; the step score is
    1 - exp(-KL), in [0, 1), 0 for a uniform guess and near 1 for a confident one."""

    name = "self_certainty"
    intrinsic = True

    def __init__(self, top_k: int = 5) -> None:
        if top_k < 2:
            raise InputError("needs at least 2 top logprobs", field="top_k")
        self.top_k = top_k

    def gen_options(self) -> dict:
        return {"return_logprob": True, "top_logprobs_num": self.top_k, "logprob_start_len": -1}

    def step_score(self, meta_info: dict) -> float:
        per_token = meta_info.get("output_top_logprobs")
        if per_token is None:
            raise EndpointError("the policy server returned no output_top_logprobs", url="", kind="bad_response")
        divergences = [_kl_from_uniform([entry[0] for entry in top if entry and entry[0] is not None])
                       for top in per_token if top]
        divergences = [d for d in divergences if d is not None]
        if not divergences:
            return 0.0
        return 1.0 - math.exp(-sum(divergences) / len(divergences))

    def score_steps(self, problem: str, candidates: Sequence[Steps], ledger: CostLedger) -> list[list[float]]:
        raise NotImplementedError("self-certainty scores are read from the generation (step_score)")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _kl_from_uniform(logprobs: list[float]) -> float | None:
    if len(logprobs) < 2:
        return None
    top = max(logprobs)
    log_total = top + math.log(sum(math.exp(lp - top) for lp in logprobs))
    k = len(logprobs)
    return -sum(lp - log_total for lp in logprobs) / k - math.log(k)


def _computed_tokens(item) -> int:
    """Tokens a reward server computed for one text: its prompt tokens minus its cache hits."""
    meta = item.get("meta_info", {}) if isinstance(item, dict) else {}
    return int(meta.get("prompt_tokens", 0)) - int(meta.get("cached_tokens", 0))


def _holds(template, marker: str) -> bool:
    if isinstance(template, dict):
        return any(_holds(v, marker) for v in template.values())
    if isinstance(template, list):
        return any(_holds(v, marker) for v in template)
    return template == marker


def _fill(template, texts: list[str]):
    if isinstance(template, dict):
        return {k: _fill(v, texts) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, texts) for v in template]
    if template == "{texts}":
        return list(texts)
    if template == "{text}":
        return texts[0]
    return template


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\*|-?\d+)\]")


def json_path(document, path: str):
    """Follow "a.b[0].c" or "data[*].data" through decoded JSON; [*] maps over a list. None if absent."""
    parts = [(m.group(1), m.group(2)) for m in _PATH_PART.finditer(path)]

    def walk(node, i: int):
        if i == len(parts):
            return node
        key, index = parts[i]
        if key is not None:
            return walk(node.get(key), i + 1) if isinstance(node, dict) and key in node else None
        if not isinstance(node, list):
            return None
        if index == "*":
            return [walk(item, i + 1) for item in node]
        position = int(index)
        return walk(node[position], i + 1) if -len(node) <= position < len(node) else None

    return walk(document, 0)


def _bad(url: str, message: str) -> EndpointError:
    return EndpointError(f"{url}: {message}", url=url, kind="bad_response", status=200)


SCORER_KINDS = ("none", "orm", "step_tag", "math_shepherd", "rlhflow", "vllm_qwen_prm", "self_certainty")


def make_scorer(kind: str, url: str | None = None, **options) -> Scorer | None:
    """A scorer by kind name (for the CLI and configs): none, orm, math_shepherd, rlhflow, step_tag
    (give the token ids), vllm_qwen_prm, self_certainty."""
    if kind == "none":
        return None
    if kind == "self_certainty":
        return SelfCertaintyScorer(**options)
    if kind not in SCORER_KINDS:
        raise InputError(f"unknown scorer kind {kind!r}; known: {', '.join(SCORER_KINDS)}", field="scorer")
    if not url:
        raise InputError(f"scorer {kind!r} needs the reward server's URL", field="scorer_url")
    factory = {"orm": OutcomeRewardScorer, "step_tag": StepTagScorer, "math_shepherd": StepTagScorer.math_shepherd,
               "rlhflow": StepTagScorer.rlhflow, "vllm_qwen_prm": HttpRewardScorer.vllm_qwen_prm}[kind]
    return factory(url, **options)
