"""The strategy table of one serving setup: every planned strategy's accuracy curve and expected cost for a
policy, its reward model (if any) and, optionally, a calibration measured on the stack. Planning and the
adaptive solver read their options from it."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from planner.cost import Cost, CostModel, Pricing
from planner.difficulty import BINS, EASY_MIN, HARD_MAX, difficulty_bins
from planner.errors import InputError
from planner.planning.calibration import Calibration, fit_curve, fit_unit_tokens, load_calibration
from planner.planning.curves import Curve, size_class
from planner.policies import Policy, RewardModel
from planner.policies import policy as find_policy
from planner.policies import reward_model as find_reward_model
from planner.strategies import DEFAULT_BEAM_WIDTH, MAX_SIZE, REGISTRY, planned_strategies
from planner.strategies import strategy as find_strategy

BIN_RANGES = {"hard": (0.0, HARD_MAX), "medium": (HARD_MAX, EASY_MIN), "easy": (EASY_MIN, 1.0)}

@dataclass(frozen=True)
class Options:
    """Every (strategy, size) a table offers, flattened for vectorised planning, cheapest first."""

    strategies: tuple[str, ...]
    strategy: np.ndarray  # index into `strategies`
    size: np.ndarray
    policy_unit: np.ndarray  # policy tokens of the option beyond the prompt
    reward_unit: np.ndarray  # reward-model tokens beyond its problem prefix
    reward_prefix: np.ndarray  # bool: the reward model also reads the problem once
    reward_weight: float = 1.0  # a reward token's price in policy tokens (planner.cost.Pricing)

    @property
    def variable_cost(self) -> np.ndarray:
        """Priced cost beyond the prompt, in policy-token equivalents (what options are sorted by)."""
        return self.policy_unit + self.reward_weight * self.reward_unit

    @property
    def prefix_cost(self) -> np.ndarray:
        """Priced cost per prompt token of the reward model's read of the problem (0 for options without one)."""
        return self.reward_weight * self.reward_prefix

    def __len__(self) -> int:
        return len(self.size)


