"""The `tts-planner calibrate` command. Importing this module does not import sglang: the command imports the
sweep when it runs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from planner.errors import PlannerError
from sglang_plugin.command_options import exit_now, guarded, require_frontend, shared_run_options, solve_config


def _integers(ctx, param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", ctx=ctx, param=param) from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}", ctx=ctx, param=param)
    return sizes


def _names(ctx, param, value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@click.command("calibrate")
@shared_run_options
@click.option("--input", "input_path", required=True, metavar="DEV.jsonl",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labeled dev problems: 'problem' text, a reference 'answer', an optional id.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("calibration.json"),
              show_default=True, help="The calibration file to write (atomically).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where each arm's results go, to resume from (default: OUTPUT without .json, plus .runs).")
@click.option("--strategies", default=None, callback=_names, metavar="LIST",
              help="Comma-separated strategies (default: cot, majority and every strategy the reward model "
                   "drives). cot always runs: it prices the prompt and the unit of budget.")
@click.option("--sizes", default="1,2,4,8,16", show_default=True, callback=_integers, metavar="LIST",
              help="Sizes N to measure; each strategy runs at the ones the planner offers for it.")
@click.option("--policy", default=None, metavar="NAME",
              help="The policy served (default: the server's model name, if the planner knows it).")
def calibrate_command(input_path: Path, output: Path, runs_dir: Path | None, strategies: tuple[str, ...] | None,
                      sizes: tuple[int, ...], policy: str | None, config_path: Path | None, **options) -> None:
    """Measure strategies x sizes on a labeled dev set against your servers and write the calibration file
    `tts-planner plan --calibration` (and the adaptive solver) fit their curves and costs to.

    Problems are binned by the predictor's pass@1 (what the planner sees when it plans). Every arm is an
    ordinary run output in the runs folder: Ctrl-C or a crash loses nothing, and the same command resumes.
    The file is checked by loading it back, then the per-bin table it gives is printed.

    \b
    Examples:
      tts-planner calibrate --endpoint http://127.0.0.1:30000 --input dev.jsonl
      tts-planner calibrate --endpoint URL --reward-endpoint URL2 --reward-model Qwen/Qwen2.5-Math-RM-72B \\
          --input dev.jsonl --sizes 1,2,4,8,16 -o calibration.json
    """
    require_frontend()
    from sglang_plugin.batch import RunSettings
    from sglang_plugin.calibrate import CalibrateSettings

    try:
        run = RunSettings(endpoint=options.pop("endpoint"), input=input_path, output=output,
                          config=solve_config(config_path), **options)
        settings = CalibrateSettings(run, output, strategies, sizes, policy, runs_dir)
        settings.arms()
    except PlannerError as exc:
        raise click.UsageError(str(exc)) from None
    code = _execute(settings, resume_hint="tts-planner " + shlex.join(sys.argv[1:]))
    if code:
        exit_now(code)


def _execute(settings, *, resume_hint: str) -> int:
    from sglang_plugin.calibrate import calibrate, format_fit

    code, result = guarded(lambda: calibrate(settings, echo=lambda text: click.echo(text, err=True)),
                           resume_hint=resume_hint,
                           interrupted=lambda exc: f"{exc.written} of {exc.total} problems of this arm are in "
                                                   f"{settings.runs_folder}")
    if result is None:
        return code
    if result.skipped:
        click.echo(result.skipped.summary(), err=True)
    left_out = {name: n for name, n in result.measured.left_out.items() if n}
    if left_out:
        click.echo("runs left out (failed): " + ", ".join(f"{k} {v}" for k, v in left_out.items())
                   + "; --retry-failed runs them again", err=True)
    click.echo(f"wrote {settings.output} ({len(result.measured.points)} points; runs in {settings.runs_folder})")
    click.echo("\nMeasured accuracy and tokens per problem against the default and calibrated curves:")
    click.echo(format_fit(result.fit))
    click.echo("\nBest strategy per bin and budget with this calibration:")
    click.echo(result.table)
    return 0
