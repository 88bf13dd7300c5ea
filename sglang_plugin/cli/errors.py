"""The one path from errors to messages and exit codes, for every command.

- bad input, a missing extra, anything the product reports (PlannerError): "Error: ..." and exit 1;
- a run that stopped and can resume (a server down, failure after failure, no progress): the reason, the
  command that resumes it, exit 1;
- Ctrl-C or SIGTERM: what is written, the command that resumes it, exit 130;
- a file the command cannot write (read-only, full disk) and input nested too deeply to read: one line, exit 1;
- anything else is a bug: one line naming it, exit 1 (the traceback only with TTS_PLANNER_TRACEBACK=1).
A run leaves solver threads behind when it stops early, so the process then ends with os._exit after flushing
(every finished line is already written and synced). Secrets never reach a message: URL credentials, the
--api-key value (or TTS_PLANNER_API_KEY) and secret --reward-option values (each string of a JSON value too)
are masked.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click

from planner.errors import PlannerError, RunInterrupted, RunStopped
from planner.redact import redact, redact_argv, secret_values

INTERRUPTED_EXIT = 130  # the shell's code for a job ended by SIGINT
API_KEY_ENV = "TTS_PLANNER_API_KEY"
TRACEBACK_ENV = "TTS_PLANNER_TRACEBACK"


def resume_hint() -> str:
    """The command line that resumes this run (never --overwrite again), secrets masked."""
    again = [arg for arg in sys.argv[1:] if arg != "--overwrite"]
    return "tts-planner " + shlex.join(redact_argv(again))


def secrets() -> list[str]:
    """Secret values given on this command line or in the environment."""
    return [s for s in [os.environ.get(API_KEY_ENV), *secret_values(sys.argv[1:])] if s]


def _say(message: str) -> None:
    click.echo(redact(message, secrets()), err=True)


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def resumable(output: str) -> Iterator[None]:
    """Around a command that writes a resumable run to `output`: Ctrl-C before the run began (while the frontend
    loads, while connecting) still says how to resume."""
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt as exc:
        raise RunInterrupted(None, 0, output) from exc


@contextmanager
def reported() -> Iterator[None]:
    """Run a command with SIGTERM acting as Ctrl-C, and turn whatever stops it into a message and an exit code."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with warnings.catch_warnings():
            # the frontend warns with a traceback for every failed request; result lines carry the errors
            warnings.filterwarnings("ignore", message="Error in stream_executor", category=UserWarning)
            yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except RunInterrupted as exc:
        if exc.written is None:
            _say(f"\ninterrupted while starting: nothing was written to {exc.output}.\nresume with: {resume_hint()}")
        else:
            _say(f"\ninterrupted: {exc.written} of {exc.total} problems are in {exc.output} (problems in flight were "
                 f"abandoned); nothing partial was written.\nresume with: {resume_hint()}")
        _exit_now(INTERRUPTED_EXIT)
    except KeyboardInterrupt:
        _say("\ninterrupted")
        _exit_now(INTERRUPTED_EXIT)
    except RunStopped as exc:
        _say(f"Error: {exc}\nresume with: {resume_hint()}")
        _exit_now(1)
    except PlannerError as exc:
        _say(f"Error: {exc}")
        sys.exit(1)
    except RecursionError:
        _say("Error: the input is nested too deeply to read (a JSON value inside thousands of brackets?)")
        sys.exit(1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"Error: {where}{exc.strerror or exc}")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug: one line (secrets masked), the traceback only on request
        if os.environ.get(TRACEBACK_ENV):
            _say(traceback.format_exc().rstrip())
        _say(f"Error: internal error ({type(exc).__name__}: {exc}); please report it with the command that caused "
             f"it (set {TRACEBACK_ENV}=1 for the traceback)")
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
