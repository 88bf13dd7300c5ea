"""Offline planning benchmark on MATH-500: does allocating samples by predicted difficulty beat giving every
problem the same number?

Each problem's measured success rate r (default: Qwen2.5-Math-1.5B-Instruct, k=50, T=0.6) is taken as its
true pass@1, and each simulated sample is correct with probability r. At average budgets of 1, 2, 4, 8 and
16 samples per problem the benchmark compares three allocations of the same total number of samples:

- uniform: every problem gets the budget;
- predictor: planner.planning.allocation.allocate on the predictor's pass@1 for each problem (floor: 1 sample);
- oracle: the same allocation on the true rates, the ceiling of what any predictor could reach;

under two ways of turning samples into an answer:

(a) best-of-N with a perfect verifier: right if any sample is right (the planner's curve is pass@n);
(b) majority voting. Wrong-answer model of the simulation: every problem has a pool of 4 wrong answers whose
    shares of the wrong mass are drawn from Dirichlet(1, 1, 1, 1) (skewed: the most common wrong answer takes
    about half of it); each wrong sample picks from the pool by those shares; the most frequent answer wins
    and ties are broken uniformly at random. With this pool size and Dirichlet parameter the simulation
    reproduces the measured majority-of-8 accuracy against pass@1 on MATH train (RMSE about 0.025 over 14
    pass@1 groups; checked with the same data as benchmarks/majority_curve_fit.py). The planner never sees the
    pools: it plans with its own majority curve (Beta model of the top wrong answer's share, fit to the
    measured majority-of-8 data).

Pools are drawn once per repetition and shared by all allocations and budgets (common random numbers).
Results are means and standard deviations over repetitions with fixed seeds. The benchmark also finds, on a
finer grid of budgets, the average budget at which predictor (and oracle) allocation matches uniform
allocation at 16 samples, and reports 16 divided by it as the compute saving.

    python benchmarks/offline_planning.py --predictions preds.jsonl     # JSONL, one {"pass_at_1": p} per problem
    python benchmarks/offline_planning.py --model Qwen/Qwen2.5-Math-1.5B-Instruct   # a shipped predictor (or a .npz path)
    python benchmarks/offline_planning.py --predictions preds.jsonl --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.cost import CostModel
from planner.errors import PlannerError
from planner.jsonl import number_of, read_jsonl
from planner.planning.allocation import Budget, allocate
from planner.planning.curves import Curve
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY
from planner.policies import policy as find_policy
from planner.strategies import MAX_SIZE

BUDGETS = (1, 2, 4, 8, 16)
# up to 32 so that an allocation needing more than uniform's 16 shows by how much
FINE_BUDGETS = tuple(np.arange(1.0, 16.0, 0.25)) + tuple(np.arange(16.0, 32.0 + 1e-9, 1.0))
POOL_SIZE, POOL_DIRICHLET = 4, 1.0
MATCH_AT = 16


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("TTS_PLANNER_DATA", default))


def load_rates(path: Path, column: str) -> tuple[np.ndarray, list[str]]:
    rates, texts = [], []
    for line, record in read_jsonl(path):
        rates.append(number_of(record, column, path=str(path), line=line, low=0.0, high=1.0))
        texts.append(record["problem"])
    return np.array(rates), texts


def load_predictions(path: str, expected: int) -> np.ndarray:
    values = [number_of(r, "pass_at_1", path=path, line=n, low=0.0, high=1.0) for n, r in read_jsonl(path)]
    if len(values) != expected:
        raise PlannerError(f"{path}: {len(values)} predictions for {expected} problems (same order expected)")
    return np.array(values)


def predict(model_name: str, texts: list[str]) -> np.ndarray:
    """pass@1 from a shipped predictor (by policy name) or a model file (by path)."""
    from planner.prediction.model_store import load_model
    return np.clip(np.asarray(load_model(model_name).predict(texts), dtype=float), 0.0, 1.0)


def samples_table(curves: dict[str, Curve]) -> StrategyTable:
    """A table whose token unit is one sample: no prompt, no reward-model reading (a perfect verifier)."""
    return StrategyTable(find_policy(DEFAULT_POLICY), None, curves,
                         CostModel(tokens_per_sample=1.0, prompt_tokens=0.0, reward_reads=False))


@dataclass(frozen=True)
class Setting:
    key: str
    title: str
    table: StrategyTable
    strategies: tuple[str, ...]


def settings() -> list[Setting]:
    perfect = samples_table({"cot": Curve(gain=(0.0, 0.0, 0.0)), "best_of_n": Curve()})
    voting = StrategyTable.default(DEFAULT_POLICY)
    voting = samples_table({name: voting.curves[name] for name in ("cot", "majority")})
    return [Setting("best_of_n", "(a) best-of-N, perfect verifier", perfect, ("cot", "best_of_n")),
            Setting("majority", "(b) majority voting, pooled wrong answers", voting, ("cot", "majority"))]


def sizes_for(setting: Setting, p: np.ndarray, budget: float) -> np.ndarray:
    plan = allocate(p, setting.table, Budget(float(budget)), strategies=setting.strategies)
    return plan.size


class Simulator:
    """One repetition: every problem's first MAX_SIZE sampled answers, drawn once and shared by all
    allocations and budgets (common random numbers), so differences between allocations are not noise.

    Answer 0 is correct; answers 1..POOL_SIZE are the problem's wrong-answer pool. Ties between the most
    frequent answers go to a per-problem random order of the answers, which is a uniform tie-break.
    """

    def __init__(self, rates: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        shares = rng.dirichlet(np.full(POOL_SIZE, POOL_DIRICHLET), size=rates.size)
        pvals = np.column_stack([rates, (1.0 - rates)[:, None] * shares])
        cumulative = np.cumsum(pvals, axis=1)
        draws = rng.random((rates.size, MAX_SIZE))
        answers = (draws[:, :, None] > cumulative[:, None, :-1]).sum(axis=2)
        onehot = answers[:, :, None] == np.arange(POOL_SIZE + 1)[None, None, :]
        self.counts = np.cumsum(onehot, axis=1, dtype=np.int16)  # [problem, n - 1, answer]
        self.priority = rng.random((rates.size, POOL_SIZE + 1))
        self.first_correct = np.where(onehot[:, :, 0].any(axis=1), onehot[:, :, 0].argmax(axis=1) + 1, MAX_SIZE + 1)

    def best_of_n(self, n: np.ndarray) -> np.ndarray:
        return self.first_correct <= n

    def majority(self, n: np.ndarray) -> np.ndarray:
        counts = self.counts[np.arange(n.size), n - 1].astype(float)
        leader = np.argmax(counts + 0.5 * self.priority, axis=1)
        return leader == 0

    def run(self, key: str, n: np.ndarray) -> float:
        n = np.asarray(n, dtype=np.intp)
        return float((self.best_of_n(n) if key == "best_of_n" else self.majority(n)).mean())


def crossing(budgets: np.ndarray, accuracy: np.ndarray, target: float) -> float | None:
    """The smallest budget at which accuracy reaches target, linearly interpolated; None if never."""
    above = np.flatnonzero(accuracy >= target)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(budgets[0])
    a0, a1 = accuracy[i - 1], accuracy[i]
    return float(budgets[i - 1] + (target - a0) / (a1 - a0) * (budgets[i] - budgets[i - 1]))


def benchmark(rates: np.ndarray, predicted: np.ndarray, *, reps: int, seed: int,
              fine_reps: int) -> dict:
    out = {"problems": int(rates.size), "mean_rate": float(rates.mean()),
           "predicted_mean": float(predicted.mean()), "reps": reps, "fine_reps": fine_reps, "seed": seed,
           "settings": {}}
    for setting in settings():
        rows = []
        for budget in BUDGETS:
            alloc = {"uniform": np.full(rates.size, budget),
                     "predictor": sizes_for(setting, predicted, budget),
                     "oracle": sizes_for(setting, rates, budget)}
            acc = {name: [] for name in alloc}
            for rep in range(reps):
                sim = Simulator(rates, seed + rep)
                for name, n in alloc.items():
                    acc[name].append(sim.run(setting.key, n))
            row = {"budget": budget, "samples_used": {k: float(v.mean()) for k, v in alloc.items()}}
            for name, values in acc.items():
                row[name] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}
            gain = np.array(acc["predictor"]) - np.array(acc["uniform"])
            row["predictor_minus_uniform"] = {"mean": float(gain.mean()), "std": float(np.std(gain, ddof=1))}
            if setting.key == "best_of_n":
                for name, n in alloc.items():
                    row[name]["exact"] = float(np.mean(1.0 - (1.0 - rates) ** n))
            rows.append(row)
        out["settings"][setting.key] = {"title": setting.title, "rows": rows,
                                        "match": match_uniform(setting, rates, predicted, seed, fine_reps)}
    return out


def match_uniform(setting: Setting, rates: np.ndarray, predicted: np.ndarray, seed: int, reps: int) -> dict:
    """Average budget at which each allocation reaches uniform allocation's accuracy at MATCH_AT samples."""
    budgets = np.array(FINE_BUDGETS)

    def accuracy(sizes: list[np.ndarray]) -> np.ndarray:
        if setting.key == "best_of_n":
            return np.array([np.mean(1.0 - (1.0 - rates) ** n) for n in sizes])
        totals = np.zeros(len(sizes))
        for rep in range(reps):
            sim = Simulator(rates, seed + 10_000 + rep)
            totals += [sim.run(setting.key, n) for n in sizes]
        return totals / reps

    target = float(accuracy([np.full(rates.size, MATCH_AT)])[0])
    result = {"uniform_accuracy_at_16": target}
    for name, p in (("predictor", predicted), ("oracle", rates)):
        curve = accuracy([sizes_for(setting, p, b) for b in budgets])
        budget = crossing(budgets, curve, target)
        result[name] = {"budget": budget, "saving": MATCH_AT / budget if budget else None,
                        "accuracy_at_16": float(np.interp(MATCH_AT, budgets, curve))}
    return result


