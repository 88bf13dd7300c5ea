"""Self-certainty: a score from the policy's own top-k token logprobs, no reward model."""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.errors import InputError
from sglang_plugin.scorers.base import Scorer, Steps
from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.ledger import CostLedger


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



def _kl_from_uniform(logprobs: list[float]) -> float | None:
    if len(logprobs) < 2:
        return None
    top = max(logprobs)
    log_total = top + math.log(sum(math.exp(lp - top) for lp in logprobs))
    k = len(logprobs)
    return -sum(lp - log_total for lp in logprobs) / k - math.log(k)


