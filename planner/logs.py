"""The product's logging: one logger per module under the `tts_planner` logger, and the command line's setup.

Library code logs what it does through `log = logger(__name__)`: info for the steps a user follows (connecting,
each arm of a sweep, a resumed file), debug for detail (settings, each problem finished), warning for what may
need attention, and never prints a diagnostic. Nothing is configured on import: a program using the library sees
warnings and errors on stderr (Python's last-resort handler) until it configures logging itself.

The command line configures it once per command (`configure`, from --verbose / --quiet): records go to stderr,
written around any progress bar there, as the bare message at the default level ("warning: ..." for warnings)
and with the time and module under --verbose. --quiet leaves errors only; the command's result is printed, not
logged, so it stays.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from tqdm import tqdm

from planner.redact import redact

PRODUCT = "tts_planner"
VERBOSE, NORMAL, QUIET = logging.DEBUG, logging.INFO, logging.ERROR


def logger(module: str) -> logging.Logger:
    """The logger of one module (`logger(__name__)`), under the product's."""
    return logging.getLogger(f"{PRODUCT}.{module}")


def showing_progress() -> bool:
    """Whether progress is shown: the product logs at info level or finer (not under --quiet)."""
    return logging.getLogger(PRODUCT).isEnabledFor(logging.INFO)


class _Stderr(logging.Handler):
    """Writes the product's records at `level` and above and other libraries' warnings (errors only under QUIET)
    to the current sys.stderr (looked up when it is written), around any tqdm bar, with URL credentials and
    `secrets` masked."""

    def __init__(self, level: int, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.product_level, self.others_level = level, max(level, logging.WARNING)
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == PRODUCT or record.name.startswith(PRODUCT + ".")
        return record.levelno >= (self.product_level if ours else self.others_level)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(redact(self.format(record), self.secrets), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never end the command; the logging module reports it
            self.handleError(record)


class _Format(logging.Formatter):
    """The bare message ("warning: " or "error: " before it at those levels); under --verbose the time and the
    module before that."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(asctime)s %(module_path)s: %(level_prefix)s%(message)s" if verbose
                         else "%(level_prefix)s%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.module_path = record.name.removeprefix(PRODUCT + ".")
        record.level_prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return super().format(record)


def configure(level: int = NORMAL, secrets: Sequence[str] = ()) -> None:
    """Send the product's records at `level` and above, and other libraries' warnings (errors only under QUIET), to
    stderr with `secrets` masked. Called again, it replaces its handler instead of adding another."""
    handler = _Stderr(level, secrets)
    handler.setFormatter(_Format(verbose=level <= VERBOSE))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger(PRODUCT).setLevel(level)
