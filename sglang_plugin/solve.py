"""`solve`: one problem, one strategy (or the adaptive program), one result, against an SGLang server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.errors import InputError
from sglang_plugin.config import SolveConfig
from sglang_plugin.endpoint import Endpoint
from sglang_plugin.programs import program_for
from sglang_plugin.result import SolveResult
from sglang_plugin.scorers import Scorer

if TYPE_CHECKING:
    from sglang_plugin.adaptive import AdaptivePlanner

DEFAULT_ENDPOINT = "http://127.0.0.1:30000"
ADAPTIVE = "adaptive"


def solve(problem: str, strategy: str = "majority", budget: int = 4,
          endpoint: str | Endpoint = DEFAULT_ENDPOINT, scorer: Scorer | None = None,
          config: SolveConfig | None = None, planner: AdaptivePlanner | None = None, *,
          max_budget: int | None = None, target_confidence: float | None = None,
          pass_at_1: float | None = None) -> SolveResult:
    """Run `strategy` with `budget` samples on `problem`, or with strategy="adaptive" probe, plan and stop
    early spending `budget` samples on average (sglang_plugin.adaptive; `max_budget` caps this problem,
    `target_confidence` stops it once its answer is that likely to be right).

    `endpoint` is the policy server's URL or an `Endpoint` (reuse one across calls: it asks the server for
    its model once, and it keeps the HTTP policy it was built with). `planner` holds the adaptive settings;
    given to a forced strategy, it adds the predicted difficulty and the table's expectations to the plan.
    `pass_at_1` replaces the per-problem prediction (e.g. from AdaptivePlanner.predict on a whole batch).
    Thread-safe: solve problems concurrently from several threads against one Endpoint.
    """
    program = None if strategy == ADAPTIVE else program_for(strategy)
    if program is not None:
        for name, value in (("max_budget", max_budget), ("target_confidence", target_confidence)):
            if value is not None:
                raise InputError(f"only the adaptive strategy takes {name}", field=name)
    config = config or SolveConfig()
    backend = endpoint if isinstance(endpoint, Endpoint) else Endpoint(endpoint, config=config)
    from sglang_plugin.adaptive import adaptive_program, forced_plan  # loads the predictor's dependencies

    if program is None:
        state = adaptive_program.run(problem=problem, budget=budget, config=config, scorer=scorer, planner=planner,
                                     max_budget=max_budget, target_confidence=target_confidence,
                                     pass_at_1=pass_at_1, backend=backend)
        return state.ret_value
    state = program.run(problem=problem, budget=budget, config=config, scorer=scorer, backend=backend)
    result = state.ret_value
    result.plan, result.prediction = forced_plan(problem, strategy, budget, planner, backend, scorer, pass_at_1)
    return result
