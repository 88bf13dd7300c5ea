"""Retraining the difficulty predictor on a user's own outcomes, measured on a held-out share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from planner.errors import InputError, PlannerError
from planner.files import sha256_of
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog
from planner.policies import policy
from planner.prediction.labels import load_labels
from planner.prediction.metrics import difficulty_metrics, format_metrics
from planner.prediction.predictor import FORMAT_VERSION, DifficultyPredictor

MIN_PROBLEMS = 20


def train_from_file(data_path: Path, label_field: str, output: Path, *, total_field: str | None = None,
                    group_field: str | None = "problem_id", text_field: str | None = None,
                    policy_name: str | None = None, holdout: float = 0.2, refit: bool = False, seed: int = 0,
                    skip: SkipLog | None = None, max_chars: int = DEFAULT_MAX_CHARS,
                    echo: Callable[[str], object] = print) -> dict:
    """Fit on (1 - holdout) of the problems, measure on the rest, save; returns the metadata written."""
    known_policy = policy(policy_name).name if policy_name else None
    data = load_labels(data_path, label_field, text_field=text_field, total_field=total_field,
                       group_field=group_field, skip=skip, max_chars=max_chars)
    if known_policy is None:
        known_policy = _policy_of_records(data.records, echo)
    if len(data) < MIN_PROBLEMS:
        raise InputError(f"only {len(data)} distinct problems with labels; training needs at least "
                         f"{MIN_PROBLEMS}", path=str(data_path), field=label_field)
    order = np.random.default_rng(seed).permutation(len(data))
    n_held = max(1, int(round(holdout * len(data))))
    held, kept = order[:n_held], order[n_held:]
    texts = np.array(data.texts, dtype=object)
    echo(f"training on {len(kept)} problems ({data.lines_read} lines), holding out {n_held}")
    model = DifficultyPredictor(random_state=seed, policy=known_policy).fit(list(texts[kept]), data.labels[kept],
                                                                            data.weights[kept])
    metrics = difficulty_metrics(model.predict(list(texts[held])), data.labels[held])
    echo(f"held-out: {format_metrics(metrics)}")
    if refit:
        echo(f"refitting on all {len(data)} problems")
        model = DifficultyPredictor(random_state=seed, policy=known_policy).fit(data.texts, data.labels, data.weights)
    card = {
        "label_column": label_field,
        "training_data": {"file": Path(data_path).name, "sha256": sha256_of(Path(data_path)),
                          "lines": data.lines_read, "problems": len(data), "samples": float(data.weights.sum()),
                          "total_field": total_field, "refit_on_all": refit},
        "held_out_metrics": {"holdout": metrics},
        "format_version": FORMAT_VERSION,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output, card)
    echo(f"wrote {output}")
    return {"policy": known_policy, **card}


def _policy_of_records(records: list[dict], echo: Callable[[str], object]) -> str | None:
    """The policy named by outcome records (`tts-planner run` writes it), when they all name one known policy."""
    named = {r["policy"] for r in records if isinstance(r.get("policy"), str)}
    if len(named) != 1:
        return None
    try:
        found = policy(named.pop()).name
    except PlannerError:
        return None
    echo(f"policy {found} (from the records' 'policy' field)")
    return found
