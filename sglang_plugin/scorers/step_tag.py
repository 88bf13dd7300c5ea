"""Step-tag process reward models served as plain causal LMs on an ordinary SGLang server (Math-Shepherd, RLHFlow):
the reward of a step is P("+") against P("-") at its tag, read from input-token logprobs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from sglang_plugin.scorers.base import Scorer, Steps, bad_answer, computed_tokens, render, sigmoid
from sglang_plugin.transport.http import HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger


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
    kind = "step_tag"

    def __init__(self, url: str, *, plus_token_id: int, minus_token_id: int, tag_token_id: int,
                 tag: str, template: str = "{problem} {steps}", step_suffix: str = " {tag}\n",
                 offset: int = 1, tag_context: Sequence[int] = (), reward_model: str | None = None,
                 transport: TransportConfig | None = None, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.reward_model = reward_model
        self.plus, self.minus, self.tag_id, self.tag = plus_token_id, minus_token_id, tag_token_id, tag
        self.template, self.suffix, self.offset = template, step_suffix.replace("{tag}", tag), offset
        self.context = list(tag_context)  # token ids right before each tag, when the tag alone is common
        self.client = HttpClient(transport, api_key=api_key)
        self._lengths: OrderedDict[str, int] = OrderedDict()  # formatted text -> tokens, as measured
        self._lock = threading.Lock()

    @classmethod
    def math_shepherd(cls, url: str, **options) -> StepTagScorer:
        """peiyi9979/math-shepherd-mistral-7b-prm: "ки" (12902) after each step, "+" 648, "-" 387."""
        return cls(url, **{"plus_token_id": 648, "minus_token_id": 387, "tag_token_id": 12902,
                           "tag": "ки", "reward_model": "peiyi9979/math-shepherd-mistral-7b-prm", **options})

    @classmethod
    def rlhflow(cls, url: str, **options) -> StepTagScorer:
        """RLHFlow/Llama3.1-8B-PRM-*: each step a user turn answered by "+" (Llama 3 ids: "+" 10, "-" 12;
        a tag is a "+" right after <|end_header_id|> (128007) and "\n\n" (271), since steps hold "+" too)."""
        template = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{problem} {steps}"
        suffix = ("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{tag}<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\n")
        return cls(url, **{"plus_token_id": 10, "minus_token_id": 12, "tag_token_id": 10, "tag": "+",
                           "template": template, "step_suffix": suffix, "offset": 0,
                           "tag_context": (128007, 271), "reward_model": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
                           **options})

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
            raise bad_answer(self.url + "/generate", f"{len(candidates)} texts sent, {len(items)} answers back")
        ledger.add_reward(sum(computed_tokens(item) for item in items))
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
        ledger.add_reward(computed_tokens(answer))
        length = answer.get("meta_info", {}).get("prompt_tokens") if isinstance(answer, dict) else None
        if not isinstance(length, int):
            raise bad_answer(self.url + "/generate", f"no prompt_tokens in {answer!r}"[:200])
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
            raise bad_answer(self.url + "/generate", "no input_token_logprobs / input_token_ids_logprobs in meta_info")
        ids = [entry[1] if entry else None for entry in tokens]
        width = len(self.context)
        tags = [i for i, token in enumerate(ids) if token == self.tag_id and i >= width
                and ids[i - width:i] == self.context]
        if (len(tags) != expected) if expected is not None else not tags:
            raise bad_answer(self.url + "/generate", f"found {len(tags)} step tags for {expected or 'the latest'} step(s)")
        rewards = []
        for i in tags if expected is not None else tags[-1:]:
            at = i + self.offset
            if at >= len(chosen) or not chosen[at]:
                raise bad_answer(self.url + "/generate", f"no +/- logprobs at input position {at}")
            logprob = {entry[1]: entry[0] for entry in chosen[at]}
            plus, minus = logprob.get(self.plus), logprob.get(self.minus)
            if plus is None or minus is None:
                raise bad_answer(self.url + "/generate", f"+/- token ids missing at input position {at}")
            rewards.append(sigmoid(plus - minus))
        return rewards


