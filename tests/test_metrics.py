import json

import numpy as np

from planner.prediction.metrics import difficulty_metrics, format_metrics


def test_metrics_on_a_known_case():
    measured = np.array([0.0, 0.05, 0.3, 0.6, 0.9, 1.0])
    metrics = difficulty_metrics(np.array([0.02, 0.08, 0.35, 0.55, 0.8, 0.99]), measured)
    assert metrics["spearman"] == 1.0
    assert metrics["auroc_hard"] == 1.0 and metrics["auroc_easy"] == 1.0
    assert metrics["bin_accuracy"] == 1.0
    assert abs(metrics["mae"] - np.mean(np.abs(np.array([0.02, 0.03, 0.05, 0.05, 0.1, 0.01])))) < 1e-12


def test_metrics_are_json_safe_when_a_side_is_constant():
    metrics = difficulty_metrics(np.full(4, 0.7), np.array([0.0, 0.2, 0.6, 1.0]))
    assert metrics["spearman"] is None and metrics["auroc_easy"] == 0.5
    json.dumps(metrics, allow_nan=False)
    only_easy = difficulty_metrics(np.array([0.6, 0.9]), np.array([0.7, 0.8]))
    assert only_easy["auroc_hard"] is None and only_easy["auroc_easy"] is None
    assert "auroc_hard=n/a" in format_metrics(only_easy)
