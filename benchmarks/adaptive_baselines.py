"""Adaptive solving against uniform majority voting and published stopping rules at equal compute, end to end on
the stand-in server: is adaptive's accuracy-against-compute curve on or above each of theirs?

Setup: `tts-planner sim-server` (default profile) on MATH-500 at Qwen2.5-Math-1.5B-Instruct's measured success
rates (k=50, T=0.6), one seed for every arm. Arms:

- adaptive (sglang_plugin.solve(strategy="adaptive"), AdaptiveConfig defaults or --planner-option) at each of
  --budgets, through the real frontend on a fresh server;
- uniform majority@N, N = 1..32;
- Adaptive-Consistency (Aggarwal et al. 2023, arXiv 2305.11860): one sample at a time; stop when the Beta
  criterion, the probability that the leading answer's share exceeds the runner-up's given their counts v1, v2
  (I_0.5(v2 + 1, v1 + 1)), reaches a threshold (the paper's default 0.95), or at 40 samples (the paper's
  maximum); majority vote. Swept over thresholds;
- Early-Stopping Self-Consistency (Li et al. 2024, arXiv 2401.10480): windows of w samples; stop after the first
  window whose answers all agree, or at 40 samples; majority vote over everything drawn. Swept over w;
- with --scorer orm: uniform weighted voting and best-of-N over an outcome reward model's scores
  (Qwen2.5-Math-RM-72B's name and size, the stand-in's /classify at --auroc), and adaptive with that scorer.

The baselines are read off one pool of --depth samples per problem, drawn once through the real frontend on a
fresh server, one request after another, so the pool's k-th sample is the server's k-th draw for that problem:
the stand-in gives the k-th identical request draw k of a generator keyed by (seed, prompt, sampling
parameters, k), so every arm sees the same k-th sample. The benchmark checks it: every adaptive run's samples
must be the pool's first ones (as a multiset of texts per problem), and a real uniform majority@4 run on its own
fresh server must draw the pool's first four. Each arm pays for the samples it used: the prompt once, their
generated tokens and, when it reads scores, their reward-model tokens; compute is FLOPs at 2 x parameters per
token of each model (planner.cost). Adaptive pays what the servers reported.

Comparison: each baseline's (compute, accuracy) points, the upper concave hull of them (a random mix of two
neighbouring points spends any amount in between), read at each adaptive point's own compute; the accuracy
difference with a paired bootstrap 95% interval over problems. "on/above" means the difference is >= 0.

    python benchmarks/adaptive_baselines.py [--problems 500] [--budgets 2,4,8,16] [--depth 40] [--seed 0]
        [--scorer none|orm] [--auroc 0.9] [--split math500|train] [--planner-option KEY=VALUE] [--threads 4]
        [--data DIR] [--json]

--split train draws --problems problems of MATH train (for tuning the adaptive settings away from MATH-500): their
solutions are the stand-in's synthetic ones, and their predicted pass@1 is out of fold (held_out_prior), since
the shipped predictor was trained on them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from adaptive_vs_uniform import correct, load_problems, run_arm
from plugin_support import RATE_FIELD, data_dir
from scipy.special import betainc

from planner.adaptive import AdaptiveConfig
from planner.cost import format_flops
from planner.grading import shared_grader
from planner.jsonl import read_jsonl
from planner.planning.allocation import _hull_at
from planner.policies import DEFAULT_POLICY, policy, reward_model
from planner.prediction.build_models import consensus_columns, level_of
from planner.prediction.model_store import load_model
from planner.prediction.predictor import DifficultyPredictor, logit_rate
from planner.report.numbers import wilson
from sglang_plugin import Planning, solve

LIMIT = 40  # both papers' maximum samples per problem
UNIFORM_SIZES = tuple(range(1, 33))
AC_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
ESC_WINDOWS = (1, 2, 3, 4, 5, 6, 8, 10)
SHOWN_UNIFORM = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
ORM = "Qwen/Qwen2.5-Math-RM-72B"
BOOTSTRAP = 2000


@dataclass
class Draw:
    """One pooled sample: its text, answer, correctness, generated and reward tokens, and score."""

    text: str
    answer: str | None
    right: bool
    generated: int
    reward: int
    score: float | None


@dataclass
class Pool:
    prompt: int  # uncached prompt tokens: paid once per problem
    draws: list[Draw]
    group: list[int | None]  # each draw's answer group among all the pool's draws (None: no answer)


@dataclass
class Outcome:
    """What one arm did on one problem."""

    right: bool
    samples: int
    generated: int
    prompt: int
    reward: int


class Prices:
    """FLOPs of tokens: 2 x parameters of the model that computed them."""

    def __init__(self, scored: bool) -> None:
        self.policy = policy(DEFAULT_POLICY).params
        self.reward = reward_model(ORM).params if scored else 0.0

    def flops(self, o: Outcome) -> float:
        return 2.0 * (self.policy * (o.prompt + o.generated) + self.reward * o.reward)


def held_out_prior(data: Path, problems: list[dict], seed: int, folds: int = 2) -> np.ndarray:
    """Predicted pass@1 of MATH train problems as if held out: the shipped predictor was trained on them, so each
    fold of MATH train is predicted by a predictor fit (the shipped recipe) on the other folds."""
    rows = [r for _, r in read_jsonl(data / "outcomes" / "math_success_rates.jsonl") if r["split"] == "train"]
    fold = np.random.default_rng(seed).integers(0, folds, size=len(rows))
    columns = consensus_columns(rows[0])
    consensus = np.mean([logit_rate(np.array([r[c] for r in rows])) for c in columns], axis=0)
    levels = np.array([level_of(r) for r in rows])
    labels = np.array([r[policy(DEFAULT_POLICY).label_column] for r in rows])
    where = {r["idx"]: i for i, r in enumerate(rows)}
    wanted = np.array([where[p["idx"]] for p in problems])
    prior = np.empty(len(problems))
    for k in range(folds):
        fit = np.flatnonzero(fold != k)
        model = DifficultyPredictor(policy=DEFAULT_POLICY).fit([rows[i]["problem"] for i in fit], labels[fit],
                                                               aux={"consensus": consensus[fit], "level": levels[fit]})
        mine = np.flatnonzero(fold[wanted] == k)
        prior[mine] = model.predict([problems[i]["problem"] for i in mine])
    return prior


def load_train(data: Path, count: int, seed: int, folder: Path) -> tuple[list[dict], Path]:
    """A seeded sample of MATH train problems with a reference answer, and the stand-in's problem file for them."""
    rows = [r for _, r in read_jsonl(data / "outcomes" / "math_success_rates.jsonl")
            if r["split"] == "train" and str(r.get("answer") or "").strip()]
    path = folder / "train_rates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    keep = sorted(random.Random(seed).sample(range(len(rows)), min(count, len(rows))))
    return [{**rows[i], "reference": rows[i]["answer"]} for i in keep], path


