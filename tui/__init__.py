"""The Textual front end of intermodel: watch, steer and replay runs in a terminal.

It consumes only the core's events (through a subscription) and sends only its controls; nothing
in the core knows it exists. Entry points: `run_tui` and `run_replay` in `intermodel.tui.app`.
"""
