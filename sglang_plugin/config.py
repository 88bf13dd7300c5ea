"""The one config object for running a strategy: prompt, step rules, search sizes, answer grouping and the
HTTP policy. `budget` (the number of samples N) is not here: it is what the planner varies per problem."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from planner.errors import InputError

# The instruction the outcome labels in shared/data were sampled with (see its README).
DEFAULT_INSTRUCTION = " Let's think step by step and output the final answer within \\boxed{}."
AGGREGATIONS = ("last", "min", "prod", "mean")
PF_SELECTIONS = ("weighted_vote", "max_weight")


@dataclass(frozen=True)
class SolveConfig:
    """Everything a strategy needs besides the problem, the budget and the scorer."""

    # Prompt: user turn = problem + instruction inside the policy's chat template.
    instruction: str = DEFAULT_INSTRUCTION
    system_prompt: str | None = None  # None: the chat template's default system prompt

    # Steps and caps, per branch.
    step_delimiter: str = "\n\n"
    max_step_tokens: int = 512
    max_steps: int = 40
    max_tokens: int = 3000
    temperature: float = 0.7
    top_p: float = 1.0

    # Search sizes and selection.
    beam_width: int = 4  # M: beams kept by beam_search; candidates per DVTS subtree
    aggregation: str = "last"  # how step scores become one trajectory score
    pf_temperature: float = 1.0  # T in softmax(logit(reward) / T)
    pf_ess_threshold: float = 0.5  # resample when ESS < threshold * particles
    pf_selection: str = "weighted_vote"
    seed: int = 0  # the program's own randomness (particle resampling)

    # Answer grouping.
    answer_timeout: float = 5.0  # seconds per math-verify comparison
    answer_workers: int = 1  # processes that run math-verify

    # HTTP policy for the policy server and every reward server (see endpoint.py).
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    max_retries: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0

    def __post_init__(self) -> None:
        positive = ("max_step_tokens", "max_steps", "max_tokens", "beam_width", "pf_temperature",
                    "answer_timeout", "answer_workers", "connect_timeout", "read_timeout")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"must be > 0, got {getattr(self, name)!r}", field=name)
        for name in ("max_retries", "backoff_initial", "backoff_max", "temperature"):
            if getattr(self, name) < 0:
                raise InputError(f"must be >= 0, got {getattr(self, name)!r}", field=name)
        if not 0 < self.top_p <= 1:
            raise InputError(f"must be in (0, 1], got {self.top_p!r}", field="top_p")
        if not 0 <= self.pf_ess_threshold <= 1:
            raise InputError(f"must be in [0, 1], got {self.pf_ess_threshold!r}", field="pf_ess_threshold")
        if not self.step_delimiter:
            raise InputError("must not be empty", field="step_delimiter")
        _choice("aggregation", self.aggregation, AGGREGATIONS)
        _choice("pf_selection", self.pf_selection, PF_SELECTIONS)

    def with_(self, **changes) -> SolveConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InputError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"must be one of {', '.join(allowed)}, got {value!r}", field=name)
