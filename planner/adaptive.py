"""The adaptive policy: its settings and the rules it follows between rounds, apart from how samples are drawn.

1. Predict: the difficulty predictor gives pass@1 p0 from the text alone.
2. Probe: `probe_size` independent samples, unscored.
3. Believe: planner.belief.posterior updates Beta(s p0, s (1 - p0)) with which answers agree and how they were
   scored: P(each answer is correct) and the posterior of pass@1.
4. Value (`options`): what each way to go on is expected to add to the accuracy of answering with the most
   probable answer, read from that vote state (planner.belief.value): k more samples for k = round_size,
   2 round_size, 4 round_size... up to the cap; with a reward model whose scores are evidence, the same scored,
   or scoring samples already drawn; with a step-level reward model, a tree search (valued by the strategy
   table's curve averaged over the posterior).
5. Price: every option costs compute in units of one plain sample of the policy on this problem (as the probe
   measured it). A reward model's token costs reward_weight policy tokens (planner.cost.Pricing: its parameters
   over the policy's when both sizes are known, so a 72B reward model's read of a sample costs about 50
   samples of a 1.5B policy; one when pricing in tokens). The per-problem cap (spread x budget units) bounds
   everything, reward reads included, so "samples per problem" never hides reward-model compute.
6. Decide (`decide`): stop when the favoured answer's probability reaches `settle_confidence` ("settled") or
   the caller's target ("confident"), when a whole round failed ("failed"), when not even one more sample fits
   under the cap ("cap"), or when no option's expected gain exceeds its cost at the price min_gain / sqrt(budget)
   accuracy per sample ("hopeless" if the posterior says hard, else "enough"). A larger budget buys smaller
   gains, but the price falls only with the square root of the budget: the belief's smallest predicted gains
   are its least reliable (on MATH train, gains under about 0.25 points per sample were not realised), so
   whatever the budget allows, a problem stops once more samples buy nothing. Otherwise take the option of
   largest expected gain minus price times cost: draw `round_size` more (scored or not), score, or run the
   search once ("searched"); then go back to 3.

With a target confidence only the target and the cap stop it, and rounds take the option of best gain per
cost. sglang_plugin.programs.adaptive draws the samples and runs these rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from planner.belief.evidence import ConfidenceEvidence, RewardEvidence
from planner.belief.posterior import PRIOR_STRENGTH, WRONG_ANSWER_CONCENTRATION, BetaPrior, Posterior
from planner.belief.value import SimulatedEvidence, VoteState, sampling_gains, scoring_gain
from planner.cost import Pricing
from planner.errors import InputError
from planner.planning.table import StrategyTable
from planner.policies import RewardModel
from planner.strategies import REGISTRY

SELECTIONS = ("posterior", "plan")
EVIDENCE = ("auto", "none")
PRICING = ("auto", "flops", "tokens")
QWEN_ORM = "Qwen/Qwen2.5-Math-RM-72B"
MAX_HORIZON = 64


@dataclass(frozen=True)
class AdaptiveConfig:
    """Settings of adaptive solving (one home for them; `tts-planner run --planner-option KEY=VALUE` sets them).

    prior_strength, alpha: the belief's prior strength in samples and the wrong answers' concentration.
    probe_size, round_size: samples in the probe and in each later round. One at a time spends least (each
        decision sees every sample before the next is bought); larger rounds take fewer sequential requests.
    spread: the per-problem cap is ceil(spread x budget) samples' compute (reward-model reads included) unless
        the caller gives max_budget, so a problem left unsettled can take more than the average its settled
        neighbours leave unspent.
    settle_confidence: stop once the favoured answer is this likely to be right.
    min_gain: more compute is bought only while it is expected to add at least min_gain / sqrt(budget)
        accuracy per sample's compute.
    pricing: how reward-model reads are weighed against policy samples: "auto" (FLOPs when both models' sizes
        are known, else tokens), "flops" or "tokens" (every token alike).
    selection: the final answer: "posterior" (the most probable one) or "plan" (the planned strategy's rule).
    reward_evidence: "auto" (Qwen2.5-Math-RM-72B's fitted evidence when that model scores; without a reward
        model, a long-thinking policy's own trace confidence, planner.belief.evidence.ConfidenceEvidence, taken
        to separate right from wrong traces with `confidence_auroc`; agreement only otherwise) or "none"
        (answers' agreement only).
    """

    prior_strength: float = PRIOR_STRENGTH
    alpha: float = WRONG_ANSWER_CONCENTRATION
    probe_size: int = 1
    round_size: int = 1
    spread: float = 2.0
    settle_confidence: float = 0.99
    min_gain: float = 0.01
    selection: str = "posterior"
    reward_evidence: str = "auto"
    confidence_auroc: float = 0.7
    pricing: str = "auto"

    def __post_init__(self) -> None:
        for name in ("probe_size", "round_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        for name in ("spread", "settle_confidence", "min_gain", "prior_strength", "alpha", "confidence_auroc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"must be a number, got {value!r}", field=name)
        if self.spread < 1:
            raise InputError(f"must be >= 1, got {self.spread!r}", field="spread")
        if not 0 < self.settle_confidence < 1:
            raise InputError(f"must be in (0, 1), got {self.settle_confidence!r}", field="settle_confidence")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"must be in [0, 1), got {self.min_gain!r}", field="min_gain")
        if self.selection not in SELECTIONS:
            raise InputError(f"must be one of {', '.join(SELECTIONS)}, got {self.selection!r}", field="selection")
        if self.reward_evidence not in EVIDENCE:
            raise InputError(f"must be one of {', '.join(EVIDENCE)}, got {self.reward_evidence!r}",
                             field="reward_evidence")
        if self.pricing not in PRICING:
            raise InputError(f"must be one of {', '.join(PRICING)}, got {self.pricing!r}", field="pricing")
        BetaPrior(0.5, self.prior_strength)  # validates the strength
        ConfidenceEvidence.from_auroc(self.confidence_auroc)
        if not self.alpha > 0:
            raise InputError(f"must be > 0, got {self.alpha!r}", field="alpha")

    @classmethod
    def from_options(cls, options: dict) -> AdaptiveConfig:
        """From KEY=VALUE options; an unknown key is an InputError naming it and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown planner option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                             field="planner_options")
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)

    def cap(self, budget: int, max_budget: int | None) -> int:
        """Most compute one problem may take, in samples of the policy."""
        check_budget(budget, "budget")
        if max_budget is not None:
            check_budget(max_budget, "max_budget")
            return max_budget
        return max(1, math.ceil(self.spread * budget))

    def prior(self, pass_at_1: float) -> BetaPrior:
        return BetaPrior(pass_at_1, self.prior_strength)

    def price(self, budget: int) -> float:
        """Accuracy one sample's compute must be expected to buy: min_gain / sqrt(budget)."""
        return self.min_gain / math.sqrt(check_budget(budget, "budget"))

    def pricing_for(self, table: StrategyTable) -> Pricing:
        """How a reward token weighs against a policy token (an InputError for FLOPs of an unknown size)."""
        return table.pricing(None if self.pricing == "auto" else self.pricing)

    def confidence_for(self, scored: bool, thinking: bool) -> ConfidenceEvidence | None:
        """Trace confidence as evidence: under "auto", for a long-thinking policy without a reward model."""
        if self.reward_evidence == "auto" and thinking and not scored:
            return ConfidenceEvidence.from_auroc(self.confidence_auroc)
        return None

    def evidence_for(self, reward_model: RewardModel | None) -> RewardEvidence | None:
        """How reward scores count as evidence: under "auto", the replay fit for the reward model it was fitted
        to (Qwen2.5-Math-RM-72B), agreement only for others (fit yours with RewardEvidence.fit)."""
        if self.reward_evidence == "auto" and reward_model is not None and reward_model.name == QWEN_ORM:
            return RewardEvidence.qwen_orm()
        return None


