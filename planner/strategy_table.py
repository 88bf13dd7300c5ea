"""Expected accuracy and cost of every test-time strategy, per policy, reward model and problem difficulty.

Curve model. For a problem whose pass@1 under the policy is p, strategy s run at size n (samples, beams or
particles) is expected to be right with probability

    A_s(p, n) = p + g_s(p) * (1 - p) * (1 - (1 - p) ** (eta_s(p) * (n - 1)))

- n = 1 gives p (one chain of thought); g = 1, eta = 1 gives pass@n = 1 - (1 - p) ** n, the accuracy of
  best-of-N under a perfect verifier. Every curve is therefore measured against that ceiling.
- g in [0, 1] is the share of the headroom 1 - p the strategy recovers as n grows (an imperfect reward
  model picks a wrong candidate some of the time; majority voting only converges to the right answer when it
  is the plurality). eta > 0 is the sample efficiency: search that prunes bad partial solutions early is
  worth more than eta = 1 independent samples per unit of size.
- For g in [0, 1] and eta > 0 the curve rises monotonically and is concave in n, so greedy allocation by
  marginal gain is optimal (planner.allocation relies on this), and A_s(p, 1) = p.
- g and eta are given at three anchors, the middle of each difficulty bin (hard 0.05, medium 0.30, easy 0.75),
  and interpolated linearly in p (constant beyond the end anchors), so curves are continuous in p. The
  per-bin table a user sees is the curve averaged over the bin's p.
- Majority voting has a wrong-answer model: wrong answers concentrate on a few values, so with many samples
  the vote converges to the plurality answer. If W, the share of the wrong mass taken by the most common
  wrong answer, follows Beta(a, b), the correct answer is the plurality with probability
  P(p > (1 - p) W) = I_{p / (1 - p)}(a, b), the majority curve's limit. Below p on hard problems, it makes
  majority the one curve that falls with n (measured: on MATH train, majority-of-8 is right less often than
  one sample when pass@1 < 0.3). The allocator works on each problem's upper concave hull of options, so a
  falling curve simply never gets more than one sample; every other curve rises and is concave.

Defaults and their sources are in DEFAULT_CURVES; a calibration file (see CALIBRATION_SCHEMA) measured on the
serving stack replaces them by fitting the same parameters to its points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.special import betainc

from planner.cost import Cost
from planner.difficulty import BINS, EASY_MIN, HARD_MAX, difficulty_bin, difficulty_bins
from planner.errors import InputError
from planner.policies import Policy, RewardModel
from planner.policies import policy as find_policy
from planner.policies import reward_model as find_reward_model

STRATEGIES = ("cot", "majority", "best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter")
REWARD_STRATEGIES = frozenset({"best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter"})
STEP_STRATEGIES = frozenset({"beam_search", "dvts", "particle_filter"})
# Outcome reward models are trained on finished solutions; scores of prefixes are out of their distribution,
# so step-level search needs a process (or step-tag) reward model.
KIND_STRATEGIES = {
    "outcome": frozenset({"best_of_n", "weighted_vote"}),
    "process": REWARD_STRATEGIES,
    "step_tag": REWARD_STRATEGIES,
}

ANCHORS = np.array([0.05, 0.30, 0.75])  # middle of the hard, medium and easy bins
BIN_RANGES = {"hard": (0.0, HARD_MAX), "medium": (HARD_MAX, EASY_MIN), "easy": (EASY_MIN, 1.0)}

# Candidates kept per step (beam width M) in beam search and DVTS, as in huggingface/search-and-learn's default.
BEAM_WIDTH = 4
SAMPLE_SIZES = tuple(range(1, 17)) + (20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)
MAX_SIZE = SAMPLE_SIZES[-1]


def _sizes(minimum: int, step: int = 1) -> tuple[int, ...]:
    return tuple(n for n in SAMPLE_SIZES if n >= minimum and n % step == 0)


# Majority of 2 with ties broken at random is exactly p, and DVTS with N = M is one beam search.
STRATEGY_SIZES = {
    "cot": (1,),
    "majority": _sizes(3),
    "best_of_n": _sizes(2),
    "weighted_vote": _sizes(2),
    "beam_search": _sizes(BEAM_WIDTH, BEAM_WIDTH),
    "dvts": _sizes(2 * BEAM_WIDTH, BEAM_WIDTH),
    "particle_filter": _sizes(2),
}


def check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}", field="strategy")
    return name


def size_class(policy: Policy) -> str:
    """The policy-size classes of arXiv 2502.06703's findings: under 5B, 5B to 50B, and larger."""
    if policy.params < 5e9:
        return "small"
    return "medium" if policy.params < 50e9 else "large"


