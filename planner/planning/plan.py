"""What the planner hands the runner and the user: a plan per problem, and a batch of them with its totals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.cost import Cost, Pricing
from planner.difficulty import BINS, difficulty_bin, difficulty_bins
from planner.records import PlanRecord
from planner.strategies import REGISTRY

if TYPE_CHECKING:
    from planner.planning.table import StrategyTable


@dataclass(frozen=True)
class Plan:
    """One problem's strategy and size, with the accuracy the curves expect it to buy and its expected cost.

    `size` is N: samples for majority, best_of_n and weighted_vote; candidates per step for beam_search and
    dvts (N / beam_width beams or subtrees, each expanded beam_width ways); particles for particle_filter.
    """

    strategy: str
    size: int
    expected_accuracy: float
    prompt_tokens: float
    generated_tokens: float
    reward_tokens: float
    pass_at_1: float
    difficulty: str
    beam_width: int | None = None  # beam search and DVTS

    @property
    def expected_cost(self) -> float:
        """Expected planner.cost tokens: uncached prompt + generated + reward-model tokens."""
        return self.prompt_tokens + self.generated_tokens + self.reward_tokens

    def cost(self) -> Cost:
        """The expected cost as a Cost, so `.flops(policy_params, reward_params)` converts it to FLOPs."""
        return Cost(prompt_tokens=self.prompt_tokens, completion_tokens=self.generated_tokens,
                    reward_tokens=self.reward_tokens)

    def to_dict(self) -> dict:
        """The `plan` field of an output line of `tts-planner plan`."""
        out = {"strategy": self.strategy, "size": self.size,
               "expected_accuracy": round(self.expected_accuracy, 4),
               "expected_cost": round(self.expected_cost, 1), "difficulty": self.difficulty,
               "pass_at_1": round(self.pass_at_1, 4)}
        if self.beam_width is not None:
            out["beam_width"] = self.beam_width
        return out

    def record(self) -> PlanRecord:
        """The plan as a run's result line records it (the prediction is recorded beside it)."""
        return PlanRecord(self.strategy, self.size, round(self.expected_accuracy, 4), round(self.expected_cost, 1),
                          self.beam_width)


def priced_plan(table: StrategyTable, strategy: str, size: int, pass_at_1: float,
                prompt_tokens: float | None = None) -> Plan:
    """A plan for a strategy and size the caller chose: the table's expected accuracy, and its expected cost by
    the same estimator every plan uses (CostModel.expected)."""
    cost = table.expected_cost(strategy, size, prompt_tokens)
    prompt = cost.prompt_tokens - cost.cached_tokens
    return Plan(strategy, size, float(table.accuracy(strategy, pass_at_1, size)), prompt, cost.completion_tokens,
                cost.reward_tokens, float(pass_at_1), difficulty_bin(pass_at_1),
                table.beam_width if REGISTRY[strategy].beam_sized else None)


@dataclass
class BatchPlan:
    """Plans for a batch as parallel arrays (cheap for 100k problems); index it for one problem's Plan.

    `budget` is in policy-token equivalents of `pricing` (planner.cost.Pricing), as every priced cost here.
    """

    label: str
    pass_at_1: np.ndarray
    strategies: tuple[str, ...]
    strategy: np.ndarray  # index into `strategies`
    size: np.ndarray
    expected_accuracy: np.ndarray
    prompt_tokens: np.ndarray
    generated_tokens: np.ndarray
    reward_tokens: np.ndarray
    budget: float
    pricing: Pricing
    beam_width: int
    note: str = ""  # how a baseline was built, for the comparison table

    @property
    def expected_cost(self) -> np.ndarray:
        """Expected tokens per problem."""
        return self.prompt_tokens + self.generated_tokens + self.reward_tokens

    @property
    def priced_cost(self) -> np.ndarray:
        """Expected cost per problem in policy-token equivalents of the pricing (what the budget bounds)."""
        return self.prompt_tokens + self.generated_tokens + self.pricing.reward_weight * self.reward_tokens

    def spend(self) -> float:
        """Expected spend of the whole batch in the pricing's unit (FLOPs or tokens)."""
        return float(self.priced_cost.sum()) * self.pricing.per_policy_token

    def __len__(self) -> int:
        return len(self.pass_at_1)

    def __getitem__(self, i: int) -> Plan:
        name = self.strategies[self.strategy[i]]
        return Plan(name, int(self.size[i]), float(self.expected_accuracy[i]),
                    float(self.prompt_tokens[i]), float(self.generated_tokens[i]), float(self.reward_tokens[i]),
                    float(self.pass_at_1[i]), str(difficulty_bins(np.round(self.pass_at_1[i:i + 1], 4))[0]),
                    self._beam_width(name))

    def _beam_width(self, strategy: str) -> int | None:
        return self.beam_width if REGISTRY[strategy].beam_sized else None

    def __iter__(self) -> Iterator[Plan]:
        return (self[i] for i in range(len(self)))

    def records(self) -> list[dict]:
        """Plan.to_dict() of every problem, built column-wise (about 1 s per million problems)."""
        names = [self.strategies[i] for i in self.strategy.tolist()]
        pass_at_1 = np.round(self.pass_at_1, 4)  # the bin follows the number written
        rows = zip(names, self.size.tolist(), np.round(self.expected_accuracy, 4).tolist(),
                   np.round(self.expected_cost, 1).tolist(), difficulty_bins(pass_at_1).tolist(), pass_at_1.tolist())
        out = []
        for name, size, acc, cost, bin_name, p in rows:
            row = {"strategy": name, "size": size, "expected_accuracy": acc, "expected_cost": cost,
                   "difficulty": bin_name, "pass_at_1": p}
            if REGISTRY[name].beam_sized:
                row["beam_width"] = self.beam_width
            out.append(row)
        return out

    def flops(self, rows: np.ndarray | slice = slice(None)) -> float | None:
        """Expected forward-pass FLOPs (of problems `rows`); None when a reward model of unknown size reads
        tokens."""
        reward = float(self.reward_tokens[rows].sum())
        if self.pricing.reward_params is None and reward > 0:
            return None
        policy = self.prompt_tokens[rows].sum() + self.generated_tokens[rows].sum()
        return 2.0 * (self.pricing.policy_params * policy + (self.pricing.reward_params or 0.0) * reward)

    def summary(self) -> dict:
        """Totals in tokens, FLOPs and the pricing's unit, the strategy mix, and per-bin counts, accuracy and
        spend."""
        bins = difficulty_bins(self.pass_at_1)
        cost = self.expected_cost
        mix = {}
        for i, name in enumerate(self.strategies):
            chosen = self.strategy == i
            if chosen.any():
                mix[name] = {"problems": int(chosen.sum()), "mean_size": float(self.size[chosen].mean())}
        per_bin = {}
        for name in BINS:
            inside = bins == name
            if inside.any():
                flops = self.flops(inside)
                per_bin[name] = {"problems": int(inside.sum()),
                                 "expected_accuracy": float(self.expected_accuracy[inside].mean()),
                                 "tokens_per_problem": float(cost[inside].mean()),
                                 "flops_per_problem": None if flops is None else flops / int(inside.sum())}
        count = max(len(self), 1)
        flops = self.flops()
        return {"label": self.label, "note": self.note, "problems": len(self),
                "expected_accuracy": float(self.expected_accuracy.mean()) if len(self) else 0.0,
                "expected_solved": float(self.expected_accuracy.sum()),
                "tokens": float(cost.sum()), "tokens_per_problem": float(cost.sum()) / count,
                "flops": flops, "flops_per_problem": None if flops is None else flops / count,
                "unit": self.pricing.unit, "spend": self.spend(),
                "budget": float(self.budget) * self.pricing.per_policy_token,
                "strategies": mix, "bins": per_bin}


