"""Check tts-planner against the sglang frontend installed in this environment: run the compatibility tests
(`pytest -m compat`: every program, the scorers, the adaptive solver, a user's own program with gen, fork and
run_batch, a plain RuntimeEndpoint, a stopped stream, gpt-oss through the harmony template tts-planner registers)
against the stand-in server, and print the versions.

    python scripts/check_sglang_compat.py            # in an environment with the sglang release to check

CI runs the same tests with the light 0.5.2 frontend; run this where a serving machine's full sglang is
installed (e.g. `pip install sglang==0.5.23`, which pulls torch and CUDA packages).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path


def main() -> int:
    import aiohttp
    import sglang

    root = Path(__file__).resolve().parents[1]
    print(f"python {platform.python_version()}, sglang {sglang.__version__}, aiohttp {aiohttp.__version__}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "compat", "-q", "-p", "no:cacheprovider",
                           str(root / "tests")], cwd=root)
    print(f"sglang {sglang.__version__}: compatibility check {'passed' if done.returncode == 0 else 'FAILED'}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
