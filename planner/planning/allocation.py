"""Turn predicted pass@1 into plans: the best strategy within a per-problem budget, and a batch budget split
where it buys the most expected accuracy.

Everything is priced on one compute axis (planner.cost.Pricing): FLOPs by default when the models' sizes are
known, so a reward-model token costs 2 x the reward model's parameters, not one policy token; tokens when the
user budgets in tokens or a reward model's size is unknown. Internally costs are policy-token equivalents.

Batch allocation is greedy on marginal gain per unit of cost, optimal when each problem's accuracy is concave
in what is spent on it. It is computed as its Lagrangian dual: for a price lambda, each problem takes the
option (strategy, size) maximising accuracy - lambda * cost, which is always a vertex of the upper concave
hull of its options, so the envelope of several strategies (not concave in general) and majority voting's
falling curve on hard problems are handled too. Bisection finds the lambda that spends the budget; problems
indifferent at that price are upgraded in order of gain per cost until the remainder runs out. Decisions use
the curves on a grid of 1001 pass@1 values (p rounded to 0.001), so a bisection step costs a few grid-sized
array operations plus a gather per problem: 100,000 problems allocate in about 0.15 s on two cores
(benchmarks/plan_speed.py).

Prompts are paid by every option alike; the reward model's problem prefix (read once per problem) is the one
per-problem cost that differs between options, and is priced per problem exactly.

The baseline a plan is judged against is `uniform_at`: one strategy for every problem, at the plan's own spend.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from planner.cost import Pricing
from planner.errors import InputError
from planner.planning.plan import BatchPlan, Plan
from planner.planning.table import Options, StrategyTable
from planner.strategies import MAX_SIZE

UNITS = ("samples", "tokens", "flops")
GRID = 1000  # pass@1 resolution of allocation decisions: 1 / GRID
_TINY_PRICE, _HUGE_PRICE, _BISECTIONS = 1e-12, 1e6, 64


@dataclass(frozen=True)
class Budget:
    """A compute budget. In samples, one unit is the compute of one plain chain-of-thought sample of the policy
    (its tokens_per_sample), on top of each problem's prompt, and options are priced in FLOPs when the models'
    sizes are known: "4 samples" buys exactly majority-of-4 for every problem, and fewer samples of a strategy
    that also pays a reward model, the fewer the larger the reward model. In tokens, the amount counts every
    token alike (planner.cost's unit); in FLOPs, 2 x parameters per token of each model. `total` makes it the
    batch's budget instead of a per-problem average.
    """

    amount: float
    unit: str = "samples"
    total: bool = False

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(f"unknown budget unit '{self.unit}'; use one of {', '.join(UNITS)}", field="budget")
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount) \
                or amount <= 0:
            raise InputError(f"must be a positive number, got {amount!r}", field="budget")

    def pricing(self, table: StrategyTable) -> Pricing:
        """Tokens for a token budget, FLOPs for a FLOP budget, and for samples FLOPs when the sizes are known."""
        return table.pricing(None if self.unit == "samples" else self.unit)

    def batch_cost(self, table: StrategyTable, prompt: np.ndarray, pricing: Pricing) -> float:
        """The whole batch's budget in policy-token equivalents of `pricing`."""
        count = 1 if self.total else len(prompt)
        if self.unit == "samples":
            return float(prompt.sum() + self.amount * count * table.sample_tokens())
        return float(self.amount * count / self._per_policy_token(pricing))

    def extra_cost(self, table: StrategyTable, what: str, pricing: Pricing) -> float:
        """A per-problem bound on cost beyond the problem's own prompt (for floors and caps)."""
        if self.total:
            raise InputError(f"a {what} is per problem; it cannot be a total", field=what)
        if self.unit == "samples":
            return float(self.amount * table.sample_tokens())
        return float(self.amount / self._per_policy_token(pricing))

    def _per_policy_token(self, pricing: Pricing) -> float:
        return 2.0 * pricing.policy_params if self.unit == "flops" else 1.0


def check_pass_at_1(p: Iterable[float] | np.ndarray) -> np.ndarray:
    """Predicted pass@1 as a float array in [0, 1]; NaN or out-of-range values are named by index."""
    arr = np.asarray(p, dtype=float).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0))
    if bad.size:
        raise InputError(f"expected a number in [0, 1] for every problem; problem {int(bad[0])} has "
                         f"{arr[bad[0]]} ({bad.size} bad value(s) in all)", field="pass_at_1")
    return arr


