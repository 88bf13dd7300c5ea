"""`tts-planner sim-server`: serve the stand-in SGLang server from the command line."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from planner.errors import PlannerError
from planner.logs import logger
from sglang_plugin.cli.options import verbosity_options
from sglang_plugin.sim.engine import DEFAULT_MODEL
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import DEFAULT_MODEL as THINKING_MODEL

log = logger(__name__)


@click.command("sim-server")
@click.option("--port", type=click.IntRange(0, 65535), default=30000, show_default=True,
              help="Port on 127.0.0.1 (0: pick a free one and print it).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--problems", type=click.Path(dir_okay=False), default=None,
              help="JSONL of known problems: problem, answer, optional solution, and the success rate.")
@click.option("--solutions", type=click.Path(dir_okay=False), default=None,
              help="JSONL joined to --problems by problem text for missing solution/answer fields "
                   "(e.g. math500/test.jsonl next to outcomes/math500_success_rates.jsonl).")
@click.option("--rate-field", default="pass_rate", show_default=True,
              help="Field of --problems holding each problem's true success rate in [0, 1].")
@click.option("--default-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Success rate of problems that are not in --problems (e.g. AIME problems, which have no "
                   "measured rate).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all simulated randomness.")
@click.option("--model-path", default=None,
              help=f"Model name reported to clients (the sglang frontend picks its chat template from it). "
                   f"Default: {DEFAULT_MODEL}; with --thinking, {THINKING_MODEL}.")
@click.option("--served-model-name", default=None, help="Name in /v1/models and server info (default: the "
              "model path).")
@click.option("--thinking", is_flag=True, default=False,
              help="Long-thinking profile: <think>...</think> traces of thousands of tokens, then a short boxed "
                   "answer, with DeepConf-style per-token confidence in the top-k logprobs (harmony's analysis and "
                   "final channels when --model-path names a gpt-oss).")
@click.option("--confidence-auroc", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="With --thinking: AUROC, between correct and wrong traces of a problem, "
                                      "of a trace's lowest sliding-window mean token confidence (k = 20).")
@click.option("--confidence-window", type=click.IntRange(256), default=2048, show_default=True,
              help="With --thinking: the window (a multiple of 256) for which --confidence-auroc holds.")
@click.option("--stream-interval", type=click.IntRange(1), default=1, show_default=True,
              help="Tokens per streamed chunk, like SGLang's --stream-interval (a request's own wins).")
@click.option("--incremental-streaming-output/--no-incremental-streaming-output", default=None,
              help="Streamed chunks carry only the new text and logprobs (SGLang 0.5.23's option). "
                   "Default: on with --thinking, off otherwise (SGLang 0.5.2's chunks).")
@click.option("--enable-deterministic-inference", is_flag=True, default=False,
              help="Like SGLang's flag (0.5.3 on): a sampled request without sampling_seed uses seed 42, so "
                   "identical requests get identical samples; server info says so.")
@click.option("--reward-auroc", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9,
              show_default=True, help="How well simulated reward scores rank correct above wrong.")
@click.option("--confidence-gap", type=click.FloatRange(0), default=0.3, show_default=True,
              help="How much less confident (in logits) the policy's tokens are on wrong steps.")
@click.option("--context-length", type=click.IntRange(2), default=None,
              help="Context length in tokens (default 4096; with --thinking, 131072).")
@click.option("--cache-tokens", type=click.IntRange(1), default=2_000_000, show_default=True,
              help="Prefix cache capacity in tokens (least recently used evicted): about what an 80 GB GPU "
                   "holds for a 1.5B model.")
@click.option("--token-delay-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Simulated time per generated token, per request (requests overlap).")
@click.option("--prefill-delay-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Simulated time per uncached prompt token.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of /generate, /classify, /encode requests answered with HTTP 500.")
@click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of those requests whose connection is closed without an answer.")
@click.option("--stall-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of those requests that hang for --stall-seconds before answering.")
@click.option("--stall-seconds", type=click.FloatRange(0), default=30.0, show_default=True)
@click.option("--step-tag", default="ки", show_default=True, help="PRM step tag (one token) after each step.")
@click.option("--step-tag-id", type=int, default=12902, show_default=True)
@click.option("--plus-token-id", type=int, default=648, show_default=True, help="PRM's '+' label token id.")
@click.option("--minus-token-id", type=int, default=387, show_default=True, help="PRM's '-' label token id.")
@verbosity_options
def sim_server_command(port: int, host: str, problems: str | None, solutions: str | None, rate_field: str,
                       **options: Any) -> None:
    """Serve a SIMULATED SGLang server (no model, no GPU) for tests, benchmarks and the demo.

    It speaks SGLang's HTTP protocol (sgl.RuntimeEndpoint works against it) and solves each problem of
    --problems at its measured success rate, step by step; other problems at --default-rate. Prints one line
    on stdout when it is ready (with its URL); stop it with Ctrl-C or SIGTERM.
    """
    if solutions is not None and problems is None:
        raise click.UsageError("--solutions needs --problems")
    if options["confidence_window"] % 256:
        raise click.UsageError("--confidence-window must be a multiple of 256")
    try:
        server = SimServer(problems, host=host, port=port, rate_field=rate_field, solutions=solutions, **options)
    except PlannerError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    log.debug(f"simulator settings: {server.config}")
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bank = server.reasoner.bank
    repeated = f", {bank.duplicates} repeated problem text(s) kept once" if bank.duplicates else ""
    profile = " (long-thinking profile)" if server.config.thinking else ""
    click.echo(f"tts-planner sim-server: SIMULATED SGLang server (no model, no GPU) for {server.config.model_path}"
               f"{profile} ready at {server.url} ({len(bank)} known problems{repeated}, seed {server.config.seed})",
               nl=True)
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    log.info("tts-planner sim-server: stopped")
