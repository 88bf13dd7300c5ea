"""`tts-planner demo`: the whole product against a simulated SGLang server, no GPU."""

from __future__ import annotations

from pathlib import Path

import click

from planner.logs import showing_progress
from sglang_plugin.cli.options import require_frontend, verbosity_options


@click.command("demo")
@click.option("--problems", type=click.IntRange(1, 100), default=100, show_default=True,
              help="How many of the shipped MATH-500 sample's 100 problems to run.")
@click.option("--budget", type=click.IntRange(min=1), default=8, show_default=True,
              help="The adaptive run's budget: average samples per problem. The uniform runs are then sized to the "
                   "compute the adaptive run actually spent.")
@click.option("--scorer", type=click.Choice(["none", "orm", "math_shepherd"]), default="none", show_default=True,
              help="Reward model the simulated server plays: none (majority voting), an outcome RM or a step-tag PRM.")
@click.option("--concurrency", "-j", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to keep the problems, results and outcome records (default: a new temporary folder).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulated server.")
@verbosity_options
def demo_command(problems: int, budget: int, scorer: str, concurrency: int, output_dir: Path | None,
                 seed: int) -> None:
    """See the whole product without a GPU: a SIMULATED SGLang server starts in this process on a MATH-500
    sample, and the same problems run adaptively, then with the best uniform strategy at sizes around the
    adaptive run's compute, compared at equal compute (FLOPs, reward-model reads included). Takes under a
    minute."""
    require_frontend()
    from sglang_plugin.demo import format_demo, run_demo

    result = run_demo(output_dir, problems=problems, budget=budget, scorer=scorer, concurrency=concurrency,
                      seed=seed, progress=showing_progress())
    click.echo(format_demo(result))