def _prompts(prompt_tokens: float | Iterable[float] | None, n: int, table: StrategyTable) -> np.ndarray:
    if prompt_tokens is None:
        return np.full(n, float(table.cost.prompt_tokens))
    arr = np.asarray(prompt_tokens, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InputError(f"expected one prompt token count per problem ({n}), got {arr.shape}",
                         field="prompt_tokens")
    if not np.all(np.isfinite(arr) & (arr >= 0)):
        raise InputError("prompt token counts must be finite and non-negative", field="prompt_tokens")
    return arr


def _setup(pass_at_1: Iterable[float] | np.ndarray, table: StrategyTable, strategies: Iterable[str] | None,
           max_size: int, prompt_tokens: float | Iterable[float] | None,
           pricing: Pricing) -> tuple[np.ndarray, _Menu, np.ndarray]:
    p = check_pass_at_1(pass_at_1)
    if p.size == 0:
        raise InputError("no problems to plan", field="pass_at_1")
    names = None if strategies is None else tuple(strategies)
    return p, _menu(table, names, max_size, pricing), _prompts(prompt_tokens, p.size, table)


@functools.lru_cache(maxsize=32)
def _menu(table: StrategyTable, strategies: tuple[str, ...] | None, max_size: int, pricing: Pricing) -> _Menu:
    """Menus are pure functions of an (unchanging) table, so planning one problem at a time reuses them."""
    return _Menu(table, strategies, max_size, pricing)


class _Menu:
    """A table's options evaluated on the pass@1 grid: what allocation decisions are made on."""

    def __init__(self, table: StrategyTable, strategies: Iterable[str] | None, max_size: int,
                 pricing: Pricing) -> None:
        self.table, self.pricing = table, pricing
        self.options: Options = table.options(strategies, max_size, pricing.reward_weight)
        self.values = table.option_accuracy(self.options, np.linspace(0.0, 1.0, GRID + 1))
        self.best_prefix = {}
        for uses_prefix in (False, True):
            cols = np.flatnonzero(self.options.reward_prefix == uses_prefix)
            if cols.size:
                self.best_prefix[uses_prefix] = (cols, self.values[:, cols], _running_argmax(self.values[:, cols]))

    def bucket(self, p: np.ndarray) -> np.ndarray:
        return np.rint(p * GRID).astype(np.intp)

    def accuracy(self, p: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """Expected accuracy of each problem's chosen option, from the exact curves (not the grid)."""
        out = np.empty(len(p))
        opts = self.options
        for i, name in enumerate(opts.strategies):
            mine = opts.strategy[choice] == i
            if mine.any():
                out[mine] = self.table.curves[name].accuracy(p[mine], opts.size[choice[mine]])
        return out

    def batch_plan(self, label: str, p: np.ndarray, choice: np.ndarray, prompt: np.ndarray,
                   budget: float) -> BatchPlan:
        opts, table = self.options, self.table
        return BatchPlan(label, p, opts.strategies, opts.strategy[choice], opts.size[choice].astype(int),
                         self.accuracy(p, choice), prompt.copy(), opts.policy_unit[choice],
                         opts.reward_unit[choice] + opts.reward_prefix[choice] * prompt, budget, self.pricing,
                         table.beam_width)

    def spend(self, choice: np.ndarray, prompt: np.ndarray) -> np.ndarray:
        """Priced cost of each problem under `choice` (policy-token equivalents)."""
        return prompt * (1.0 + self.options.prefix_cost[choice]) + self.options.variable_cost[choice]


def allocate(pass_at_1: Iterable[float] | np.ndarray, table: StrategyTable, budget: Budget, *,
             floor: Budget | None = Budget(1), cap: Budget | None = None,
             strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE,
             prompt_tokens: float | Iterable[float] | None = None) -> BatchPlan:
    """Split `budget` over the batch where it buys the most expected accuracy.

    Every problem gets an option whose cost beyond its prompt lies within [floor, cap] (the default floor,
    one sample, guarantees every problem an answer).
    """
    pricing = budget.pricing(table)
    p, menu, prompt = _setup(pass_at_1, table, strategies, max_size, prompt_tokens, pricing)
    total = budget.batch_cost(table, prompt, pricing)
    allowed = _within(menu.options, table, floor, cap, pricing)
    chooser = _Chooser(menu, allowed, menu.bucket(p), prompt)
    cheapest = chooser.choose(_HUGE_PRICE)
    floor_cost = chooser.cost(cheapest).sum()
    if floor_cost > total * (1 + 1e-12):
        raise InputError(f"a budget of {_describe(pricing, total)} is below the floor: the cheapest allowed plan "
                         f"for these {p.size} problems costs {_describe(pricing, floor_cost)}", field="budget")
    richest = chooser.choose(_TINY_PRICE)
    if chooser.cost(richest).sum() <= total:
        return menu.batch_plan("allocated", p, richest, prompt, total)
    low, high = math.log(_TINY_PRICE), math.log(_HUGE_PRICE)  # spend > total at low, <= total at high
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2.0
        if chooser.cost(chooser.choose(math.exp(mid))).sum() > total:
            low = mid
        else:
            high = mid
    choice = chooser.fill(chooser.choose(math.exp(high)), chooser.choose(math.exp(low)), total)
    return menu.batch_plan("allocated", p, choice, prompt, total)


def _describe(pricing: Pricing, cost: float) -> str:
    return pricing.describe(cost * pricing.per_policy_token)


def _within(options: Options, table: StrategyTable, floor: Budget | None, cap: Budget | None,
            pricing: Pricing) -> np.ndarray:
    extra = options.variable_cost
    allowed = np.ones(len(options), dtype=bool)
    if floor is not None:
        allowed &= extra >= floor.extra_cost(table, "floor", pricing) * (1 - 1e-9)
    if cap is not None:
        allowed &= extra <= cap.extra_cost(table, "cap", pricing) * (1 + 1e-9)
    if not allowed.any():
        raise InputError("no strategy size costs between the floor and the cap; widen them", field="floor")
    return allowed


class _Chooser:
    """Each problem's best option at a price per unit of cost, and the fill-up that spends the remainder."""

    def __init__(self, menu: _Menu, allowed: np.ndarray, bucket: np.ndarray, prompt: np.ndarray) -> None:
        opts = menu.options
        self.menu, self.bucket, self.prompt = menu, bucket, prompt
        self.extra = opts.variable_cost
        self.weight = opts.reward_weight
        self.plain = np.flatnonzero(allowed & ~opts.reward_prefix)
        self.scored = np.flatnonzero(allowed & opts.reward_prefix)

    def _best(self, columns: np.ndarray, price: float) -> tuple[np.ndarray, np.ndarray]:
        if columns.size == 0:
            return np.full(GRID + 1, -np.inf), np.zeros(GRID + 1, dtype=np.intp)
        score = self.menu.values[:, columns] - price * self.extra[columns]
        best = np.argmax(score, axis=1)  # first maximum: the cheapest, as columns are sorted by cost
        return score[np.arange(GRID + 1), best], columns[best]

    def choose(self, price: float) -> np.ndarray:
        plain_value, plain_pick = self._best(self.plain, price)
        if self.scored.size == 0:
            return plain_pick[self.bucket]
        scored_value, scored_pick = self._best(self.scored, price)
        use_scored = scored_value[self.bucket] - price * self.weight * self.prompt > plain_value[self.bucket]
        return np.where(use_scored, scored_pick[self.bucket], plain_pick[self.bucket])

    def cost(self, choice: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Priced cost of each problem (or of problems `rows`) under `choice`."""
        return self.menu.spend(choice, self.prompt[rows])

    def fill(self, affordable: np.ndarray, richer: np.ndarray, total: float) -> np.ndarray:
        """Upgrade problems from `affordable` to `richer` by gain per cost while the budget lasts."""
        moved = np.flatnonzero(affordable != richer)
        if moved.size == 0:
            return affordable
        values = self.menu.values
        b = self.bucket[moved]
        gain = values[b, richer[moved]] - values[b, affordable[moved]]
        extra = self.cost(richer[moved], moved) - self.cost(affordable[moved], moved)
        order = np.argsort(-gain / np.maximum(extra, 1e-12), kind="stable")
        spare = total - self.cost(affordable).sum()
        take = order[np.cumsum(extra[order]) <= spare]
        choice = affordable.copy()
        choice[moved[take]] = richer[moved[take]]
        return choice


def _option_spend(menu: _Menu, prompt: np.ndarray) -> np.ndarray:
    """Each option's priced cost over the whole batch, were every problem given it."""
    opts = menu.options
    return prompt.sum() * (1.0 + opts.prefix_cost) + prompt.size * opts.variable_cost


def uniform(pass_at_1: Iterable[float] | np.ndarray, table: StrategyTable, budget: Budget, *,
            strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE,
            prompt_tokens: float | Iterable[float] | None = None) -> BatchPlan:
    """The baseline without a predictor: one strategy and size for every problem, the one with the best
    expected accuracy whose cost over the batch fits the budget."""
    pricing = budget.pricing(table)
    p, menu, prompt = _setup(pass_at_1, table, strategies, max_size, prompt_tokens, pricing)
    total = budget.batch_cost(table, prompt, pricing)
    spend = _option_spend(menu, prompt)
    fits = np.flatnonzero(spend <= total * (1 + 1e-12))
    if fits.size == 0:
        raise InputError(f"a budget of {_describe(pricing, total)} cannot give every problem even one sample "
                         f"({_describe(pricing, spend.min())})", field="budget")
    counts = np.bincount(menu.bucket(p), minlength=GRID + 1)
    mean = counts @ menu.values[:, fits] / p.size
    best = fits[int(np.argmax(mean))]
    name = menu.options.strategies[menu.options.strategy[best]]
    return menu.batch_plan(f"uniform ({name}@{int(menu.options.size[best])})", p, np.full(p.size, best), prompt,
                           total)


def uniform_at(plan: BatchPlan, table: StrategyTable, *, strategies: Iterable[str] | None = None,
               max_size: int = MAX_SIZE) -> BatchPlan:
    """The uniform baseline at exactly the plan's spend, so the two compare at equal compute.

    A strategy's batch accuracy against its batch spend, one point per size, is its curve; the baseline at the
    plan's spend is the best point on the curve's upper concave hull there: two neighbouring sizes, the larger
    given to a share of the problems chosen at random (per problem, the share-weighted mix of both). The
    strategy whose curve is highest at that spend wins. A strategy whose largest size spends less is taken at
    that size; one whose smallest size spends more is not eligible.
    """
    pricing, p, prompt = plan.pricing, plan.pass_at_1, plan.prompt_tokens
    p, menu, prompt = _setup(p, table, strategies, max_size, prompt, pricing)
    opts = menu.options
    target = float(plan.priced_cost.sum())
    spend = _option_spend(menu, prompt)
    counts = np.bincount(menu.bucket(p), minlength=GRID + 1)
    mean = counts @ menu.values / p.size
    best: tuple[float, int, int, float] | None = None  # accuracy, option below, option above, share above
    for i in range(len(opts.strategies)):
        cols = np.flatnonzero(opts.strategy == i)
        mix = _hull_at(spend[cols], mean[cols], target)
        if mix is not None and (best is None or mix[0] > best[0] + 1e-12):
            best = (mix[0], int(cols[mix[1]]), int(cols[mix[2]]), mix[3])
    if best is None:
        raise InputError(f"no uniform strategy spends as little as the plan ({_describe(pricing, target)})",
                         field="budget")
    _, low, high, share = best
    base = menu.batch_plan("", p, np.full(p.size, low), prompt, target)
    name, n_low, n_high = opts.strategies[opts.strategy[low]], int(opts.size[low]), int(opts.size[high])
    if share <= 1e-9 or low == high:
        base.label = f"uniform ({name}@{n_low})"
        return base
    top = menu.batch_plan("", p, np.full(p.size, high), prompt, target)
    for column in ("expected_accuracy", "generated_tokens", "reward_tokens"):
        setattr(base, column, (1.0 - share) * getattr(base, column) + share * getattr(top, column))
    base.label = f"uniform ({name}@{n_low}-{n_high})"
    base.note = (f"{name}@{n_high} on {share:.0%} of problems, @{n_low} on the rest: "
                 f"{(1 - share) * n_low + share * n_high:.2f} on average")
    return base


def _hull_at(spend: np.ndarray, accuracy: np.ndarray, target: float) -> tuple[float, int, int, float] | None:
    """The best mix of two points of (spend, accuracy) that spends `target`: (accuracy, lower point, upper point,
    share of the upper one). The last point when even it spends less; None when every point spends more."""
    order = np.argsort(spend, kind="stable")
    spend, accuracy = spend[order], accuracy[order]
    if spend[0] > target * (1 + 1e-9):
        return None
    below = np.flatnonzero(spend <= target * (1 + 1e-9))
    above = np.flatnonzero(spend > target * (1 + 1e-9))
    best = max(((accuracy[i], i, i, 0.0) for i in below), key=lambda t: t[0])
    for i in below:
        for j in above:
            share = (target - spend[i]) / (spend[j] - spend[i])
            value = (1.0 - share) * accuracy[i] + share * accuracy[j]
            if value > best[0] + 1e-12:
                best = (value, i, j, share)
    return best[0], int(order[best[1]]), int(order[best[2]]), best[3]


def plan_each(pass_at_1: Iterable[float] | np.ndarray, table: StrategyTable, budget: Budget, *,
              strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE,
              prompt_tokens: float | Iterable[float] | None = None) -> BatchPlan:
    """Plan every problem on its own: the option with the best expected accuracy within the per-problem
    `budget` (ties go to the cheaper option)."""
    if budget.total:
        raise InputError("a per-problem plan needs a per-problem budget, not a total", field="budget")
    pricing = budget.pricing(table)
    p, menu, prompt = _setup(pass_at_1, table, strategies, max_size, prompt_tokens, pricing)
    opts = menu.options
    amount = budget.extra_cost(table, "budget", pricing)
    spare = np.full(p.size, amount) if budget.unit == "samples" else amount - prompt  # tokens and FLOPs include it
    bucket = menu.bucket(p)
    choice = np.full(p.size, -1, dtype=np.intp)
    best_value = np.full(p.size, -np.inf)
    for uses_prefix, (cols, values, first) in menu.best_prefix.items():
        # Options are sorted by cost, so the affordable ones are a prefix of `cols`.
        limit = spare - opts.reward_weight * prompt if uses_prefix else spare
        count = np.searchsorted(opts.variable_cost[cols], limit * (1 + 1e-12), side="right")
        at = first[bucket, np.maximum(count - 1, 0)]
        value = np.where(count > 0, values[bucket, at], -np.inf)
        better = value > best_value + 1e-12
        choice = np.where(better, cols[at], choice)
        best_value = np.maximum(best_value, value)
    if (choice < 0).any():
        cheapest = opts.variable_cost.min()
        raise InputError(f"the per-problem budget does not cover one sample ({_describe(pricing, cheapest)} "
                         "beyond the prompt)", field="budget")
    return menu.batch_plan("per problem", p, choice, prompt, budget.batch_cost(table, prompt, pricing))


def _running_argmax(values: np.ndarray) -> np.ndarray:
    """For each row and each prefix of columns, the column of the prefix's first maximum."""
    out = np.zeros(values.shape, dtype=np.intp)
    best = np.zeros(values.shape[0], dtype=np.intp)
    rows = np.arange(values.shape[0])
    for j in range(1, values.shape[1]):
        best = np.where(values[:, j] > values[rows, best], j, best)
        out[:, j] = best
    return out


def plan_problem(pass_at_1: float, table: StrategyTable, budget: Budget, *,
                 strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE,
                 prompt_tokens: float | None = None) -> Plan:
    """The best strategy and size for one problem within a per-problem budget."""
    batch = plan_each([pass_at_1], table, budget, strategies=strategies, max_size=max_size,
                      prompt_tokens=None if prompt_tokens is None else [prompt_tokens])
    return batch[0]
