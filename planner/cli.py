"""The `tts-planner` command line."""

from __future__ import annotations

import click

from planner import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tts-planner")
def main() -> None:
    """Plan test-time compute for math problems: predict how hard each problem is for your policy model,
    give each the strategy and budget that buy the most accuracy, and run it on an SGLang server.

    \b
    Start here:
      tts-planner predict problems.jsonl          difficulty of each problem
      tts-planner plan problems.jsonl --budget 4  a strategy and size for each problem
      tts-planner COMMAND --help                  the options of one command
    """


from sglang_plugin.sim_server import sim_server_command  # noqa: E402

main.add_command(sim_server_command, "sim-server")
