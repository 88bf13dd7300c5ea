"""SGLang frontend programs that carry out the planner's strategies, their reward-model scorers, the batch runner
and the command line (and, in `sglang_plugin.sim`, a stand-in server that speaks SGLang's HTTP protocol).

The names below load on first use, so importing the package (or its light modules such as `answers`)
does not import sglang until a program, endpoint or scorer is needed.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "solve": "sglang_plugin.solving",
    "run_strategy": "sglang_plugin.programs",
    "program_for": "sglang_plugin.programs",
    "Planning": "sglang_plugin.programs.planning",
    "SolveConfig": "sglang_plugin.config",
    "SamplingConfig": "sglang_plugin.config",
    "SearchConfig": "sglang_plugin.config",
    "TransportConfig": "sglang_plugin.transport.http",
    "SolveResult": "sglang_plugin.programs.result",
    "Branch": "sglang_plugin.programs.result",
    "Vote": "sglang_plugin.programs.result",
    "Endpoint": "sglang_plugin.transport.endpoint",
    "EndpointError": "sglang_plugin.transport.http",
    "CostLedger": "sglang_plugin.transport.ledger",
    "Scorer": "sglang_plugin.scorers",
    "OutcomeRewardScorer": "sglang_plugin.scorers",
    "StepTagScorer": "sglang_plugin.scorers",
    "HttpRewardScorer": "sglang_plugin.scorers",
    "SelfCertaintyScorer": "sglang_plugin.scorers",
    "make_scorer": "sglang_plugin.scorers",
    "extract_answer": "planner.grading",
    "Grader": "planner.grading",
    "GradingConfig": "planner.grading",
    "AdaptiveConfig": "planner.adaptive",
    "RewardEvidence": "planner.belief.evidence",
    "BetaPrior": "planner.belief.posterior",
    "Posterior": "planner.belief.posterior",
    "fit_prior_strength": "planner.belief.posterior",
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
