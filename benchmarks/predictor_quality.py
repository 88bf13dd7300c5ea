"""How well a shipped predictor's pass@1 matches measured success rates on problems it never saw.

    python benchmarks/predictor_quality.py [--policy Qwen/Qwen2.5-Math-1.5B-Instruct] [--data ../shared/data]

Evaluates on MATH test (5000) and MATH-500 (its subset) against the policy's measured k=50 success rates,
beside two reference points: MATH's human-assigned level (a text-free baseline) and, for the default
policy, the linear probe on the policy's own hidden states from arXiv 2602.09924 (the data's anchor file).
Targets for the default policy: Spearman >= 0.60, AUROC >= 0.80 for "hard" (< 0.1) and for "easy" (>= 0.5).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from planner.jsonl import read_jsonl
from planner.policies import DEFAULT_POLICY, policy
from planner.prediction.build_models import MATH500, OUTCOMES, default_data_dir, level_of
from planner.prediction.metrics import difficulty_metrics
from planner.prediction.model_store import load_model

ANCHOR = "anchors/probe_qwen2.5-math-1.5b-instruct_k50_t0.6.json"


def evaluate(policy_name: str, data: Path) -> list[dict]:
    entry = policy(policy_name)
    model = load_model(entry.name)
    test = [r for _, r in read_jsonl(data / OUTCOMES) if r["split"] == "test"]
    math500 = [r for _, r in read_jsonl(data / MATH500)]
    rows = []
    for split, records in (("MATH test", test), ("MATH-500", math500)):
        measured = np.array([r[entry.label_column] for r in records])
        rows.append({"split": split, "method": "tts-planner predictor (text only)",
                     **difficulty_metrics(model.predict([r["problem"] for r in records]), measured)})
        rows.append({"split": split, "method": "MATH level (human label)",
                     **difficulty_metrics(_level_as_rate(records), measured)})
    if entry.name == DEFAULT_POLICY and (data / ANCHOR).exists():
        anchor = json.loads((data / ANCHOR).read_text(encoding="utf-8"))
        rows.append({"split": "MATH test", "method": "hidden-state probe (arXiv 2602.09924)",
                     **difficulty_metrics(np.array(anchor["test_predictions"]), np.array(anchor["test_actual"]))})
    return rows


def _level_as_rate(records: list[dict]) -> np.ndarray:
    """Level 1..5 mapped onto [0.9, 0.1] so the bins and AUROCs are defined; only its order matters for ranking."""
    return 1.1 - 0.2 * np.array([level_of(r) for r in records])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = evaluate(args.policy, args.data or default_data_dir())
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"policy {args.policy}")
    print(f"{'split':<10}{'method':<40}{'n':>6}{'spearman':>10}{'AUROC hard':>12}{'AUROC easy':>12}{'bin acc':>9}")
    for r in rows:
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{r['split']:<10}{r['method']:<40}{r['n']:>6}{fmt(r['spearman']):>10}{fmt(r['auroc_hard']):>12}"
              f"{fmt(r['auroc_easy']):>12}{fmt(r['bin_accuracy']):>9}")


if __name__ == "__main__":
    main()
