"""Reading result files and outcome records into runs ("arms"): the report's inputs.

A file holds one or more runs: adaptive lines form one arm, and every other line falls in the arm of its
strategy and size (`majority@8`), so a calibration sweep's log reports each point of its grid. A run is labeled
by its file name, plus the arm when a file holds several. Within a run, a problem that appears more than once
(files concatenated by hand) counts once, by its last line. An adaptive line's strategy is the rule that chose
its answer (`plan.adaptive.chosen_by`). Lines are read with planner.records, so errors name file, line and field.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from planner.difficulty import difficulty_bin
from planner.errors import InputError
from planner.jsonl import read_jsonl
from planner.policies import known_policy, known_reward_model
from planner.records import OutcomeRecord, ResultLine, Where

OUTCOMES_SUFFIX = ".outcomes.jsonl"
MANIFEST_SUFFIX = ".run.json"  # what `tts-planner run` writes beside its output: the settings of the run
NO_REWARD_MODEL = ("none", "self_certainty")  # scorers that read no reward model


@dataclass(frozen=True)
class ReportLine:
    """What the report reads of one result line."""

    line: int
    problem_id: str
    status: str
    strategy: str | None  # executed; for adaptive lines the rule that chose the answer
    size: int | None
    adaptive: bool
    budget: float | None
    correct: bool | None
    tokens: float
    flops: float | None  # None when a model's size is unknown
    pass_at_1: float | None
    difficulty: str | None
    expected_accuracy: float | None
    expected_cost: float | None
    generated: float = 0.0  # generated tokens (cost.completion_tokens)
    thinking: float | None = None  # of them, spent thinking (long-thinking policies)

    @property
    def bin(self) -> str | None:
        if self.difficulty is not None:
            return self.difficulty
        return difficulty_bin(self.pass_at_1) if self.pass_at_1 is not None else None


@dataclass
class Run:
    """The lines of one arm of one file, a problem's last line only."""

    path: str
    arm: str
    method: str  # the series it is drawn in: "adaptive", a strategy name, or "mixed"
    lines: list[ReportLine]
    superseded: int = 0  # earlier lines of a problem that appears more than once
    label: str = ""

    @property
    def budget(self) -> float | None:
        budgets = {line.budget for line in self.lines}
        return budgets.pop() if len(budgets) == 1 else None


@dataclass(frozen=True)
class OutcomeTally:
    """Independent samples of one problem: how many, and how many were right."""

    correct: int
    samples: int


@dataclass(frozen=True)
class Sizes:
    """What prices a run's tokens in FLOPs: the policy's size and the reward model's (0 without one; None when
    unknown), from the run's manifest, else from the predictions' policy."""

    policy_params: float | None
    reward_params: float | None

    def flops(self, line: ResultLine) -> float | None:
        if self.policy_params is None or (self.reward_params is None and line.cost.reward_tokens):
            return None
        return line.cost.flops(self.policy_params, self.reward_params or 0.0)


def run_sizes(path: str | os.PathLike, lines: list[ResultLine]) -> Sizes:
    """The sizes of the models behind a result file: its manifest's policy and reward model when `tts-planner run`
    left one beside it, else the policy the predictions name (and no reward model when no line read one)."""
    manifest = Path(str(path) + MANIFEST_SUFFIX)
    settings: dict = {}
    if manifest.is_file():
        try:
            settings = json.loads(manifest.read_text(encoding="utf-8")).get("settings", {})
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            settings = {}
    named = settings.get("policy") or next((x.prediction.policy for x in lines if x.prediction), None)
    policy = known_policy(named)
    rm_name, scorer = settings.get("reward_model"), settings.get("scorer")
    rm = known_reward_model(rm_name)
    if rm is not None:
        reward = rm.params
    elif scorer in NO_REWARD_MODEL or not any(x.cost.reward_tokens for x in lines):
        reward = 0.0
    else:
        reward = None
    return Sizes(policy.params if policy else None, reward)


def read_results(path: str | os.PathLike) -> list[Run]:
    """The runs of one result file; every bad line raises an InputError naming file, line and field."""
    name = str(path)
    arms: dict[str, dict[str, ReportLine]] = defaultdict(dict)
    methods: dict[str, str] = {}
    repeats: Counter[str] = Counter()
    parsed = [(number, ResultLine.from_dict(record, Where(name, number))) for number, record in read_jsonl(path)]
    sizes = run_sizes(path, [line for _, line in parsed])
    count = 0
    for number, result in parsed:
        count += 1
        line = report_line(result, number, sizes)
        arm, method = _arm_of(line)
        if line.problem_id in arms[arm]:
            repeats[arm] += 1
        arms[arm][line.problem_id] = line
        methods[arm] = method
    if count == 0:
        raise InputError("no result lines (the file is empty)", path=name)
    return [Run(name, arm, methods[arm], list(lines.values()), repeats[arm]) for arm, lines in arms.items()]


def report_line(line: ResultLine, number: int, sizes: Sizes = Sizes(None, None)) -> ReportLine:
    plan, prediction, trace = line.plan, line.prediction, line.adaptive
    strategy = trace.chosen_by if trace is not None else (line.strategy or (plan.strategy if plan else None))
    return ReportLine(number, line.problem_id, line.status, strategy, plan.size if plan else None, trace is not None,
                      float(trace.budget) if trace is not None else None, line.correct, float(line.cost.tokens),
                      sizes.flops(line),
                      prediction.pass_at_1 if prediction else None, prediction.difficulty if prediction else None,
                      plan.expected_accuracy if plan else None, plan.expected_cost if plan else None,
                      float(line.cost.completion_tokens),
                      None if line.thinking_tokens is None else float(line.thinking_tokens))


def _arm_of(line: ReportLine) -> tuple[str, str]:
    if line.adaptive:
        return "adaptive", "adaptive"
    if line.strategy is None:
        return "unknown", "mixed"
    return (f"{line.strategy}@{line.size}" if line.size is not None else line.strategy), line.strategy


def read_outcomes(path: str | os.PathLike) -> dict[tuple[str, str], OutcomeTally]:
    """Per-sample outcome records tallied by problem and strategy."""
    name = str(path)
    correct: Counter[tuple[str, str]] = Counter()
    samples: Counter[tuple[str, str]] = Counter()
    count = 0
    for number, data in read_jsonl(path):
        count += 1
        record = OutcomeRecord.from_dict(data, Where(name, number))
        key = (record.problem_id, record.strategy)
        samples[key] += 1
        correct[key] += record.correct
    if count == 0:
        raise InputError("no outcome records (the file is empty)", path=name)
    return {key: OutcomeTally(correct[key], samples[key]) for key in samples}


def is_outcome_file(path: str | os.PathLike) -> bool:
    return Path(path).name.endswith(OUTCOMES_SUFFIX)


def outcome_files_beside(result_path: str | os.PathLike) -> list[Path]:
    """The outcome records `tts-planner run` writes next to a result file, if they are there."""
    path = Path(result_path)
    candidates = {path.with_name(path.name + OUTCOMES_SUFFIX), path.with_suffix(OUTCOMES_SUFFIX)}
    return sorted(c for c in candidates if c.is_file())


def label_runs(runs: list[Run]) -> None:
    """File name, plus the arm when a file holds several; the path when two files share a name."""
    by_file: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_file[run.path].append(run)
    stems = Counter(Path(p).stem for p in by_file)
    for path, file_runs in by_file.items():
        base = Path(path).stem if stems[Path(path).stem] == 1 else path
        for run in file_runs:
            run.label = base if len(file_runs) == 1 else f"{base}:{run.arm}"


