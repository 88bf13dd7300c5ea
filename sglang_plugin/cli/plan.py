"""`tts-planner plan`: a strategy and size for every problem of a file, spending a budget where it buys the most."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from planner.logs import logger
from sglang_plugin.cli.options import problem_file_options, report_skipped, skip_log, write_output
from sglang_plugin.cli.predict import predict_with_progress

if TYPE_CHECKING:
    from planner.planning.calibration import Calibration
    from planner.planning.table import StrategyTable
    from planner.policies import Policy
    from planner.prediction.predictor import DifficultyPredictor

log = logger(__name__)


def parse_strategies(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def planned_policy(model: str | None, policy_name: str | None, policy_params: float | None,
                   thinking_end: str | None = None) -> tuple[Policy, DifficultyPredictor, list[str]]:
    """The policy to plan for, its predictor, and notes on what is borrowed.

    The policy is --policy, else the one the --model file was trained for; its size is --policy-params, else the
    registry's, else the one `train --policy-params` recorded in the file. Without --model, a policy's shipped
    predictor is used, or the default policy's (borrowed, and said so)."""
    from planner.planning.curves import size_class
    from planner.policies import Thinking, borrowed_note
    from planner.policies import policy as find_policy
    from planner.prediction.model_store import predictor_for, resolve_model_path
    from planner.prediction.predictor import DifficultyPredictor

    if model is not None:
        path = resolve_model_path(model)
        predictor = DifficultyPredictor.load(path)
        recorded = DifficultyPredictor.read_card(path).get("policy_params")
    else:
        predictor, path = predictor_for(policy_name)
        recorded = None
    name = policy_name or predictor.policy
    if name is None:
        raise click.UsageError(f"the model {model} does not say which policy it predicts for; pass --policy NAME "
                               "(and --policy-params N for a policy tts-planner does not know)")
    same = predictor.policy is not None and name.strip().lower() == predictor.policy.strip().lower()
    chosen = find_policy(name, policy_params if policy_params is not None else recorded if same else None,
                         Thinking.ending_with(thinking_end) if thinking_end else None)
    notes = [note for note in [borrowed_note(chosen, size_class(chosen))] if note]
    if predictor.policy is None or predictor.policy.strip().lower() != chosen.name.lower():
        notes.append(f"predicting difficulty with {path.name}, trained for {predictor.policy or 'an unnamed policy'}"
                     f", not {chosen.name}; `tts-planner train` on {chosen.name}'s outcomes gives it its own")
    return chosen, predictor, notes


def served_reward_model(reward_model: str | None, calibration: Calibration | None,
                        chosen: Policy) -> tuple[str | None, list[str]]:
    """The reward model to plan with: --reward-model ("none" for none), else the one the calibration file measured
    with this policy (a file measured with a reward model is a stack that serves one), with notes saying so."""
    if reward_model is not None:
        if reward_model.strip().lower() == "none":
            return None, []
        measured = calibration.reward_models_for(chosen) if calibration else []
        if measured and all(m.lower() != reward_model.strip().lower() for m in measured):
            return reward_model, [f"{calibration.path} measured {', '.join(measured)}, not {reward_model}: the "
                                  f"strategies {reward_model} drives keep their default curves"]
        return reward_model, []
    if calibration is None:
        return None, []
    measured = calibration.reward_models_for(chosen)
    if len(measured) == 1:
        return measured[0], [f"planning with the reward model {measured[0]}, which {calibration.path} measured "
                             "(--reward-model none plans without one)"]
    if measured:
        return None, [f"{calibration.path} measured several reward models ({', '.join(measured)}); planning with "
                      "none of them: choose one with --reward-model"]
    return None, []


def calibration_notes(table: StrategyTable, calibration: Calibration | None) -> list[str]:
    """Which strategies the calibration file re-fitted, and why it fitted none when it did not."""
    if calibration is None:
        return []
    fitted = [name for name, source in table.sources.items() if source.startswith("calibrated")]
    if not fitted:
        measured = sorted({pt.policy for pt in calibration.points})
        return [f"{calibration.path} has no points for {table.policy.name} (it measured {', '.join(measured)}): "
                "planning with the default curves"]
    return [f"curves and costs of {', '.join(fitted)} fitted to {calibration.path}"]


@click.command("plan")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--budget", type=float, default=None, metavar="B",
              help="Average samples per problem over the whole file: one sample is one chain of thought's compute, "
                   "and options are priced in FLOPs (2 x parameters per token of each model) when the models' "
                   "sizes are known, in tokens otherwise.")
@click.option("--budget-tokens", type=float, default=None, metavar="T",
              help="Or: the total token budget for the whole file (generated + uncached prompt + reward-model "
                   "tokens, every token alike).")
