"""The SGLang Model Gateway (`smg`, PyPI) in front of stand-in workers, for tests and benchmarks; the product never
imports this module.

- `Worker`: `tts-planner sim-server --port 0 ...` in a child process (its CPU apart from the client's), which
  can be killed with SIGKILL as a crashed GPU server would die.
- `Gateway`: `smg launch` in front of worker URLs, quiet (it prints a banner and a line per request otherwise),
  ready once GET /readiness counts every worker healthy. It keeps serving for 5 s after SIGTERM (a drain
  window), so it is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def smg_binary() -> str | None:
    """The smg binary: on PATH, or beside this interpreter (a virtual environment not activated)."""
    beside = Path(sys.executable).with_name("smg")
    return shutil.which("smg") or (str(beside) if beside.exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """A stand-in SGLang worker in a child process: `Worker("--problems", path, "--token-delay-ms", "1")`; `port`
    0 picks a free one (give the old port to bring a killed worker back where its clients look for it)."""

    def __init__(self, *options: str, port: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-m", "sglang_plugin.cli", "sim-server", "--port", str(port),
                                         *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env=env)
        line = self.process.stdout.readline()
        if "ready at " not in line:
            self.kill()
            raise RuntimeError(f"the stand-in worker did not start: {line!r}")
        self.url = line.split("ready at ")[1].split()[0]

    def kill(self) -> None:
        """Die at once, as a crashed server does (open connections are reset)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Gateway:
    """`smg launch --policy POLICY --worker-urls URL...` on a free loopback port; `url` is where clients go."""

    def __init__(self, urls: list[str], policy: str = "cache_aware", *extra: str, binary: str | None = None,
                 ready_timeout: float = 30.0) -> None:
        binary = binary or smg_binary()
        if binary is None:
            raise RuntimeError("the smg binary is not installed (pip install smg)")
        self.workers = len(urls)
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        # each gateway exports its metrics on a loopback port of its own (by default 0.0.0.0:29000, shared: a
        # second gateway exits)
        self.process = subprocess.Popen([binary, "launch", "--host", "127.0.0.1", "--port", port, "--worker-urls",
                                         *urls, "--policy", policy, "--log-level", "warn", "--prometheus-host",
                                         "127.0.0.1", "--prometheus-port", str(free_port()), *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + ready_timeout
        while self.healthy_workers() != self.workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"smg did not report {self.workers} healthy worker(s) within {ready_timeout} s")
            time.sleep(0.05)

    def healthy_workers(self) -> int | None:
        """What GET /readiness reports, None while the gateway does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/readiness", timeout=2) as response:
                return json.loads(response.read()).get("healthy_workers")
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
