"""Outcome reward models on an SGLang server (`--is-embedding`, `POST /classify`), e.g. Qwen2.5-Math-RM-72B."""

from __future__ import annotations

from sglang_plugin.scorers.base import QWEN_ORM_TEMPLATE, PrefixScorer, bad_answer, computed_tokens, render, sigmoid
from sglang_plugin.transport.http import HttpClient, TransportConfig
from sglang_plugin.transport.ledger import CostLedger


class OutcomeRewardScorer(PrefixScorer):
    """An outcome reward model behind SGLang's `/classify` (server started with `--is-embedding`).

    `template` places the problem and the (partial) response in the reward model's chat format. Scores
    are sigmoid(raw score), in (0, 1): Qwen2.5-Math-RM-72B answers raw logits, and summed votes and
    particle weights need probabilities (the ranking is unchanged). `sigmoid=False` keeps them raw.
    """

    name = "orm"
    kind = "outcome"

    def __init__(self, url: str, *, template: str = QWEN_ORM_TEMPLATE, sigmoid: bool = True,
                 max_batch: int = 64, reward_model: str | None = "Qwen/Qwen2.5-Math-RM-72B",
                 transport: TransportConfig | None = None, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.reward_model = reward_model
        self.template, self.sigmoid, self.max_batch = template, sigmoid, max_batch
        self.client = HttpClient(transport, api_key=api_key)

    def score_texts(self, problem: str, responses: list[str], ledger: CostLedger) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(responses), self.max_batch):
            texts = [render(self.template, problem=problem, response=r)
                     for r in responses[start:start + self.max_batch]]
            answer = self.client.post(self.url + "/classify", {"text": texts}, ledger=ledger)
            items = answer if isinstance(answer, list) else [answer]
            if len(items) != len(texts):
                raise bad_answer(self.url + "/classify", f"{len(texts)} texts sent, {len(items)} scores back")
            ledger.add_reward(sum(computed_tokens(item) for item in items))
            scores += [self._value(item) for item in items]
        return scores

    def _value(self, item) -> float:
        try:
            value = float(item["embedding"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise bad_answer(self.url + "/classify", f"no score in {item!r}"[:200]) from exc
        return sigmoid(value) if self.sigmoid else value