MAX_SAMPLES = 4096  # samples per problem: far beyond any useful budget, and still a bounded amount of work


def check_budget_tokens(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise InputError(f"must be a number of tokens of at least 1, got {value!r}", field="budget_tokens")
    return float(value)


def budget_from_tokens(budget_tokens: float, sample_tokens: float) -> int:
    """A budget in generated tokens as samples of this problem: the tokens over what one of its samples generated
    on average so far, at least one and at most MAX_SAMPLES. Long-thinking policies are budgeted this way, so a
    problem whose traces run long gets fewer of them."""
    return int(min(max(1, round(budget_tokens / max(sample_tokens, 1.0))), MAX_SAMPLES))


def check_budget(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer, got {value!r}", field=name)
    return value


def check_target(target_confidence: float | None) -> None:
    if target_confidence is None:
        return
    if isinstance(target_confidence, bool) or not isinstance(target_confidence, (int, float)) \
            or not 0 < target_confidence < 1:
        raise InputError(f"must be a number in (0, 1), got {target_confidence!r}", field="target_confidence")


def simulated(evidence: RewardEvidence | ConfidenceEvidence | None) -> SimulatedEvidence | None:
    """The evidence's log likelihood ratios as the value simulation draws them (binormal, same separation)."""
    return None if evidence is None else SimulatedEvidence(evidence.separation, evidence.clip)


@dataclass(frozen=True)
class Prices:
    """What each action costs on one problem, in samples' compute (one plain sample of the policy is 1).

    score: one reward-model read of a sample (None: scores are no evidence, so scoring buys nothing).
    search: per unit of size of each step-level search the table offers (empty when none may run).
    """

    score: float | None = None
    search: dict[str, float] | None = None


@dataclass(frozen=True)
class Option:
    """One way to go on. action: "sample" (draw `size` more), "sample_scored" (draw and score them), "score"
    (score `size` samples already drawn, those of `groups`), or a step-level search of size `size`. cost is in
    samples' compute; gain the expected accuracy it adds to answering with the most probable answer."""

    action: str
    size: int
    cost: float
    gain: float
    groups: tuple[int, ...] = ()

    @property
    def search(self) -> bool:
        return self.action in REGISTRY and REGISTRY[self.action].step_level

    @property
    def scores(self) -> bool:
        return self.action in ("sample_scored", "score")

    @property
    def draws(self) -> int:
        """Samples it draws."""
        return self.size if self.action in ("sample", "sample_scored") else 0


def horizons(round_size: int, room: int) -> list[int]:
    """Sample counts to value: round_size, doubling, and everything the room allows, up to MAX_HORIZON (what
    more than that could add is not worth simulating: by then the next round decides again)."""
    room = min(room, MAX_HORIZON)
    out, m = [], round_size
    while m < room:
        out.append(m)
        m *= 2
    return out + [room] if room >= 1 else out


def worth_sampling(gains: Sequence[float], price: float) -> bool:
    """Whether some number m of further samples, up to len(gains) (gains[m - 1]: the accuracy m are expected to
    add, planner.belief.value.sampling_gains), adds more than `price` per sample, at the horizons the adaptive
    rules value."""
    return any(gains[m - 1] - price * m > 0 for m in horizons(1, len(gains)))


def options(state: VoteState, posterior: Posterior, room: float, round_size: int, prices: Prices,
            table: StrategyTable, evidence: SimulatedEvidence | None, free: SimulatedEvidence | None) -> list[Option]:
    """Every affordable way to go on, with `room` samples' compute left under the cap. `evidence` is how reward
    scores would count (None: not at all); `free` the evidence every new sample carries at no cost (a
    long-thinking policy's trace confidence)."""
    out: list[Option] = []
    plain = math.floor(room + 1e-9)
    if plain >= 1:
        sizes = horizons(round_size, plain)
        out += [Option("sample", m, float(m), float(g)) for m, g in zip(sizes, sampling_gains(state, sizes, free))]
    if evidence is not None and prices.score is not None:
        each = 1.0 + prices.score
        affordable = math.floor(room / each + 1e-9)
        if affordable >= 1:
            sizes = horizons(round_size, affordable)
            gains = sampling_gains(state, sizes, evidence)
            out += [Option("sample_scored", m, m * each, float(g)) for m, g in zip(sizes, gains)]
        out += _scoring(state, posterior, room, prices.score, evidence)
    for name, per_unit in (prices.search or {}).items():
        now = state.accuracy()
        for n in table.sizes(name):
            if n * per_unit <= room + 1e-9:
                value = float(posterior.expect(lambda p, name=name, n=n: table.accuracy(name, p, n)))
                out.append(Option(name, n, n * per_unit, value - now))
    return out


def _scoring(state: VoteState, posterior: Posterior, room: float, price: float,
             evidence: SimulatedEvidence) -> list[Option]:
    """Scoring the unscored samples of the two most probable groups, and of every group."""
    ranked = sorted(range(len(state.sizes)), key=lambda j: (-posterior.probability(j), j))
    out = []
    for groups in {tuple(sorted(ranked[:2])), tuple(sorted(ranked))}:
        count = sum(state.unscored[j] for j in groups)
        if count and count * price <= room + 1e-9:
            chosen = [state.unscored[j] if j in groups else 0 for j in range(len(state.sizes))]
            out.append(Option("score", count, count * price, scoring_gain(state, chosen, evidence), groups))
    return sorted(out, key=lambda o: (o.cost, o.groups))


def decide(config: AdaptiveConfig, budget: int, choices: Sequence[Option], confidence: float | None,
           fresh_failed: bool, posterior: Posterior, target_confidence: float | None) -> tuple[str | None, Option | None]:
    """(why to stop now, or None to go on; the option to take next, None when stopping)."""
    stop_at = config.settle_confidence if target_confidence is None else target_confidence
    if confidence is not None and confidence >= stop_at:
        return ("settled" if target_confidence is None else "confident"), None
    if fresh_failed:
        return "failed", None
    if not choices:
        return "cap", None
    if target_confidence is not None:
        return None, max(choices, key=lambda o: (o.gain / o.cost, o.action == "sample", -o.cost))
    price = config.price(budget)
    best = max(choices, key=lambda o: (o.gain - price * o.cost, -o.cost))
    if best.gain - price * best.cost <= 0:
        return ("hopeless" if posterior.difficulty == "hard" else "enough"), None
    return None, best