def format_report(result: dict, source: str) -> str:
    lines = [f"MATH-500 offline planning benchmark: {result['problems']} problems, mean true pass@1 "
             f"{result['mean_rate']:.3f}, mean predicted {result['predicted_mean']:.3f} ({source})",
             f"{result['reps']} repetitions from seed {result['seed']}; accuracy mean +- std over repetitions", ""]
    for setting in result["settings"].values():
        lines.append(setting["title"])
        lines.append(f"{'budget':>7}  {'uniform':>15}  {'predictor':>15}  {'oracle':>15}  {'predictor-uniform':>18}")
        for row in setting["rows"]:
            cells = "  ".join(f"{row[k]['mean']:.4f}+-{row[k]['std']:.4f}"
                              for k in ("uniform", "predictor", "oracle", "predictor_minus_uniform"))
            lines.append(f"{row['budget']:>7}  {cells}")
        match = setting["match"]
        how = "exact expectation" if "best-of-N" in setting["title"] else f"mean of {result['fine_reps']} runs"
        lines.append(f"uniform at {MATCH_AT} samples: {match['uniform_accuracy_at_16']:.4f} ({how}); matched by")
        for name in ("predictor", "oracle"):
            m = match[name]
            where = f"{m['budget']:.2f} samples per problem (uniform spends {MATCH_AT / m['budget']:.2f}x as much)" \
                if m["budget"] else f"no budget up to {FINE_BUDGETS[-1]:g}"
            lines.append(f"  {name:<9} allocation at {where} (its accuracy at {MATCH_AT}: "
                         f"{m['accuracy_at_16']:.4f}, {m['accuracy_at_16'] - match['uniform_accuracy_at_16']:+.4f})")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--predictions", help="JSONL with a pass_at_1 per MATH-500 problem, in file order")
    source.add_argument("--model", default=None,
                        help=f"shipped predictor (policy name) or model file to load (default {DEFAULT_POLICY})")
    parser.add_argument("--data", help="shared data folder (default $TTS_PLANNER_DATA or ../shared/data)")
    parser.add_argument("--column", default=find_policy(DEFAULT_POLICY).label_column,
                        help="outcome column holding each problem's true rate")
    parser.add_argument("--reps", type=int, default=20, help="simulation repetitions per budget (default 20)")
    parser.add_argument("--fine-reps", type=int, default=100,
                        help="repetitions per fine-grid budget for the majority-voting match (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        rates, texts = load_rates(data_dir(args.data) / "outcomes" / "math500_success_rates.jsonl", args.column)
        if args.predictions:
            predicted, label = load_predictions(args.predictions, rates.size), f"predictions {args.predictions}"
        else:
            name = args.model or DEFAULT_POLICY
            predicted, label = predict(name, texts), f"predictor {name}"
        result = benchmark(rates, predicted, reps=args.reps, seed=args.seed, fine_reps=args.fine_reps)
    except PlannerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["source"] = label
    print(json.dumps(result, indent=2) if args.json else format_report(result, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
