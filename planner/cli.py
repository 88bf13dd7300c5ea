"""The `tts-planner` command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from planner import __version__
from planner.difficulty import difficulty_bins
from planner.errors import PlannerError
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog, read_problems, write_jsonl


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tts-planner")
def main() -> None:
    """Plan test-time compute for math problems: predict how hard each problem is for your policy model,
    give each the strategy and budget that buy the most accuracy, and run it on an SGLang server.

    \b
    Start here:
      tts-planner predict problems.jsonl          difficulty of each problem
      tts-planner plan problems.jsonl --budget 4  a strategy and size for each problem
      tts-planner models                          the shipped predictors and their accuracy
      tts-planner COMMAND --help                  the options of one command
    """


def reports_errors(command: Callable) -> Callable:
    """Turn the product's errors into one clear line on stderr and a non-zero exit, without a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PlannerError as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


def input_options(command: Callable) -> Callable:
    """Options every command that reads a problem file shares."""
    options = [
        click.option("--field", default=None, metavar="NAME",
                     help="Field holding the problem text (default: 'problem', else 'question')."),
        click.option("--skip-bad", is_flag=True,
                     help="Skip bad lines (reported and counted on stderr) instead of stopping at the first."),
        click.option("--max-chars", type=click.IntRange(min=1), default=DEFAULT_MAX_CHARS, show_default=True,
                     help="Longest problem text accepted, in characters."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


model_option = click.option(
    "--model", default=None, metavar="NAME|PATH",
    help="A shipped predictor by policy name (e.g. Qwen/Qwen2.5-Math-7B-Instruct; default: "
         "Qwen/Qwen2.5-Math-1.5B-Instruct) or the path of a model file from `tts-planner train`.")
output_option = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
                             help="Write JSONL here (atomically) instead of to stdout.")


def load_problems(path: Path, field: str | None, skip_bad: bool,
                  max_chars: int) -> tuple[list[dict], list[str], SkipLog | None]:
    skip = SkipLog() if skip_bad else None
    records, texts = read_problems(path, field, skip=skip, max_chars=max_chars)
    return records, texts, skip


def report_skipped(skip: SkipLog | None) -> None:
    if skip:
        click.echo(skip.summary(), err=True)


def predict_with_progress(model, texts: list[str]) -> np.ndarray:
    with tqdm(total=len(texts), desc="predicting", unit="problem", file=sys.stderr, disable=None,
              leave=False) as bar:
        return model.predict(texts, progress=bar.update)


@main.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@model_option
@output_option
@input_options
@reports_errors
def predict(input_path: Path, model: str | None, output: Path | None, field: str | None, skip_bad: bool,
            max_chars: int) -> None:
    """Predict each problem's pass@1 for the policy and its difficulty bin.

    Each output line is the input record plus "pass_at_1" (0 to 1) and "difficulty": "easy" (>= 0.5),
    "medium" (0.1 to 0.5) or "hard" (< 0.1).

    \b
    Example:
      tts-planner predict examples/problems.jsonl --output predicted.jsonl
    """
    from planner.model_store import load_model

    predictor = load_model(model)
    records, texts, skip = load_problems(input_path, field, skip_bad, max_chars)
    pass_at_1 = np.round(predict_with_progress(predictor, texts), 4)  # the bin follows the number written
    bins = difficulty_bins(pass_at_1)
    write_jsonl(({**record, "pass_at_1": float(p), "difficulty": str(b)}
                 for record, p, b in zip(records, pass_at_1, bins)), output)
    report_skipped(skip)


def estimated_prompt_tokens(texts: list[str]) -> np.ndarray:
    """Prompt length per problem: the problem at ~3.2 characters per token (LaTeX-heavy text) plus the chat
    template and instruction around it. Only used to price prompts; servers report the real counts."""
    return np.fromiter((len(t) for t in texts), dtype=float, count=len(texts)) / 3.2 + 45.0


def parse_strategies(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


@main.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--budget", type=float, default=None, metavar="B",
              help="Average samples per problem over the whole file (one sample = one chain-of-thought "
                   "solution's tokens).")
@click.option("--budget-tokens", type=float, default=None, metavar="T",
              help="Or: the total token budget for the whole file (generated + uncached prompt + reward-model "
                   "tokens).")
@model_option
@click.option("--policy", "policy_name", default=None, metavar="NAME",
              help="The serving policy (default: the one the predictor was trained for).")
@click.option("--reward-model", default=None, metavar="NAME",
              help="The reward model you serve beside the policy, e.g. Qwen/Qwen2.5-Math-PRM-7B (default: none, "
                   "so only cot and majority voting are planned).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A calibration file from `tts-planner calibrate`, measured on your own stack.")
@click.option("--strategies", default=None, metavar="LIST", help="Only consider these strategies (comma-separated).")
@click.option("--floor", type=float, default=1.0, show_default=True, metavar="SAMPLES",
              help="Every problem gets at least this many samples' worth of tokens.")
@click.option("--cap", type=float, default=None, metavar="SAMPLES",
              help="No problem gets more than this many samples' worth of tokens.")
@output_option
@input_options
@reports_errors
def plan(input_path: Path, budget: float | None, budget_tokens: float | None, model: str | None,
         policy_name: str | None, reward_model: str | None, calibration: Path | None, strategies: str | None,
         floor: float, cap: float | None, output: Path | None, field: str | None, skip_bad: bool,
         max_chars: int) -> None:
    """Give each problem a strategy and size that spend the budget where it buys the most accuracy.

    Each output line is the input record plus a "plan": strategy, size, expected_accuracy, expected_cost
    (tokens), and the predicted pass_at_1 and difficulty. A table then compares the plan with the best
    uniform allocation (one strategy and size for every problem) at the same budget.

    \b
    Examples:
      tts-planner plan examples/problems.jsonl --budget 4
      tts-planner plan problems.jsonl --budget 8 --reward-model Qwen/Qwen2.5-Math-PRM-7B -o plans.jsonl
      tts-planner plan problems.jsonl --budget-tokens 5e6 --cap 32
    """
    from planner.allocation import Budget, allocate, uniform
    from planner.model_store import load_model
    from planner.plan import format_comparison
    from planner.policies import policy as find_policy
    from planner.strategy_table import StrategyTable

    if (budget is None) == (budget_tokens is None):
        raise click.UsageError("give exactly one of --budget (samples per problem) or --budget-tokens (total)")
    batch_budget = Budget(budget) if budget is not None else Budget(budget_tokens, "tokens", total=True)
    predictor = load_model(model)
    chosen_policy = policy_name or predictor.policy
    if chosen_policy is None:
        raise click.UsageError(f"the model {model} does not say which policy it predicts for; pass --policy NAME")
    table = StrategyTable.default(find_policy(chosen_policy), reward_model, calibration)
    records, texts, skip = load_problems(input_path, field, skip_bad, max_chars)
    if not records:
        raise click.ClickException(f"{input_path}: no problems to plan")
    pass_at_1 = predict_with_progress(predictor, texts)
    prompt = estimated_prompt_tokens(texts)
    options = dict(strategies=parse_strategies(strategies), prompt_tokens=prompt)
    planned = allocate(pass_at_1, table, batch_budget, floor=Budget(floor),
                       cap=Budget(cap) if cap is not None else None, **options)
    baseline = uniform(pass_at_1, table, batch_budget, **options)
    write_jsonl(({**record, "plan": row} for record, row in zip(records, planned.records())), output)
    click.echo(format_comparison(planned, baseline), err=output is None)
    report_skipped(skip)


@main.command()
@click.argument("data_path", metavar="DATA.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label", "label_field", required=True, metavar="FIELD",
              help="Outcome field: a success rate in [0, 1], a correct count (with --total-field), or true/false "
                   "per sampled solution (outcome records from `tts-planner run`).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the model file (.npz).")
@click.option("--total-field", default=None, metavar="FIELD", help="Field with the number of samples n when "
              "--label holds a count k of correct ones.")
@click.option("--group-field", default="problem_id", show_default=True, metavar="FIELD",
              help="Lines with the same value are one problem (outcome records); lines without it group by text.")
@click.option("--policy", "policy_name", default=None, metavar="NAME",
              help="The policy these outcomes came from, recorded in the model (used by `plan`).")
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True,
              help="Share of problems held out to measure the model.")
