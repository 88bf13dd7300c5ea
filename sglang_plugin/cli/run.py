"""`tts-planner run`: solve a file of problems on an SGLang server, resumably."""

from __future__ import annotations

from pathlib import Path

import click

from planner.logs import logger, showing_progress
from sglang_plugin.cli.errors import resumable
from sglang_plugin.cli.options import (
    key_value,
    report_skipped,
    require_frontend,
    run_settings,
    server_options,
    verbosity_options,
)

log = logger(__name__)


@click.command("run")
@server_options
@click.option("--input", "input_path", required=True, metavar="PROBLEMS.jsonl",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One problem per line: 'problem' (or 'question') text, an optional id (problem_id, id, "
                   "unique_id, idx) and an optional reference 'answer'.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results, one line per finished problem (appended; an interrupted run resumes from it).")
@click.option("--outcomes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-sample outcome records for `tts-planner train --label correct` (default: "
                   "OUTPUT.outcomes.jsonl).")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Average samples per problem the planner may spend (one sample = one chain-of-thought solution; "
                   "it probes a few first, and settled problems stop there). Default: 8; for a long-thinking "
                   "policy, 8 samples' worth of generated tokens (--budget-tokens 8 x its tokens per sample).")
@click.option("--budget-tokens", type=float, default=None, metavar="T",
              help="Average generated tokens per problem instead of --budget, for long-thinking policies: each "
                   "problem's budget is T over its samples' average length so far (the probe's, then every round's), "
                   "so problems whose traces run long get fewer of them.")
@click.option("--max-budget", type=click.IntRange(min=1), default=None,
              help="Most samples the planner may spend on one problem (default: twice --budget).")
@click.option("--target-confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Stop each problem once its answer is this likely to be right (up to --max-budget) instead of "
                   "letting the planner weigh accuracy against cost.")
@click.option("--planner-option", "planner_options", multiple=True, metavar="KEY=VALUE", callback=key_value,
              help="An adaptive setting, repeatable: probe_size, round_size, spread, settle_confidence, min_gain, "
                   "pricing, selection, prior_strength, alpha, reward_evidence, confidence_auroc.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A calibration file from `tts-planner calibrate`: the planner's curves measured on your stack.")
@click.option("--strategy", default=None, metavar="NAME",
              help="Force one strategy for every problem (cot, majority, best_of_n, weighted_vote, beam_search, "
                   "dvts, particle_filter, deepconf) instead of the planner's choice; needs --size.")
@click.option("--size", type=click.IntRange(min=1), default=None, help="Size N of the forced strategy.")
@click.option("--watchdog-seconds", type=float, default=None, metavar="SECONDS",
              help="Stop (resumably) when for this long no problem finished and no server answered a request or "
                   "streamed a token. Default: 1800, or as long as one unstreamed sample may take when longer "
                   "(a long-thinking policy's 32k-token samples: 3877).")
@click.option("--server-wait", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for servers that stopped answering (a restart, a gateway losing a worker) "
                   "before stopping the run resumably; 0 stops at once.")
@verbosity_options
def run_command(input_path: Path, output: Path, outcomes: Path | None, config_path: Path | None, **options) -> None:
    """Solve a file of problems on an SGLang server: the planner gives each problem a strategy and budget
    (or --strategy/--size force one), many problems run at once, and each finished problem is written as one
    line of OUTPUT. Ctrl-C or a crash loses nothing: run the same command again to resume. Exits 1 when every
    problem failed.

    \b
    Examples:
      tts-planner run --endpoint http://127.0.0.1:30000 --input examples/problems.jsonl --output results.jsonl
      tts-planner run --endpoint URL --reward-endpoint URL2 --input examples/problems.jsonl -o orm.jsonl --budget 8
      tts-planner run --endpoint URL --input examples/problems.jsonl -o majority8.jsonl --strategy majority --size 8
      tts-planner run --endpoint URL --input examples/problems.jsonl -o thinking.jsonl --budget-tokens 40000
    """
    if options["budget_tokens"] is not None and options["budget"] is not None:
        raise click.UsageError("give --budget (samples per problem) or --budget-tokens (tokens per problem), not both")
    with resumable(str(output)):
        require_frontend()
        from sglang_plugin.runs.batch import run_batch
        from sglang_plugin.runs.summary import format_summary

        settings = run_settings(config_path, input=input_path, output=output, outcomes=outcomes,
                                progress=showing_progress(), **options)
        report = run_batch(settings)
    report_skipped(report.skipped)
    click.echo(format_summary(report.summary))
    log.info(f"results: {settings.output}")
    log.info(f"outcome records: {settings.outcomes_path}")
    total = report.summary.total
    if total.problems and total.failed == total.problems:
        raise click.ClickException(f"every problem failed ({total.failed}); the errors are in each line's `errors`. "
                                   "Fix the cause and run the same command with --retry-failed")
