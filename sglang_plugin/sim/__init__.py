"""The stand-in SGLang server: SGLang's HTTP protocol in front of a model-free simulator, for tests, benchmarks,
`tts-planner demo` and `tts-planner sim-server`. Nothing in the product path imports it."""

from sglang_plugin.sim.engine import SimConfig
from sglang_plugin.sim.problems import Problem, ProblemBank
from sglang_plugin.sim.server import SimServer

__all__ = ["Problem", "ProblemBank", "SimConfig", "SimServer"]
