"""Rebuild every shipped difficulty predictor from the shared MATH outcomes, deterministically.

    python -m planner.prediction.build_models --data ../shared/data

Trains on MATH train only (split == "train"); MATH test (5000) and MATH-500 are held out and their metrics
go into each model's metadata card. Same data in, byte-identical model files out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from planner.errors import InputError
from planner.files import atomic_path, sha256_of
from planner.jsonl import read_jsonl
from planner.policies import POLICIES
from planner.prediction.metrics import difficulty_metrics, format_metrics
from planner.prediction.model_store import CARD_SUFFIX, MODEL_SUFFIX
from planner.prediction.predictor import FORMAT_VERSION, DifficultyPredictor, logit_rate

OUTCOMES = "outcomes/math_success_rates.jsonl"
MATH500 = "outcomes/math500_success_rates.jsonl"
# Columns excluded from the consensus target, per the data README: base models inside a chat template at
# temperature 1.0 are broken, and Math-7B-Instruct at 1.0 is suspect.
EXCLUDED = ("sr__Qwen-Qwen2.5-1.5B_", "sr__Qwen-Qwen2-1.5B_",
            "sr__Qwen-Qwen2.5-Math-7B-Instruct_maxlen_3000_k_50_temp_1.0")


def default_data_dir() -> Path:
    return Path(os.environ.get("TTS_PLANNER_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def consensus_columns(record: dict) -> list[str]:
    """Well-sampled (k=50) outcome columns of working policies: a low-noise shared view of difficulty."""
    return sorted(c for c in record if c.startswith("sr__") and "_k_50_" in c and not c.startswith(EXCLUDED))


def level_of(record: dict) -> float:
    level = str(record.get("level", ""))[-1:]
    return float(level) if level.isdigit() else 3.0


def build(data_dir: Path, out_dir: Path, policy_names: list[str]) -> list[dict]:
    outcomes = data_dir / OUTCOMES
    if not outcomes.exists():
        raise InputError("not found; point --data (or TTS_PLANNER_DATA) at the shared data folder",
                         path=str(outcomes))
    rows = [record for _, record in read_jsonl(outcomes)]
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    math500 = [record for _, record in read_jsonl(data_dir / MATH500)]
    columns = consensus_columns(rows[0])
    consensus = np.mean([logit_rate(np.array([r[c] for r in train])) for c in columns], axis=0)
    levels = np.array([level_of(r) for r in train])
    source = {"file": OUTCOMES, "sha256": sha256_of(outcomes), "split": "train", "rows": len(train),
              "aux_targets": {"consensus": columns, "level": "MATH level (1-5)"}}
    cards = []
    for name in policy_names:
        entry = POLICIES[name]
        labels = np.array([r[entry.label_column] for r in train])
        model = DifficultyPredictor(policy=entry.name).fit([r["problem"] for r in train], labels,
                                                           aux={"consensus": consensus, "level": levels})
        path = out_dir / f"{entry.model_file}{MODEL_SUFFIX}"
        card = {"label_column": entry.label_column, "training_data": source, "format_version": FORMAT_VERSION}
        model.save(path, card)
        saved = DifficultyPredictor.load(path)
        held_out = {
            "math_test": difficulty_metrics(saved.predict([r["problem"] for r in test]),
                                            np.array([r[entry.label_column] for r in test])),
            "math500": difficulty_metrics(saved.predict([r["problem"] for r in math500]),
                                          np.array([r[entry.label_column] for r in math500])),
        }
        card["held_out_metrics"] = held_out
        model.save(path, card)
        card = {"policy": entry.name, **card, "model_file": path.name, "model_sha256": sha256_of(path),
                "size_bytes": path.stat().st_size}
        with atomic_path(out_dir / f"{entry.model_file}{CARD_SUFFIX}") as tmp:
            tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        for split, metrics in held_out.items():
            click.echo(f"{entry.name} [{split}] {format_metrics(metrics)}")
        cards.append(card)
    return cards


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The shared data folder (default: $TTS_PLANNER_DATA, else ../shared/data).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(__file__).resolve().parents[2] / "models", show_default=True)
@click.option("--policy", "policy_names", multiple=True, type=click.Choice(list(POLICIES)),
              help="Rebuild only these policies' models (default: all).")
def main(data_dir: Path | None, out_dir: Path, policy_names: tuple[str, ...]) -> None:
    """Rebuild the shipped difficulty predictors from the shared MATH outcomes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build(data_dir or default_data_dir(), out_dir, list(policy_names) or list(POLICIES))


if __name__ == "__main__":
    main()