def compare(plan: BatchPlan, baseline: BatchPlan) -> dict:
    """The plan against a baseline on the same problems: both summaries and the differences."""
    a, b = plan.summary(), baseline.summary()
    return {"plan": a, "baseline": b, "unit": plan.pricing.unit,
            "accuracy_gain": a["expected_accuracy"] - b["expected_accuracy"],
            "spend_ratio": a["spend"] / b["spend"] if b["spend"] else float("nan"),
            "token_ratio": a["tokens"] / b["tokens"] if b["tokens"] else float("nan")}


def _tflops(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e12:,.2f}"


def format_comparison(plan: BatchPlan, baseline: BatchPlan) -> str:
    """The summary table the CLI prints after planning: what the baseline is, overall, then per bin."""
    a, b = plan.summary(), baseline.summary()
    if plan.pricing.unit == "flops":
        priced = "Priced in FLOPs: 2 x parameters per token, policy and reward-model tokens apart."
    else:
        priced = "Priced in tokens: generated, uncached prompt and reward-model tokens alike."
    lines = [priced,
             f"Baseline at equal {'compute' if plan.pricing.unit == 'flops' else 'tokens'}: {baseline.label}, "
             f"spending what the plan spends ({plan.pricing.describe(a['spend'])})"
             + (f"; {baseline.note}" if baseline.note else ""),
             f"{'':<30}{'expected acc':>13}{'tokens/problem':>16}{'TFLOPs/problem':>16}{'total':>16}"]
    for s in (b, a):
        lines.append(f"{s['label'][:29]:<30}{s['expected_accuracy']:>13.4f}{s['tokens_per_problem']:>16,.0f}"
                     f"{_tflops(s['flops_per_problem']):>16}{plan.pricing.describe(s['spend']):>16}")
    lines.append(f"{'difference':<30}{a['expected_accuracy'] - b['expected_accuracy']:>+13.4f}"
                 f"{a['tokens_per_problem'] - b['tokens_per_problem']:>+16,.0f}")
    lines.append("")
    lines.append(f"{'bin':<8}{'problems':>9}{'baseline acc':>14}{'plan acc':>10}{'baseline tok':>14}{'plan tok':>10}"
                 f"{'baseline TFLOPs':>17}{'plan TFLOPs':>13}")
    for name in BINS:
        if name in a["bins"]:
            x, y = b["bins"][name], a["bins"][name]
            lines.append(f"{name:<8}{y['problems']:>9}{x['expected_accuracy']:>14.4f}{y['expected_accuracy']:>10.4f}"
                         f"{x['tokens_per_problem']:>14,.0f}{y['tokens_per_problem']:>10,.0f}"
                         f"{_tflops(x['flops_per_problem']):>17}{_tflops(y['flops_per_problem']):>13}")
    lines.append("")
    mix = ", ".join(f"{name} x{v['problems']} (mean size {v['mean_size']:.1f})" for name, v in a["strategies"].items())
    lines.append(f"plan strategies: {mix}")
    return "\n".join(lines)
