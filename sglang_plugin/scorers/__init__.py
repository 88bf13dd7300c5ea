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


from sglang_plugin.scorers.base import Scorer
from sglang_plugin.scorers.http_reward import HttpRewardScorer
from sglang_plugin.scorers.kinds import SCORER_KINDS, make_scorer
from sglang_plugin.scorers.outcome import OutcomeRewardScorer
from sglang_plugin.scorers.self_certainty import SelfCertaintyScorer
from sglang_plugin.scorers.step_tag import StepTagScorer

__all__ = ["SCORER_KINDS", "HttpRewardScorer", "OutcomeRewardScorer", "Scorer", "SelfCertaintyScorer", "StepTagScorer",
           "make_scorer"]
