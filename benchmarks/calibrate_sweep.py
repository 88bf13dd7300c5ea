"""Does calibration help on problems it did not see? MATH-500 is split in two halves at random: `calibrate`
sweeps one (dev) against the stand-in server, which solves each problem at the default policy's measured
success rate with a simulated outcome reward model; the same sweep then measures the other half (held out).
For every held-out point (strategy, size, predicted-difficulty bin) the accuracy the planner expects, with its
default curves and with the curves fit on the dev half, is compared with what was measured.

Prints the sweep's wall time, the dev fit, and the held-out errors (RMS, weighted by problems), for accuracy
and for tokens per problem. Run files are kept in --workdir, so a second run resumes.

    python benchmarks/calibrate_sweep.py [--problems 500] [--sizes 1,2,4,8,16] [--concurrency 8] [--auroc 0.9]
                                         [--seed 0] [--workdir /tmp/calibrate_sweep] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
from plugin_support import SimProcess, data_dir

from planner.planning.calibration import load_calibration
from planner.planning.table import StrategyTable
from sglang_plugin.calibrate import CalibrateSettings, calibrate, format_fit
from sglang_plugin.runs.settings import RunSettings

POLICY = "Qwen/Qwen2.5-Math-1.5B-Instruct"
ORM = "Qwen/Qwen2.5-Math-RM-72B"
STRATEGIES = ("cot", "majority", "best_of_n", "weighted_vote")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=500, help="MATH-500 problems used, split in halves")
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--auroc", type=float, default=0.9, help="simulated reward model's AUROC")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/calibrate_sweep")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = data_dir(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in (data / "math500" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    random.Random(args.seed).shuffle(records)
    records = records[:args.problems]
    half = len(records) // 2
    for name, part in (("dev", records[:half]), ("heldout", records[half:])):
        (work / f"{name}.jsonl").write_text("".join(json.dumps({k: r[k] for k in ("unique_id", "problem", "answer")})
                                                    + "\n" for r in part), encoding="utf-8")
    sizes = tuple(int(s) for s in args.sizes.split(","))
    results = {}
    warnings.filterwarnings("ignore", message="Error in stream_executor", category=UserWarning)
    with SimProcess(data, "--seed", str(args.seed), "--reward-auroc", str(args.auroc)) as url:
        for name in ("dev", "heldout"):
            run = RunSettings(endpoint=url, input=work / f"{name}.jsonl", output=work / f"{name}.json",
                              reward_endpoint=url, reward_model=ORM, concurrency=args.concurrency, progress=False)
            settings = CalibrateSettings(run, work / f"{name}.json", STRATEGIES, sizes)
            started = time.perf_counter()
            results[name] = calibrate(settings)
            samples = sum(a.size for a in results[name].arms) * (len(records) - half if name == "heldout" else half)
            print(f"{name}: {len(results[name].arms)} arms x {half if name == 'dev' else len(records) - half} problems "
                  f"({samples} samples) in {time.perf_counter() - started:.1f} s "
                  f"(resumed arms take no time; --workdir {work})")
    print("\nDev half: measured against default and calibrated curves")
    print(format_fit(results["dev"].fit))
    print("\nBest strategy per bin and budget, calibrated on the dev half:")
    print(results["dev"].table)
    default = StrategyTable.default(POLICY, ORM)
    fitted = StrategyTable.default(POLICY, ORM, calibration=work / "dev.json")
    held = load_calibration(work / "heldout.json")
    rows = []
    for pt in held.points:
        p = np.array(pt.pass_at_1)
        rows.append((pt, float(default.accuracy(pt.strategy, p, pt.size).mean()),
                     float(fitted.accuracy(pt.strategy, p, pt.size).mean()),
                     float(default.expected_cost(pt.strategy, pt.size).tokens),
                     float(fitted.expected_cost(pt.strategy, pt.size).tokens)))
    weights = np.array([pt.problems for pt, *_ in rows], dtype=float)

    def rms(values) -> float:
        return float(np.sqrt(weights @ np.asarray(values) ** 2 / weights.sum()))

    print(f"\nHeld-out half: {len(rows)} points, {int(weights.sum())} problem-runs")
    print(f"{'strategy':<14}{'size':>5} {'bin':<7}{'problems':>9}{'measured':>10}{'default':>9}{'dev-fit':>9}"
          f"{'tokens':>9}{'default':>9}{'dev-fit':>9}")
    for pt, acc_default, acc_fit, tok_default, tok_fit in rows:
        print(f"{pt.strategy:<14}{pt.size:>5} {pt.bin:<7}{pt.problems:>9}{pt.accuracy:>10.3f}{acc_default:>9.3f}"
              f"{acc_fit:>9.3f}{pt.tokens:>9.0f}{tok_default:>9.0f}{tok_fit:>9.0f}")
    print(f"\naccuracy RMS error on held-out points: default {rms([d - pt.accuracy for pt, d, *_ in rows]):.4f}, "
          f"calibrated on dev {rms([f - pt.accuracy for pt, _, f, *_ in rows]):.4f}")
    print(f"tokens relative RMS error on held-out points: default "
          f"{rms([(td - pt.tokens) / pt.tokens for pt, _, _, td, _ in rows]):.3f}, calibrated on dev "
          f"{rms([(tf - pt.tokens) / pt.tokens for pt, _, _, _, tf in rows]):.3f}")


if __name__ == "__main__":
    main()
