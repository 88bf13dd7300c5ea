"""Worker processes for math-verify, with deadlines the calling thread enforces.

Plain subprocesses speaking JSON lines, not multiprocessing: spawning would re-run a caller's main script.
A worker that overruns its deadline is killed; a warm spare (started ahead, already past its 1.5 s of
imports) takes its place at once and a new spare starts in the background.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

_WORKER_MODULE = "planner.grading.worker"
_READ_CHUNK = 1 << 16


class _Worker:
    """One worker process and the bytes it has sent that are not yet a whole line."""

    def __init__(self) -> None:
        project_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [project_root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen([sys.executable, "-m", _WORKER_MODULE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "PYTHONPATH": path})
        self.ready = False
        self._buffer = b""

    def wait_ready(self, timeout: float) -> bool:
        """Whether the worker finished starting within `timeout` (it keeps starting otherwise)."""
        if not self.ready:
            line = self._line(timeout)
            self.ready = line == b"ready"
        return self.ready

    def ask(self, request: list, timeout: float) -> list | None:
        """The worker's reply, or None when `timeout` passed or the worker died (it is then killed)."""
        try:
            self.process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            self.process.stdin.flush()
        except OSError:
            self.kill()
            return None
        line = self._line(timeout)
        if line is None:
            self.kill()
            return None
        return json.loads(line)

    def _line(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()


class WorkerPool:
    """Up to `size` busy workers shared by every thread, plus one warm spare when `spare` is set."""

    def __init__(self, size: int = 1, start_timeout: float = 120.0, spare: bool = True) -> None:
        self.size = size
        self.start_timeout = start_timeout
        self.spare = spare
        self.kills = 0
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._spare: _Worker | None = None
        self._lock = threading.Lock()
        self._closed = False

    def ask(self, request: list, timeout: float, start_deadline: float | None = None) -> list | None:
        """The reply to `request`, or None when no worker was free and ready by `start_deadline` (monotonic;
        `start_timeout` from now when None) or the reply did not come within `timeout` seconds (that worker
        is then replaced)."""
        start_wait = self.start_timeout if start_deadline is None else start_deadline - time.monotonic()
        worker = self._take(max(0.0, start_wait))
        if worker is None:  # every worker stayed busy with other threads' comparisons
            return None
        start_wait = self.start_timeout if start_deadline is None else start_deadline - time.monotonic()
        if not worker.wait_ready(max(0.0, min(self.start_timeout, start_wait))):
            self._give_back(worker if worker.alive else self._replacement(worker))
            return None
        reply = worker.ask(request, timeout)
        self._give_back(worker if reply is not None else self._replacement(worker))
        return reply

    def _take(self, wait: float) -> _Worker | None:
        """An idle worker (started if fewer than `size` exist), or None when none came free within `wait`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the grading worker pool is closed")
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                self._start_spare()
                return _Worker()
        try:
            return self._idle.get(timeout=wait)
        except queue.Empty:
            return None

    def _replacement(self, dead: _Worker) -> _Worker:
        dead.kill()
        with self._lock:
            self.kills += 1
            worker, self._spare = self._spare, None
            self._start_spare()
        return worker if worker is not None and worker.alive else _Worker()

    def _start_spare(self) -> None:
        if self.spare and self._spare is None and not self._closed:
            self._spare = _Worker()

    def _give_back(self, worker: _Worker) -> None:
        if self._closed:
            worker.kill()
        else:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker; a worker still busy in another thread is stopped when it comes back."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return
