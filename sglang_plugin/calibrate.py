"""`tts-planner calibrate`: measure every strategy and size on a labeled dev set against the serving stack,
and write the calibration file the planner fits its curves and costs to.

The sweep is a set of batch runs, one per arm (strategy and size), each an ordinary `tts-planner run` output
in the runs folder (`ARM.jsonl` with its outcome records and manifest): the batch runner's concurrency,
retries, failure policy, atomic appends and resuming all apply. Running the same command again skips every
problem an arm already finished; adding a strategy or size later runs only the new arms.

Measurement choices:
- Difficulty bins come from the difficulty predictor's pass@1 (the shipped predictor of the policy, or
  `--model`), not from measured rates: the planner looks its curves up at predicted pass@1, so the curves
  must say what a strategy achieves on problems *predicted* to be at p. Each point lists its problems'
  predicted pass@1, as the schema asks.
- A point's accuracy is the share of its bin's problems the arm answered correctly (by the runner's grader);
  problems whose run failed (no branch finished) are left out, and running again retries them
  (`--retry-failed`).
- Tokens are `Cost.tokens` as the servers reported them, with the problem's prompt priced cold. The sweep
  solves every problem many times, so after the first run the server's prefix cache holds its prompt; in
  production each problem is new. The cot arm runs first, while the prompts are uncached, and its uncached
  prompt tokens are added back to every later run of that problem (no more than the run found cached).
  Reward-model prefixes are not corrected: a few hundred tokens against runs of thousands. A problem the
  runner had to retry counts the tokens of both attempts, as the stack spent them.
- `policies` records the measured tokens per cot sample and uncached prompt tokens, so strategies without
  points are priced on the same footing.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from planner.adaptive import AdaptiveConfig
from planner.cost import Cost
from planner.difficulty import BINS, difficulty_bin
from planner.errors import InputError, PlannerError, RunInterrupted
from planner.files import atomic_path, sha256_of
from planner.grading import Grader, shared_grader
from planner.jsonl import SkipLog
from planner.planning.calibration import (
    CALIBRATION_FORMAT,
    CALIBRATION_VERSION,
    Calibration,
    load_calibration,
    parse_calibration,
)
from planner.planning.table import StrategyTable
from planner.policies import reward_model as find_reward_model
from planner.records import ResultLine
from planner.strategies import DEFAULT_BEAM_WIDTH, REGISTRY, planned_strategies
from sglang_plugin.runs.batch import Solver, batch_runner, connect, planning_for, predict_all
from sglang_plugin.runs.files import RunFiles
from sglang_plugin.runs.problems import RunProblem, read_run_problems
from sglang_plugin.runs.settings import RunSettings

DEFAULT_SIZES = (1, 2, 4, 8, 16)
# A bin's accuracy over fewer dev problems than this is too noisy to fit a curve to (its standard error can
# exceed 0.15), so its points are not written and the planner keeps that bin's defaults.
MIN_BIN_PROBLEMS = 10


@dataclass(frozen=True)
class Arm:
    """One cell of the sweep: a strategy at one size (with the reward model that drives it, if any)."""

    strategy: str
    size: int
    reward_model: str | None = None

    @property
    def name(self) -> str:
        """The arm's file name in the runs folder; reward arms carry the reward model, so one runs folder
        can serve calibrations for several reward models and share the cot and majority arms."""
        base = f"{self.strategy}@{self.size}"
        return base if self.reward_model is None else f"{base}~{self.reward_model.rsplit('/', 1)[-1]}"


def sweep_arms(strategies: Sequence[str], sizes: Sequence[int], reward_model: str | None,
               beam_width: int = DEFAULT_BEAM_WIDTH) -> list[Arm]:
    """The arms to run, cot first (its runs price the cold prompt of every later run). A strategy runs at
    each requested size the planner offers for it (majority from 3, beam search and DVTS in multiples of the
    beam width); cot always runs, at size 1."""
    known = planned_strategies()
    unknown = [s for s in strategies if s not in known]
    if unknown:
        raise InputError(f"unknown strateg{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; known: "
                         f"{', '.join(known)}", field="strategies")
    if not sizes or any(n < 1 for n in sizes):
        raise InputError(f"sizes must be positive integers, got {list(sizes)}", field="sizes")
    rm = find_reward_model(reward_model) if reward_model else None
    arms = [Arm("cot", 1)]
    for name in dict.fromkeys(strategies):
        if name == "cot":
            continue
        spec = REGISTRY[name]
        if spec.needs_reward:
            if rm is None:
                raise InputError(f"{name} ranks branches with a reward model: give --reward-endpoint and "
                                 "--reward-model", field="reward_model")
            if not spec.driven_by(rm.kind):
                drives = [s for s in known if REGISTRY[s].needs_reward and REGISTRY[s].driven_by(rm.kind)]
                raise InputError(f"the {rm.kind} reward model {rm.name} cannot drive {name} (it drives "
                                 f"{', '.join(drives)})", field="strategies")
        offered_sizes = spec.sizes(beam_width)
        offered = [n for n in dict.fromkeys(sizes) if n in offered_sizes]
        if not offered:
            raise InputError(f"none of the sizes {', '.join(map(str, sizes))} is one the planner offers for {name} "
                             f"(from {offered_sizes[0]}: {', '.join(map(str, offered_sizes[:6]))}, ...)",
                             field="sizes")
        arms += [Arm(name, n, rm.name if spec.needs_reward else None) for n in sorted(offered)]
    return arms


def default_strategies(reward_model: str | None) -> list[str]:
    """cot, majority, and every strategy the reward model can drive."""
    names = ["cot", "majority"]
    if reward_model:
        kind = find_reward_model(reward_model).kind
        names += [s for s in planned_strategies() if REGISTRY[s].needs_reward and REGISTRY[s].driven_by(kind)]
    return names


# ------------------------------------------------------------------------------------------- measurement

@dataclass
class Measured:
    """Calibration points and what went into them."""

    points: list[dict]
    policies: dict[str, dict[str, float]]
    left_out: dict[str, int] = field(default_factory=dict)  # arm name -> failed runs left out
    bins: dict[str, int] = field(default_factory=dict)  # dev problems per predicted bin
    too_few: tuple[str, ...] = ()  # bins with some problems but fewer than the minimum: measured, not written


def bin_counts(pass_at_1: Mapping[str, float]) -> dict[str, int]:
    """Dev problems per predicted difficulty bin (every bin, zeros included)."""
    counts = {name: 0 for name in BINS}
    for p in pass_at_1.values():
        counts[difficulty_bin(round(float(p), 6))] += 1
    return counts


def bins_too_small(counts: Mapping[str, int], minimum: int) -> tuple[str, ...]:
    """The bins with fewer than `minimum` problems; an InputError when that is every bin."""
    few = tuple(name for name in BINS if counts.get(name, 0) < minimum)
    if len(few) == len(BINS):
        raise InputError(f"no predicted difficulty bin holds {minimum} dev problems ("
                         + ", ".join(f"{name} {counts.get(name, 0)}" for name in BINS) + "): too few to fit any curve; "
                         "give a larger dev set (or a lower --min-bin-problems)", field="input")
    return few


def describe_bins(counts: Mapping[str, int], minimum: int) -> str:
    """How many dev problems each predicted bin holds, and which are too few to fit a curve to."""
    text = "dev problems per predicted bin: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in BINS)
    few = [name for name in BINS if counts.get(name, 0) < minimum]
    if few:
        text += (f"; {', '.join(few)} {'has' if len(few) == 1 else 'have'} fewer than {minimum}: no curve is fitted "
                 "there, the planner keeps its defaults (a larger dev set, or --min-bin-problems, changes that)")
    return text


def measure(lines_by_arm: Mapping[Arm, Iterable[ResultLine]], pass_at_1: Mapping[str, float], policy: str,
            min_bin_problems: int = MIN_BIN_PROBLEMS) -> Measured:
    """Points per arm and difficulty bin from the arms' result lines; bins holding fewer than `min_bin_problems`
    dev problems get no points (and none at all is an InputError).

    `pass_at_1` holds the predicted pass@1 of every dev problem by problem id.
    """
    bins = bin_counts(pass_at_1)
    too_few = bins_too_small(bins, min_bin_problems)
    lines = {arm: [x for x in arm_lines if x.problem_id in pass_at_1] for arm, arm_lines in lines_by_arm.items()}
    cot = next((arm for arm in lines if arm.strategy == "cot"), None)
    if cot is None:
        raise InputError("the sweep needs the cot arm: it prices the cold prompt and the unit of budget",
                         field="strategies")
    cold_prompt = {x.problem_id: _uncached(x.cost) for x in lines[cot] if x.status == "ok"}
    if not cold_prompt:
        raise PlannerError("no cot run finished, so nothing can be calibrated; see the errors in the runs folder")
    points, left_out = [], {}
    for arm, arm_lines in lines.items():
        ok = [x for x in arm_lines if x.status == "ok" and x.correct is not None]
        left_out[arm.name] = len(arm_lines) - len(ok)
        by_bin: dict[str, list[tuple[float, bool, float]]] = defaultdict(list)
        for x in ok:
            p = round(float(pass_at_1[x.problem_id]), 6)
            tokens = float(x.cost.tokens)
            if arm.strategy != "cot":
                tokens += min(cold_prompt.get(x.problem_id, 0), int(x.cost.cached_tokens))
            by_bin[difficulty_bin(p)].append((p, bool(x.correct), tokens))
        for bin_name in BINS:
            rows = by_bin.get(bin_name)
            if not rows or bin_name in too_few:
                continue
            ps, correct, tokens = zip(*rows)
            points.append({"policy": policy, "reward_model": arm.reward_model, "strategy": arm.strategy,
                           "bin": bin_name, "size": arm.size, "accuracy": round(sum(correct) / len(correct), 6),
                           "tokens": round(float(np.mean(tokens)), 1), "problems": len(rows),
                           "pass_at_1": list(ps)})
    cot_ok = [x for x in lines[cot] if x.status == "ok"]
    meta = {policy: {"tokens_per_sample": round(float(np.mean([x.cost.completion_tokens for x in cot_ok])), 1),
                     "prompt_tokens": round(float(np.mean(list(cold_prompt.values()))), 1)}}
    return Measured(points, meta, left_out, bins, tuple(b for b in too_few if bins[b]))


def _uncached(cost: Cost) -> int:
    return int(cost.prompt_tokens - cost.cached_tokens)


def calibration_document(measured: Measured, notes: dict) -> dict:
    return {"format": CALIBRATION_FORMAT, "version": CALIBRATION_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notes": notes,
            "policies": measured.policies, "points": measured.points}


def write_calibration(document: dict, path: str | Path) -> Calibration:
    """Validate (as the planner will read it), write atomically, and load it back from disk."""
    parse_calibration(json.loads(json.dumps(document)), str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(_dumps(document), encoding="utf-8")
    return load_calibration(path)


def _dumps(document: dict) -> str:
    """Indented JSON with one point per line, so the file reads as a table."""
    head = json.dumps({k: v for k, v in document.items() if k != "points"}, indent=1, ensure_ascii=False)
    points = ",\n  ".join(json.dumps(pt, ensure_ascii=False) for pt in document["points"])
    return f'{head[:-2]},\n "points": [\n  {points}\n ]\n}}\n'


def fit_rows(policy: str, reward_model: str | None, calibration: Calibration) -> list[dict]:
    """Each measured point against the default curve and the calibrated one, both averaged over the point's
    predicted pass@1: how far calibration moved the planner toward what was measured."""
    default = StrategyTable.default(policy, reward_model)
    fitted = StrategyTable.default(policy, reward_model, calibration=calibration)
    rows = []
    for pt in calibration.points_for(default.policy, default.reward_model):
        p = np.array(pt.pass_at_1)
        rows.append({"strategy": pt.strategy, "size": pt.size, "bin": pt.bin, "problems": pt.problems,
                     "measured": pt.accuracy, "default": float(default.accuracy(pt.strategy, p, pt.size).mean()),
                     "calibrated": float(fitted.accuracy(pt.strategy, p, pt.size).mean()),
                     "tokens": pt.tokens, "default_tokens": float(default.expected_cost(pt.strategy, pt.size).tokens),
                     "calibrated_tokens": float(fitted.expected_cost(pt.strategy, pt.size).tokens)})
    return rows


def weighted_error(rows: Sequence[dict], key: str) -> float:
    """Root mean squared accuracy error of `key` against the measurements, weighted by problems."""
    weights = np.array([r["problems"] for r in rows], dtype=float)
    errors = np.array([r[key] - r["measured"] for r in rows])
    return float(math.sqrt(weights @ errors ** 2 / weights.sum()))


def format_fit(rows: Sequence[dict]) -> str:
    lines = [f"{'strategy':<16}{'size':>5}  {'bin':<7}{'problems':>9}  {'measured':>8}  {'default':>8}  "
             f"{'calibrated':>10}  {'tokens':>9}  {'default':>9}  {'calibrated':>10}"]
    for r in rows:
        lines.append(f"{r['strategy']:<16}{r['size']:>5}  {r['bin']:<7}{r['problems']:>9}  {r['measured']:>8.3f}  "
                     f"{r['default']:>8.3f}  {r['calibrated']:>10.3f}  {r['tokens']:>9.0f}  "
                     f"{r['default_tokens']:>9.0f}  {r['calibrated_tokens']:>10.0f}")
    lines.append(f"accuracy error (RMS, weighted by problems): default {weighted_error(rows, 'default'):.4f}, "
                 f"calibrated {weighted_error(rows, 'calibrated'):.4f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- sweep

@dataclass(frozen=True)
class CalibrateSettings:
    """The sweep: `run` holds the endpoint, input, reward, predictor and solve settings shared by every arm
    (its output and strategy are set per arm)."""

    run: RunSettings
    output: Path
    strategies: tuple[str, ...] | None = None  # default: default_strategies(reward model)
    sizes: tuple[int, ...] = DEFAULT_SIZES
    policy: str | None = None  # default: the server's model, if the planner knows it
    runs_dir: Path | None = None  # default: OUTPUT without its suffix + ".runs"
    min_bin_problems: int = MIN_BIN_PROBLEMS

    @property
    def runs_folder(self) -> Path:
        return self.runs_dir or self.output.with_name(self.output.stem + ".runs")

    def arms(self) -> list[Arm]:
        rm = self.run.reward_model_name if self.run.scorer_kind != "none" else None
        return sweep_arms(self.strategies or default_strategies(rm), self.sizes, rm,
                          self.run.config.search.beam_width)


@dataclass
class CalibrationResult:
    calibration: Calibration
    measured: Measured
    fit: list[dict]
    table: str
    arms: list[Arm]
    notes: list[str]
    skipped: SkipLog | None


def calibrate(settings: CalibrateSettings, echo: Callable[[str], object] = print) -> CalibrationResult:
    """Run (or resume) every arm, then write the calibration file, validated by loading it back."""
    arms = settings.arms()
    base = settings.run
    skip = SkipLog() if base.skip_bad else None
    problems = read_run_problems(base.input, base.field, answer_field=base.answer_field, skip=skip,
                                 max_chars=base.max_chars)
    unlabeled = next((p for p in problems if p.reference is None), None)
    if unlabeled is not None:
        raise InputError("calibration measures accuracy, so every dev problem needs a reference answer",
                         path=str(base.input), line=unlabeled.line, field=base.answer_field)
    endpoint, scorer = connect(base)
    served = endpoint.model_info["model_path"]
    planning = planning_for(replace(base, policy=settings.policy or base.policy))
    policy = planning.policy_of(served).name
    predictions, predictor_path = predict_all(planning, served, problems)
    pass_at_1 = {pid: prediction.pass_at_1 for pid, prediction in predictions.items()}
    counts = bin_counts(pass_at_1)
    echo(describe_bins(counts, settings.min_bin_problems))
    bins_too_small(counts, settings.min_bin_problems)  # refused before any arm runs
    grader = shared_grader(base.config.grading)
    folder = settings.runs_folder
    notes: list[str] = []
    lines_by_arm: dict[Arm, list[ResultLine]] = {}
    for i, arm in enumerate(arms, start=1):
        echo(f"[{i}/{len(arms)}] {arm.name}")
        lines_by_arm[arm] = _run_arm(arm, base, folder, served, problems, endpoint, scorer, planning, predictions,
                                     grader, notes, echo)
    measured = measure(lines_by_arm, pass_at_1, policy, settings.min_bin_problems)
    rm = next((arm.reward_model for arm in arms if arm.reward_model), None)
    document = calibration_document(measured, {
        "endpoint": base.endpoint, "served_model": served, "dev_set": str(base.input),
        "dev_set_sha256": sha256_of(base.input), "problems": len(problems),
        "predictor": str(predictor_path), "bins_by": "predicted pass@1", "runs": str(folder),
        "problems_per_bin": counts, "min_bin_problems": settings.min_bin_problems,
        "tokens": "Cost.tokens per problem, the prompt priced cold (see tts-planner calibrate --help)",
        "reward_model": rm, "scorer": base.scorer_kind, "config": base.config.to_dict()})
    calibration = write_calibration(document, settings.output)
    fit = fit_rows(policy, rm, calibration)
    table = StrategyTable.default(policy, rm, calibration=settings.output).format_best_by_bin()
    return CalibrationResult(calibration, measured, fit, table, arms, notes, skip)


def _run_arm(arm: Arm, base: RunSettings, folder: Path, served: str, problems: list[RunProblem], endpoint, scorer,
             planning, predictions: dict, grader: Grader, notes: list[str], echo) -> list[ResultLine]:
    settings = replace(base, strategy=arm.strategy, size=arm.size, output=folder / f"{arm.name}.jsonl", outcomes=None,
                       adaptive=AdaptiveConfig(), calibration=None, max_budget=None, target_confidence=None)
    if arm.reward_model is None:  # the same runs whatever reward model is served: shareable across calibrations
        settings = replace(settings, scorer="none", reward_endpoint=None, reward_model=None, reward_options={})
    solver = Solver(settings, endpoint, scorer if arm.reward_model else None, planning, predictions)
    with RunFiles(settings.output, settings.outcomes_path, settings.identity(served, None),
                  overwrite=base.overwrite, retry_failed=base.retry_failed) as files:
        for note in files.notes:
            echo(f"  {note}")
            notes.append(f"{arm.name}: {note}")
        runner = batch_runner(settings, solver, files, grader, endpoint, served)
        try:
            runner.run(problems)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(len(files.finished), len(problems), str(settings.output)) from exc
        return list(files.finished.values())
