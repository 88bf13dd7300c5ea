"""`tts-planner report`: accuracy against cost, and predicted against observed pass@1, from result files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RESULTS.jsonl...")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("report"),
              show_default=True, help="Folder for the PNG plots and report.md.")
@click.option("--outcomes", "outcome_paths", multiple=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Per-sample outcome records (repeatable); files named "
              "RESULTS.outcomes.jsonl beside a result file are read without asking.")
@click.option("--calibration-bins", type=click.IntRange(2, 50), default=10, show_default=True,
              help="Equal-width bins of predicted pass@1 in the calibration plot.")
def report_command(results: tuple[Path, ...], output_dir: Path, outcome_paths: tuple[Path, ...],
                   calibration_bins: int) -> None:
    """Plot accuracy against cost and predicted against observed pass@1 from result files.

    Each file (from `tts-planner run` or `tts-planner calibrate`) is labeled by its name; adaptive and uniform
    runs are drawn as separate series, per difficulty bin. report.md beside the plots holds every number.

    \b
    Example:
      tts-planner report adaptive.jsonl majority4.jsonl majority8.jsonl --output-dir report/
    """
    from planner.report import make_report

    files = make_report(results, output_dir, outcome_paths, calibration_bins)
    for path in (files.accuracy_png, files.calibration_png, files.markdown):
        if path is not None:
            click.echo(f"wrote {path}")
