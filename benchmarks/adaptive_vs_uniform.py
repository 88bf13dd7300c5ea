"""Adaptive solving against uniform weighted voting, end to end on the stand-in server: does probing, updating
the belief and planning the rest reach uniform's accuracy for less?

Setup: `tts-planner sim-server` on MATH-500 with Qwen2.5-Math-1.5B-Instruct's measured success rates (k=50,
T=0.6): the server solves each problem at its true rate, step by step, and its outcome reward model scores
right solutions above wrong ones with the given AUROC (default 0.9; Qwen2.5-Math-RM-72B shows 0.968 on
shared/data/replay, where the adaptive planner's default reward evidence was fit). Every arm runs through
the real frontend (sglang_plugin.solve, OutcomeRewardScorer over /classify) on a fresh server started with
the same seed, so each arm sees the same problems and the same sample draws (common random numbers). Costs
are the servers' own reports (Cost.tokens: generated + uncached prompt + reward-model tokens, the probe
included). An answer is right when planner.grading's shared grader finds it equivalent to MATH-500's reference.

Arms at each budget B (samples per problem): uniform weighted voting with B samples (best-of-B and
majority-of-B are read off the same samples and scores: same cost, other selection), and adaptive with
average budget B (per-problem cap 2B, defaults of AdaptiveConfig). The bar: some adaptive arm reaches the
accuracy of uniform weighted voting at 16 samples with at most half its tokens.

    python benchmarks/adaptive_vs_uniform.py [--problems 500] [--budgets 2,4,8,12,16] [--auroc 0.9] [--seed 0]
                                             [--threads 4] [--data DIR] [--json]

--problems N < 500 takes a seeded random sample of MATH-500 (random.Random(seed), sorted by file order).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from plugin_support import RATE_FIELD, SimProcess, data_dir

from planner.difficulty import BINS, difficulty_bin
from planner.grading import shared_grader
from planner.jsonl import read_jsonl
from planner.prediction.model_store import load_model
from sglang_plugin import Endpoint, OutcomeRewardScorer, Planning, solve

MATCH_AT = 16


def load_problems(data, count: int, seed: int) -> list[dict]:
    solutions = {r["problem"]: r for _, r in read_jsonl(data / "math500" / "test.jsonl")}
    rows = [r for _, r in read_jsonl(data / "outcomes" / "math500_success_rates.jsonl")]
    for row in rows:
        row["reference"] = solutions[row["problem"]]["answer"]
    if count < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), count))
        rows = [rows[i] for i in keep]
    return rows


def run_arm(data, args, problems, fn, server: tuple[str, ...] = ()) -> tuple[list, float]:
    """Solve every problem on a fresh server with the benchmark's seed (and `server` options); (results,
    seconds)."""
    started = time.perf_counter()
    with SimProcess(data, "--seed", str(args.seed), "--reward-auroc", str(args.auroc), *server) as url:
        endpoint = Endpoint(url)
        scorer = OutcomeRewardScorer(url)
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(lambda item: fn(item[0], item[1], endpoint, scorer), enumerate(problems)))
    return results, time.perf_counter() - started


def correct(answer: str | None, reference: str) -> bool:
    return answer is not None and shared_grader().equivalent(answer, reference)


def selections(result, reference: str) -> dict[str, bool]:
    """Weighted vote (the run's own choice), best-of-N and majority over the same scored samples."""
    answered = [b for b in result.branches if b.answer is not None and not b.failed]
    best = max(answered, key=lambda b: (b.score if b.score is not None else -np.inf, -b.id), default=None)
    votes = shared_grader().vote([b.answer for b in answered], ids=[b.id for b in answered])
    return {"weighted_vote": correct(result.answer, reference),
            "best_of_n": correct(best.answer if best else None, reference),
            "majority": correct(votes[0].answer if votes else None, reference)}


def summarize(name: str, budget: int, results: list, right: list[bool], problems: list[dict], seconds: float) -> dict:
    tokens = np.array([r.cost.tokens for r in results], dtype=float)
    samples = np.array([sum(1 for b in r.branches if b.parent is None) for r in results], dtype=float)
    bins = [difficulty_bin(p[RATE_FIELD]) for p in problems]
    per_bin = {}
    for name_bin in BINS:
        idx = [i for i, b in enumerate(bins) if b == name_bin]
        if idx:
            per_bin[name_bin] = {"problems": len(idx), "accuracy": float(np.mean([right[i] for i in idx])),
                                 "tokens_per_problem": float(tokens[idx].mean()),
                                 "samples_per_problem": float(samples[idx].mean())}
    return {"arm": name, "budget": budget, "problems": len(results), "accuracy": float(np.mean(right)),
            "correct": int(sum(right)), "tokens": float(tokens.sum()), "tokens_per_problem": float(tokens.mean()),
            "samples_per_problem": float(samples.mean()), "failed_branches": sum(len(r.failed_branches) for r in results),
            "errors": sum(1 for r in results if r.answer is None), "seconds": round(seconds, 1), "bins": per_bin}


def measure(data, args, budgets: list[int], problems: list[dict], log) -> list[dict]:
    """Both arms at every budget, each on a fresh server with the same seed."""
    planning = Planning()
    prior = load_model().predict([p["problem"] for p in problems])  # the same values solve would predict one by one
    rows = []
    for budget in budgets:
        results, seconds = run_arm(data, args, problems, lambda i, p, e, s, n=budget: solve(
            p["problem"], "weighted_vote", n, e, s))
        picks = [selections(r, p["reference"]) for r, p in zip(results, problems)]
        for rule, label in (("weighted_vote", "uniform weighted vote"), ("best_of_n", "uniform best-of-N"),
                            ("majority", "uniform majority")):
            rows.append(summarize(label, budget, results, [pk[rule] for pk in picks], problems, seconds))
        log(f"  uniform @{budget}: {seconds:.0f} s")
        results, seconds = run_arm(data, args, problems, lambda i, p, e, s, n=budget: solve(
            p["problem"], "adaptive", n, e, s, planning=planning, pass_at_1=float(prior[i])))
        row = summarize("adaptive", budget, results, [correct(r.answer, p["reference"]) for r, p in
                                                       zip(results, problems)], problems, seconds)
        reasons: dict[str, int] = {}
        for r in results:
            reasons[r.plan.adaptive.stop_reason] = reasons.get(r.plan.adaptive.stop_reason, 0) + 1
        confidence = [r.plan.adaptive.confidence for r in results if r.plan.adaptive.confidence is not None]
        row.update(stop_reasons=reasons, probe_tokens=float(sum(r.plan.adaptive.probe_tokens for r in results)),
                   expected_cost=float(sum(r.plan.expected_cost for r in results)),
                   mean_confidence=float(np.mean(confidence)) if confidence else None)
        rows.append(row)
        log(f"  adaptive @{budget}: {seconds:.0f} s")
    return rows


def compare(rows: list[dict]) -> tuple[dict, list[dict]]:
    """Ratios against uniform weighted voting at the same budget; for each uniform arm the cheapest adaptive arm
    at least as accurate; and the bar."""
    uniform = {r["budget"]: r for r in rows if r["arm"] == "uniform weighted vote"}
    for row in rows:
        row["token_ratio_vs_uniform_wv"] = row["tokens"] / uniform[row["budget"]]["tokens"]
        row["accuracy_gain_vs_uniform_wv"] = row["accuracy"] - uniform[row["budget"]]["accuracy"]
    matches = []
    for row in rows:
        if row["arm"] in ("uniform weighted vote", "uniform best-of-N"):
            reaching = [r for r in rows if r["arm"] == "adaptive" and r["accuracy"] >= row["accuracy"]]
            cheapest = min(reaching, key=lambda r: r["tokens"], default=None)
            matches.append({"uniform": row["arm"], "budget": row["budget"], "uniform_accuracy": row["accuracy"],
                            "adaptive_budget": cheapest["budget"] if cheapest else None,
                            "adaptive_accuracy": cheapest["accuracy"] if cheapest else None,
                            "token_ratio": cheapest["tokens"] / row["tokens"] if cheapest else None})
    bar = next(m for m in matches if m["uniform"] == "uniform weighted vote" and m["budget"] == MATCH_AT)
    return {**bar, "met": bar["token_ratio"] is not None and bar["token_ratio"] <= 0.5}, matches


def report(rows: list[dict], bar: dict, matches: list[dict]) -> None:
    print()
    print(f"{'arm':<24}{'N':>4}{'accuracy':>10}{'tokens/problem':>16}{'samples':>9}{'vs uniform WV':>15}{'Δacc':>8}")
    for r in rows:
        print(f"{r['arm']:<24}{r['budget']:>4}{r['accuracy']:>10.3f}{r['tokens_per_problem']:>16,.0f}"
              f"{r['samples_per_problem']:>9.2f}{r['token_ratio_vs_uniform_wv']:>14.2f}x"
              f"{r['accuracy_gain_vs_uniform_wv']:>+8.3f}")
    print()
    for r in rows:
        if r["arm"] == "adaptive":
            bins = "  ".join(f"{k} {v['problems']}: acc {v['accuracy']:.3f}, {v['samples_per_problem']:.1f} samples"
                             for k, v in r["bins"].items())
            print(f"adaptive @{r['budget']}: stops {r['stop_reasons']}; probe {r['probe_tokens'] / r['tokens']:.0%}"
                  f" of its tokens; planned {r['expected_cost'] / r['tokens']:.2f}x of actual; mean confidence "
                  f"{r['mean_confidence']:.3f}; by true difficulty: {bins}")
    uni = next(r for r in rows if r["arm"] == "uniform weighted vote" and r["budget"] == MATCH_AT)
    print(f"uniform WV @{MATCH_AT} by true difficulty: " + "  ".join(
        f"{k} {v['problems']}: acc {v['accuracy']:.3f}" for k, v in uni["bins"].items()))
    print()
    print("cheapest adaptive arm at least as accurate as each uniform arm (tokens as a share of the uniform arm's):")
    for m in matches:
        found = (f"adaptive @{m['adaptive_budget']} ({m['adaptive_accuracy']:.3f}) at {m['token_ratio']:.2f}x"
                 if m["adaptive_budget"] is not None else "none reaches it")
        print(f"  {m['uniform']} @{m['budget']} ({m['uniform_accuracy']:.3f}): {found}")
    print()
    if bar["adaptive_budget"] is None:
        print(f"BAR NOT MET: no adaptive arm reached uniform weighted voting @{MATCH_AT} "
              f"(accuracy {bar['uniform_accuracy']:.3f})")
    else:
        print(f"bar {'MET' if bar['met'] else 'NOT MET'}: adaptive @{bar['adaptive_budget']} reaches "
              f"{bar['adaptive_accuracy']:.3f} >= uniform weighted voting @{MATCH_AT} {bar['uniform_accuracy']:.3f} "
              f"with {bar['token_ratio']:.2f}x its tokens (bar: <= 0.50x, probe included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--budgets", default="2,4,8,12,16")
    parser.add_argument("--auroc", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4, help="problems solved at once")
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    if MATCH_AT not in budgets:
        parser.error(f"--budgets must include {MATCH_AT} (the bar is uniform weighted voting at {MATCH_AT})")
    data = data_dir(args.data)
    problems = load_problems(data, args.problems, args.seed)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    log(f"{len(problems)} MATH-500 problems (mean true pass@1 {np.mean([p[RATE_FIELD] for p in problems]):.3f}), "
        f"outcome RM with AUROC {args.auroc} via /classify, server seed {args.seed}, {args.threads} threads")
    started = time.perf_counter()
    rows = measure(data, args, budgets, problems, log)
    bar, matches = compare(rows)
    if args.json:
        print(json.dumps({"problems": len(problems), "seed": args.seed, "auroc": args.auroc, "budgets": budgets,
                          "seconds": round(time.perf_counter() - started), "rows": rows, "bar": bar,
                          "matches": matches}, indent=1))
    else:
        report(rows, bar, matches)
        print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
