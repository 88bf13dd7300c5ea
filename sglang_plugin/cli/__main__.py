from sglang_plugin.cli.main import main

main(prog_name="tts-planner")