# -- the pool and its rules -------------------------------------------------------------------------------

def draw_pool(data, args, problems: list[dict], server: tuple[str, ...]) -> list[Pool]:
    """--depth samples per problem, one request after another on a fresh server, scored under --scorer orm."""
    scored = args.scorer == "orm"

    def one(i, problem, endpoint, scorer) -> Pool:
        draws, prompt = [], 0
        for _ in range(args.depth):
            result = solve(problem["problem"], "best_of_n" if scored else "majority", 1, endpoint,
                           scorer if scored else None)
            branch = result.branches[0]
            answer = None if branch.failed else branch.answer
            prompt += result.cost.prompt_tokens - result.cost.cached_tokens
            draws.append(Draw(branch.text, answer, correct(answer, problem["reference"]),
                              result.cost.completion_tokens, result.cost.reward_tokens, branch.score))
        return Pool(prompt, draws, _groups([d.answer for d in draws]))

    pools, _ = run_arm(data, args, problems, one, server)
    return pools


def _groups(answers: list[str | None]) -> list[int | None]:
    group: list[int | None] = [None] * len(answers)
    ids = [i for i, a in enumerate(answers) if a is not None]
    for g, vote in enumerate(shared_grader().vote([answers[i] for i in ids], ids=ids)):
        for i in vote.branches:
            group[i] = g
    return group


