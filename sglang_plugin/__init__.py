"""SGLang frontend programs that carry out the planner's strategies, their reward-model scorers, and a
stand-in server that speaks SGLang's HTTP protocol.

The names below load on first use, so importing the package (or its light modules such as `answers`)
does not import sglang until a program, endpoint or scorer is needed.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "solve": "sglang_plugin.solve",
    "STRATEGIES": "sglang_plugin.programs",
    "NEEDS_SCORER": "sglang_plugin.programs",
    "run_strategy": "sglang_plugin.programs",
    "program_for": "sglang_plugin.programs",
    "SolveConfig": "sglang_plugin.config",
    "SolveResult": "sglang_plugin.result",
    "Branch": "sglang_plugin.result",
    "Vote": "sglang_plugin.result",
    "Endpoint": "sglang_plugin.endpoint",
    "EndpointError": "sglang_plugin.endpoint",
    "CostLedger": "sglang_plugin.endpoint",
    "Scorer": "sglang_plugin.scorers",
    "OutcomeRewardScorer": "sglang_plugin.scorers",
    "StepTagScorer": "sglang_plugin.scorers",
    "HttpRewardScorer": "sglang_plugin.scorers",
    "SelfCertaintyScorer": "sglang_plugin.scorers",
    "make_scorer": "sglang_plugin.scorers",
    "extract_answer": "sglang_plugin.answers",
    "AnswerGrouper": "sglang_plugin.answers",
    "AdaptivePlanner": "sglang_plugin.adaptive",
    "adaptive_program": "sglang_plugin.adaptive",
    "run_adaptive": "sglang_plugin.adaptive",
    "RewardEvidence": "sglang_plugin.posterior",
    "BetaPrior": "sglang_plugin.posterior",
    "Posterior": "sglang_plugin.posterior",
    "fit_prior_strength": "sglang_plugin.posterior",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sglang_plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
