"""The registry: one `@sgl.function` program per strategy, under the names the planner emits.

Every program has the same signature, `program(s, problem, budget, config=None, scorer=None)`, and
returns a `SolveResult` (as `state.ret_value` when run with `.run()`). It writes the problem as a user
turn, answers it in an assistant turn holding the chosen solution, and sets `s["answer"]`; so it can
also be called from inside your own SGLang program with `run_strategy(s, name, ...)`.
"""

from __future__ import annotations

import sglang as sgl

from planner.errors import InputError
from sglang_plugin.config import SolveConfig
from sglang_plugin.programs_base import run_program
from sglang_plugin.programs_particle import particle_filter
from sglang_plugin.programs_sampling import best_of_n, cot, majority, weighted_vote
from sglang_plugin.programs_search import beam_search, dvts
from sglang_plugin.result import SolveResult
from sglang_plugin.scorers import Scorer

# name -> (strategy body, needs a scorer)
_BODIES = {
    "cot": (cot, False),
    "majority": (majority, False),
    "best_of_n": (best_of_n, True),
    "weighted_vote": (weighted_vote, True),
    "beam_search": (beam_search, True),
    "dvts": (dvts, True),
    "particle_filter": (particle_filter, True),
}

STRATEGIES: dict[str, sgl.function] = {
    name: sgl.function(run_program(name, needs_scorer, body)) for name, (body, needs_scorer) in _BODIES.items()
}
NEEDS_SCORER = frozenset(name for name, (_, needs) in _BODIES.items() if needs)


def program_for(strategy: str):
    """The `@sgl.function` program of a strategy name."""
    try:
        return STRATEGIES[strategy]
    except KeyError:
        raise InputError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}",
                         field="strategy") from None


def run_strategy(s, strategy: str, problem: str, budget: int, config: SolveConfig | None = None,
                 scorer: Scorer | None = None) -> SolveResult:
    """Run a strategy on the state `s` of your own SGLang program (its backend must be an `Endpoint`)."""
    return program_for(strategy).func(s, problem, budget, config, scorer)
