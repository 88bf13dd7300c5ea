"""The `tts-planner run` and `tts-planner demo` commands. Importing this module does not import sglang: the
commands import the runner when they run."""

from __future__ import annotations

import shlex
import sys
import warnings
from pathlib import Path

import click

from planner.errors import PlannerError
from sglang_plugin.command_options import (
    INTERRUPTED_EXIT,
    exit_now,
    guarded,
    key_value,
    require_frontend,
    shared_run_options,
    solve_config,
)


@click.command("run")
@shared_run_options
@click.option("--input", "input_path", required=True, metavar="PROBLEMS.jsonl",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One problem per line: 'problem' (or 'question') text, an optional id (problem_id, id, "
                   "unique_id, idx) and an optional reference 'answer'.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results, one line per finished problem (appended; an interrupted run resumes from it).")
@click.option("--outcomes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-sample outcome records for `tts-planner train --label correct` (default: "
                   "OUTPUT.outcomes.jsonl).")
@click.option("--budget", type=click.IntRange(min=1), default=8, show_default=True,
              help="Average samples per problem the planner may spend (one sample = one chain-of-thought solution; "
                   "it probes a few first, and settled problems stop there).")
@click.option("--max-budget", type=click.IntRange(min=1), default=None,
              help="Most samples the planner may spend on one problem (default: twice --budget).")
@click.option("--target-confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Stop each problem once its answer is this likely to be right (up to --max-budget) instead of "
                   "letting the planner weigh accuracy against cost.")
@click.option("--planner-option", "planner_options", multiple=True, metavar="KEY=VALUE", callback=key_value,
              help="An AdaptivePlanner setting, repeatable: probe_size, round_size, spread, settle_confidence, "
                   "min_gain, selection, prior_strength.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A calibration file from `tts-planner calibrate`: the planner's curves measured on your stack.")
@click.option("--strategy", default=None, metavar="NAME",
              help="Force one strategy for every problem (cot, majority, best_of_n, weighted_vote, beam_search, "
                   "dvts, particle_filter) instead of the planner's choice; needs --size.")
@click.option("--size", type=click.IntRange(min=1), default=None, help="Size N of the forced strategy.")
@click.option("--policy-params", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Parameters of the policy, for FLOPs when its name is not known (e.g. 7e9).")
def run_command(input_path: Path, output: Path, outcomes: Path | None, config_path: Path | None, **options) -> None:
    """Solve a file of problems on an SGLang server: the planner gives each problem a strategy and budget
    (or --strategy/--size force one), many problems run at once, and each finished problem is written as one
    line of OUTPUT. Ctrl-C or a crash loses nothing: run the same command again to resume.

    \b
    Examples:
      tts-planner run --endpoint http://127.0.0.1:30000 --input problems.jsonl --output results.jsonl
      tts-planner run --endpoint URL --reward-endpoint URL2 --input p.jsonl -o r.jsonl --budget 8
      tts-planner run --endpoint URL --input p.jsonl -o r.jsonl --strategy majority --size 8
    """
    again = [arg for arg in sys.argv[1:] if arg != "--overwrite"]  # resuming must not start over
    hint = "tts-planner " + shlex.join(again)
    try:
        require_frontend()
        from sglang_plugin.batch import RunSettings

        try:
            settings = RunSettings(input=input_path, output=output, outcomes=outcomes,
                                   config=solve_config(config_path), **options)
        except PlannerError as exc:
            raise click.UsageError(str(exc)) from None
        code = execute(settings, resume_hint=hint)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {output} holds every problem finished so far, nothing partial.\n"
                   f"resume with: {hint}", err=True)
        code = INTERRUPTED_EXIT
    if code:
        exit_now(code)


@click.command("demo")
@click.option("--problems", type=click.IntRange(1, 100), default=100, show_default=True,
              help="How many of the shipped MATH-500 sample's 100 problems to run.")
@click.option("--budget", type=click.IntRange(min=1), default=8, show_default=True,
              help="Average samples per problem, the same for both runs (on this sample the planner matches uniform "
                   "majority voting's accuracy with fewer tokens at 8; at 4 it has little room to move compute).")
@click.option("--scorer", type=click.Choice(["none", "orm", "math_shepherd"]), default="none", show_default=True,
              help="Reward model the simulated server plays: none (majority voting), an outcome RM or a step-tag PRM.")
@click.option("--concurrency", "-j", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to keep the problems, results and outcome records (default: a new temporary folder).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulated server.")
def demo_command(problems: int, budget: int, scorer: str, concurrency: int, output_dir: Path | None,
                 seed: int) -> None:
    """See the whole product without a GPU: a SIMULATED SGLang server starts in this process on a MATH-500
    sample, and the same problems run adaptively and with the best uniform strategy at the same budget.
    Takes well under a minute."""
    require_frontend()
    try:
        from sglang_plugin.demo import format_demo, run_demo

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Error in stream_executor", category=UserWarning)
            result = run_demo(output_dir, problems=problems, budget=budget, scorer=scorer, concurrency=concurrency,
                              seed=seed, echo=lambda text: click.echo(text, err=True))
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        exit_now(INTERRUPTED_EXIT)
    except PlannerError as exc:
        click.echo(f"Error: {exc}", err=True)
        exit_now(1)
    click.echo(format_demo(result))


def execute(settings, *, resume_hint: str) -> int:
    """Run with the summary on stdout and messages on stderr; returns the exit code."""
    from sglang_plugin.batch import run_batch
    from sglang_plugin.run_summary import format_summary

    code, report = guarded(lambda: run_batch(settings, echo=lambda text: click.echo(text, err=True)),
                           resume_hint=resume_hint,
                           interrupted=lambda exc: f"{exc.written} of {exc.total} problems are in {settings.output} "
                                                   "(problems in flight were abandoned)")
    if report is None:
        return code
    if report.skipped:
        click.echo(report.skipped.summary(), err=True)
    click.echo(format_summary(report.summary))
    click.echo(f"results: {settings.output}\noutcome records: {settings.outcomes_path}", err=True)
    return 0
