"""`solve`: one problem, one strategy (the adaptive program included), one result, against an SGLang server."""

from __future__ import annotations

from planner.errors import InputError
from planner.strategies import strategy as find_strategy
from sglang_plugin.compat import RuntimeEndpoint
from sglang_plugin.config import SolveConfig
from sglang_plugin.programs import program_for
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import SolveResult
from sglang_plugin.scorers.base import Scorer
from sglang_plugin.transport.endpoint import Endpoint
from sglang_plugin.transport.http import TransportConfig

DEFAULT_ENDPOINT = "http://127.0.0.1:30000"


def solve(problem: str, strategy: str = "majority", budget: int = 4,
          endpoint: str | Endpoint | RuntimeEndpoint = DEFAULT_ENDPOINT, scorer: Scorer | None = None,
          config: SolveConfig | None = None, planning: Planning | None = None, *,
          max_budget: int | None = None, target_confidence: float | None = None,
          pass_at_1: float | None = None, transport: TransportConfig | None = None) -> SolveResult:
    """Run `strategy` with `budget` samples on `problem`; with strategy="adaptive", probe, plan and stop early,
    spending `budget` samples on average (`max_budget` caps this problem, `target_confidence` stops it once its
    answer is that likely to be right, `pass_at_1` replaces the per-problem prediction).

    `endpoint` is the policy server's URL, an `Endpoint` (reuse one across calls: it asks the server for its model
    once and keeps its transport settings), or a `sgl.RuntimeEndpoint`, whose URL and key are reused by a new
    Endpoint (RuntimeEndpoint's own requests have no timeout); `transport` is the new Endpoint's. `planning` holds the planner's inputs; given to a
    forced strategy, it adds the predicted difficulty and the table's expectations to the result's plan.
    Thread-safe: solve problems concurrently from several threads against one Endpoint.
    """
    spec = find_strategy(strategy)
    if not spec.plans:
        for name, value in (("max_budget", max_budget), ("target_confidence", target_confidence)):
            if value is not None:
                raise InputError(f"only the adaptive strategy takes {name}", field=name)
    extra = {k: v for k, v in (("max_budget", max_budget), ("target_confidence", target_confidence),
                               ("pass_at_1", pass_at_1)) if v is not None}
    if extra:
        planning = (planning or Planning()).for_problem(**extra)
    # use_thread=False: the program's state runs in this thread; the frontend starts no thread for it.
    state = program_for(strategy).run(problem=problem, budget=budget, config=config or SolveConfig(), scorer=scorer,
                                      planning=planning, backend=as_endpoint(endpoint, transport), use_thread=False)
    return state.ret_value


def as_endpoint(endpoint: str | Endpoint | RuntimeEndpoint, transport: TransportConfig | None = None) -> Endpoint:
    """An Endpoint for a URL, an Endpoint, or a plain RuntimeEndpoint (its base_url and api_key reused)."""
    if isinstance(endpoint, Endpoint):
        return endpoint
    if isinstance(endpoint, RuntimeEndpoint):
        return Endpoint(endpoint.base_url, api_key=getattr(endpoint, "api_key", None),
                        verify=getattr(endpoint, "verify", None), transport=transport)
    if isinstance(endpoint, str):
        return Endpoint(endpoint, transport=transport)
    raise TypeError(f"endpoint must be a URL, an sglang_plugin.Endpoint or a sgl.RuntimeEndpoint, got "
                    f"{type(endpoint).__name__}")
