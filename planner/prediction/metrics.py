"""How well predicted pass@1 matches measured success rates: ranking, bin discrimination, calibration."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from planner.difficulty import EASY_MIN, HARD_MAX, difficulty_bins


def difficulty_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """Spearman, AUROC for 'hard' and 'easy', bin accuracy, mean absolute error and mean rates."""
    predicted = np.asarray(predicted, dtype=float)
    measured = np.asarray(measured, dtype=float)
    hard, easy = measured < HARD_MAX, measured >= EASY_MIN
    return {
        "n": int(len(measured)),
        "spearman": _spearman(predicted, measured),
        "auroc_hard": _auroc(hard, -predicted),
        "auroc_easy": _auroc(easy, predicted),
        "bin_accuracy": float(np.mean(difficulty_bins(predicted) == difficulty_bins(measured))),
        "mae": float(np.mean(np.abs(predicted - measured))),
        "mean_predicted": float(predicted.mean()),
        "mean_measured": float(measured.mean()),
    }


def _spearman(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """None when either side is constant (the correlation is undefined, and NaN is not valid JSON)."""
    if np.ptp(predicted) == 0 or np.ptp(measured) == 0:
        return None
    return float(spearmanr(predicted, measured).statistic)


def _auroc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """None when only one class is present (the AUROC is undefined, not 0.5)."""
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, score))


def paired_spearman_gap(new: np.ndarray, old: np.ndarray, measured: np.ndarray, rounds: int = 500,
                        seed: int = 0) -> tuple[float, float, float, float]:
    """How much better `new` ranks `measured` than `old` on the same problems: the Spearman difference, its 90%
    paired-bootstrap interval (both predictors scored on each resample of the problems, so problem difficulty
    cancels out), and the share of resamples in which `new` is worse. Both need a defined Spearman."""
    new, old, measured = (np.asarray(a, dtype=float) for a in (new, old, measured))
    gap = _spearman(new, measured) - _spearman(old, measured)
    picks = np.random.default_rng(seed).integers(0, len(measured), size=(rounds, len(measured)))
    gaps = np.array([_rank_correlation(new[i], measured[i]) - _rank_correlation(old[i], measured[i])
                     for i in picks])
    gaps = gaps[np.isfinite(gaps)]
    low, high = np.quantile(gaps, [0.05, 0.95])
    return float(gap), float(low), float(high), float(np.mean(gaps < 0))


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman as the Pearson correlation of ranks (NaN on a constant resample)."""
    ra, rb = rankdata(a), rankdata(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def format_metrics(metrics: dict) -> str:
    parts = [f"n={metrics['n']}"]
    for key in ("spearman", "auroc_hard", "auroc_easy", "bin_accuracy", "mae"):
        value = metrics.get(key)
        parts.append(f"{key}={'n/a' if value is None else f'{value:.3f}'}")
    return "  ".join(parts)