@dataclass(frozen=True)
class Curve:
    """Accuracy against size for one strategy; `gain` and `rate` at the hard, medium and easy anchors."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rate: tuple[float, float, float] = (1.0, 1.0, 1.0)
    plurality: tuple[float, float] | None = None  # Beta(a, b) of the top wrong answer's share of wrong mass

    def __post_init__(self) -> None:
        if not all(0.0 <= g <= 1.0 for g in self.gain):
            raise ValueError(f"gain must lie in [0, 1], got {self.gain}")
        if not all(r > 0.0 for r in self.rate):
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.plurality is not None and not all(v > 0.0 for v in self.plurality):
            raise ValueError(f"plurality Beta parameters must be positive, got {self.plurality}")

    def limit(self, p: np.ndarray) -> np.ndarray:
        """The accuracy approached as n grows: p + g(p) (1 - p), or for voting the chance that the correct
        answer is the plurality (which is below p on hard problems: the vote then converges to a wrong answer)."""
        p = np.asarray(p, dtype=float)
        g = np.interp(p, ANCHORS, self.gain)
        if self.plurality is None:
            return p + g * (1.0 - p)
        ratio = np.divide(p, 1.0 - p, out=np.full_like(p, np.inf), where=p < 1.0)
        wins = betainc(self.plurality[0], self.plurality[1], np.clip(ratio, 0.0, 1.0))
        return p + g * (wins - p)

    def accuracy(self, p: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
        """A(p, n), broadcasting p against n."""
        p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
        n = np.asarray(n, dtype=float)
        eta = np.interp(p, ANCHORS, self.rate)
        miss = np.power(1.0 - p, eta * (n - 1.0))
        return p + (self.limit(p) - p) * (1.0 - miss)

    def free_parameters(self) -> np.ndarray:
        """What a calibration fits: gain (or the plurality model for voting) and log rate."""
        head = np.log(self.plurality) if self.plurality is not None else np.array(self.gain)
        return np.concatenate([head, np.log(self.rate)])

    def with_free_parameters(self, theta: np.ndarray) -> Curve:
        rate = tuple(float(v) for v in np.exp(theta[-3:]))
        if self.plurality is not None:
            return replace(self, plurality=tuple(float(v) for v in np.exp(theta[:2])), rate=rate)
        return replace(self, gain=tuple(float(v) for v in np.clip(theta[:3], 0.0, 1.0)), rate=rate)


@dataclass(frozen=True)
class Default:
    curve: Curve
    source: str


LIU = ("arXiv 2502.06703 (Liu et al., 'Can 1B LLM Surpass 405B LLM?'), text of its difficulty study: for "
       "small policies best-of-N wins on easy problems and beam search on harder ones; for 7B-32B policies "
       "DVTS wins on easy and medium, beam search on hard; for 72B, best-of-N wins at every difficulty")
SNELL = ("arXiv 2408.03314 (Snell et al.): beam search beats best-of-N on medium problems and at small "
         "budgets, and over-optimises easy problems, falling below best-of-N as the budget grows")
HF_DVTS = ("Hugging Face 'Scaling test-time compute with open models' blog / search-and-learn: DVTS beats "
           "beam search at large budgets on easy and medium problems, beam search wins at small budgets")
PURI = ("arXiv 2502.01618 (Puri et al.): particle filtering scales better than beam search and DVTS with the "
        "same PRM (Qwen2.5-Math-1.5B-Instruct passes GPT-4o's MATH-500 accuracy with 4 particles)")
ROUGH = ("Magnitudes are my own rough choice that reproduces the ordering quoted above at equal size; they "
         "are not fit to a figure. Replace them with a calibration file.")
REPLAY = ("best-of-8 with an outcome RM on shared/data/replay/math_cot_100.jsonl (92 easy problems) "
          "recovered 0.52 of the pass@1-to-1 headroom")
WEIGHTED = ("HF blog: weighted best-of-N beats plain best-of-N, more so at large N; on easy problems it "
            "converges like majority voting (majority and weighted voting were right on all 92 easy replay "
            "problems at n=8), on hard ones votes gather on wrong answers (MAJ_FIT data). " + ROUGH)
MAJ_FIT = ("fit by benchmarks/majority_curve_fit.py to measured majority-of-8 correctness against k=50 "
           "pass@1 on the MATH train split (shared/data/outcomes/math_success_rates.jsonl, T=0.7 columns)")


def _d(gain: tuple[float, float, float], rate: tuple[float, float, float], source: str) -> Default:
    return Default(Curve(gain=gain, rate=rate), source)


# (size class, strategy) -> default curve. Anchors are (hard, medium, easy). The papers' findings above are
# paraphrased from their text; the numbers encode them as orderings, not as read-off figures.
DEFAULT_CURVES: dict[tuple[str, str], Default] = {
    **{(c, "cot"): Default(Curve(gain=(0.0, 0.0, 0.0)), "one sample: A = p by definition") for c in
       ("small", "medium", "large")},
    ("small", "majority"): Default(Curve(plurality=(2.285, 2.078), rate=(0.869, 0.134, 0.196)),
                                   MAJ_FIT + " for Qwen2.5-Math-1.5B-Instruct (RMSE 0.007)"),
    ("medium", "majority"): Default(Curve(plurality=(1.473, 0.573), rate=(0.646, 0.057, 0.102)),
                                    MAJ_FIT + " for Qwen2.5-Math-7B-Instruct (RMSE 0.008)"),
    ("large", "majority"): Default(Curve(plurality=(1.473, 0.573), rate=(0.646, 0.057, 0.102)),
                                   MAJ_FIT + " (the 7B fit; no measurement here for larger policies)"),
    ("small", "best_of_n"): _d((0.35, 0.50, 0.55), (0.6, 0.8, 1.0), f"{LIU}. Easy gain from {REPLAY}. {ROUGH}"),
    ("medium", "best_of_n"): _d((0.35, 0.50, 0.60), (0.7, 0.9, 1.0), f"{LIU}. {ROUGH}"),
    ("large", "best_of_n"): _d((0.40, 0.55, 0.65), (0.9, 1.0, 1.1), f"{LIU}. {ROUGH}"),
    ("small", "weighted_vote"): _d((0.25, 0.55, 0.95), (0.6, 0.8, 1.0), WEIGHTED),
    ("medium", "weighted_vote"): _d((0.25, 0.55, 0.95), (0.7, 0.9, 1.0), WEIGHTED),
    ("large", "weighted_vote"): _d((0.25, 0.50, 0.90), (0.8, 0.9, 1.0), WEIGHTED),
    ("small", "beam_search"): _d((0.45, 0.55, 0.40), (1.8, 1.6, 1.3), f"{LIU}. {SNELL}. {ROUGH}"),
    ("medium", "beam_search"): _d((0.45, 0.50, 0.40), (1.5, 1.2, 1.1), f"{LIU}. {SNELL}. {ROUGH}"),
    ("large", "beam_search"): _d((0.35, 0.45, 0.40), (0.9, 0.9, 0.9), f"{LIU}. {SNELL}. {ROUGH}"),
    ("small", "dvts"): _d((0.42, 0.62, 0.55), (1.2, 1.1, 1.0), f"{LIU}. {HF_DVTS}. {ROUGH}"),
    ("medium", "dvts"): _d((0.40, 0.60, 0.64), (1.2, 1.1, 1.1), f"{LIU}. {HF_DVTS}. {ROUGH}"),
    ("large", "dvts"): _d((0.35, 0.50, 0.55), (0.9, 0.9, 0.9), f"{LIU}. {HF_DVTS}. {ROUGH}"),
    ("small", "particle_filter"): _d((0.50, 0.60, 0.52), (2.0, 1.8, 1.3), f"{PURI}. {ROUGH}"),
    ("medium", "particle_filter"): _d((0.45, 0.55, 0.58), (1.6, 1.3, 1.1), f"{PURI}. {ROUGH}"),
    ("large", "particle_filter"): _d((0.35, 0.50, 0.55), (0.9, 0.9, 0.9), f"{PURI}; {LIU}. {ROUGH}"),
}

# How well a reward model ranks candidates, as a factor on gain and rate of every strategy it drives. The
# ordering follows arXiv 2501.07301 (ProcessBench and best-of-8 comparisons: Qwen2.5-Math-PRM-7B well ahead
# of Math-Shepherd and the RLHFlow PRMs) and 2502.06703 (the PRM shifts the optimal strategy); the factors
# themselves are my choice. Qwen2.5-Math-RM-72B is the outcome model behind the replay file's scores.
RM_QUALITY = {
    "Qwen/Qwen2.5-Math-RM-72B": 1.0,
    "Qwen/Qwen2.5-Math-PRM-7B": 1.0,
    "peiyi9979/math-shepherd-mistral-7b-prm": 0.7,
    "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data": 0.75,
}
DEFAULT_RM_QUALITY = 0.8

# Mean "\n\n"-separated steps per solution: 7.4 measured on the replay file's 800 Qwen2.5-Math answers
# (mostly easy problems; harder ones run longer).
STEPS_PER_SOLUTION = 8.0
# Prompt (chat template + problem + instruction) when the caller gives no per-problem count; MATH problems
# run about 50-150 tokens, the template and instruction about 40.
PROMPT_TOKENS = 150.0
# Whether a reward server finds the already-scored part of a partial solution in its prefix cache when it
# re-scores it one step later: step-tag PRMs run on an ordinary SGLang server (radix cache); Qwen's PRM is
# served by vLLM as a pooling model, where this stack does not assume prefix caching.
RESCORE_CACHED = {"step_tag": True, "process": False, "outcome": False}


@dataclass(frozen=True)
class CostModel:
    """Expected tokens (planner.cost's unit) of each strategy, under stated assumptions.

    - Policy: the prompt is prefilled once (every sample or beam shares it through the radix cache), then
      each unit of size generates one solution of `tokens_per_sample` tokens. In beam search and DVTS each
      step expands N candidates, in the particle filter N particles, so a run of size N generates about N
      solutions' worth of tokens too.
    - Reward model: reads its problem prefix once (cached after), then each candidate once for best-of-N and
      weighted voting. Step-level search re-scores every partial solution after each of
      `steps_per_solution` steps; with a prefix-caching reward server only the new step is read (one
      solution per unit in total), without it the whole prefix is re-read: (steps + 1) / 2 solutions per unit.
    - Partial solutions re-sent to the policy at each search step are prefix-cache hits and cost nothing.
    - `unit_tokens` holds measured (policy, reward) tokens per unit of size from a calibration file.
    """

    tokens_per_sample: float
    prompt_tokens: float = PROMPT_TOKENS
    steps_per_solution: float = STEPS_PER_SOLUTION
    rescore_cached: bool = False
    reward_reads: bool = True
    unit_tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def per_unit(self, strategy: str) -> tuple[float, float]:
        """(policy, reward-model) tokens per unit of size, beyond the prompt."""
        if strategy in self.unit_tokens:
            return self.unit_tokens[strategy]
        generated = float(self.tokens_per_sample)
        if strategy not in REWARD_STRATEGIES or not self.reward_reads:
            return generated, 0.0
        if strategy in STEP_STRATEGIES and not self.rescore_cached:
            return generated, generated * (self.steps_per_solution + 1.0) / 2.0
        return generated, generated

    def uses_reward_prefix(self, strategy: str) -> bool:
        return strategy in REWARD_STRATEGIES and self.reward_reads

    def expected(self, strategy: str, size: int, prompt_tokens: float | None = None) -> Cost:
        """The expected Cost of one run; `.tokens` is the budget unit, `.flops()` converts it."""
        prompt = self.prompt_tokens if prompt_tokens is None else float(prompt_tokens)
        policy_unit, reward_unit = self.per_unit(strategy)
        steps = self.steps_per_solution if strategy in STEP_STRATEGIES else 1.0
        requests = int(round(size * steps))
        reward = size * reward_unit + (prompt if self.uses_reward_prefix(strategy) else 0.0)
        return Cost(prompt_tokens=prompt * requests, completion_tokens=size * policy_unit,
                    cached_tokens=prompt * (requests - 1), reward_tokens=reward, requests=requests)


@dataclass(frozen=True)
class Options:
    """Every (strategy, size) a table offers, flattened for vectorised planning, cheapest first."""

    strategies: tuple[str, ...]
    strategy: np.ndarray  # index into `strategies`
    size: np.ndarray
    policy_unit: np.ndarray  # policy tokens of the option beyond the prompt
    reward_unit: np.ndarray  # reward-model tokens beyond its problem prefix
    reward_prefix: np.ndarray  # bool: the reward model also reads the problem once

    @property
    def variable_tokens(self) -> np.ndarray:
        return self.policy_unit + self.reward_unit

    def __len__(self) -> int:
        return len(self.size)


class StrategyTable:
    """Curves and costs for one serving setup: a policy, optionally a reward model, optionally calibrated."""

    def __init__(self, policy: Policy, reward_model: RewardModel | None, curves: dict[str, Curve],
                 cost: CostModel, sources: dict[str, str] | None = None) -> None:
        for name in curves:
            check_strategy(name)
        if "cot" not in curves:
            raise ValueError("a strategy table needs the cot curve")
        self.policy, self.reward_model, self.curves, self.cost = policy, reward_model, dict(curves), cost
        self.sources = dict(sources or {})

    @classmethod
    def default(cls, policy: str | Policy, reward_model: str | RewardModel | None = None,
                calibration: Calibration | str | Path | None = None) -> StrategyTable:
        """The published-findings defaults for this policy and reward model, then the calibration's fits."""
        pol = policy if isinstance(policy, Policy) else find_policy(policy)
        rm = reward_model if isinstance(reward_model, RewardModel) or reward_model is None \
            else find_reward_model(reward_model)
        allowed = {"cot", "majority"} | (KIND_STRATEGIES[rm.kind] if rm else set())
        klass = size_class(pol)
        quality = RM_QUALITY.get(rm.name, DEFAULT_RM_QUALITY) if rm else 1.0
        curves, sources = {}, {}
        for name in STRATEGIES:
            if name not in allowed:
                continue
            default = DEFAULT_CURVES[(klass, name)]
            curve = default.curve
            if name in REWARD_STRATEGIES:
                curve = replace(curve, gain=tuple(g * quality for g in curve.gain),
                                rate=tuple(r * quality for r in curve.rate))
            curves[name] = curve
            sources[name] = f"default for {klass} policies, reward-model quality {quality}: {default.source}"
        cost = CostModel(tokens_per_sample=pol.tokens_per_sample,
                         rescore_cached=RESCORE_CACHED[rm.kind] if rm else False)
        table = cls(pol, rm, curves, cost, sources)
        if calibration is not None:
            table = table.calibrated(calibration if isinstance(calibration, Calibration)
                                     else load_calibration(calibration))
        return table

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(s for s in STRATEGIES if s in self.curves)

    def sizes(self, strategy: str) -> tuple[int, ...]:
        self._require(strategy)
        return STRATEGY_SIZES[strategy]

    def _require(self, strategy: str) -> None:
        check_strategy(strategy)
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

    def options(self, strategies: Iterable[str] | None = None, max_size: int = MAX_SIZE) -> Options:
        names = self.strategies if strategies is None else tuple(strategies)
        for name in names:
            self._require(name)
        rows = [(i, n, *self.cost.per_unit(s), self.cost.uses_reward_prefix(s))
                for i, s in enumerate(names) for n in STRATEGY_SIZES[s] if n <= max_size]
        if not rows:
            raise InputError(f"no strategy size up to {max_size} among {', '.join(names)}", field="strategies")
        idx, size, pol, rew, prefix = (np.array(col) for col in zip(*rows))
        order = np.lexsort((idx, size * (pol + rew)))
        return Options(names, idx[order], size[order].astype(float), (size * pol)[order].astype(float),
                       (size * rew)[order].astype(float), prefix[order].astype(bool))

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
                    if n in STRATEGY_SIZES[name]:
                        rows.append({"bin": bin_name, "strategy": name, "size": int(n),
                                     "accuracy": float(self.curves[name].accuracy(ps, n).mean()),
                                     "tokens": float(self.cost.expected(name, n).tokens)})
        return rows

    def best_by_bin(self, budgets: Sequence[float] = (1, 2, 4, 8, 16, 32, 64),
                    p: np.ndarray | None = None) -> list[dict]:
        """Per bin and per budget (in samples), the option with the best bin-mean accuracy that fits."""
        options = self.options()
        totals = options.variable_tokens + self.cost.prompt_tokens * (1 + options.reward_prefix)
        rows = []
        for bin_name in BINS:
            ps = _bin_points(bin_name, p)
            if ps.size == 0:
                continue
            mean_acc = self.option_accuracy(options, ps).mean(axis=0)
            for budget in budgets:
                limit = self.cost.prompt_tokens + budget * self.sample_tokens() + 1e-9
                fits = np.flatnonzero(totals <= limit)
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
        lines = [f"policy {self.policy.name} ({size_class(self.policy)}), reward model {served}",
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
            unit_tokens[name] = _fit_unit_tokens(cost, name, points, calibration.path)
            sources[name] = f"calibrated on {len(points)} point(s) from {calibration.path}"
        return StrategyTable(self.policy, self.reward_model, curves, replace(cost, unit_tokens=unit_tokens),
                             sources)


def _bin_points(bin_name: str, p: np.ndarray | None) -> np.ndarray:
    low, high = BIN_RANGES[bin_name]
    if p is None:
        return np.linspace(low, high, 41)[:-1] + (high - low) / 80.0
    p = np.asarray(p, dtype=float)
    return p[difficulty_bins(p) == bin_name]


# ---------------------------------------------------------------------------------------------- calibration

CALIBRATION_FORMAT = "tts-planner-calibration"
CALIBRATION_VERSION = 1
CALIBRATION_SCHEMA = """\
A calibration file is one JSON object:
{
  "format": "tts-planner-calibration",      required, exactly this
  "version": 1,                              required
  "policies": {                              optional, measured on the serving stack, per policy name
    "<policy>": {"tokens_per_sample": 612.0, "prompt_tokens": 140.0, "steps_per_solution": 9.1}
  },
  "points": [                                required, at least one
    {
      "policy": "Qwen/Qwen2.5-Math-1.5B-Instruct",   a known policy
      "reward_model": "Qwen/Qwen2.5-Math-PRM-7B",   null for cot and majority; required for the others
      "strategy": "beam_search",                     one of cot, majority, best_of_n, weighted_vote,
                                                     beam_search, dvts, particle_filter
      "bin": "medium",                               easy, medium or hard (by predicted pass@1)
      "size": 16,                                    N, beams or particles; 1 for cot
      "accuracy": 0.61,                              measured share of problems solved, in [0, 1]
      "tokens": 20512.0,                             mean planner.cost tokens per problem (> 0)
      "problems": 120,                               how many problems were measured
      "pass_at_1": [0.31, 0.12, ...]                 the predicted pass@1 of each of those problems
                                                     (all in the bin); or "mean_pass_at_1": 0.27
    }
  ]
}
Each (policy, reward_model, strategy, bin, size) appears at most once. The planner fits each strategy's
curve parameters (gain and rate at the three bin anchors; the wrong-answer model and rate for majority) to
the points of the serving policy and reward model, pulled gently towards the defaults where points are few,
and fits tokens per unit of size from "tokens"."""

_POINT_FIELDS = {"policy", "reward_model", "strategy", "bin", "size", "accuracy", "tokens", "problems",
                 "pass_at_1", "mean_pass_at_1"}
_POLICY_FIELDS = {"tokens_per_sample", "prompt_tokens", "steps_per_solution"}


@dataclass(frozen=True)
class CalibrationPoint:
    policy: str
    reward_model: str | None
    strategy: str
    bin: str
    size: int
    accuracy: float
    tokens: float
    problems: int
    pass_at_1: tuple[float, ...]


@dataclass(frozen=True)
class Calibration:
    path: str
    points: tuple[CalibrationPoint, ...]
    policies: dict[str, dict[str, float]]

    def points_for(self, policy: Policy, reward_model: RewardModel | None) -> list[CalibrationPoint]:
        rm_name = reward_model.name if reward_model else None
        return [pt for pt in self.points if pt.policy == policy.name
                and (pt.reward_model is None or pt.reward_model == rm_name)]


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file; every error names the file and the field."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read calibration file: {exc.strerror}", path=name) from exc
    except UnicodeDecodeError as exc:
        raise InputError("calibration file is not valid UTF-8", path=name) from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path=name, line=exc.lineno) from exc
    except ValueError as exc:
        raise InputError(str(exc), path=name) from exc
    return parse_calibration(data, name)


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def parse_calibration(data: object, path: str) -> Calibration:
    def fail(message: str, where: str | None) -> InputError:
        return InputError(message, path=path, field=where)

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}", None)
    if data.get("format") != CALIBRATION_FORMAT:
        raise fail(f"expected \"{CALIBRATION_FORMAT}\", got {json.dumps(data.get('format'))}", "format")
    if data.get("version") != CALIBRATION_VERSION:
        raise fail(f"version {json.dumps(data.get('version'))} is not supported (this planner reads "
                   f"version {CALIBRATION_VERSION})", "version")
    unknown = set(data) - {"format", "version", "policies", "points", "created", "notes"}
    if unknown:
        raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    policies = _parse_policies(data.get("policies", {}), fail)
    raw_points = data.get("points")
    if not isinstance(raw_points, list) or not raw_points:
        raise fail("expected a non-empty list of measured points", "points")
    points, seen = [], {}
    for i, raw in enumerate(raw_points):
        point = _parse_point(raw, f"points[{i}]", fail)
        key = (point.policy, point.reward_model, point.strategy, point.bin, point.size)
        if key in seen:
            raise fail(f"same policy, reward model, strategy, bin and size as points[{seen[key]}]", f"points[{i}]")
        seen[key] = i
        points.append(point)
    return Calibration(path, tuple(points), policies)


