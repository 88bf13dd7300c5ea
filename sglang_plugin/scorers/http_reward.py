"""Any HTTP reward endpoint, for reward models SGLang does not serve (e.g. Qwen2.5-Math-PRM-7B on vLLM)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from planner.errors import InputError
from sglang_plugin.scorers.base import QWEN_PRM_TEMPLATE, Scorer, Steps, bad_answer, render
from sglang_plugin.transport.http import HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger


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
                 tokens_path: str | None = None, reward_model: str | None = None,
                 transport: TransportConfig | None = None, api_key: str | None = None,
                 headers: dict | None = None) -> None:
        self.url, self.request, self.scores_path = url, request, scores_path
        self.kind = "process" if per_step else "outcome"
        self.reward_model = reward_model
        self.template, self.separator, self.per_step = template, step_separator, per_step
        self.pair_index, self.tokens_path = pair_index, tokens_path
        self.one_per_request = _holds(request, "{text}")
        if not self.one_per_request and not _holds(request, "{texts}"):
            raise InputError('needs a "{text}" or "{texts}" placeholder value', field="request")
        self.client = HttpClient(transport, api_key=api_key, headers=headers)

    @classmethod
    def vllm_qwen_prm(cls, url: str, model: str = "Qwen/Qwen2.5-Math-PRM-7B", **options) -> HttpRewardScorer:
        """Qwen2.5-Math-PRM-7B on `vllm serve ... --task reward`: POST /pooling, [P(bad), P(good)] per
        <extra_0> step marker."""
        return cls(url.rstrip("/") + "/pooling", **{
            "request": {"model": model, "input": "{texts}"}, "scores_path": "data[*].data",
            "pair_index": 1, "tokens_path": "usage.prompt_tokens", "reward_model": "Qwen/Qwen2.5-Math-PRM-7B",
            **options})

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
                raise bad_answer(self.url, f"expected {len(steps)} step scores, got {entries!r}"[:200])
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
                raise bad_answer(self.url, f"{len(batch)} texts sent, {len(found)} results at {self.scores_path}")
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
            raise bad_answer(self.url, f"score is not a number: {entry!r}"[:200])
        return float(entry)



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