def _vote(pool: Pool, n: int, weights: list[float] | None = None) -> bool:
    """Whether the (weighted) vote over the first n draws is right; no answer is wrong."""
    ids = [i for i in range(n) if pool.draws[i].answer is not None]
    if not ids:
        return False
    votes = shared_grader().vote([pool.draws[i].answer for i in ids], None if weights is None else
                                 [weights[i] for i in ids], ids=ids)
    return pool.draws[votes[0].branches[0]].right


def _paid(pool: Pool, n: int, right: bool, scored: bool = False) -> Outcome:
    draws = pool.draws[:n]
    return Outcome(right, n, sum(d.generated for d in draws), pool.prompt,
                   sum(d.reward for d in draws) if scored else 0)


def uniform_majority(pool: Pool, n: int) -> Outcome:
    return _paid(pool, n, _vote(pool, n))


def uniform_weighted(pool: Pool, n: int) -> Outcome:
    return _paid(pool, n, _vote(pool, n, [d.score or 0.0 for d in pool.draws]), scored=True)


def uniform_best(pool: Pool, n: int) -> Outcome:
    best = max(range(n), key=lambda i: (pool.draws[i].score if pool.draws[i].score is not None else -np.inf, -i))
    return _paid(pool, n, pool.draws[best].answer is not None and pool.draws[best].right, scored=True)


def adaptive_consistency(pool: Pool, threshold: float) -> Outcome:
    """Aggarwal et al.'s Beta stopping criterion on the top two answers' counts, checked after every sample."""
    counts: dict[int, int] = {}
    n = min(LIMIT, len(pool.draws))
    for i in range(n):
        if pool.group[i] is not None:
            counts[pool.group[i]] = counts.get(pool.group[i], 0) + 1
        top = sorted(counts.values(), reverse=True) + [0, 0]
        if counts and betainc(top[1] + 1, top[0] + 1, 0.5) >= threshold:
            n = i + 1
            break
    return _paid(pool, n, _vote(pool, n))


def early_stopping(pool: Pool, window: int) -> Outcome:
    """Li et al.'s ESC: stop after the first window of `window` samples whose answers all agree."""
    n = min(LIMIT, len(pool.draws))
    for end in range(window, n + 1, window):
        seen = pool.group[end - window:end]
        if seen[0] is not None and all(g == seen[0] for g in seen):
            n = end
            break
    return _paid(pool, n, _vote(pool, n))


# -- adaptive -------------------------------------------------------------------------------------------

def run_adaptive(data, args, problems: list[dict], budget: int, config: AdaptiveConfig, prior: np.ndarray,
                 server: tuple[str, ...]) -> tuple[list[Outcome], list, float]:
    planning = Planning(adaptive=config)
    scored = args.scorer == "orm"
    results, seconds = run_arm(data, args, problems, lambda i, p, e, s: solve(
        p["problem"], "adaptive", budget, e, s if scored else None, planning=planning, pass_at_1=float(prior[i])),
        server)
    outcomes = [Outcome(correct(r.answer, p["reference"]), r.plan.adaptive.samples, r.cost.completion_tokens,
                        r.cost.prompt_tokens - r.cost.cached_tokens, r.cost.reward_tokens)
                for r, p in zip(results, problems)]
    return outcomes, results, seconds


def check_draws(results: list, pools: list[Pool]) -> int:
    """Problems whose adaptive samples are not the pool's first draws (as multisets of texts)."""
    bad = 0
    for result, pool in zip(results, pools):
        texts = sorted(b.text for b in result.branches if b.parent is None)
        if len(texts) <= len(pool.draws) and texts != sorted(d.text for d in pool.draws[:len(texts)]):
            bad += 1
    return bad


# -- curves and comparisons ---------------------------------------------------------------------------------