class StrategyTable:
    """Curves and costs for one serving setup: a policy, optionally a reward model, optionally calibrated."""

    def __init__(self, policy: Policy, reward_model: RewardModel | None, curves: dict[str, Curve],
                 cost: CostModel, sources: dict[str, str] | None = None,
                 beam_width: int = DEFAULT_BEAM_WIDTH) -> None:
        for name in curves:
            if not find_strategy(name).planned:
                raise ValueError(f"{name} is not a planned strategy")
        if "cot" not in curves:
            raise ValueError("a strategy table needs the cot curve")
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
            raise InputError(f"must be a positive integer, got {beam_width!r}", field="beam_width")
        self.policy, self.reward_model, self.curves, self.cost = policy, reward_model, dict(curves), cost
        self.sources = dict(sources or {})
        self.beam_width = beam_width

    @classmethod
    def default(cls, policy: str | Policy, reward_model: str | RewardModel | None = None,
                calibration: Calibration | str | Path | None = None,
                beam_width: int = DEFAULT_BEAM_WIDTH) -> StrategyTable:
        """The published-findings defaults for this policy and reward model, then the calibration's fits."""
        pol = policy if isinstance(policy, Policy) else find_policy(policy)
        rm = reward_model if isinstance(reward_model, RewardModel) or reward_model is None \
            else find_reward_model(reward_model)
        klass = size_class(pol)
        quality = rm.quality if rm else 1.0
        curves, sources = {}, {}
        for spec in REGISTRY.values():
            if not spec.planned or not spec.driven_by(rm.kind if rm else None):
                continue
            if spec.needs_thinking and pol.thinking is None:
                continue
            default = spec.curves[klass]
            curve = default.curve
            if spec.needs_reward:
                curve = replace(curve, gain=tuple(g * quality for g in curve.gain),
                                rate=tuple(r * quality for r in curve.rate))
            curves[spec.name] = curve
            sources[spec.name] = f"default for {klass} policies, reward-model quality {quality}: {default.source}"
        cost = CostModel(tokens_per_sample=pol.tokens_per_sample, rescore_cached=rm.rescore_cached if rm else False)
        table = cls(pol, rm, curves, cost, sources, beam_width)
        if calibration is not None:
            table = table.calibrated(calibration if isinstance(calibration, Calibration)
                                     else load_calibration(calibration))
        return table

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(s for s in planned_strategies() if s in self.curves)

    def sizes(self, strategy: str) -> tuple[int, ...]:
        self._require(strategy)
        return REGISTRY[strategy].sizes(self.beam_width)

    def _require(self, strategy: str) -> None:
        find_strategy(strategy)
        if strategy not in self.curves:
            served = f"reward model {self.reward_model.name}" if self.reward_model else "no reward model"
            raise InputError(f"strategy '{strategy}' is not available with {served}; available: "
                             f"{', '.join(self.strategies)}", field="strategy")

    def accuracy(self, strategy: str, p: np.ndarray | float, size: np.ndarray | float) -> np.ndarray:
        self._require(strategy)
        return self.curves[strategy].accuracy(p, size)

    def expected_cost(self, strategy: str, size: int, prompt_tokens: float | None = None) -> Cost:
        self._require(strategy)
        return self.cost.expected(strategy, size, prompt_tokens)

    def sample_tokens(self) -> float:
        """Tokens of one plain sample: what one unit of a sample-denominated budget is worth."""
        return self.cost.per_unit("cot")[0]

    def pricing(self, unit: str | None = None) -> Pricing:
        """How plans on this table are priced: FLOPs by default when every model's size is known (a reward
        model of unknown size leaves tokens), or the unit asked for."""
        rm = self.reward_model
        sized = rm is None or rm.params is not None
        if unit == "flops" and not sized:
            raise InputError(f"the size of the reward model {rm.name} is unknown, so FLOPs cannot price its "
                             "tokens; budget in tokens or samples instead", field="budget")
        chosen = unit or ("flops" if sized else "tokens")
        return Pricing(chosen, self.policy.params, rm.params if rm else None)

    def options(self, strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE,
                reward_weight: float = 1.0) -> Options:
        """Every offered (strategy, size), cheapest first at `reward_weight` policy tokens per reward token."""
        names = self.strategies if strategies is None else tuple(strategies)
        for name in names:
            self._require(name)
        rows = [(i, n, *self.cost.per_unit(s), self.cost.uses_reward_prefix(s))
                for i, s in enumerate(names) for n in self.sizes(s) if n <= max_size]
        if not rows:
            raise InputError(f"no strategy size up to {max_size} among {', '.join(names)}", field="strategies")
        idx, size, pol, rew, prefix = (np.array(col) for col in zip(*rows))
        order = np.lexsort((idx, size * (pol + reward_weight * rew)))
        return Options(names, idx[order], size[order].astype(float), (size * pol)[order].astype(float),
                       (size * rew)[order].astype(float), prefix[order].astype(bool), float(reward_weight))

    def option_accuracy(self, options: Options, p: np.ndarray) -> np.ndarray:
        """Accuracy of every option (columns) for every p (rows)."""
        p = np.asarray(p, dtype=float)
        out = np.empty((p.size, len(options)))
        for i, name in enumerate(options.strategies):
            cols = options.strategy == i
            out[:, cols] = self.curves[name].accuracy(p[:, None], options.size[cols][None, :])
        return out

    def by_bin(self, sizes: Sequence[int] = (1, 4, 16, 64, 256), p: np.ndarray | None = None) -> list[dict]:
        """What a user sees: per bin, strategy and size, accuracy averaged over the bin's p and the cost.

        Without `p` the average is over p uniform in the bin; with it, over those of `p` in the bin.
        """
        rows = []
        for bin_name in BINS:
            ps = _bin_points(bin_name, p)
            if ps.size == 0:
                continue
            for name in self.strategies:
                for n in sizes:
                    if n in self.sizes(name):
                        rows.append({"bin": bin_name, "strategy": name, "size": int(n),
                                     "accuracy": float(self.curves[name].accuracy(ps, n).mean()),
                                     "tokens": float(self.cost.expected(name, n).tokens)})
        return rows

    def best_by_bin(self, budgets: Sequence[float] = (1, 2, 4, 8, 16, 32, 64),
                    p: np.ndarray | None = None) -> list[dict]:
        """Per bin and per budget (in samples, priced as `pricing()`: a sample is one chain of thought's compute),
        the option with the best bin-mean accuracy that fits; `tokens` is the option's expected tokens."""
        options = self.options(reward_weight=self.pricing().reward_weight)
        prompt = self.cost.prompt_tokens
        priced = options.variable_cost + prompt * (1 + options.prefix_cost)
        totals = options.policy_unit + options.reward_unit + prompt * (1 + options.reward_prefix)
        rows = []
        for bin_name in BINS:
            ps = _bin_points(bin_name, p)
            if ps.size == 0:
                continue
            mean_acc = self.option_accuracy(options, ps).mean(axis=0)
            for budget in budgets:
                limit = self.cost.prompt_tokens + budget * self.sample_tokens() + 1e-9
                fits = np.flatnonzero(priced <= limit)
                if fits.size == 0:
                    continue
                k = fits[np.argmax(mean_acc[fits])]
                rows.append({"bin": bin_name, "budget": budget, "strategy": options.strategies[options.strategy[k]],
                             "size": int(options.size[k]), "accuracy": float(mean_acc[k]),
                             "tokens": float(totals[k])})
        return rows

    def format_best_by_bin(self, budgets: Sequence[float] = (1, 2, 4, 8, 16, 32, 64)) -> str:
        rows = self.best_by_bin(budgets)
        cell = {(r["bin"], r["budget"]): f"{r['strategy']}@{r['size']} {r['accuracy']:.3f}" for r in rows}
        served = self.reward_model.name if self.reward_model else "none"
        unit = "FLOPs" if self.pricing().unit == "flops" else "tokens"
        lines = [f"policy {self.policy.name} ({size_class(self.policy)}), reward model {served}; a budget of B "
                 f"samples is B chains of thought's {unit}",
                 f"{'budget (samples)':>16}  " + "".join(f"{b:<26}" for b in BINS)]
        for budget in budgets:
            lines.append(f"{budget:>16g}  " + "".join(f"{cell.get((b, budget), '-'):<26}" for b in BINS))
        return "\n".join(lines)

    def calibrated(self, calibration: Calibration) -> StrategyTable:
        """A copy whose curves and costs are fit to the calibration's points for this policy and reward model."""
        mine = calibration.points_for(self.policy, self.reward_model)
        curves, sources = dict(self.curves), dict(self.sources)
        meta = calibration.policies.get(self.policy.name, {})
        cost = replace(self.cost, **meta)
        unit_tokens = dict(cost.unit_tokens)
        for name in self.strategies:
            points = [pt for pt in mine if pt.strategy == name]
            if not points:
                continue
            if name != "cot":
                curves[name] = fit_curve(curves[name], points)
            unit_tokens[name] = fit_unit_tokens(cost, name, points, calibration.path)
            sources[name] = f"calibrated on {len(points)} point(s) from {calibration.path}"
        return StrategyTable(self.policy, self.reward_model, curves, replace(cost, unit_tokens=unit_tokens),
                             sources, self.beam_width)


def _bin_points(bin_name: str, p: np.ndarray | None) -> np.ndarray:
    low, high = BIN_RANGES[bin_name]
    if p is None:
        return np.linspace(low, high, 41)[:-1] + (high - low) / 80.0
    p = np.asarray(p, dtype=float)
    return p[difficulty_bins(p) == bin_name]


# ---------------------------------------------------------------------------------------------- calibration


@functools.lru_cache(maxsize=64)
def shared_table(policy: str | Policy, reward_model: str | RewardModel | None = None,
                 calibration: str | None = None, beam_width: int = DEFAULT_BEAM_WIDTH) -> StrategyTable:
    """One table per serving setup and process: tables never change after they are built, and planning caches
    its option menus per table, so every solve of a run shares one."""
    return StrategyTable.default(policy, reward_model, calibration, beam_width)
