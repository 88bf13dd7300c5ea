"""Absolute difficulty bins on predicted pass@1, as in arXiv 2502.06703 (Liu et al., "Can 1B LLM
Surpass 405B LLM?"): the bin is a property of the problem *for one policy*, not of the data set."""

from __future__ import annotations

import numpy as np

EASY_MIN = 0.5
HARD_MAX = 0.1
BINS = ("easy", "medium", "hard")


def difficulty_bin(pass_at_1: float) -> str:
    """easy: pass@1 >= 0.5, medium: 0.1 <= pass@1 < 0.5, hard: pass@1 < 0.1."""
    if pass_at_1 >= EASY_MIN:
        return "easy"
    return "medium" if pass_at_1 >= HARD_MAX else "hard"


def difficulty_bins(pass_at_1: np.ndarray) -> np.ndarray:
    """Vectorised difficulty_bin, as an array of bin names."""
    p = np.asarray(pass_at_1, dtype=float)
    return np.where(p >= EASY_MIN, "easy", np.where(p >= HARD_MAX, "medium", "hard"))
