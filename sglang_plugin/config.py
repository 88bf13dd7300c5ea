"""The one config object for running a strategy, in sections that each have one home:

- `SamplingConfig`: the prompt and how each sample is drawn (temperature, caps);
- `SearchConfig`: how step-level search and selection work (steps, beam width, particle filter, aggregation);
- `GradingConfig` (planner.grading): how answers are compared (time limits, worker processes).

HTTP and transport settings belong to the endpoint and the scorers (sglang_plugin.transport.TransportConfig),
the adaptive policy's to planner.adaptive.AdaptiveConfig. `budget` (the size N) is not here: it is what the
planner varies per problem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from planner.errors import InputError
from planner.grading.config import GradingConfig
from planner.records import DEEPCONF_MODES
from planner.strategies import DEFAULT_BEAM_WIDTH

# The instruction the outcome labels in shared/data were sampled with (see its README).
DEFAULT_INSTRUCTION = " Let's think step by step and output the final answer within \\boxed{}."
# The temperature the shipped predictor's labels were measured at (k=50, T=0.6): sampling at another
# temperature changes pass@1, so the prior would be off.
DEFAULT_TEMPERATURE = 0.6
AGGREGATIONS = ("last", "min", "prod", "mean")
PF_SELECTIONS = ("weighted_vote", "max_weight")
CONFIDENCE_TRANSPORTS = ("auto", "stream", "segments")
DEEPCONF_KEEP = {"online": 0.1, "offline": 0.9}  # DeepConf-low online, DeepConf-high offline


@dataclass(frozen=True)
class SamplingConfig:
    """The prompt (user turn = problem + instruction inside the policy's chat template) and one sample's draw."""

    instruction: str = DEFAULT_INSTRUCTION
    system_prompt: str | None = None  # None: the chat template's default system prompt
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 1.0
    max_tokens: int | None = None  # generated tokens per sample (per branch in a search); None: the policy's cap

    def __post_init__(self) -> None:
        _number(self, "temperature", low=0.0)
        _number(self, "top_p", low=0.0, strict=True, high=1.0)
        if self.max_tokens is not None:
            _positive_int(self, "max_tokens")
        if not isinstance(self.instruction, str):
            raise InputError(f"must be text, got {self.instruction!r}", field="instruction")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise InputError(f"must be text or null, got {self.system_prompt!r}", field="system_prompt")


@dataclass(frozen=True)
class SearchConfig:
    """Step-level search and selection."""

    step_delimiter: str = "\n\n"
    max_step_tokens: int = 512
    max_steps: int = 40
    beam_width: int = DEFAULT_BEAM_WIDTH  # M: beams kept by beam_search; candidates per DVTS subtree
    aggregation: str = "last"  # how step scores become one trajectory score
    pf_temperature: float = 1.0  # T in softmax(logit(reward) / T)
    pf_ess_threshold: float = 0.5  # resample when ESS < threshold * particles
    pf_selection: str = "weighted_vote"
    # The program's own randomness (particle resampling) and, on a deterministic server, each branch's sampling_seed.
    seed: int = 0
    # Confidence filtering (DeepConf, planner.confidence): window and top-k of the token confidence, online
    # (warm-up traces set a stop threshold) or offline (filter finished traces), the share of traces kept
    # (None: 0.1 online, DeepConf-low as in DeepConf's online reference code; 0.9 offline, DeepConf-high),
    # warm-up traces (None: an eighth of N, at least 2), the weighted-vote share at which sampling stops
    # (None: never before N traces, as DeepConf's online reference code), and the accuracy the traces to come
    # must be expected to add for sampling to go on (programs/deepconf.py; None: only the vote stops it).
    confidence_window: int = 2048
    confidence_top_k: int = 20
    # How a trace with its confidence is generated: "stream" (one streamed request, read as it arrives, chunks
    # of `confidence_stream_interval` tokens), "segments" (requests of `confidence_segment_tokens` tokens, each
    # continuing the text, checked between them: linear in the trace's length on servers that re-send every
    # logprob in every chunk, SGLang's default) or "auto" (stream when the server streams incrementally).
    confidence_transport: str = "auto"
    confidence_stream_interval: int = 32
    confidence_segment_tokens: int = 1024
    deepconf_mode: str = "online"
    deepconf_keep: float | None = None
    deepconf_warmup: int | None = None
    deepconf_consensus: float | None = 0.95
    deepconf_min_gain: float | None = 0.03

    @property
    def keep_share(self) -> float:
        """The share of traces DeepConf keeps in this mode."""
        if self.deepconf_keep is not None:
            return self.deepconf_keep
        return DEEPCONF_KEEP[self.deepconf_mode]

    def __post_init__(self) -> None:
        for name in ("max_step_tokens", "max_steps", "beam_width", "confidence_window", "confidence_top_k",
                     "confidence_stream_interval", "confidence_segment_tokens"):
            _positive_int(self, name)
        if self.deepconf_warmup is not None:
            _positive_int(self, "deepconf_warmup")
        if self.deepconf_keep is not None:
            _number(self, "deepconf_keep", low=0.0, strict=True, high=1.0)
        if self.deepconf_consensus is not None:
            _number(self, "deepconf_consensus", low=0.0, strict=True, high=1.0)
        if self.deepconf_min_gain is not None:
            _number(self, "deepconf_min_gain", low=0.0, high=1.0)
        _choice("deepconf_mode", self.deepconf_mode, DEEPCONF_MODES)
        _choice("confidence_transport", self.confidence_transport, CONFIDENCE_TRANSPORTS)
        _number(self, "pf_temperature", low=0.0, strict=True)
        _number(self, "pf_ess_threshold", low=0.0, high=1.0)
        if not isinstance(self.step_delimiter, str) or not self.step_delimiter:
            raise InputError("must be non-empty text", field="step_delimiter")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"must be an integer, got {self.seed!r}", field="seed")
        _choice("aggregation", self.aggregation, AGGREGATIONS)
        _choice("pf_selection", self.pf_selection, PF_SELECTIONS)


@dataclass(frozen=True)
class SolveConfig:
    """Everything a strategy needs besides the problem, the budget, the endpoint and the scorer."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    grading: GradingConfig = field(default_factory=GradingConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "config") -> SolveConfig:
        """From {"sampling": {...}, "search": {...}, "grading": {...}}; unknown sections or fields, and values
        of the wrong type, are InputErrors naming `where` and the field."""
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object of sections, got {type(data).__name__}", path=where)
        sections = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise InputError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}", path=where,
                             field=unknown[0])
        kinds = {"sampling": SamplingConfig, "search": SearchConfig, "grading": GradingConfig}
        return cls(**{name: section(kinds[name], data[name], where, name) for name in data})


def section(kind, values: object, where: str, name: str):
    """A config section from a JSON object, with errors naming the file and `name.field`."""
    if not isinstance(values, dict):
        raise InputError(f"expected an object, got {type(values).__name__}", path=where, field=name)
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", path=where,
                         field=f"{name}.{unknown[0]}")
    try:
        return kind(**values)
    except InputError as exc:
        raise InputError(exc.reason, path=where, field=f"{name}.{exc.field}") from None


def _positive_int(obj, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer, got {value!r}", field=name)


def _number(obj, name: str, *, low: float = -math.inf, high: float = math.inf, strict: bool = False) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", field=name)
    if value < low or value > high or (strict and value <= low):
        bound = f"> {low}" if strict and high == math.inf else f"in [{low}, {high}]" if high != math.inf \
            else f">= {low}"
        raise InputError(f"must be {bound}, got {value!r}", field=name)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"must be one of {', '.join(allowed)}, got {value!r}", field=name)
