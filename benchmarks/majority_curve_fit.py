"""Fit the default majority-vote curves to real measurements (the source of DEFAULT_CURVES' majority rows).

MATH train (shared/data/outcomes/math_success_rates.jsonl, split == "train") has, per problem, the pass@1 of
Qwen2.5-Math-{1.5B,7B}-Instruct from k=50 samples at T=0.7 and whether the majority of 8 other samples (same
temperature) was right. Problems are grouped by pass@1 inside each difficulty bin; the planner's majority
curve (wrong-answer model + rate) is fit to the groups' majority-of-8 accuracy with planner.planning.calibration's
calibration fitter, and the fit is printed beside the measurements.

    python benchmarks/majority_curve_fit.py [--data DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from planner.difficulty import difficulty_bin
from planner.jsonl import read_jsonl
from planner.planning.calibration import CalibrationPoint, fit_curve
from planner.planning.curves import Curve

COLUMNS = {
    "small (Qwen2.5-Math-1.5B-Instruct)": "Qwen-Qwen2.5-Math-1.5B-Instruct",
    "medium (Qwen2.5-Math-7B-Instruct)": "Qwen-Qwen2.5-Math-7B-Instruct",
}
# One majority size (8) cannot separate the wrong-answer model from the rate; the fit is pulled towards a
# broad Beta(2, 2) for the top wrong answer's share and a slow rate, with a prior weight of 0.3 (without it
# the Beta degenerates to a step at one threshold).
START = Curve(plurality=(2.0, 2.0), rate=(1.0, 0.3, 0.3))
PRIOR = 0.3
EDGES = (0.0, 0.02, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.96, 1.0001)


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return Path(os.environ.get("TTS_PLANNER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def groups(p: np.ndarray, correct: np.ndarray) -> list[CalibrationPoint]:
    points = []
    for low, high in zip(EDGES[:-1], EDGES[1:]):
        inside = (p >= low) & (p < high)
        if inside.any():
            members = p[inside]
            points.append(CalibrationPoint("", None, "majority", difficulty_bin(float(members.mean())), 8,
                                           float(correct[inside].mean()), 1.0, int(inside.sum()),
                                           tuple(members)))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the shared data folder (default: $TTS_PLANNER_DATA or ../shared/data)")
    args = parser.parse_args()
    rows = [r for _, r in read_jsonl(data_dir(args.data) / "outcomes" / "math_success_rates.jsonl")
            if r.get("split") == "train"]
    for label, model in COLUMNS.items():
        p = np.array([r[f"sr__{model}_maxlen_3000_k_50_temp_0.7"] for r in rows], dtype=float)
        maj = np.array([r[f"sr__{model}_maxlen_3000_k_8_temp_0.7_labelcol_majority_vote_is_correct"]
                        for r in rows], dtype=float)
        points = groups(p, maj)
        curve = fit_curve(START, points, prior_weight=PRIOR)
        a, b = curve.plurality
        print(f"{label}: {len(rows)} train problems")
        print(f"  fitted plurality=({a:.3f}, {b:.3f}), rate=({', '.join(f'{r:.3f}' for r in curve.rate)})")
        print(f"  {'pass@1 group':>14} {'problems':>8} {'mean p':>7} {'maj@8 measured':>15} {'fit':>6}")
        errors = []
        for low, high, pt in zip(EDGES[:-1], EDGES[1:], points):
            fit = float(curve.accuracy(np.array(pt.pass_at_1), 8).mean())
            errors.append((fit - pt.accuracy) ** 2 * pt.problems)
            print(f"  [{low:.2f}, {min(high, 1):.2f}) {pt.problems:>8} {np.mean(pt.pass_at_1):>7.3f} "
                  f"{pt.accuracy:>15.3f} {fit:>6.3f}")
        print(f"  problem-weighted RMSE of the fit: {np.sqrt(sum(errors) / len(rows)):.4f}\n")


if __name__ == "__main__":
    main()