def _parse_policies(raw: object, fail) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict):
        raise fail("expected an object keyed by policy name", "policies")
    out = {}
    for name, values in raw.items():
        where = f"policies.{name}"
        try:
            canonical = find_policy(name).name
        except InputError as exc:
            raise fail(exc.reason, where) from exc
        if not isinstance(values, dict):
            raise fail("expected an object", where)
        unknown = set(values) - _POLICY_FIELDS
        if unknown:
            raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", where)
        out[canonical] = {key: _number(values, key, f"{where}.{key}", fail, low=0.0, strict=key != "prompt_tokens")
                          for key in values}
    return out


def _parse_point(raw: object, where: str, fail) -> CalibrationPoint:
    if not isinstance(raw, dict):
        raise fail(f"expected an object, got {type(raw).__name__}", where)
    unknown = set(raw) - _POINT_FIELDS
    if unknown:
        raise fail(f"unknown field(s): {', '.join(sorted(unknown))}", f"{where}.{sorted(unknown)[0]}")
    for key in ("policy", "strategy", "bin", "size", "accuracy", "tokens", "problems"):
        if key not in raw:
            raise fail("missing", f"{where}.{key}")
    policy_name = _text(raw, "policy", where, fail)
    try:
        policy_name = find_policy(policy_name).name
    except InputError as exc:
        raise fail(exc.reason, f"{where}.policy") from exc
    strategy = _text(raw, "strategy", where, fail)
    if strategy not in STRATEGIES:
        raise fail(f"unknown strategy '{strategy}'; known: {', '.join(STRATEGIES)}", f"{where}.strategy")
    rm_name = _reward_model_of(raw, strategy, where, fail)
    bin_name = _text(raw, "bin", where, fail)
    if bin_name not in BINS:
        raise fail(f"unknown bin '{bin_name}'; known: {', '.join(BINS)}", f"{where}.bin")
    size = _integer(raw, "size", where, fail)
    if strategy == "cot" and size != 1:
        raise fail(f"cot is one sample; got size {size}", f"{where}.size")
    problems = _integer(raw, "problems", where, fail)
    p = _pass_at_1(raw, bin_name, problems, where, fail)
    return CalibrationPoint(policy_name, rm_name, strategy, bin_name, size,
                            _number(raw, "accuracy", f"{where}.accuracy", fail, low=0.0, high=1.0),
                            _number(raw, "tokens", f"{where}.tokens", fail, low=0.0, strict=True), problems, p)


