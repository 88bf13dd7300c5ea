"""`tts-planner predict`: each problem's predicted pass@1 and difficulty bin."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from sglang_plugin.cli.options import input_options, model_option, output_option, report_skipped, skip_log


def predict_with_progress(model, texts: list[str]) -> np.ndarray:
    from tqdm import tqdm

    with tqdm(total=len(texts), desc="predicting", unit="problem", file=sys.stderr, disable=None,
              leave=False) as bar:
        return model.predict(texts, progress=bar.update)


@click.command("predict")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@model_option
@output_option
@input_options
def predict_command(input_path: Path, model: str | None, output: Path | None, field: str | None, skip_bad: bool,
                    max_chars: int) -> None:
    """Predict each problem's pass@1 for the policy and its difficulty bin.

    Each output line is the input record plus "pass_at_1" (0 to 1) and "difficulty": "easy" (>= 0.5),
    "medium" (0.1 to 0.5) or "hard" (< 0.1).

    \b
    Example:
      tts-planner predict examples/problems.jsonl --output predicted.jsonl
    """
    from planner.difficulty import difficulty_bins
    from planner.jsonl import read_problems, write_jsonl
    from planner.prediction.model_store import load_model

    predictor = load_model(model)
    skip = skip_log(skip_bad)
    records, texts = read_problems(input_path, field, skip=skip, max_chars=max_chars)
    pass_at_1 = np.round(predict_with_progress(predictor, texts), 4)  # the bin follows the number written
    bins = difficulty_bins(pass_at_1)
    write_jsonl(({**record, "pass_at_1": float(p), "difficulty": str(b)}
                 for record, p, b in zip(records, pass_at_1, bins)), output)
    report_skipped(skip)
