"""`tts-planner grade`: add `correct` to every record of a JSONL file, e.g. to re-grade old result files."""

from __future__ import annotations

from pathlib import Path

import click

from sglang_plugin.cli.options import verbosity_options


@click.command("grade")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reference-field", required=True, metavar="F",
              help="The reference: a bare answer, a MATH-style solution with \\boxed{}, GSM8K's '... #### n', or a list.")
@click.option("--answer-field", required=True, metavar="G",
              help="The answer: a whole model response (its final answer is extracted) or a bare answer.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JSONL here (atomically; may be INPUT itself) instead of to stdout.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Seconds for one math-verify comparison (past it the answer counts as incorrect).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="math-verify worker processes.")
@click.option("--skip-bad", is_flag=True, help="Skip bad lines (listed on stderr) instead of stopping at the first.")
@verbosity_options
def grade_command(input_path: Path, reference_field: str, answer_field: str, output: Path | None, timeout: float,
                  workers: int, skip_bad: bool) -> None:
    """Grade each record's answer against its reference: the record plus "correct" (true/false).

    \b
    Examples:
      tts-planner grade results.jsonl --reference-field reference_answer --answer-field answer -o regraded.jsonl
      tts-planner grade gsm8k_outputs.jsonl --reference-field answer --answer-field response
    """
    from planner.grading import Grader, GradingConfig
    from planner.grading.grade_file import format_grade_summary, grade_file
    from planner.logs import showing_progress

    config = GradingConfig(timeout=timeout, workers=workers)
    grader = Grader(config.workers, config.timeout, config.time_limit)
    try:
        summary = grade_file(input_path, reference_field, answer_field, output, progress=showing_progress(),
                             skip_bad=skip_bad, grader=grader)
    finally:
        grader.close()
    for error in summary.skipped[:5]:
        click.echo(f"skipped {error}", err=True)
    if len(summary.skipped) > 5:
        click.echo(f"... and {len(summary.skipped) - 5} more skipped", err=True)
    click.echo(format_grade_summary(summary), err=True)
