"""Long-thinking policies on the stand-in server's thinking profile: majority voting, DeepConf offline and online,
and the adaptive solver with confidence evidence, at N = 8, 16 and 32 traces, on MATH-500 problems (each at the
success rate Qwen2.5-Math-1.5B-Instruct measured on it) and on AIME 2024 + 2025 (at --aime-rate, an assumption:
DeepSeek-R1-Distill-Qwen-7B's reported pass@1 is 55.5% on AIME 2024).

Every arm runs on a fresh `tts-planner sim-server --thinking --enable-deterministic-inference` process with the
same seed, through the batch runner (`run_batch`, as `tts-planner run` does). The server samples
deterministically and each branch sends its own sampling_seed (from its id), so branch k of a problem is the same
trace in every arm, whatever order requests arrive in: the arms are paired, trace for trace:
- "sampled": DeepConf offline at 32 (every trace runs to its end with its confidence); majority@N and offline
  DeepConf@N are computed from each problem's first N of those traces (branches 0 to N - 1, as a run of N);
- online DeepConf at N (warm-up, early stop with abort, consensus stop), one run per N;
- adaptive (probe, confidence evidence, stop) at each budget B in average traces per problem (--budgets) and T
  in average generated tokens per problem (--budget-tokens: each problem's budget is T over its traces' average
  length, as `tts-planner run --budget-tokens` sets it), one run per budget.
Tokens are generated tokens per problem as the server reported them (aborted traces count what they generated
before the abort). For every online run the server's own count of generated tokens is compared with the
client's: aborted traces must really stop.

    python benchmarks/thinking_deepconf.py [--math500 100] [--aime] [--budgets 4,8] [--budget-tokens 20000,40000,80000]
    python benchmarks/thinking_deepconf.py --math500 0 --math-train 200   # for developing, away from the test sets
    python benchmarks/thinking_deepconf.py --math500 0 --math-train 60 --math-train-rate 0.45 --search '{"deepconf_warmup": 2}'

--math-train N draws N MATH train problems (at the same policy's measured rates) for trying changes without
looking at MATH-500 or AIME; the shipped predictor was trained on them, so its adaptive arm there is optimistic.
--math-train-rate R answers them all at R instead (as the AIME arm is answered at --aime-rate); --search sets the
online DeepConf arms' SearchConfig and --adaptive the adaptive arms' AdaptiveConfig (the majority and offline rows
depend on neither); --arms online or --arms adaptive runs only those beside the sampled traces.

Prints one table per data set and the bars: online DeepConf within 1 point of majority@N with at most half its
tokens; the cheapest adaptive arm at majority@32's accuracy (or better) with at most a quarter of its tokens.
Then, for each online run, where its tokens went (from each result line's `plan.deepconf`): traces per problem,
traces stopped by confidence and cancelled once sampling stopped with the share of tokens they took, problems
settled or priced out before N, and the share of tokens spent on the hardest problems (answered at a rate under
HARD_RATE) beside majority@N's share there.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plugin_support import RATE_FIELD, data_dir

from planner.adaptive import AdaptiveConfig, check_budget, check_budget_tokens
from planner.errors import InputError
from planner.grading import reference_answer, shared_grader
from planner.jsonl import read_jsonl
from sglang_plugin import Endpoint, solve
from sglang_plugin.config import SearchConfig, SolveConfig
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.runs.settings import RunSettings

SIZES = (8, 16, 32)
HARD_RATE = 0.1
OFFLINE = SearchConfig(deepconf_mode="offline")


class ThinkingServer:
    """`tts-planner sim-server --thinking` in a child process."""

    def __init__(self, problems: Path, seed: int, default_rate: float) -> None:
        import subprocess
        import sys

        self.command = [sys.executable, "-m", "sglang_plugin.cli", "sim-server", "--thinking", "--port", "0",
                        "--problems", str(problems), "--rate-field", "pass_rate", "--seed", str(seed),
                        "--default-rate", str(default_rate), "--stream-interval", "32",
                        "--enable-deterministic-inference"]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "ready at " not in line:
            self.process.kill()
            raise SystemExit(f"the stand-in server did not start: {line!r}")
        self.url = line.split("ready at ")[1].split()[0]

    def generated(self) -> int:
        with urllib.request.urlopen(self.url + "/get_server_info", timeout=10) as response:
            return json.loads(response.read())["internal_states"][0]["sim_stats"]["completion_tokens"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def datasets(data: Path, math500: int, aime: bool, aime_rate: float, seed: int,
             train: int = 0, train_rate: float | None = None) -> dict[str, list[dict]]:
    out = {}
    if train:
        rows = [r for _, r in read_jsonl(data / "outcomes" / "math_success_rates.jsonl")
                if r["split"] == "train" and str(r.get("answer") or "").strip() and r.get(RATE_FIELD) is not None]
        picked = sorted(random.Random(seed).sample(range(len(rows)), min(train, len(rows))))
        out["MATH train"] = [{"problem_id": f"train-{rows[i]['idx']}", "problem": rows[i]["problem"],
                              "answer": rows[i]["answer"],
                              "pass_rate": rows[i][RATE_FIELD] if train_rate is None else train_rate} for i in picked]
    if math500:
        solutions = {r["problem"]: r for _, r in read_jsonl(data / "math500" / "test.jsonl")}
        rows = [r for _, r in read_jsonl(data / "outcomes" / "math500_success_rates.jsonl")]
        picked = sorted(random.Random(seed).sample(range(len(rows)), min(math500, len(rows))))
        out["MATH-500"] = [{"problem_id": solutions[rows[i]["problem"]]["unique_id"], "problem": rows[i]["problem"],
                            "answer": solutions[rows[i]["problem"]]["answer"], "pass_rate": rows[i][RATE_FIELD],
                            "solution": solutions[rows[i]["problem"]]["solution"]} for i in picked]
    if aime:
        out["AIME 2024+2025"] = [{"problem_id": f"{name}-{r['id']}", "problem": r["problem"], "answer": str(r["answer"]),
                                  "pass_rate": aime_rate}
                                 for name in ("aime24", "aime25") for _, r in read_jsonl(data / name / "test.jsonl")]
    return out


def run_arm(folder: Path, name: str, url: str, source: Path, **settings) -> list[dict]:
    output = folder / f"{name}.jsonl"
    run_batch(RunSettings(endpoint=url, input=source, output=output, progress=False, concurrency=8, **settings))
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def sample_all(url: str, problems: list[dict], n: int) -> dict[str, list]:
    """Every problem's n traces run to their ends (DeepConf offline), each with its confidence: the branches."""
    endpoint = Endpoint(url)
    config = SolveConfig(search=OFFLINE)
    with ThreadPoolExecutor(8) as pool:
        results = pool.map(lambda p: solve(p["problem"], "deepconf", n, endpoint, config=config), problems)
        return {p["problem_id"]: r.branches for p, r in zip(problems, results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--math500", type=int, default=100, help="MATH-500 problems (a seeded sample)")
    parser.add_argument("--aime", action="store_true", help="also AIME 2024 + 2025 (60 problems)")
    parser.add_argument("--math-train", type=int, default=0, help="MATH train problems (a seeded sample), for "
                        "developing changes away from the test sets")
    parser.add_argument("--math-train-rate", type=float, default=None, help="answer the MATH train problems at this "
                        "one rate (as the AIME arm is) instead of their measured ones: AIME-like problems away from AIME")
    parser.add_argument("--aime-rate", type=float, default=0.45)
    parser.add_argument("--search", default="{}", help="SearchConfig settings for the online DeepConf arms, as JSON "
                        "(e.g. '{\"deepconf_warmup\": 2}')")
    parser.add_argument("--adaptive", default="{}", help="AdaptiveConfig settings for the adaptive arms, as JSON "
                        "(e.g. '{\"spread\": 3}')")
    parser.add_argument("--arms", default="online,adaptive", help="which run arms beside the sampled one: online, "
                        "adaptive or both")
    parser.add_argument("--budgets", default="4,8", help="adaptive budgets (average traces per problem)")
    parser.add_argument("--budget-tokens", default="20000,40000,80000", help="adaptive budgets in generated tokens per problem "
                        "(e.g. 20000,40000): each problem's budget is that over its traces' average length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    try:
        args.online = SearchConfig(**json.loads(args.search))
    except (ValueError, TypeError, InputError) as exc:
        parser.error(f"--search: {exc}")
    try:
        args.planner = AdaptiveConfig.from_options(json.loads(args.adaptive))
    except (ValueError, TypeError, InputError) as exc:
        parser.error(f"--adaptive: {exc}")
    args.arms = set(args.arms.split(","))
    if not args.arms <= {"online", "adaptive"}:
        parser.error(f"--arms: expected online and/or adaptive, got {','.join(sorted(args.arms))}")
    grader = shared_grader()
    try:  # checked before the first trace is sampled, so a typo costs nothing
        budgets = [("B", check_budget(int(b), "--budgets")) for b in args.budgets.split(",") if b]
        budgets += [("T", check_budget_tokens(float(t))) for t in args.budget_tokens.split(",") if t]
    except (ValueError, InputError) as exc:
        parser.error(f"--budgets/--budget-tokens: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, problems in datasets(data_dir(args.data), args.math500, args.aime, args.aime_rate, args.seed,
                                            args.math_train, args.math_train_rate).items():
            slug = "".join(c if c.isalnum() else "-" for c in label)
            source = folder / f"{slug}.jsonl"
            source.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
            rows, checks = measure(folder, label, source, problems, budgets, args, grader)
            report(label, len(problems), rows, checks)
            hard = {p["problem_id"] for p in problems if p["pass_rate"] < HARD_RATE}
            spending(rows, hard, len(problems))


def measure(folder: Path, label: str, source: Path, problems: list[dict], budgets: list[tuple[str, float]], args,
            grader):
    slug = source.stem
    references = {p["problem_id"]: reference_answer(p["answer"]) for p in problems}
    rows, checks = [], []

    def serve():
        return ThinkingServer(source, args.seed, args.aime_rate)

    started = time.perf_counter()
    server = serve()
    try:
        traces = sample_all(server.url, problems, max(SIZES))
    finally:
        server.close()
    print(f"[{label}] sampled 32 traces per problem in {time.perf_counter() - started:.0f} s", flush=True)
    for n in SIZES:
        rows.append(subset_row(f"majority@{n}", n, traces, references, grader, weighted=False))
        rows.append(subset_row(f"deepconf offline@{n}", n, traces, references, grader, weighted=True))
    for n in SIZES if "online" in args.arms else ():
        server = serve()
        try:
            before = server.generated()
            lines = run_arm(folder, f"{slug}-online{n}", server.url, source, strategy="deepconf", size=n,
                            config=SolveConfig(search=args.online))
            served = server.generated() - before
        finally:
            server.close()
        row = line_row(f"deepconf online@{n}", lines)
        row["deepconf"] = [line["plan"]["deepconf"] for line in lines]
        checks.append((f"deepconf online@{n}", served, sum(line["cost"]["completion_tokens"] for line in lines)))
        rows.append(row)
        print(f"[{label}] online@{n} done", flush=True)
    for kind, budget in budgets if "adaptive" in args.arms else ():
        name = f"adaptive B={budget}" if kind == "B" else f"adaptive T={budget / 1000:g}k"
        given = {"budget": budget} if kind == "B" else {"budget_tokens": budget}
        server = serve()
        try:
            lines = run_arm(folder, f"{slug}-adaptive-{kind}{budget:g}", server.url, source, adaptive=args.planner,
                            **given)
        finally:
            server.close()
        row = line_row(name, lines)
        row["stops"] = Counter(line["plan"]["adaptive"]["stop_reason"] for line in lines)
        rows.append(row)
        print(f"[{label}] {name} done", flush=True)
    return rows, checks


def subset_row(name: str, n: int, traces: dict, references: dict, grader, *, weighted: bool) -> dict:
    """Majority (or offline DeepConf: its most confident share, confidence-weighted) over each problem's first n
    traces of the sampled run."""
    from planner.confidence import kept

    correct, tokens = [], {}
    for pid, branches in traces.items():
        branches = sorted(branches, key=lambda b: b.id)[:n]
        tokens[pid] = sum(b.tokens for b in branches)
        answered = [b for b in branches if b.answer is not None and not b.failed]
        if weighted:
            answered = [answered[i] for i in kept([b.confidence for b in answered], OFFLINE.keep_share)]
        votes = grader.vote([b.answer for b in answered],
                            [b.confidence or 0.0 for b in answered] if weighted else None)
        answer = votes[0].answer if votes else None
        correct.append(grader.correct(references[pid], answer))
    return {"arm": name, "accuracy": sum(correct) / len(correct), "tokens": sum(tokens.values()) / len(tokens),
            "by_problem": tokens}


def line_row(name: str, lines: list[dict]) -> dict:
    return {"arm": name, "accuracy": sum(bool(line.get("correct")) for line in lines) / len(lines),
            "tokens": sum(line["cost"]["completion_tokens"] for line in lines) / len(lines),
            "by_problem": {line["problem_id"]: line["cost"]["completion_tokens"] for line in lines}}


def spending(rows: list[dict], hard: set[str], count: int) -> None:
    """Where each online run's generated tokens went."""
    by = {r["arm"]: r for r in rows}

    def hard_share(row: dict) -> float:
        return sum(t for pid, t in row["by_problem"].items() if pid in hard) / max(sum(row["by_problem"].values()), 1)

    for n in (n for n in SIZES if f"deepconf online@{n}" in by):
        row = by[f"deepconf online@{n}"]
        traces, total = row["deepconf"], max(sum(row["by_problem"].values()), 1)
        print(f"online deepconf@{n}: {sum(t['traces'] for t in traces) / len(traces):.1f} traces per problem; "
              f"{sum(t['stopped'] for t in traces)} stopped by confidence "
              f"({sum(t['stopped_tokens'] for t in traces) / total:.0%} of its tokens), "
              f"{sum(t['cancelled'] for t in traces)} cancelled once sampling stopped "
              f"({sum(t['cancelled_tokens'] for t in traces) / total:.0%}); "
              f"{sum(t['settled'] for t in traces) / len(traces):.0%} of problems settled before N, "
              f"{sum(t['priced_out'] for t in traces) / len(traces):.0%} priced out"
              + (f"; the {len(hard)} of {count} problems at rate < {HARD_RATE} took {hard_share(row):.0%} of its "
                 f"tokens (of majority@{n}'s: {hard_share(by[f'majority@{n}']):.0%})" if hard else ""))


def report(label: str, count: int, rows: list[dict], checks: list[tuple]) -> None:
    by = {r["arm"]: r for r in rows}
    print(f"\n{label}: {count} problems, thinking profile, generated tokens per problem")
    print(f"{'arm':<26}{'accuracy':>9}{'tokens':>12}{'tokens / majority@32':>22}")
    base = by["majority@32"]["tokens"]
    for r in rows:
        extra = f"  stops: {dict(r['stops'])}" if "stops" in r else ""
        print(f"{r['arm']:<26}{r['accuracy']:>9.3f}{r['tokens']:>12,.0f}{r['tokens'] / base:>21.2f}x{extra}")
    for n in (n for n in SIZES if f"deepconf online@{n}" in by):
        majority, online = by[f"majority@{n}"], by[f"deepconf online@{n}"]
        share = online["tokens"] / majority["tokens"]
        held = online["accuracy"] >= majority["accuracy"] - 0.01
        print(f"online deepconf@{n}: accuracy {online['accuracy'] - majority['accuracy']:+.3f} against majority@{n} "
              f"with {share:.2f}x its tokens: {'met' if held and share <= 0.5 else 'NOT met'} (bar: within 0.01, <= 0.5x)")
    adaptive = sorted((r for r in rows if r["arm"].startswith("adaptive")), key=lambda r: r["tokens"])
    target = by["majority@32"]
    reach = next((r for r in adaptive if r["accuracy"] >= target["accuracy"]), None)
    if adaptive and reach is None:  # (no verdict when no adaptive arm ran)
        print(f"adaptive: no budget reached majority@32's accuracy ({target['accuracy']:.3f}): NOT met")
    elif reach is not None:
        share = reach["tokens"] / target["tokens"]
        print(f"adaptive: {reach['arm']} reaches majority@32's accuracy ({reach['accuracy']:.3f} >= "
              f"{target['accuracy']:.3f}) with {share:.2f}x its tokens: {'met' if share <= 0.25 else 'NOT met'} "
              "(bar: <= 0.25x)")
    for name, served, reported in checks:
        print(f"{name}: the server generated {served:,} tokens, the client counted {reported:,}: "
              f"{'equal' if served == reported else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
