"""`solve`: one problem, one strategy, one result, against an SGLang server."""

from __future__ import annotations

from sglang_plugin.config import SolveConfig
from sglang_plugin.endpoint import Endpoint
from sglang_plugin.programs import program_for
from sglang_plugin.result import SolveResult
from sglang_plugin.scorers import Scorer

DEFAULT_ENDPOINT = "http://127.0.0.1:30000"


def solve(problem: str, strategy: str = "majority", budget: int = 4,
          endpoint: str | Endpoint = DEFAULT_ENDPOINT, scorer: Scorer | None = None,
          config: SolveConfig | None = None) -> SolveResult:
    """Run `strategy` with `budget` samples on `problem`.

    `endpoint` is the policy server's URL or an `Endpoint` (reuse one across calls: it asks the server for
    its model once, and it keeps the HTTP policy it was built with). Thread-safe: solve problems
    concurrently from several threads against one Endpoint.
    """
    config = config or SolveConfig()
    program = program_for(strategy)
    backend = endpoint if isinstance(endpoint, Endpoint) else Endpoint(endpoint, config=config)
    state = program.run(problem=problem, budget=budget, config=config, scorer=scorer, backend=backend)
    return state.ret_value