@dataclass
class Point:
    family: str
    setting: str
    outcomes: list[Outcome]
    flops: np.ndarray  # per problem

    @property
    def right(self) -> np.ndarray:
        return np.array([o.right for o in self.outcomes], dtype=float)

    @property
    def compute(self) -> float:
        return float(self.flops.mean())

    def row(self) -> dict:
        n = len(self.outcomes)
        k = int(self.right.sum())
        low, high = wilson(k, n)
        return {"arm": self.family, "setting": self.setting, "problems": n, "accuracy": k / n,
                "ci95": [low, high], "samples_per_problem": float(np.mean([o.samples for o in self.outcomes])),
                "generated_tokens_per_problem": float(np.mean([o.generated for o in self.outcomes])),
                "tokens_per_problem": float(np.mean([o.prompt + o.generated + o.reward for o in self.outcomes])),
                "reward_tokens_per_problem": float(np.mean([o.reward for o in self.outcomes])),
                "flops_per_problem": self.compute}


def at_spend(points: list[Point], spend: float, rng: np.random.Generator, right: np.ndarray) -> dict:
    """The curve's upper hull at `spend` against the arm whose per-problem results are `right`: the
    baseline's accuracy there, what mixes it, and the paired bootstrap 95% interval of the difference. When
    every setting spends more than `spend`, the cheapest one (`cheaper`: the arm spends less than all)."""
    compute = np.array([p.compute for p in points])
    mix = _hull_at(compute, np.array([p.right.mean() for p in points]), spend)
    cheaper = mix is None  # every setting spends more: compare with the cheapest, which adaptive undercuts
    _, low, high, share = (None, int(np.argmin(compute)), int(np.argmin(compute)), 0.0) if cheaper else mix
    base = (1.0 - share) * points[low].right + share * points[high].right
    diff = right - base
    boot = diff[rng.integers(0, diff.size, size=(BOOTSTRAP, diff.size))].mean(axis=1)
    label = points[low].setting if round(share, 2) in (0.0, 1.0) or low == high else \
        f"{points[low].setting}..{points[high].setting} ({share:.0%})"
    if round(share, 2) == 1.0:
        label = points[high].setting
    return {"accuracy": float(base.mean()), "at": label, "difference": float(diff.mean()), "cheaper": cheaper,
            "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def compare(adaptive: list[Point], baselines: dict[str, list[Point]], seed: int) -> list[dict]:
    rows = []
    for point in adaptive:
        rng = np.random.default_rng(seed)
        row = {"budget": point.setting, "flops_per_problem": point.compute, "accuracy": float(point.right.mean())}
        for family, points in baselines.items():
            row[family] = at_spend(points, point.compute, rng, point.right)
        rows.append(row)
    return rows


# -- report -------------------------------------------------------------------------------------------------

def report(points: list[Point], verdicts: list[dict], checks: dict) -> None:
    print(f"\n{'arm':<26}{'setting':>8}{'accuracy':>10}{'95% CI':>16}{'samples':>9}{'generated':>11}"
          f"{'tokens':>9}{'compute':>14}")
    for p in points:
        r = p.row()
        if p.family.startswith("uniform") and int(p.setting) not in SHOWN_UNIFORM:
            continue  # every size is in --json and in the curves
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        print(f"{p.family:<26}{p.setting:>8}{r['accuracy']:>10.3f}{ci:>16}"
              f"{r['samples_per_problem']:>9.2f}{r['generated_tokens_per_problem']:>11,.0f}"
              f"{r['tokens_per_problem']:>9,.0f}{format_flops(r['flops_per_problem']):>14}")
    print("\n(samples, generated tokens, tokens and compute are per problem; tokens = prompt once + generated + "
          "reward-model reads; compute in FLOPs, 2 x parameters per token of each model)")
    print("\nadaptive against each baseline's curve (upper hull) at adaptive's own compute; difference with a "
          "paired bootstrap 95% interval:")
    for v in verdicts:
        print(f"  adaptive @{v['budget']}: {v['accuracy']:.3f} at {format_flops(v['flops_per_problem'])}")
        for family in (k for k in v if k not in ("budget", "flops_per_problem", "accuracy")):
            c = v[family]
            above = "on/above" if c["difference"] >= 0 else "BELOW"
            where = f"its cheapest, {c['at']}, spends more" if c["cheaper"] else c["at"]
            print(f"    {family:<24} {c['accuracy']:.3f} ({where}): {c['difference']:+.3f} "
                  f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]  {above}")
    print(f"\ndraw check: {checks['adaptive_mismatches']} adaptive runs whose samples are not the pool's first "
          f"draws; uniform majority@4 run on its own server: {checks['uniform_mismatches']} problems whose samples "
          f"differ from the pool's first four, {checks['uniform_answer_mismatches']} whose correctness differs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--budgets", default="2,4,8,16")
    parser.add_argument("--depth", type=int, default=LIMIT, help="pooled samples per problem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scorer", choices=("none", "orm"), default="none")
    parser.add_argument("--auroc", type=float, default=0.9, help="the stand-in reward model's AUROC (--scorer orm)")
    parser.add_argument("--split", choices=("math500", "train"), default="math500")
    parser.add_argument("--planner-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    config = AdaptiveConfig.from_options({k: _number(v) for k, v in (o.split("=", 1) for o in args.planner_option)})
    data = data_dir(args.data)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if args.split == "train":
            problems, path = load_train(data, args.problems, args.seed, Path(folder))
            server: tuple[str, ...] = ("--problems", str(path))
        else:
            problems, server = load_problems(data, args.problems, args.seed), ()
        log(f"{len(problems)} {args.split} problems (mean true pass@1 {np.mean([p[RATE_FIELD] for p in problems]):.3f}), "
            f"server seed {args.seed}, scorer {args.scorer}, adaptive {config.to_dict()}")
        prices = Prices(args.scorer == "orm")
        pools = draw_pool(data, args, problems, server)
        log(f"  pool of {args.depth} draws per problem: {time.perf_counter() - started:.0f} s")
        points: list[Point] = []

        def add(family: str, setting: str, outcomes: list[Outcome]) -> None:
            points.append(Point(family, setting, outcomes, np.array([prices.flops(o) for o in outcomes])))

        for n in UNIFORM_SIZES:
            add("uniform majority", str(n), [uniform_majority(p, n) for p in pools])
            if args.scorer == "orm":
                add("uniform weighted vote", str(n), [uniform_weighted(p, n) for p in pools])
                add("uniform best-of-N", str(n), [uniform_best(p, n) for p in pools])
        for t in AC_THRESHOLDS:
            add("Adaptive-Consistency", f"{t:g}", [adaptive_consistency(p, t) for p in pools])
        for w in ESC_WINDOWS:
            add("ESC", f"w={w}", [early_stopping(p, w) for p in pools])
        uniform4, _ = run_arm(data, args, problems, lambda i, p, e, s: solve(p["problem"], "majority", 4, e), server)
        checks = {"uniform_mismatches": sum(sorted(b.text for b in r.branches) != sorted(d.text for d in p.draws[:4])
                                            for r, p in zip(uniform4, pools)),
                  "uniform_answer_mismatches": sum(correct(r.answer, q["reference"]) != uniform_majority(p, 4).right
                                                   for r, p, q in zip(uniform4, pools, problems)),
                  "adaptive_mismatches": 0}
        prior = held_out_prior(data, problems, args.seed) if args.split == "train" else \
            load_model().predict([p["problem"] for p in problems])
        stops = {}
        for budget in budgets:
            outcomes, results, seconds = run_adaptive(data, args, problems, budget, config, prior, server)
            checks["adaptive_mismatches"] += check_draws(results, pools)
            add("adaptive", str(budget), outcomes)
            stops[budget] = _count(r.plan.adaptive.stop_reason for r in results)
            log(f"  adaptive @{budget}: {seconds:.0f} s, stops {stops[budget]}")
    baselines: dict[str, list[Point]] = {}
    for p in points:
        if p.family != "adaptive":
            baselines.setdefault(p.family, []).append(p)
    verdicts = compare([p for p in points if p.family == "adaptive"], baselines, args.seed)
    if args.json:
        print(json.dumps({"problems": len(problems), "split": args.split, "seed": args.seed, "scorer": args.scorer,
                          "auroc": args.auroc, "adaptive": config.to_dict(), "rows": [p.row() for p in points],
                          "comparisons": verdicts, "stops": stops, "checks": checks,
                          "seconds": round(time.perf_counter() - started)}, indent=1))
    else:
        report(points, verdicts, checks)
        print(f"adaptive stop reasons: {stops}")
        print(f"\n{time.perf_counter() - started:.0f} s")


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


if __name__ == "__main__":
    main()
