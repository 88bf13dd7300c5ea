"""The SGLang programs of the registry's strategies (planner.strategies), built on first use.

Every strategy body has one signature, `body(run: SearchRun) -> Selection`; `program_for(name)` wraps it in the
common frame (validate the arguments, write the problem as a user turn, run the body, answer in an assistant
turn holding the chosen solution, set `s["answer"]`, always release the forks) and returns the
`@sgl.function`, whose `.run(problem=..., budget=..., config=..., scorer=..., backend=Endpoint(url))` gives the
SolveResult as `state.ret_value`. `run_strategy(s, name, ...)` runs one inside your own SGLang program. With a
`planning` (sglang_plugin.programs.planning), the result of a planned strategy carries the table's expectations
and the predicted difficulty; the adaptive program plans with it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import sglang as sgl

from planner.records import PlanRecord
from planner.strategies import strategy as find_strategy
from sglang_plugin.compat import StopTracing, TracerProgramState
from sglang_plugin.config import SolveConfig
from sglang_plugin.programs.planning import Planning
from sglang_plugin.programs.result import Selection, SolveResult
from sglang_plugin.programs.search_run import SearchRun
from sglang_plugin.scorers import Scorer


def body_of(name: str) -> Callable:
    """The Python function a registry entry's `program` path names."""
    module, _, attribute = find_strategy(name).program.partition(":")
    return getattr(importlib.import_module(module), attribute)


def frame(name: str, body: Callable[[SearchRun], Selection]) -> Callable:
    """The common frame of every strategy's program."""
    spec = find_strategy(name)

    def program(s, problem: str, budget: int, config: SolveConfig | None = None, scorer: Scorer | None = None,
                planning: Planning | None = None) -> SolveResult:
        if isinstance(s, TracerProgramState):
            # run_batch traces programs to pre-cache their constant prefix; ours starts with arguments.
            raise StopTracing()
        run = SearchRun(s, name, problem, budget, config, scorer, planning, needs_scorer=spec.needs_reward)
        if not spec.plans:
            size = min(budget, spec.max_size) if isinstance(budget, int) else budget  # cot is one sample
            if planning is not None:
                run.plan, run.prediction = planning.priced(problem, name, size, run.served, scorer, run.config.search)
            else:
                run.plan = PlanRecord(name, size)
        run.open()
        return run.finish(body(run))

    program.__name__ = name
    return program


@functools.cache
def program_for(name: str):
    """The `@sgl.function` program of a strategy name (the adaptive one included)."""
    return sgl.function(frame(name, body_of(name)))


def run_strategy(s, strategy: str, problem: str, budget: int, config: SolveConfig | None = None,
                 scorer: Scorer | None = None, planning: Planning | None = None) -> SolveResult:
    """Run a strategy on the state `s` of your own SGLang program (its backend must be an `Endpoint`)."""
    return program_for(strategy).func(s, problem, budget, config, scorer, planning)
