"""The files of a long run, safe against crashes, kills and Ctrl-C: a run can always be resumed, and a finished
problem is never redone or lost.

- Results (`OUTPUT`): one JSON line per finished problem, appended with a single write(), so a line is either
  whole or (after a crash in the middle of the write, e.g. power loss or a full disk) a torn tail without its
  newline. On resume the torn tail is cut off; every whole line counts as finished. A killed process loses
  nothing written (the kernel holds it); the files are fsync'd at least every `sync_interval` seconds and
  when the run ends, so an operating-system crash or power loss loses at most that many seconds of lines
  (one fsync per problem cost more client CPU than the problem's requests on a fast server).
- Outcome records (`OUTCOMES`): written before the problem's result line. A crash between the two leaves
  records of a problem that has no result line; resuming drops them (the problem is run again), so every
  record belongs to exactly one result line. Ctrl-C or SIGTERM never cuts between the two: a signal that
  arrives while they are written is delivered once both are.
- Manifest (`OUTPUT.run.json`): the input's sha256 and the settings that change results. Resuming into an
  output written from another input or with other settings is refused, naming what differs.
- A lock (flock on OUTPUT) keeps a second run from writing the same output; the kernel drops it when the
  process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.errors import InputError, PlannerError, RunStopped
from planner.files import atomic_path
from planner.jsonl import dumps
from planner.records import OutcomeRecord, ResultLine, Where

FORMAT = "tts-planner-run/2"
MANIFEST_SUFFIX = ".run.json"


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + MANIFEST_SUFFIX)


class RunFiles:
    """Open (or resume) a run's results, outcome records and manifest; `finished` holds the result lines
    already written, by problem id. Use as a context manager, or call `close()`."""

    def __init__(self, output: str | os.PathLike, outcomes: str | os.PathLike, identity: dict, *,
                 overwrite: bool = False, retry_failed: bool = False, sync_interval: float | None = 1.0) -> None:
        self.output, self.outcomes = Path(output), Path(outcomes)
        if self.output.resolve() == self.outcomes.resolve():
            raise InputError("the outcome records need a file of their own", field="outcomes")
        self.manifest = manifest_path(self.output)
        self.identity = {"format": FORMAT, **identity}
        self.sync_interval = sync_interval  # None: never fsync (tests of the file logic)
        self._synced = time.monotonic()
        self._dirty: set[int] = set()
        self.notes: list[str] = []  # what resuming repaired, for the user
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._results = self._locked(self.output)
        self._outcomes: int | None = None
        try:
            self.finished = self._open(overwrite, retry_failed)
            self.outcomes.parent.mkdir(parents=True, exist_ok=True)
            self._outcomes = os.open(self.outcomes, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except BaseException:
            self.close()
            raise

    # -- opening and resuming ---------------------------------------------------------------------------

    def _locked(self, path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PlannerError(f"{path}: another `tts-planner run` is writing this output; wait for it to end "
                               "or choose another --output") from None
        return fd

    def _open(self, overwrite: bool, retry_failed: bool) -> dict[str, dict]:
        has_results = os.fstat(self._results).st_size > 0
        previous = self._read_manifest()
        if overwrite:
            os.ftruncate(self._results, 0)
            self.outcomes.unlink(missing_ok=True)
            self._write_manifest()
            return {}
        if previous is not None and previous != self.identity:
            if has_results or _nonempty(self.outcomes):
                raise PlannerError(f"{self.output} belongs to another run: {_differences(previous, self.identity)}. "
                                   "Choose another --output, or start over with --overwrite.")
            previous = None
        if previous is None:
            if has_results:
                raise PlannerError(f"{self.output} exists but was not written by `tts-planner run` (no {self.manifest}"
                                   "); choose another --output, or replace it with --overwrite")
            if _nonempty(self.outcomes):
                raise PlannerError(f"{self.outcomes} exists and is not part of this run; choose another "
                                   "--outcomes, or replace it with --overwrite")
            self._write_manifest()
            return {}
        finished = self._resume_results()
        if retry_failed:
            finished = self._drop_unfinished(finished)
        self._resume_outcomes(set(finished))
        return finished

    def _read_manifest(self) -> dict | None:
        try:
            text = self.manifest.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PlannerError(f"{self.manifest}: unreadable run manifest ({exc}); start over with --overwrite") \
                from exc
        return data if isinstance(data, dict) else {}

    def _write_manifest(self) -> None:
        try:
            text = json.dumps(self.identity, indent=2, sort_keys=True, allow_nan=False)
        except ValueError as exc:  # settings are checked before; this keeps a NaN from ever blocking a resume
            raise InputError(f"a setting is not a finite number ({exc})", path=str(self.manifest)) from None
        with atomic_path(self.manifest) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")

    def _resume_results(self) -> dict[str, ResultLine]:
        lines, good_end = _whole_lines(self._results, self.output)
        size = os.fstat(self._results).st_size
        if good_end < size:
            os.ftruncate(self._results, good_end)
            self.notes.append(f"cut a torn last line ({size - good_end} bytes) from {self.output}; that problem "
                              "will run again")
        finished: dict[str, ResultLine] = {}
        for number, record in lines:
            line = ResultLine.from_dict(record, Where(str(self.output), number))
            if line.problem_id in finished:
                raise InputError(f"problem '{line.problem_id}' has two result lines; the file was edited or merged",
                                 path=str(self.output), line=number, field="problem_id")
            finished[line.problem_id] = line
        return finished

    def _drop_unfinished(self, finished: dict[str, ResultLine]) -> dict[str, ResultLine]:
        """--retry-failed: forget the failed and the partial lines (answered from fewer samples than planned), so
        they run again; the results file is rewritten atomically with its permissions kept."""
        kept = {k: v for k, v in finished.items() if v.status == "ok"}
        if len(kept) == len(finished):
            return finished
        dropped = Counter(v.status for v in finished.values() if v.status != "ok")
        with atomic_path(self.output) as tmp:
            fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
            fcntl.flock(fd, fcntl.LOCK_EX)  # locked before it replaces OUTPUT, so no other run slips in
            _write_all(fd, b"".join(_line(r.to_dict()) for r in kept.values()))
        os.close(self._results)
        self._results = fd
        self.notes.append(f"will run the {dropped['failed']} failed and {dropped['partial']} partial problem(s) "
                          "again")
        return kept

    def _resume_outcomes(self, finished: set[str]) -> None:
        if not self.outcomes.exists():
            return
        fd = os.open(self.outcomes, os.O_RDONLY)
        try:
            lines, good_end = _whole_lines(fd, self.outcomes)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        kept = [record for _, record in lines if record.get("problem_id") in finished]
        if good_end == size and len(kept) == len(lines):
            return
        with atomic_path(self.outcomes) as tmp:
            tmp.write_bytes(b"".join(_line(r) for r in kept))
        self.notes.append(f"dropped {len(lines) - len(kept)} outcome record(s) of unfinished problems"
                          + (" and a torn last line" if good_end < size else "") + f" from {self.outcomes}")

    # -- writing --------------------------------------------------------------------------------------

    def append(self, result: ResultLine, outcomes: Iterable[OutcomeRecord] = ()) -> None:
        """Write one finished problem: its outcome records first, then its result line."""
        records = b"".join(_line(r.to_dict()) for r in outcomes)
        line = _line(result.to_dict())
        try:
            with _signals_held():
                if records:
                    self._write(self._outcomes, records)
                self._write(self._results, line)
        except OSError as exc:
            raise RunStopped(f"cannot write the results to {self.output} ({exc.strerror or exc}); nothing is lost: "
                             "fix the cause and run the same command again to resume") from None
        self.finished[result.problem_id] = result

    def _write(self, fd: int, data: bytes) -> None:
        _write_all(fd, data)
        self._dirty.add(fd)
        if self.sync_interval is not None and time.monotonic() - self._synced >= self.sync_interval:
            self._sync()

    def _sync(self) -> None:
        for fd in self._dirty:
            os.fsync(fd)
        self._dirty.clear()
        self._synced = time.monotonic()

    def close(self) -> None:
        if self.sync_interval is not None and self._dirty:
            try:
                self._sync()
            except OSError:
                pass  # the lines are written; only their durability against a power loss is at stake
        for name in ("_outcomes", "_results"):
            fd = getattr(self, name, None)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def audit(output: str | os.PathLike, outcomes: str | os.PathLike, expected: Iterable[str]) -> list[str]:
    """What is wrong with a finished run's files, if anything: every expected problem exactly once, no torn or
    unreadable line, and every outcome record once and tied to a result line. Empty when all is well."""
    wrong = []
    data = {}
    for path in (Path(output), Path(outcomes)):
        raw = path.read_bytes() if path.exists() else b""
        if raw and not raw.endswith(b"\n"):
            wrong.append(f"{path}: ends in a torn line")
        try:
            data[path] = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError as exc:
            wrong.append(f"{path}: unreadable line ({exc})")
            data[path] = []
    ids = Counter(str(r.get("problem_id")) for r in data[Path(output)])
    expected = Counter(expected)
    wrong += [f"problem {k} appears {n} times" for k, n in ids.items() if n > 1]
    wrong += [f"problem {k} is missing" for k in expected if k not in ids]
    wrong += [f"problem {k} was not in the input" for k in ids if k not in expected]
    samples = Counter((str(r.get("problem_id")), r.get("branch")) for r in data[Path(outcomes)])
    wrong += [f"outcome record {k} appears {n} times" for k, n in samples.items() if n > 1]
    wrong += [f"outcome record {k} has no result line" for k in samples if k[0] not in ids]
    return wrong


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside are handled when it ends (main thread only, where Python runs its
    signal handlers), so a problem's outcome records and result line are written together or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, left alone
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _line(record: dict) -> bytes:
    return (dumps(record) + "\n").encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _whole_lines(fd: int, path: Path) -> tuple[list[tuple[int, dict]], int]:
    """The parsed newline-terminated lines of a file, and the byte offset where they end. A tail without its
    newline is a torn write and is left out; a bad line before it means the file was damaged otherwise."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    good_end = data.rfind(b"\n") + 1
    lines = []
    for number, raw in enumerate(data[:good_end].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"unreadable line ({str(exc) or type(exc).__name__}); only a torn last line is repaired, "
                             "so this file was damaged some other way", path=str(path), line=number) from None
        if not isinstance(record, dict):
            raise InputError("not a JSON object", path=str(path), line=number)
        lines.append((number, record))
    return lines, good_end


def _differences(before: dict, now: dict) -> str:
    parts = []
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            if isinstance(before.get(key), dict) and isinstance(now.get(key), dict):
                parts.append(_differences(before[key], now[key]))
            else:
                parts.append(f"{key} was {json.dumps(before.get(key))}, now {json.dumps(now.get(key))}")
    return "; ".join(parts)
