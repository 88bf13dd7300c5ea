"""Where shipped predictors live and how a user names one: a policy name or a path to a model file."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import planner
from planner.errors import ModelFileError, PlannerError
from planner.policies import DEFAULT_POLICY, POLICIES, policy
from planner.prediction.predictor import DifficultyPredictor

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
    entry = policy(policy_name)
    if entry.model_file is None:
        raise ModelFileError(f"no shipped predictor for {entry.name}; train one with `tts-planner train` and give "
                             "its file")
    return models_dir() / f"{entry.model_file}{MODEL_SUFFIX}"


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
        if entry.model_file is None:
            continue
        card = models_dir() / f"{entry.model_file}{CARD_SUFFIX}"
        if card.exists():
            cards.append(json.loads(card.read_text(encoding="utf-8")))
    return cards


@functools.lru_cache(maxsize=16)
def shared_model(name_or_path: str | None = None) -> DifficultyPredictor:
    """One loaded predictor per name or path and process (prediction is thread-safe)."""
    return load_model(name_or_path)


def predictor_for(policy_name: str | None, model: str | None = None) -> tuple[DifficultyPredictor, Path]:
    """The predictor a policy is planned with, and its file: `model` (a policy name or model file) if given,
    else the shipped predictor of the policy, else the default policy's. A policy without its own borrows the
    default's: the text-only prior is weak either way, and the prediction names the file used."""
    if model is None:
        shipped = policy_name is not None and _has_shipped(policy_name)
        model = policy_name if shipped else DEFAULT_POLICY
    return shared_model(model), resolve_model_path(model)


def _has_shipped(policy_name: str) -> bool:
    try:
        return shipped_model_path(policy_name).exists()
    except PlannerError:
        return False
