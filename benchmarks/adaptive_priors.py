"""Where the adaptive planner's default belief parameters come from (planner/belief/posterior.py, planner/belief/evidence.py), recomputed
from shared/data:

- prior strength: the Beta-binomial maximum-likelihood strength of the shipped predictor's pass@1 against the
  50-sample outcomes of Qwen2.5-Math-1.5B-Instruct (T=0.6) on the MATH test problems outside MATH-500 (so the
  MATH-500 benchmark does not tune it), and on MATH-500 for comparison;
- wrong-answer concentration: the maximum-likelihood CRP alpha of the wrong answers' grouping in
  replay/math_cot_100.jsonl;
- reward evidence: the binormal fit of Qwen2.5-Math-RM-72B's scores against correctness in the same file.

    python benchmarks/adaptive_priors.py [--data DIR]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

import numpy as np
from plugin_support import RATE_FIELD, data_dir
from scipy.optimize import minimize_scalar

from planner.belief.evidence import RewardEvidence
from planner.belief.posterior import crp_log_probability, fit_prior_strength
from planner.jsonl import read_jsonl
from planner.prediction.model_store import load_model

TRIALS = 50  # samples behind each measured rate (the column's k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = data_dir(args.data)
    model = load_model()
    math500 = {r["problem"] for _, r in read_jsonl(data / "math500" / "test.jsonl")}
    test = [r for _, r in read_jsonl(data / "outcomes" / "math_success_rates.jsonl")
            if r.get("split") == "test" and r["problem"] not in math500]
    m500 = [r for _, r in read_jsonl(data / "outcomes" / "math500_success_rates.jsonl")]
    for name, rows in (("MATH test outside MATH-500", test), ("MATH-500", m500)):
        predicted = model.predict([r["problem"] for r in rows])
        successes = np.rint(np.array([r[RATE_FIELD] for r in rows]) * TRIALS)
        strength = fit_prior_strength(predicted, successes, TRIALS)
        print(f"prior strength on {name} ({len(rows)} problems): {strength:.3f} pseudo-samples")

    replay = [r for _, r in read_jsonl(data / "replay" / "math_cot_100.jsonl")]
    partitions = [list(Counter(a for a, ok in zip(r["pred"], r["score"]) if not ok).values()) for r in replay]
    partitions = [p for p in partitions if p]
    found = minimize_scalar(lambda la: -sum(crp_log_probability(p, math.exp(la)) for p in partitions),
                            bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-5})
    alpha = math.exp(found.x)
    print(f"wrong-answer concentration: {alpha:.3f} (from {len(partitions)} problems with wrong answers; two "
          f"wrong answers agree with probability {1 / (1 + alpha):.2f})")

    scores = [float(s[0]) for r in replay for s in r["pred_score"]]  # one score per sample, as [score]
    correct = [bool(c) for r in replay for c in r["score"]]
    evidence = RewardEvidence.fit(scores, correct, logit=False)
    print(f"reward evidence (raw ORM scores, {sum(correct)} right / {len(correct) - sum(correct)} wrong): "
          f"wrong_mean={evidence.wrong_mean:.4f} scale={evidence.scale:.4f} separation={evidence.separation:.4f} "
          f"(AUROC {evidence.auroc:.3f})")


if __name__ == "__main__":
    main()
