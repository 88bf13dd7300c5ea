"""`tts-planner report`: what a run bought for what it spent, and whether the predictor's pass@1 held up.

Reads result files (one line per problem, as `tts-planner run` and `tts-planner calibrate` write them) and
optional per-sample outcome records, then writes, into one folder:

- `accuracy_vs_cost.png`: accuracy against mean tokens per problem, one series per method (adaptive, and
  each uniform strategy across its sizes), one panel per difficulty bin and one for all problems;
- `calibration.png`: predicted pass@1 against the pass@1 observed on the same problems, binned;
- `report.md`: the numbers behind both plots, beside them.

A file holds one or more runs ("arms"): adaptive lines form one arm, and every other line falls in the arm
of its strategy and size (`majority@8`), so a calibration sweep's log reports each point of its grid. A run
is labeled by its file name, plus the arm when a file holds several. Within a run, a problem that appears
more than once (files concatenated by hand) counts once, by its last line. An adaptive line's strategy is
the rule that chose its answer (`plan.chosen_by`).

Observed pass@1 comes from independent samples only: outcome records of the sampling strategies (each
branch of cot, majority, best_of_n or weighted_vote is one sample from the policy; an adaptive run's records
are its probe and rounds, labeled with the strategy that drew them), and the answers of cot runs. Branches
of beam search, DVTS and the particle filter are selected by a reward model, so they are not samples of
pass@1 and are left out. Without any independent sample the plot falls back to the final
answers' correctness, and says so.

This module does not import sglang; matplotlib is imported only to draw.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from planner.errors import InputError
from planner.files import atomic_path
from planner.report.inputs import (
    OutcomeTally,
    Run,
    is_outcome_file,
    label_runs,
    outcome_files_beside,
    read_outcomes,
    read_results,
)
from planner.report.markdown import markdown
from planner.report.numbers import calibration, strategy_mix, summarize
from planner.report.plots import draw_accuracy, draw_calibration, matplotlib_drawing, save

ACCURACY_PNG = "accuracy_vs_cost.png"
CALIBRATION_PNG = "calibration.png"
REPORT_MD = "report.md"


@dataclass
class ReportFiles:
    markdown: Path
    accuracy_png: Path
    calibration_png: Path | None



def make_report(result_paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                outcome_paths: Iterable[str | os.PathLike] = (), calibration_bins: int = 10) -> ReportFiles:
    """Read the inputs, then write the plots and report.md (each atomically) into `output_dir`."""
    if not result_paths:
        raise InputError("give at least one result file")
    drawing = matplotlib_drawing()
    outcome_paths = [Path(p) for p in outcome_paths] + [Path(p) for p in result_paths if is_outcome_file(p)]
    result_paths = [p for p in result_paths if not is_outcome_file(p)]
    if not result_paths:
        raise InputError("every file given is an outcome file (*.outcomes.jsonl); give the result files too")
    runs: list[Run] = []
    for path in result_paths:
        runs += read_results(path)
    label_runs(runs)
    outcome_files = list(dict.fromkeys([Path(p) for p in outcome_paths]
                                       + [p for r in result_paths for p in outcome_files_beside(r)]))
    outcomes: dict[tuple[str, str], OutcomeTally] = {}
    for path in outcome_files:
        for key, tally in read_outcomes(path).items():
            old = outcomes.get(key, OutcomeTally(0, 0))
            outcomes[key] = OutcomeTally(old.correct + tally.correct, old.samples + tally.samples)
    rows = summarize(runs)
    if not any(r.judged for r in rows):
        raise InputError("no result line has a 'correct' field, so there is no accuracy to report (the input "
                         "problems need a reference 'answer')", path=", ".join(str(p) for p in result_paths))
    calib = calibration(runs, outcomes, calibration_bins)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / REPORT_MD, out / ACCURACY_PNG, out / CALIBRATION_PNG if calib else None)
    save(drawing, files.accuracy_png, lambda fig: draw_accuracy(fig, runs, rows))
    if calib is not None:
        save(drawing, files.calibration_png, lambda fig: draw_calibration(fig, calib))
    text = markdown(runs, rows, strategy_mix(runs), calib, [str(p) for p in outcome_files], files.accuracy_png.name,
                    files.calibration_png.name if files.calibration_png else None)
    with atomic_path(files.markdown) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return files