@click.option("--budget-flops", type=float, default=None, metavar="F",
              help="Or: the total compute for the whole file in FLOPs (e.g. 2e15).")
@click.option("--policy", "policy_name", default=None, metavar="NAME",
              help="The serving policy, any name (default: the one the predictor was trained for).")
@click.option("--policy-params", type=float, default=None, metavar="N",
              help="The policy's parameter count (e.g. 7e9), for a policy tts-planner does not know (default: the "
                   "size recorded in the --model file by `tts-planner train --policy-params`).")
@click.option("--thinking-end", default=None, metavar="TEXT",
              help="The policy is a long-thinking one tts-planner does not know, and this text (e.g. </think>) ends "
                   "its thinking: deepconf is planned for it.")
@click.option("--reward-model", default=None, metavar="NAME",
              help="The reward model you serve beside the policy, e.g. Qwen/Qwen2.5-Math-PRM-7B, or none (default: "
                   "the one the --calibration file measured, else none, so only cot and majority voting are "
                   "planned).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A calibration file from `tts-planner calibrate`, measured on your own stack.")
@click.option("--strategies", default=None, metavar="LIST", help="Only consider these strategies (comma-separated).")
@click.option("--floor", type=float, default=1.0, show_default=True, metavar="SAMPLES",
              help="Every problem gets at least this many samples' worth of compute.")
@click.option("--cap", type=float, default=None, metavar="SAMPLES",
              help="No problem gets more than this many samples' worth of compute.")
@problem_file_options
def plan_command(input_path: Path, budget: float | None, budget_tokens: float | None, budget_flops: float | None,
                 model: str | None, policy_name: str | None, policy_params: float | None, thinking_end: str | None,
                 reward_model: str | None, calibration: Path | None, strategies: str | None, floor: float,
                 cap: float | None, output: Path | None, field: str | None, skip_bad: bool, max_chars: int) -> None:
    """Give each problem a strategy and size that spend the budget where it buys the most accuracy.

    Prints a table comparing the plan with the best uniform strategy (one strategy for every problem) at the
    plan's own compute, interpolated between the strategy's two nearest sizes, in tokens and FLOPs, overall
    and per difficulty bin. With -o, each problem's record is written too: the input record plus a "plan"
    (strategy, size, expected_accuracy, expected_cost in tokens, the predicted pass_at_1 and difficulty).

    \b
    Examples:
      tts-planner plan examples/problems.jsonl --budget 4
      tts-planner plan examples/problems.jsonl --budget 8 --reward-model Qwen/Qwen2.5-Math-PRM-7B -o plans.jsonl
      tts-planner plan examples/problems.jsonl --budget-tokens 1e5 --cap 32 -o - | head -n 1
      tts-planner plan examples/problems.jsonl --budget-flops 2e14 --reward-model Qwen/Qwen2.5-Math-RM-72B
    """
    from planner.cost import estimate_prompt_tokens
    from planner.jsonl import read_problems
    from planner.planning.allocation import Budget, allocate, uniform_at
    from planner.planning.calibration import load_calibration
    from planner.planning.plan import format_comparison
    from planner.planning.table import StrategyTable

    given = [b for b in (budget, budget_tokens, budget_flops) if b is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --budget (samples per problem), --budget-tokens (total) or "
                               "--budget-flops (total)")
    batch_budget = Budget(budget) if budget is not None else \
        Budget(budget_tokens, "tokens", total=True) if budget_tokens is not None else \
        Budget(budget_flops, "flops", total=True)
    chosen, predictor, notes = planned_policy(model, policy_name, policy_params, thinking_end)
    measured = load_calibration(calibration) if calibration is not None else None
    served, more = served_reward_model(reward_model, measured, chosen)
    table = StrategyTable.default(chosen, served, measured)
    log.debug(f"planning for {chosen.name} ({chosen.params:.3g} parameters) with reward model {served or 'none'}, "
              f"budget {batch_budget}")
    for note in notes + more + calibration_notes(table, measured):
        log.info(f"note: {note}")
    skip = skip_log(skip_bad)
    records, texts = read_problems(input_path, field, skip=skip, max_chars=max_chars)
    if not records:
        raise click.ClickException(f"{input_path}: no problems to plan")
    pass_at_1 = predict_with_progress(predictor, texts)
    options = dict(strategies=parse_strategies(strategies), prompt_tokens=estimate_prompt_tokens(texts))
    planned = allocate(pass_at_1, table, batch_budget, floor=Budget(floor),
                       cap=Budget(cap) if cap is not None else None, **options)
    baseline = uniform_at(planned, table, strategies=options["strategies"])
    log.debug(f"allocated {len(records)} problems")
    write_output(({**record, "plan": row} for record, row in zip(records, planned.records())), output,
                 format_comparison(planned, baseline))
    report_skipped(skip)