def _reward_model_of(raw: dict, strategy: str, where: str, fail) -> str | None:
    value = raw.get("reward_model")
    if strategy not in REWARD_STRATEGIES:
        if value is not None:
            raise fail(f"{strategy} uses no reward model; expected null", f"{where}.reward_model")
        return None
    if not isinstance(value, str):
        raise fail(f"{strategy} needs the reward model it was measured with", f"{where}.reward_model")
    try:
        rm = find_reward_model(value)
    except InputError as exc:
        raise fail(exc.reason, f"{where}.reward_model") from exc
    if strategy not in KIND_STRATEGIES[rm.kind]:
        raise fail(f"{rm.kind} reward model {rm.name} cannot drive {strategy}", f"{where}.reward_model")
    return rm.name


def _pass_at_1(raw: dict, bin_name: str, problems: int, where: str, fail) -> tuple[float, ...]:
    if "pass_at_1" in raw:
        values = raw["pass_at_1"]
        if not isinstance(values, list) or len(values) != problems:
            raise fail(f"expected a list of {problems} numbers (one per problem)", f"{where}.pass_at_1")
        p = tuple(_number(values, i, f"{where}.pass_at_1[{i}]", fail, low=0.0, high=1.0)
                  for i in range(len(values)))
        field_name = "pass_at_1"
    elif "mean_pass_at_1" in raw:
        p = (_number(raw, "mean_pass_at_1", f"{where}.mean_pass_at_1", fail, low=0.0, high=1.0),)
        field_name = "mean_pass_at_1"
    else:
        raise fail("missing; give pass_at_1 (per problem) or mean_pass_at_1", f"{where}.pass_at_1")
    for i, v in enumerate(p):
        if difficulty_bin(v) != bin_name:
            at = f"{where}.{field_name}" + (f"[{i}]" if field_name == "pass_at_1" else "")
            raise fail(f"{v} is in the {difficulty_bin(v)} bin, not {bin_name}", at)
    return p


