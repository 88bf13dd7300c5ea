"""What the `run` and `calibrate` commands share: their server, scorer and input options, and how a batch
ends (exit codes, SIGTERM, messages). Importing this module does not import sglang."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from planner.errors import PlannerError
from planner.jsonl import DEFAULT_MAX_CHARS

INTERRUPTED_EXIT = 130  # the shell's code for a job ended by SIGINT
T = TypeVar("T")


def require_frontend() -> None:
    """Commands that talk to servers need the sglang frontend and math-verify (the `sglang` extra)."""
    missing = []
    for name in ("sglang", "math_verify", "urllib3"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise click.ClickException(f"this command needs the SGLang frontend extra (missing: {', '.join(missing)}); "
                                   "install it with: pip install \"tts-planner[sglang]\"")


def key_value(ctx, param, values: tuple[str, ...]) -> dict:
    """Repeated KEY=VALUE options as a dict; VALUE is JSON when it parses, else text."""
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


def solve_config(path: Path | None):
    """The SolveConfig of a --config JSON file (defaults without one)."""
    from sglang_plugin.config import SolveConfig

    if path is None:
        return SolveConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a JSON object of SolveConfig fields", param_hint="--config")
    return SolveConfig().with_(**data)


_SHARED = [
    click.option("--endpoint", required=True, metavar="URL",
                 help="The policy's SGLang server or gateway, e.g. http://127.0.0.1:30000."),
    click.option("--reward-endpoint", default=None, metavar="URL", help="The reward model's server."),
    click.option("--scorer", default=None, metavar="KIND",
                 help="How to read rewards: orm (SGLang /classify, the default with --reward-endpoint), "
                      "math_shepherd or rlhflow (step-tag PRMs on an SGLang server), step_tag (give the token ids "
                      "with --reward-option), vllm_qwen_prm (Qwen2.5-Math-PRM-7B on vLLM), http (any HTTP reward "
                      "server, see --reward-option), self_certainty (no reward model), none."),
    click.option("--reward-option", "reward_options", multiple=True, metavar="KEY=VALUE", callback=key_value,
                 help="A scorer option (VALUE is JSON or text), repeatable: e.g. for http request='{\"input\": "
                      "\"{texts}\"}' and scores_path=data[*].score."),
    click.option("--reward-model", default=None, metavar="NAME",
                 help="The reward model served, as the planner names it (for FLOPs and the planner's curves; "
                      "default: the usual one of --scorer)."),
    click.option("--model", default=None, metavar="NAME|PATH",
                 help="Difficulty predictor: a policy name or a model file from `tts-planner train` (default: the "
                      "shipped predictor of the server's policy)."),
    click.option("--concurrency", "-j", type=click.IntRange(min=1), default=8, show_default=True,
                 help="Problems solved at once."),
    click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 default=None, help="JSON object of SolveConfig fields (prompt, step and token caps, temperature, "
                                    "HTTP timeouts); use the settings you serve with."),
    click.option("--field", default=None, metavar="NAME",
                 help="Field holding the problem text (default: 'problem', else 'question')."),
    click.option("--answer-field", default="answer", show_default=True, metavar="NAME",
                 help="Field holding the reference answer."),
    click.option("--skip-bad", is_flag=True,
                 help="Skip bad input lines (reported and counted on stderr) instead of stopping at the first."),
    click.option("--max-chars", type=click.IntRange(min=1), default=DEFAULT_MAX_CHARS, show_default=True,
                 help="Longest problem text accepted, in characters."),
    click.option("--overwrite", is_flag=True, help="Discard earlier results and start over."),
    click.option("--retry-failed", is_flag=True, help="When resuming, run the problems written as failed again."),
    click.option("--max-failures-in-a-row", type=click.IntRange(min=1), default=10, show_default=True,
                 help="Stop when this many problems fail in a row although the servers answer."),
    click.option("--api-key", envvar="TTS_PLANNER_API_KEY", default=None,
                 help="Bearer token for the policy server (env TTS_PLANNER_API_KEY)."),
]


def shared_run_options(command: Callable) -> Callable:
    for option in reversed(_SHARED):
        command = option(command)
    return command


def guarded(call: Callable[[], T], *, resume_hint: str,
            interrupted: Callable[[Exception], str]) -> tuple[int, T | None]:
    """Run a batch with SIGTERM acting as Ctrl-C and the frontend's per-request warnings hidden (result lines
    carry the errors); returns (exit code, result), with the reason on stderr when it did not finish."""
    from sglang_plugin.batch import RunInterrupted
    from sglang_plugin.runner import ServerDown, TooManyFailures

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Error in stream_executor", category=UserWarning)
            return 0, call()
    except RunInterrupted as exc:
        click.echo(f"\ninterrupted: {interrupted(exc)}; nothing partial was written.\nresume with: {resume_hint}",
                   err=True)
        return INTERRUPTED_EXIT, None
    except (ServerDown, TooManyFailures) as exc:
        click.echo(f"Error: {exc}\nresume with: {resume_hint}", err=True)
        return 1, None
    except PlannerError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1, None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def exit_now(code: int) -> None:
    """Exit without waiting for abandoned solves: their threads would otherwise keep the process alive until
    their requests end. Every result line is already written and synced."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
