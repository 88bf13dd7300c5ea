"""Options several commands share, and reading them into settings. Importing this module imports neither sglang
nor the simulator."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path

import click

from planner.errors import InputError
from planner.extras import install_hint
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog
from planner.logs import NORMAL, QUIET, VERBOSE, configure, logger

log = logger(__name__)


def apply(command: Callable, options: list) -> Callable:
    for option in reversed(options):
        command = option(command)
    return command


def _verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Set the command's log level once both flags are read; both at once is a usage error."""
    chosen = ctx.meta.setdefault("tts_planner.verbosity", {})
    chosen[param.name] = value
    if len(chosen) < 2:
        return
    if chosen["verbose"] and chosen["quiet"]:
        raise click.UsageError("give --verbose or --quiet, not both", ctx=ctx)
    from sglang_plugin.cli.errors import secrets

    configure(VERBOSE if chosen["verbose"] else QUIET if chosen["quiet"] else NORMAL, secrets())


def verbosity_options(command: Callable) -> Callable:
    """--verbose / --quiet, for every command that takes a while: how much it logs on stderr while it works."""
    return apply(command, [
        click.option("--verbose", "-v", is_flag=True, expose_value=False, callback=_verbosity,
                     help="Log each step in detail (debug level), with the time and the module."),
        click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_verbosity,
                     help="Only errors and the final result: no progress bars, notes or warnings."),
    ])


def input_options(command: Callable) -> Callable:
    """Options every command that reads a problem file shares."""
    return apply(command, [
        click.option("--field", default=None, metavar="NAME",
                     help="Field holding the problem text (default: 'problem', else 'question')."),
        click.option("--skip-bad", is_flag=True,
                     help="Skip bad lines (reported and counted on stderr) instead of stopping at the first."),
        click.option("--max-chars", type=click.IntRange(min=1), default=DEFAULT_MAX_CHARS, show_default=True,
                     help="Longest problem text accepted, in characters."),
    ])


model_option = click.option(
    "--model", default=None, metavar="NAME|PATH",
    help="A shipped predictor by policy name (e.g. Qwen/Qwen2.5-Math-7B-Instruct; default: "
         "Qwen/Qwen2.5-Math-1.5B-Instruct) or the path of a model file from `tts-planner train`.")
output_option = click.option(
    "--output", "-o", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
    help="Write every record (the input line plus its results) here as JSONL, atomically; '-' writes them to "
         "stdout for a pipe, and the table goes to stderr. Without it only the table is printed.")


def write_output(records: Iterable[dict], output: Path | None, table: str) -> None:
    """A command's records where --output asks ('-': stdout, the table then on stderr) and its table on stdout."""
    from planner.jsonl import write_jsonl

    if output is None:
        click.echo(table)
        log.info("per-problem records not written: -o FILE writes them, -o - to stdout")
        return
    to_stdout = str(output) == "-"
    write_jsonl(records, None if to_stdout else output)
    click.echo(table, err=to_stdout)


def problem_file_options(command: Callable) -> Callable:
    """The options of the commands that read a problem file and print a table of it (`predict`, `plan`)."""
    return apply(command, [model_option, output_option, input_options, verbosity_options])


def skip_log(skip_bad: bool) -> SkipLog | None:
    return SkipLog() if skip_bad else None


def report_skipped(skip: SkipLog | None) -> None:
    """The lines --skip-bad left out, on stderr: part of the result (even under --quiet), never dropped silently."""
    if skip:
        click.echo(skip.summary(), err=True)


def require_frontend() -> None:
    """Commands that talk to servers need the sglang frontend: a serving machine's own sglang, or the light one
    of the `client` extra."""
    missing = []
    for name in ("sglang", "aiohttp"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise click.ClickException(
            f"this command needs the SGLang frontend (missing: {', '.join(missing)}). A machine that serves models "
            f"with sglang already has it; on a client machine install the light frontend (no torch) with: "
            f"{install_hint('client')}")


def key_value(ctx, param, values: tuple[str, ...]) -> dict:
    """Repeated KEY=VALUE options as a dict; VALUE is JSON when it parses (NaN and Infinity are not JSON
    numbers: they stay text), else text."""
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        try:
            options[key] = json.loads(raw, parse_constant=_not_a_number)
        except (ValueError, RecursionError):
            options[key] = raw
    return options


def _not_a_number(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_config_file(path: Path | None) -> dict:
    """The sections of a --config JSON file ({} without one); errors name the file."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the config file: {exc}", path=str(path)) from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not valid JSON: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object of sections (sampling, search, grading, transport)", path=str(path))
    return data


def server_options(command: Callable) -> Callable:
    """The options of the commands that run problems on servers (`run`, `calibrate`)."""
    return apply(command, [
        click.option("--endpoint", required=True, metavar="URL",
                     help="The policy's SGLang server or SGLang Model Gateway, e.g. http://127.0.0.1:30000."),
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
                          "default: the one the scorer reads)."),
        click.option("--model", default=None, metavar="NAME|PATH",
                     help="Difficulty predictor: a policy name or a model file from `tts-planner train` (default: "
                          "the shipped predictor of the server's policy)."),
        click.option("--policy", default=None, metavar="NAME",
                     help="The policy served, when the server's model path is not a name the planner knows."),
        click.option("--policy-params", type=float, default=None, metavar="N",
                     help="The policy's parameter count (e.g. 7e9), for FLOPs and curves of a policy the planner "
                          "does not know."),
        click.option("--thinking-end", default=None, metavar="TEXT",
                     help="For a long-thinking policy the planner does not know: the text that ends its thinking "
                          "(e.g. </think>); answers are read after it and samples get a 32k-token cap. An end "
                          "written in special tokens (<|...|>, as harmony's) keeps special tokens in the text."),
        click.option("--concurrency", "-j", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Problems solved at once."),
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="JSON object with sections sampling (prompt, temperature, token cap), search "
                                        "(steps, beam width, particle filter), grading and transport (timeouts, "
                                        "retries); use the settings you serve with."),
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
    ])


def run_settings(config_path: Path | None, planner_options: dict | None = None, **options):
    """RunSettings from the command's options and its --config file; every value is checked here, before the
    first request."""
    from planner.adaptive import AdaptiveConfig
    from sglang_plugin.config import SolveConfig, section
    from sglang_plugin.runs.settings import RunSettings
    from sglang_plugin.transport.http import TransportConfig

    sections = read_config_file(config_path)
    where = str(config_path) if config_path else "--config"
    transport = section(TransportConfig, sections.pop("transport", {}), where, "transport")
    config = SolveConfig.from_dict(sections, where)
    try:
        adaptive = AdaptiveConfig.from_options(planner_options or {})
        return RunSettings(config=config, transport=transport, adaptive=adaptive, **options)
    except InputError as exc:
        raise naming_option(exc) from None


def naming_option(error: InputError) -> InputError:
    """An error about a setting, naming the command-line option it came from (errors about a file are kept)."""
    if error.path is not None or error.field is None:
        return error
    return InputError(f"{_option(error.field)}: {error.reason}")


# Settings fields whose option has another name (the rest are --FIELD-NAME).
_OPTIONS = {"input": "--input", "output": "--output", "reward_options": "--reward-option",
            "config": "--config", "planner_options": "--planner-option"}


def _option(field: str) -> str:
    """The command-line option behind a settings field, for messages."""
    from planner.adaptive import AdaptiveConfig

    if field in {f.name for f in fields(AdaptiveConfig)}:
        return f"--planner-option {field}"
    return _OPTIONS.get(field, "--" + field.replace("_", "-"))
