"""The `tts-planner` command line: one small module per command, each calling library code, loaded only when its
command runs (so `tts-planner plan` never imports sglang or the simulator), and one path from errors to exit
codes (sglang_plugin.cli.errors)."""

from sglang_plugin.cli.main import main

__all__ = ["main"]
