"""The README's examples: the checker finds them in order, keeps CI's test command, and the examples before the
first server run as written (the whole README: `python scripts/check_readme.py`, several minutes)."""

import re
import subprocess
import sys

from conftest import ROOT

CHECK = [sys.executable, str(ROOT / "scripts" / "check_readme.py")]


def test_the_readme_opens_with_the_demo_and_ci_s_test_command_and_the_checker_leaves_the_tests_to_ci():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[3].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install") and \
        lines[3].endswith("&& tts-planner demo")
    ci_grep = re.compile(r"^python3 -m venv .* python -m pytest")  # the line .ci/run runs
    assert next(i for i, line in enumerate(lines) if ci_grep.search(line)) == 4
    listed = subprocess.run([*CHECK, "--list"], capture_output=True, text=True, check=True, timeout=60).stdout
    first, second = listed.splitlines()[:2]
    assert first.startswith("README.md:4: shell  run: ") and first.endswith("&& tts-planner demo")
    assert second.startswith("README.md:5: shell  skip (the test suite")
    assert "background: tts-planner sim-server --port 30000" in listed


def test_the_examples_before_the_first_server_run_as_written():
    done = subprocess.run([*CHECK, "--no-server", "--timeout", "120"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "README.md: every example ran" in done.stdout
    assert "README.md:4: ok" in done.stdout  # the first command, its set-up dropped
