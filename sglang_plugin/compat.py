"""The sglang frontend internals tts-planner relies on, in one place, for every release from 0.5.2 on.

The public API (`sgl.function`, `sgl.gen`, `sgl.user`, `RuntimeEndpoint`, `ProgramState.fork`) is used
directly elsewhere. What is not public and has moved between releases is read here:
- `global_config` (skip_special_tokens defaults): `sglang.global_config` up to 0.5.2, `sglang.lang.global_config`
  from the releases that import torch at `import sglang`;
- chat templates by name or model path (`sglang.lang.chat_template`), plus the templates tts-planner registers
  for long-thinking policies the frontend does not know;
- the tracer's `StopTracing` and `TracerProgramState` (run_batch traces programs to pre-cache prefixes).
Importing this module imports sglang; nothing in `planner` does.
"""

from __future__ import annotations

import importlib

import sglang
from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.chat_template import (
    ChatTemplate,
    get_chat_template,
    get_chat_template_by_model_path,
    register_chat_template,
)
from sglang.lang.tracer import StopTracing, TracerProgramState


def _global_config():
    for module in ("sglang.lang.global_config", "sglang.global_config"):
        try:
            return importlib.import_module(module).global_config
        except ModuleNotFoundError:
            continue
    raise ImportError(f"sglang {sglang.__version__}: no global_config in sglang.lang or sglang")


global_config = _global_config()
VERSION = getattr(sglang, "__version__", "unknown")


def special_token_defaults() -> dict:
    """The frontend's defaults for special tokens in generated text, as RuntimeEndpoint sends them."""
    return {"skip_special_tokens": global_config.skip_special_tokens_in_output,
            "spaces_between_special_tokens": global_config.spaces_between_special_tokens_in_out}


# OpenAI's harmony format (gpt-oss), which the frontend does not know: a system message naming the reasoning
# effort and the channels, each message <|start|>{role}<|message|>...<|end|>, and the assistant turn opened with
# <|start|>assistant, the model then writing <|channel|>analysis<|message|>... and later the final channel. High
# effort: what OpenAI's gpt-oss model card reports its AIME and MATH figures at, and what DeepConf ran it with.
HARMONY = ChatTemplate(
    name="gpt-oss",
    default_system_prompt="You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\n"
                          "Reasoning: high\n\n# Valid channels: analysis, commentary, final. Channel must be "
                          "included for every message.",
    role_prefix_and_suffix={"system": ("<|start|>system<|message|>", "<|end|>"),
                            "user": ("<|start|>user<|message|>", "<|end|>"),
                            "assistant": ("<|start|>assistant", "<|end|>")},
    stop_str=("<|return|>", "<|call|>"),
)


def _register(template: ChatTemplate) -> None:
    """Register a template under its name unless the installed frontend already has one by that name."""
    try:
        get_chat_template(template.name)
    except KeyError:
        register_chat_template(template)


_register(HARMONY)


def chat_template(name: str | None, model_path: str) -> ChatTemplate:
    """The chat template by name if given, else the frontend's pick for the served model's path."""
    return get_chat_template(name) if name else get_chat_template_by_model_path(model_path)


__all__ = ["VERSION", "BaseBackend", "ChatTemplate", "RuntimeEndpoint", "StopTracing", "TracerProgramState",
           "chat_template", "global_config", "special_token_defaults"]
