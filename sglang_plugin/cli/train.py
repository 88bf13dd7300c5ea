"""`tts-planner train`: a difficulty predictor from your own outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sglang_plugin.cli.options import input_options, report_skipped, skip_log, verbosity_options


@click.command("train")
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
              help="The policy these outcomes came from, any name (default: the records' 'policy' field), recorded in "
                   "the model; `plan` and `run` with the model plan for it.")
@click.option("--policy-params", type=float, default=None, metavar="N",
              help="Its parameter count (e.g. 7e9) when tts-planner does not know it, recorded in the model so plans "
                   "are priced in FLOPs and get the default curves of its size class.")
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True,
              help="Share of problems held out to measure the model.")
@click.option("--refit", is_flag=True, help="After measuring, refit on every problem (held-out rows included).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True,
              help="Write the model even when it ranks the held-out problems clearly worse than the shipped predictor "
                   "plan would otherwise use.")
@input_options
@verbosity_options
def train_command(data_path: Path, label_field: str, output: Path, total_field: str | None, group_field: str,
                  policy_name: str | None, policy_params: float | None, holdout: float, refit: bool, seed: int,
                  force: bool, field: str | None, skip_bad: bool, max_chars: int) -> None:
    """Train a difficulty predictor on your own outcomes and print its card as JSON (held-out metrics, beside
    the shipped predictor's on the same held-out problems). A model clearly worse than the shipped one is not
    written without --force; too few held-out problems to tell is a warning. Steps and fitting time are logged
    on stderr.

    \b
    Examples:
      tts-planner train examples/outcomes.jsonl --label correct --output my-7b.npz
      tts-planner train rates.jsonl --label pass_rate --output my-policy.npz --policy Qwen/Qwen2.5-7B-Instruct
      tts-planner train outcomes.jsonl --label correct -o mine.npz --policy acme/Reasoner-8B --policy-params 8e9
    """
    from planner.prediction.training import train_from_file

    skip = skip_log(skip_bad)
    report = train_from_file(data_path, label_field, output, total_field=total_field, group_field=group_field,
                             text_field=field, policy_name=policy_name, policy_params=policy_params, holdout=holdout,
                             refit=refit, seed=seed, force=force, skip=skip, max_chars=max_chars)
    click.echo(json.dumps(report, indent=2))
    report_skipped(skip)
