"""Optional parts of tts-planner and how to install them from where the user stands."""

from __future__ import annotations

from pathlib import Path

import planner


def install_hint(extra: str) -> str:
    """A pip command that installs an extra into this copy: the source checkout it runs from, if it is one,
    else the package by name."""
    root = Path(planner.__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return f'pip install "{root}[{extra}]"'
    return f'pip install "tts-planner[{extra}]"'
