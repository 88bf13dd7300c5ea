"""The `tts-planner` group: its commands, loaded by name when they run."""

from __future__ import annotations

import importlib

import click

from planner import __version__
from sglang_plugin.cli.errors import reported

# command -> "module:attribute"; the module is imported only when the command runs (or its help is shown).
COMMANDS = {
    "predict": "sglang_plugin.cli.predict:predict_command",
    "plan": "sglang_plugin.cli.plan:plan_command",
    "train": "sglang_plugin.cli.train:train_command",
    "models": "sglang_plugin.cli.models:models_command",
    "run": "sglang_plugin.cli.run:run_command",
    "calibrate": "sglang_plugin.cli.calibrate:calibrate_command",
    "report": "sglang_plugin.cli.report:report_command",
    "grade": "sglang_plugin.cli.grade:grade_command",
    "demo": "sglang_plugin.cli.demo:demo_command",
    "sim-server": "sglang_plugin.cli.sim_server:sim_server_command",
}


class Commands(click.Group):
    """Loads each command's module on demand and sends every error through one exit path."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):
        with reported():
            return super().invoke(ctx)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tts-planner")
def main() -> None:
    """Plan test-time compute for math problems: predict how hard each problem is for your policy model,
    give each the strategy and budget that buy the most accuracy, and run it on an SGLang server.

    \b
    Start here:
      tts-planner predict examples/problems.jsonl          difficulty of each problem
      tts-planner plan examples/problems.jsonl --budget 4  a strategy and size for each problem
      tts-planner demo                                     everything, against a simulated SGLang server
      tts-planner COMMAND --help                           the options of one command
    """
