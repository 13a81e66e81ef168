"""The CLI refers to its handlers directly (no names resolved at run time), and stays light:
asking for help or mistyping an argument imports no SDK, no terminal UI, no model runtime."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from intermodel import cli

# What only some commands need: each handler imports it in its body.
HEAVY = ("openai", "anthropic", "textual", "llama_cpp", "sqlite3", "intermodel.tui",
         "intermodel.experiment", "intermodel.analysis", "intermodel.control",
         "intermodel.commands.batch")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_has_a_handler_function_of_the_commands_package() -> None:
    found = subcommands()
    assert {"run", "validate", "export", "resume", "say", "batch", "inspect"} <= set(found)
    for name, parser in found.items():
        handler = parser.get_default("handler")
        assert callable(handler), name
        assert handler.__module__.startswith("intermodel.commands."), name


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """The exit code of `intermodel argv`, and every module it imported (from -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "intermodel", *argv],
                          capture_output=True, text=True, timeout=120)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return done.returncode, modules


@pytest.mark.parametrize("argv", [("--help",), ("run", "--turns", "x"), ("control", "f", "dance")])
def test_help_and_argument_errors_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    code, modules = imported_by(*argv)
    assert code == (0 if argv == ("--help",) else 2)
    assert "intermodel.commands.running" in modules  # the handlers' modules, imported normally
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)) == []
