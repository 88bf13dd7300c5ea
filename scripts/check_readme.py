"""Run every shell and Python example of README.md, in order, in a temporary copy of the repository, and fail
with the README line of the first example that fails.

    python scripts/check_readme.py [--timeout 300] [--keep] [--list] [--no-server]

What runs, and how:
- fenced blocks tagged sh, bash, shell or console run command by command (backslash continuations joined,
  comment lines skipped) with `bash -o pipefail -c`; blocks tagged python or py run whole, each as its own
  script (so each must define what it uses); other blocks (text, json, ...) are output or data and do not run;
- a block right after the line `<!-- check_readme: skip REASON -->` does not run (GPU servers, downloads of
  gigabytes, minutes-long rebuilds); the reason is printed;
- the environment is this one (the interpreter running this script and its console scripts come first on
  PATH): the set-up segments of a command (`python3 -m venv`, activating it, `pip install`) are dropped, and so
  is `python -m pytest` (the test suite, which CI runs on its own);
- a command ending in `&` runs in the background until the end of the check; like a user who waits for its ready
  line, the check waits until the `--port` it names accepts connections. Each such port is replaced, in every
  example, by a free one, so the check never meets a server already on the README's ports;
- the copy holds the files git would commit (tracked, and untracked ones git does not ignore), beside a link to
  the shared data folder (`../shared`) when there is one, so the README's relative paths hold;
- every example has `--timeout` seconds; the first to fail (non-zero exit, or out of time) stops the check with
  `README.md:LINE` and the end of its output, exit 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
SKIP = re.compile(r"^<!--\s*check_readme:\s*skip\b\s*(.*?)\s*-->\s*$")
SETUP = re.compile(r"^(python3? -m venv\b|\.\s+\S*activate\b|source\s+\S*activate\b|pip3? install\b)")
TEST_SUITE = re.compile(r"^python3? -m pytest\b")
PORT = re.compile(r"--port[ =](\d+)")  # where a background command listens
PORTS = re.compile(r"--[\w-]*port[ =](\d+)")  # every port it takes (a gateway's metrics port too)
COMMENT = re.compile(r"\s+#[^'\"]*$")
READY_SECONDS = 60.0


@dataclass
class Example:
    line: int  # README line of its first line
    kind: str  # "shell" or "python"
    text: str
    skip: str | None = None  # why it does not run

    @property
    def command(self) -> str:
        """A shell command without its trailing comment."""
        return COMMENT.sub("", self.text).rstrip()

    @property
    def background(self) -> bool:
        return self.kind == "shell" and self.command.endswith("&") and not self.command.endswith("&&")


def examples(readme: Path) -> list[Example]:
    """The README's runnable examples in order: one per shell command, one per Python block."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, language = fence.group(1), fence.group(2), fence.group(3).lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skipped = SKIP.match(previous.strip())
        start, i = i + 1, i + 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            i += 1
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[start:i]]
        i += 1
        reason = (skipped.group(1) or "marked skip") if skipped else None
        if language in PYTHON:
            found.append(Example(start + 1, "python", "\n".join(body) + "\n", reason))
        elif language in SHELL:
            found += [Example(start + 1 + offset, "shell", command, reason) for offset, command in commands(body)]
    return found


def commands(body: list[str]) -> list[tuple[int, str]]:
    """(offset in the block, command) for each command of a shell block."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for offset, raw in enumerate(body):
        line = raw.strip()
        if not pending:
            if not line or line.startswith("#"):
                continue
            first = offset
        if line.endswith("\\"):
            pending.append(line[:-1].rstrip())
            continue
        pending.append(line)
        out.append((first, " ".join(pending)))
        pending = []
    if pending:
        out.append((first, " ".join(pending)))
    return out


def runnable(command: str) -> tuple[str, str | None]:
    """The command without its set-up segments and the test suite, and why nothing is left to run (or None)."""
    kept, dropped = [], []
    for segment in (s.strip() for s in command.split("&&")):
        (dropped if SETUP.match(segment) or TEST_SUITE.match(segment) else kept).append(segment)
    if kept:
        return " && ".join(kept), None
    if any(TEST_SUITE.match(s) for s in dropped):
        return "", "the test suite (CI runs it through .ci/run)"
    return "", "installs into an environment (the check uses this one)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remap_ports(found: list[Example]) -> dict[str, str]:
    """A free port for every port a background command of the README listens on."""
    ports = {p for e in found if e.background and e.skip is None for p in PORTS.findall(e.text)}
    return {port: str(free_port()) for port in sorted(ports)}


def with_ports(text: str, ports: dict[str, str]) -> str:
    for old, new in ports.items():
        text = re.sub(rf"(?<=[:= ]){old}\b", new, text)
    return text


def copy_repository(target: Path) -> Path:
    """The files git would commit, copied to target/<name of this repository>; ../shared linked beside it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    repo = target / ROOT.name
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (target / "shared").symlink_to(shared)
    return repo


def wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(process: subprocess.Popen) -> None:
    """End a background command and everything it started."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def short(text: str, width: int = 100) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[:width - 3] + "..."


def check(readme: Path, timeout: float, keep: bool, no_server: bool = False) -> int:
    found = examples(readme)
    if no_server:
        first = next((i for i, e in enumerate(found) if e.background and e.skip is None), len(found))
        found = found[:first]
    ports = remap_ports(found)
    folder = Path(tempfile.mkdtemp(prefix="check-readme-"))
    repo = copy_repository(folder)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    background: list[subprocess.Popen] = []
    started = time.perf_counter()
    print(f"checking {len(found)} examples of {readme.name} in {repo}" + (
        f" (ports {', '.join(f'{a} -> {b}' for a, b in ports.items())})" if ports else ""))
    try:
        for example in found:
            where = f"{readme.name}:{example.line}"
            text = with_ports(example.text, ports)
            if example.kind == "shell":
                text, why = runnable(text)
            else:
                why = None
            why = example.skip or why
            if why is not None:
                print(f"{where}: skipped ({why}): {short(example.text)}")
                continue
            began = time.perf_counter()
            if example.background:
                log = open(folder / f"background-{example.line}.log", "w")
                process = subprocess.Popen(["bash", "-c", COMMENT.sub("", text).rstrip().rstrip("&")], cwd=repo, env=env,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                background.append(process)
                port = next(iter(PORT.findall(text)), None)
                if port is not None and not wait_for_port(int(port), process, READY_SECONDS):
                    log.close()
                    print((folder / f"background-{example.line}.log").read_text(errors="replace"))
                    print(f"{where}: FAILED: the background command did not listen on port {port} within "
                          f"{READY_SECONDS:g} s: {short(example.text)}")
                    return 1
                print(f"{where}: started in the background ({time.perf_counter() - began:.1f} s): "
                      f"{short(example.text)}")
                continue
            if example.kind == "shell":
                argv = ["bash", "-o", "pipefail", "-c", text]
            else:
                script = folder / f"example-{example.line}.py"
                script.write_text(text, encoding="utf-8")
                argv = [sys.executable, str(script)]
            try:
                done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else \
                    exc.stdout or ""
                print(tail(output))
                print(f"{where}: FAILED: still running after {timeout:g} s: {short(example.text)}")
                return 1
            (folder / f"output-{example.line}.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
            if done.returncode != 0:
                print(tail(done.stdout + done.stderr))
                print(f"{where}: FAILED (exit {done.returncode}): {short(example.text)}")
                return 1
            print(f"{where}: ok ({time.perf_counter() - began:.1f} s): {short(example.text)}")
    finally:
        for process in background:
            stop(process)
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{readme.name}: every example ran ({time.perf_counter() - started:.0f} s)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each example may take")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary copy, with each example's output in output-LINE.txt (its path is printed)")
    parser.add_argument("--list", action="store_true", help="list the examples and what would be skipped, run nothing")
    parser.add_argument("--no-server", action="store_true",
                        help="run only the examples before the README starts its first server (fast: CI runs these)")
    args = parser.parse_args()
    if args.list:
        for example in examples(args.readme):
            text, why = runnable(example.text) if example.kind == "shell" else (example.text, None)
            status = f"skip ({example.skip or why})" if example.skip or why else \
                "background" if example.background else "run"
            print(f"{args.readme.name}:{example.line}: {example.kind:<6} {status}: {short(example.text)}")
        return 0
    return check(args.readme.resolve(), args.timeout, args.keep, args.no_server)


if __name__ == "__main__":
    sys.exit(main())