@click.option("--refit", is_flag=True, help="After measuring, refit on every problem (held-out rows included).")
@click.option("--seed", type=int, default=0, show_default=True)
@input_options
@reports_errors
def train(data_path: Path, label_field: str, output: Path, total_field: str | None, group_field: str,
          policy_name: str | None, holdout: float, refit: bool, seed: int, field: str | None, skip_bad: bool,
          max_chars: int) -> None:
    """Train a difficulty predictor on your own outcomes and print its held-out metrics.

    \b
    Examples:
      tts-planner train outcomes.jsonl --label correct --output my-policy.npz
      tts-planner train rates.jsonl --label pass_rate --output my-policy.npz --policy Qwen/Qwen2.5-7B-Instruct
    """
    from planner.training import train_from_file

    skip = SkipLog() if skip_bad else None
    report = train_from_file(data_path, label_field, output, total_field=total_field, group_field=group_field,
                             text_field=field, policy_name=policy_name, holdout=holdout, refit=refit, seed=seed,
                             skip=skip, max_chars=max_chars, echo=lambda text: click.echo(text, err=True))
    click.echo(json.dumps(report, indent=2))
    report_skipped(skip)


@main.command()
@reports_errors
def models() -> None:
    """List the shipped predictors with their training data and held-out accuracy."""
    from planner.metrics import format_metrics
    from planner.model_store import models_dir, shipped_cards

    for card in shipped_cards():
        click.echo(f"{card['policy']}  ({models_dir() / card['model_file']})")
        click.echo(f"  trained on {card['training_data']['file']} [{card['training_data']['split']}], "
                   f"label {card['label_column']}")
        for split, metrics in card["held_out_metrics"].items():
            click.echo(f"  {split:<10} {format_metrics(metrics)}")


from sglang_plugin.cli.sim_server import sim_server_command  # noqa: E402

main.add_command(sim_server_command, "sim-server")

from planner.report import report_command  # noqa: E402

main.add_command(report_command, "report")


from sglang_plugin.commands import demo_command, run_command  # noqa: E402

main.add_command(run_command, "run")
main.add_command(demo_command, "demo")

from sglang_plugin.calibrate_command import calibrate_command  # noqa: E402

main.add_command(calibrate_command, "calibrate")


if __name__ == "__main__":
    main()
