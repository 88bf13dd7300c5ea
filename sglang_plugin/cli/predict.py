"""`tts-planner predict`: each problem's predicted pass@1 and difficulty bin."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from sglang_plugin.cli.options import problem_file_options, report_skipped, skip_log, write_output

SHOWN = 20  # problems listed one by one in the table; the rest are counted in the bins


def predict_with_progress(model, texts: list[str]) -> np.ndarray:
    from tqdm import tqdm

    from planner.logs import showing_progress

    with tqdm(total=len(texts), desc="predicting", unit="problem", file=sys.stderr,
              disable=None if showing_progress() else True, leave=False) as bar:
        return model.predict(texts, progress=bar.update)


def format_predictions(texts: list[str], pass_at_1: np.ndarray, bins: np.ndarray, policy: str | None,
                       shown: int = SHOWN) -> str:
    """The table `predict` prints: the first `shown` problems one per line, then how many fall in each bin."""
    from planner.difficulty import BINS

    lines = [f"Predicted pass@1 for {policy or 'an unnamed policy'} (easy >= 0.5 > medium >= 0.1 > hard)",
             f"{'pass@1':>6}  {'bin':<7} problem"]
    for text, p, b in list(zip(texts, pass_at_1, bins))[:shown]:
        lines.append(f"{p:>6.3f}  {b:<7} {' '.join(text.split())[:80]}")
    if len(texts) > shown:
        lines.append(f"... and {len(texts) - shown:,} more")
    lines += ["", f"{'bin':<8}{'problems':>9}{'share':>8}{'mean pass@1':>13}"]
    for name in BINS:
        inside = pass_at_1[bins == name]
        mean = f"{inside.mean():.3f}" if len(inside) else "-"
        lines.append(f"{name:<8}{len(inside):>9,}{len(inside) / max(len(texts), 1):>8.0%}{mean:>13}")
    return "\n".join(lines)


@click.command("predict")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@problem_file_options
def predict_command(input_path: Path, model: str | None, output: Path | None, field: str | None, skip_bad: bool,
                    max_chars: int) -> None:
    """Predict each problem's pass@1 for the policy and its difficulty bin: "easy" (>= 0.5), "medium" (0.1 to
    0.5) or "hard" (< 0.1).

    Prints a table: the first problems one by one, then the count and mean pass@1 of each bin. With -o, each
    problem's record is written too: the input record plus "pass_at_1" (0 to 1) and "difficulty".

    \b
    Examples:
      tts-planner predict examples/problems.jsonl
      tts-planner predict examples/problems.jsonl --output predicted.jsonl
      tts-planner predict examples/problems.jsonl -o - | head -n 1
    """
    from planner.difficulty import difficulty_bins
    from planner.jsonl import read_problems
    from planner.prediction.model_store import load_model

    predictor = load_model(model)
    skip = skip_log(skip_bad)
    records, texts = read_problems(input_path, field, skip=skip, max_chars=max_chars)
    pass_at_1 = np.round(predict_with_progress(predictor, texts), 4)  # the bin follows the number written
    bins = difficulty_bins(pass_at_1)
    write_output(({**record, "pass_at_1": float(p), "difficulty": str(b)}
                  for record, p, b in zip(records, pass_at_1, bins)), output,
                 format_predictions(texts, pass_at_1, bins, predictor.policy))
    report_skipped(skip)
