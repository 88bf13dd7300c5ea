"""The `tts-planner` command line: one module per command."""
