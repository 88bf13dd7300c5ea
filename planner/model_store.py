"""Where shipped predictors live and how a user names one: a policy name or a path to a model file."""

from __future__ import annotations

import json
from pathlib import Path

import planner
from planner.errors import ModelFileError
from planner.policies import DEFAULT_POLICY, POLICIES, policy
from planner.predictor import DifficultyPredictor

MODEL_SUFFIX = ".npz"
CARD_SUFFIX = ".json"


def models_dir() -> Path:
    """The shipped models: inside the installed package, or at the root of a source checkout."""
    package = Path(planner.__file__).resolve().parent
    for candidate in (package / "models", package.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise ModelFileError(f"no shipped models found next to {package}; reinstall tts-planner")


def shipped_model_path(policy_name: str) -> Path:
    return models_dir() / f"{policy(policy_name).model_file}{MODEL_SUFFIX}"


def resolve_model_path(name_or_path: str | None) -> Path:
    """A path if it names an existing file (or ends in .npz), else the shipped model of that policy."""
    if name_or_path is None:
        return shipped_model_path(DEFAULT_POLICY)
    candidate = Path(name_or_path)
    if candidate.suffix == MODEL_SUFFIX or candidate.exists():
        return candidate
    return shipped_model_path(name_or_path)


def load_model(name_or_path: str | None = None) -> DifficultyPredictor:
    """Load a shipped predictor by policy name (default: the default policy) or any model file by path."""
    return DifficultyPredictor.load(resolve_model_path(name_or_path))


def shipped_cards() -> list[dict]:
    """The metadata card of every shipped model, in registry order."""
    cards = []
    for entry in POLICIES.values():
        card = models_dir() / f"{entry.model_file}{CARD_SUFFIX}"
        if card.exists():
            cards.append(json.loads(card.read_text(encoding="utf-8")))
    return cards
