"""The strategy registry: every fact about a test-time strategy in one entry, read by the planner, the SGLang
programs, the batch runner, calibration and the report. Adding a strategy is one entry here and one program.

An entry says what the strategy needs (a reward model, and which kinds can drive it), how it generates (whole
independent samples, or step by step), which sizes the planner offers, where its SGLang program lives (a
"module:function" path, imported on first use, so planning never imports sglang), and its default accuracy
curves per policy-size class with the published finding each encodes (planner.planning.curves explains the
curve model). Sizes are N: samples, particles, or candidates per step (N / beam width beams or subtrees,
each expanded beam-width ways, for beam search and DVTS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from planner.errors import InputError
from planner.planning.curves import (
    HF_DVTS,
    LIU,
    MAJ_FIT,
    PURI,
    REPLAY,
    ROUGH,
    SIZE_CLASSES,
    SNELL,
    WEIGHTED,
    Curve,
    Default,
    default,
)

# Candidates kept per step (beam width M) in beam search and DVTS, as in huggingface/search-and-learn's default.
DEFAULT_BEAM_WIDTH = 4
SAMPLE_SIZES = tuple(range(1, 17)) + (20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)
MAX_SIZE = SAMPLE_SIZES[-1]
REWARD_DRIVEN = frozenset({"outcome", "process", "step_tag"})
STEP_SCORED = frozenset({"process", "step_tag"})  # outcome models score finished solutions only


@dataclass(frozen=True)
class Strategy:
    """One test-time strategy.

    needs_reward: it ranks branches with a reward model (a scorer); `reward_kinds` are the reward-model kinds
        that can drive it (outcome models score finished solutions only, so they drive no step-level search).
    step_level: it generates step by step and scores partial solutions (beam search, DVTS, particle filter);
        the others generate each solution in one request.
    independent_samples: every finished branch is a whole, unselected sample of the policy, so it is an
        unbiased pass@1 observation (outcome records, the report's calibration).
    min_size, max_size, beam_sized: the planner offers sizes from `min_size` to `max_size`, in multiples of the
        beam width when `beam_sized` (then `min_size` counts beams).
    planned: the planner's tables offer it (the adaptive program plans; it is not itself planned).
    plans: its program makes and records its own plan (the adaptive program) instead of being given one.
    needs_thinking: the planner offers it for long-thinking policies only (it reads the trace's own confidence,
        which separates right from wrong traces over thousands of thinking tokens).
    token_share: generated tokens per unit of size, as a share of one whole sample's (traces cut early and
        sampling stopped once settled generate less).
    curves: default accuracy curve per policy-size class, with its source.
    """

    name: str
    summary: str
    program: str
    needs_reward: bool = False
    reward_kinds: frozenset[str] = frozenset()
    step_level: bool = False
    independent_samples: bool = True
    min_size: int = 1
    max_size: int = MAX_SIZE
    beam_sized: bool = False
    planned: bool = True
    plans: bool = False
    needs_thinking: bool = False
    token_share: float = 1.0
    curves: Mapping[str, Default] = field(default_factory=dict)

    def sizes(self, beam_width: int = DEFAULT_BEAM_WIDTH) -> tuple[int, ...]:
        """The sizes the planner offers (majority of 2 with ties broken at random is exactly one sample, and
        DVTS with N = M is one beam search, so neither is offered)."""
        step = beam_width if self.beam_sized else 1
        smallest = self.min_size * step
        return tuple(n for n in SAMPLE_SIZES if smallest <= n <= self.max_size and n % step == 0)

    def driven_by(self, reward_kind: str | None) -> bool:
        """Whether a reward model of this kind (None: no reward model) lets the strategy run."""
        return not self.needs_reward or reward_kind in self.reward_kinds


def _per_class(source: str, **curves: Default) -> dict[str, Default]:
    missing = set(SIZE_CLASSES) - set(curves)
    if missing:
        raise ValueError(f"default curves missing for {sorted(missing)} ({source})")
    return curves


_ONE_SAMPLE = Default(Curve(gain=(0.0, 0.0, 0.0)), "one sample: A = p by definition")
_MAJORITY_7B = Curve(plurality=(1.473, 0.573), rate=(0.646, 0.057, 0.102))
_MAJORITY = _per_class(
    "majority",
    small=Default(Curve(plurality=(2.285, 2.078), rate=(0.869, 0.134, 0.196)),
                  MAJ_FIT + " for Qwen2.5-Math-1.5B-Instruct (RMSE 0.007)"),
    medium=Default(_MAJORITY_7B, MAJ_FIT + " for Qwen2.5-Math-7B-Instruct (RMSE 0.008)"),
    large=Default(_MAJORITY_7B, MAJ_FIT + " (the 7B fit; no measurement here for larger policies)"))
# DeepConf's accuracy at N: majority@N's curve as a floor (DeepConf@N matched or beat majority@N in most of Fu et
# al.'s settings, arXiv 2508.15260, Tables 1-2, and on the stand-in's thinking profile); its tokens: 0.65 of N
# whole traces, an assumption above the stand-in's measured 0.20-0.38 at N = 8-32 (0.39-0.61 without the price
# of programs/deepconf.py; DeepConf reports 43-85% fewer tokens at N = 512, where its consensus stop saves most).
# `tts-planner calibrate` measures both.
DEEPCONF_TOKEN_SHARE = 0.65
_DEEPCONF = {name: Default(d.curve, f"majority@N's curve as a floor for DeepConf@N: {d.source}")
             for name, d in _MAJORITY.items()}

REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("cot", "one chain of thought, whatever the budget", "sglang_plugin.programs.sampling:cot", max_size=1,
             curves=_per_class("cot", small=_ONE_SAMPLE, medium=_ONE_SAMPLE, large=_ONE_SAMPLE)),
    Strategy("majority", "self-consistency: the most frequent answer among N samples (arXiv 2203.11171)",
             "sglang_plugin.programs.sampling:majority", min_size=3, curves=_MAJORITY),
    Strategy("best_of_n", "the sample with the best reward-model score", "sglang_plugin.programs.sampling:best_of_n",
             needs_reward=True, reward_kinds=REWARD_DRIVEN, min_size=2, curves=_per_class(
                 "best_of_n",
                 small=default((0.35, 0.50, 0.55), (0.6, 0.8, 1.0), f"{LIU}. Easy gain from {REPLAY}. {ROUGH}"),
                 medium=default((0.35, 0.50, 0.60), (0.7, 0.9, 1.0), f"{LIU}. {ROUGH}"),
                 large=default((0.40, 0.55, 0.65), (0.9, 1.0, 1.1), f"{LIU}. {ROUGH}"))),
    Strategy("weighted_vote", "the answer whose equivalent samples have the largest summed reward",
             "sglang_plugin.programs.sampling:weighted_vote", needs_reward=True, reward_kinds=REWARD_DRIVEN,
             min_size=2, curves=_per_class(
                 "weighted_vote",
                 small=default((0.25, 0.55, 0.95), (0.6, 0.8, 1.0), WEIGHTED),
                 medium=default((0.25, 0.55, 0.95), (0.7, 0.9, 1.0), WEIGHTED),
                 large=default((0.25, 0.50, 0.90), (0.8, 0.9, 1.0), WEIGHTED))),
    Strategy("beam_search", "keep the M best partial solutions per step, expand each N/M ways",
             "sglang_plugin.programs.tree_search:beam_search", needs_reward=True, reward_kinds=STEP_SCORED,
             step_level=True, independent_samples=False, min_size=1, beam_sized=True, curves=_per_class(
                 "beam_search",
                 small=default((0.45, 0.55, 0.40), (1.8, 1.6, 1.3), f"{LIU}. {SNELL}. {ROUGH}"),
                 medium=default((0.45, 0.50, 0.40), (1.5, 1.2, 1.1), f"{LIU}. {SNELL}. {ROUGH}"),
                 large=default((0.35, 0.45, 0.40), (0.9, 0.9, 0.9), f"{LIU}. {SNELL}. {ROUGH}"))),
    Strategy("dvts", "N/M independent subtrees, each greedy on the reward model (diverse verifier tree search)",
             "sglang_plugin.programs.tree_search:dvts", needs_reward=True, reward_kinds=STEP_SCORED,
             step_level=True, independent_samples=False, min_size=2, beam_sized=True, curves=_per_class(
                 "dvts",
                 small=default((0.42, 0.62, 0.55), (1.2, 1.1, 1.0), f"{LIU}. {HF_DVTS}. {ROUGH}"),
                 medium=default((0.40, 0.60, 0.64), (1.2, 1.1, 1.1), f"{LIU}. {HF_DVTS}. {ROUGH}"),
                 large=default((0.35, 0.50, 0.55), (0.9, 0.9, 0.9), f"{LIU}. {HF_DVTS}. {ROUGH}"))),
    Strategy("particle_filter", "N particles weighted by step rewards and resampled (arXiv 2502.01618)",
             "sglang_plugin.programs.particle_filter:particle_filter", needs_reward=True,
             reward_kinds=STEP_SCORED, step_level=True, independent_samples=False, min_size=2, curves=_per_class(
                 "particle_filter",
                 small=default((0.50, 0.60, 0.52), (2.0, 1.8, 1.3), f"{PURI}. {ROUGH}"),
                 medium=default((0.45, 0.55, 0.58), (1.6, 1.3, 1.1), f"{PURI}. {ROUGH}"),
                 large=default((0.35, 0.50, 0.55), (0.9, 0.9, 0.9), f"{PURI}; {LIU}. {ROUGH}"))),
    Strategy("deepconf", "parallel traces cut early by their own low confidence, confidence-weighted vote "
             "(arXiv 2508.15260)", "sglang_plugin.programs.deepconf:deepconf", min_size=4, needs_thinking=True,
             token_share=DEEPCONF_TOKEN_SHARE, curves=_DEEPCONF),
    Strategy("adaptive", "predict, probe, update the belief, plan the rest, stop early",
             "sglang_plugin.programs.adaptive:adaptive", planned=False, plans=True),
)}


def strategy(name: str) -> Strategy:
    """The registry entry of a strategy name; an unknown name is an InputError listing the known ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown strategy {name!r}; known: {', '.join(REGISTRY)}", field="strategy") from None


def planned_strategies() -> tuple[str, ...]:
    """The strategies the planner's tables offer, in registry order."""
    return tuple(s.name for s in REGISTRY.values() if s.planned)


def sampling_strategies() -> tuple[str, ...]:
    """Planned strategies whose branches are whole independent samples (one request per solution)."""
    return tuple(s.name for s in REGISTRY.values() if s.planned and not s.step_level)
