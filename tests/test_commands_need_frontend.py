"""Commands that talk to servers say which extra to install when the sglang frontend is missing."""

import subprocess
import sys
from pathlib import Path

import pytest

HIDE_SGLANG = "import sys; sys.modules['sglang'] = None; from sglang_plugin.cli.main import main; main()"


def _hint_of_installed_copy(cwd: Path) -> str:
    """The install hint of the copy a command imports (the installed package in CI, the checkout in development),
    asked of a child process started like the command's."""
    ask = "from planner.extras import install_hint; print(install_hint('client'))"
    return subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=True).stdout.strip()


@pytest.mark.parametrize("args", [
    ["demo"],
    ["run", "--endpoint", "http://127.0.0.1:9", "--input", "examples/problems.jsonl", "--output", "out.jsonl"],
    ["calibrate", "--endpoint", "http://127.0.0.1:9", "--input", "examples/problems.jsonl"],
])
def test_missing_frontend_is_one_clear_error(args, tmp_path):
    examples = Path(__file__).resolve().parents[1] / "examples" / "problems.jsonl"
    args = [str(examples) if a == "examples/problems.jsonl" else a for a in args]
    result = subprocess.run([sys.executable, "-c", HIDE_SGLANG, *args], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    hint = _hint_of_installed_copy(tmp_path)
    assert hint.startswith('pip install "') and hint.endswith('[client]"')
    assert hint in result.stderr and "missing: sglang" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_planning_needs_no_frontend(tmp_path):
    examples = Path(__file__).resolve().parents[1] / "examples" / "problems.jsonl"
    result = subprocess.run([sys.executable, "-c", HIDE_SGLANG, "plan", str(examples), "--budget", "2", "-o", "-"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 24 and "Baseline at equal compute" in result.stderr