def _text(raw: dict, key: str, where: str, fail) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(f"expected a non-empty string, got {json.dumps(value)[:40]}", f"{where}.{key}")
    return value


def _integer(raw: dict, key: str, where: str, fail) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"expected a positive integer, got {json.dumps(value)[:40]}", f"{where}.{key}")
    return value


def _number(raw, key, where: str, fail, *, low: float = -math.inf, high: float = math.inf,
            strict: bool = False) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"expected a number, got {json.dumps(value)[:40]}", where)
    if value < low or value > high or (strict and value <= low):
        bound = f"above {low}" if strict and high == math.inf else f"in [{low}, {high}]"
        raise fail(f"{value} is not {bound}", where)
    return float(value)


# Pull towards the defaults, in residual units per unit of parameter (gain, or log of rate and of the
# wrong-answer Beta), against data residuals of sqrt(problems) x accuracy error: an error of 0.01 on a point
# of 40 problems weighs about as much as moving a parameter by 1. Parameters the points do not identify (an
# anchor far from every measured bin) stay near their defaults.
PRIOR_WEIGHT = 0.05


def fit_curve(curve: Curve, points: Sequence[CalibrationPoint], prior_weight: float = PRIOR_WEIGHT) -> Curve:
    """Least-squares fit of a curve's free parameters to measured bin accuracies, regularised to `curve`.

    Points weigh by the square root of their problem count (the inverse of a binomial standard error, up to
    the accuracy's own spread). Several starting rates guard against the flat regions of the rate.
    """
    theta0 = curve.free_parameters()
    weights = np.sqrt([pt.problems for pt in points])
    targets = np.array([pt.accuracy for pt in points])
    ps = [np.array(pt.pass_at_1) for pt in points]
    sizes = [pt.size for pt in points]

    def residuals(theta: np.ndarray) -> np.ndarray:
        fitted = curve.with_free_parameters(theta)
        predicted = np.array([fitted.accuracy(p, n).mean() for p, n in zip(ps, sizes)])
        return np.concatenate([weights * (predicted - targets), prior_weight * (theta - theta0)])

    head = 2 if curve.plurality is not None else 3
    head_low, head_high = (-5.0, 5.0) if curve.plurality is not None else (0.0, 1.0)
    low = np.array([head_low] * head + [math.log(0.02)] * 3)
    high = np.array([head_high] * head + [math.log(50.0)] * 3)
    best = None
    for shift in (0.0, math.log(0.2), math.log(3.0)):
        start = theta0 + np.r_[np.zeros(head), np.full(3, shift)]
        result = least_squares(residuals, np.clip(start, low + 1e-9, high - 1e-9), bounds=(low, high))
        if best is None or result.cost < best.cost:
            best = result
    return curve.with_free_parameters(best.x)


def _fit_unit_tokens(cost: CostModel, strategy: str, points: Sequence[CalibrationPoint],
                     path: str) -> tuple[float, float]:
    """Measured tokens per unit of size, split between policy and reward model as the default model does."""
    fixed = cost.prompt_tokens * (2.0 if cost.uses_reward_prefix(strategy) else 1.0)
    sizes = np.array([pt.size for pt in points], dtype=float)
    extra = np.array([pt.tokens for pt in points]) - fixed
    unit = float(sizes @ extra / (sizes @ sizes))
    if unit <= 0:
        raise InputError(f"the {strategy} points' tokens are below the prompt cost ({fixed:.0f}); "
                         "tokens must count generated, uncached prompt and reward-model tokens",
                         path=path, field="points")
    policy_unit, reward_unit = cost.per_unit(strategy)
    share = policy_unit / (policy_unit + reward_unit)
    return unit * share, unit * (1.0 - share)
