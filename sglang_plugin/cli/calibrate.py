"""`tts-planner calibrate`: measure strategies and sizes on a labeled dev set against your servers."""

from __future__ import annotations

from pathlib import Path

import click

from planner.errors import InputError
from planner.files import check_writable
from sglang_plugin.cli.errors import resumable
from sglang_plugin.cli.options import naming_option, require_frontend, run_settings, server_options


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
@server_options
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
@click.option("--min-bin-problems", type=click.IntRange(min=1), default=10, show_default=True,
              help="Fit a difficulty bin's curves only when the dev set has at least this many problems predicted in "
                   "it (fewer give accuracies too noisy to fit); the others keep the planner's defaults.")
def calibrate_command(input_path: Path, output: Path, runs_dir: Path | None, strategies: tuple[str, ...] | None,
                      sizes: tuple[int, ...], min_bin_problems: int, config_path: Path | None, **options) -> None:
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
    with resumable(str(output)):
        require_frontend()
        from sglang_plugin.calibrate import CalibrateSettings, calibrate, describe_bins, format_fit

        run = run_settings(config_path, input=input_path, output=output, **options)
        settings = CalibrateSettings(run, output, strategies, sizes, runs_dir=runs_dir,
                                     min_bin_problems=min_bin_problems)
        try:
            settings.arms()  # bad strategies or sizes are refused before the first request
        except InputError as exc:
            raise naming_option(exc) from None
        for path in (settings.output, settings.runs_folder):
            check_writable(path)
        if run.model is not None:
            from planner.prediction.model_store import shared_model

            shared_model(run.model)  # an unreadable model file too
        result = calibrate(settings, echo=lambda text: click.echo(text, err=True))
    if result.skipped:
        click.echo(result.skipped.summary(), err=True)
    left_out = {name: n for name, n in result.measured.left_out.items() if n}
    if left_out:
        click.echo("runs left out (failed or partial): " + ", ".join(f"{k} {v}" for k, v in left_out.items())
                   + "; --retry-failed runs them again", err=True)
    click.echo(f"wrote {settings.output} ({len(result.measured.points)} points; runs in {settings.runs_folder})")
    click.echo(describe_bins(result.measured.bins, min_bin_problems))
    click.echo("\nMeasured accuracy and tokens per problem against the default and calibrated curves:")
    click.echo(format_fit(result.fit))
    click.echo("\nBest strategy per bin and budget with this calibration:")
    click.echo(result.table)
