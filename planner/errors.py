"""Errors that name where bad input came from, so a user can fix it without guessing."""

from __future__ import annotations


class PlannerError(Exception):
    """Base class for every error tts-planner reports to a user."""


class InputError(PlannerError):
    """Bad input, located by file, line and field when those are known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ":".join(str(p) for p in (path, line) if p is not None)
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}" if where else f"{what}{message}")


class ModelFileError(PlannerError):
    """A model file that is missing, truncated, corrupt or of another format version."""


class RunStopped(PlannerError):
    """A long run stopped before its end (a server down, failure after failure, no progress); everything finished
    so far is written and the same command resumes it."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run: `written` of `total` problems are in `output`, nothing partial
    (`written` None: it came while the run was starting, before the output was opened)."""

    def __init__(self, written: int | None, total: int, output: str = "the output") -> None:
        super().__init__(f"{written} of {total} problems written" if written is not None else "interrupted at start-up")
        self.written, self.total, self.output = written, total, output
