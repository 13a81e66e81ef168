"""Every `intermodel …` command line the documentation shows is parsed by the real argument
parser (nothing is run), so the docs cannot drift from the CLI.

Where command lines are found, and how they are read (the convention the docs follow):

- In README.md and docs/*.md, every line of a fenced code block whose command (after `&&`, `;`
  or at the start, `.venv/bin/` allowed) is `intermodel`; a line ending in `\\` continues on the
  next. Such a line must parse whole. Shell operators (`|`, `>`, `&&`, …) and `# comments` end
  the command.
- Inline code spans that begin with `intermodel ` may be fragments (`intermodel export
  --format`): the command and every option must exist and every value given must be valid, but
  trailing required arguments may be left out.
- In configs/, a comment line indented under its `#` (`#   intermodel batch FILE`) is a whole
  command line, and a backticked span in a comment is an inline span.
- Synopsis notation: `[...]` marks an optional part (checked as if given), `a|b` alternatives
  (each checked), an upper-case word (`FILE`, `N`, `FILE...`) or `<word>` a placeholder (checked
  as the value `1`, which every argument type accepts), `…` an elided part.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from intermodel.cli import _parser

REPO = Path(__file__).resolve().parents[2]

_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&"}
_PLACEHOLDER = re.compile(r"^(<[^<>]+>|[A-Z][A-Z0-9_]*)(\.\.\.|…)?$")
_INLINE = re.compile(r"`(intermodel [^`]*)`")
_ELISION = {"…", "..."}


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    words: tuple[str, ...]  # the arguments after `intermodel`
    whole: bool  # must parse whole (False: an inline span, which may be a fragment)


def commands_in_markdown(text: str, name: str) -> list[DocCommand]:
    found: list[DocCommand] = []
    fenced = False
    pending = ""
    pending_line = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if fenced:
            if not pending:
                pending_line = number
            if line.rstrip().endswith("\\"):  # a continuation
                pending += line.rstrip()[:-1] + " "
                continue
            found += _shell_commands(pending + line, f"{name}:{pending_line}", whole=True)
            pending = ""
        else:
            found += _inline_commands(line, f"{name}:{number}")
    return found


def commands_in_config(text: str, name: str) -> list[DocCommand]:
    found: list[DocCommand] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if not stripped.startswith("#"):
            continue
        comment = stripped[1:]
        where = f"{name}:{number}"
        if comment.startswith("  ") and comment.lstrip().startswith("intermodel"):
            found += _shell_commands(comment.strip(), where, whole=True)
        else:
            found += _inline_commands(comment, where)
    return found


def _inline_commands(line: str, where: str) -> list[DocCommand]:
    found: list[DocCommand] = []
    for span in _INLINE.findall(line):
        found += _shell_commands(span, where, whole=False)
    return found


def _shell_commands(line: str, where: str, *, whole: bool) -> list[DocCommand]:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:  # an unclosed quote: worth a look even when not ours
        if re.search(r"(^|[\s/])intermodel(\s|$)", line):
            raise AssertionError(f"{where}: cannot split {line!r}: {exc}") from None
        return []
    found: list[DocCommand] = []
    segment: list[str] = []
    for token in [*tokens, "&&"]:
        if token not in _OPERATORS:
            segment.append(token)
            continue
        if segment and segment[0].rsplit("/", 1)[-1] == "intermodel":
            words = segment[1:]
            elided = any(word in _ELISION for word in words)
            if elided:
                words = words[:next(i for i, w in enumerate(words) if w in _ELISION)]
            found.append(DocCommand(where, tuple(words), whole and not elided))
        # after a redirection, the next word is its target, not a command
        segment = ["(target)"] if token in {">", ">>", "<", "2>"} else []
    return found


def expand(words: tuple[str, ...]) -> list[list[str]]:
    """The concrete argument lists a synopsis stands for (optional parts given, every
    alternative of `a|b`, placeholders as `1`)."""
    choices: list[list[str]] = []
    depth = 0
    for word in words:
        if depth == 0 and word.startswith("["):
            word = word[1:]
            depth = 1
        if depth and word.endswith("]") and word.count("[") < word.count("]"):
            word = word[:-1]
            depth = 0
        if not word:
            continue
        alternatives = word.split("|") if "|" in word and " " not in word else [word]
        choices.append(["1" if _PLACEHOLDER.match(a) else a for a in alternatives])
    return [list(combination) for combination in itertools.product(*choices)][:64]


def parse_problem(args: list[str], *, whole: bool) -> str | None:
    """None when the parser accepts `args`, else its complaint. A fragment may leave out its
    trailing required arguments."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(args)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return None
        message = stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue() else str(exc)
        if not whole and ("the following arguments are required" in message
                          or (message.endswith("expected one argument")
                              and args and args[-1].startswith("-"))):
            return None
        return message
    return None


def documented_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        found += commands_in_markdown(path.read_text(encoding="utf-8"),
                                      str(path.relative_to(REPO)))
    for path in sorted((REPO / "configs").rglob("*.toml")):
        found += commands_in_config(path.read_text(encoding="utf-8"),
                                    str(path.relative_to(REPO)))
    return found


def problems_of(commands: list[DocCommand]) -> list[str]:
    problems: list[str] = []
    for command in commands:
        for args in expand(command.words):
            problem = parse_problem(args, whole=command.whole)
            if problem is not None:
                problems.append(f"{command.where}: intermodel {' '.join(args)}: {problem}")
                break
    return problems


def test_every_documented_command_line_parses() -> None:
    commands = documented_commands()
    # the finder finds: the README's command lines, the docs', the configs' comments
    assert len({c.where.split(":")[0] for c in commands}) >= 6
    assert any(c.where.startswith("configs/") and c.whole for c in commands)
    problems = problems_of(commands)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("text", "problem"), [
    ("```\nintermodel export-index experiments/demo\n```", "invalid choice"),
    ("```\nintermodel stats PATH --format yaml\n```", "invalid choice"),
    ("```\nintermodel run configs/x.toml \\\n  --turns zero\n```", "whole number"),
    ("Use `intermodel inspect FILE --turns 3` to check.", "unrecognized arguments"),
    ("Run `intermodel exports FILE`.", "invalid choice"),
    ("```\nintermodel stats PATH [--by model|agent|colour]\n```", "invalid choice"),
])
def test_a_wrong_command_line_is_found(text: str, problem: str) -> None:
    problems = problems_of(commands_in_markdown(text, "x.md"))
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize("text", [
    "```\nintermodel run configs/x.toml \\\n  --turns 3 --headless   # a comment\n```",
    "```\nscripts/setup && .venv/bin/intermodel run\n```",
    "```\nintermodel stats experiments/demo --format csv > runs.csv\n```",
    "```\nintermodel replay TRANSCRIPT [--speed X]\n```",
    "```\nintermodel validate FILE...\n```",
    "```\nintermodel inspect <file> --turn <n>\n```",
    "```\nintermodel resume transcripts/…jsonl --turns 60\n```",
    "The handler of `intermodel export --format` is in reading.py.",
    "A run listens for `intermodel say` and `control`.",
])
def test_a_right_command_line_passes(text: str) -> None:
    commands = commands_in_markdown(text, "x.md")
    assert commands and not problems_of(commands)


def test_commands_in_config_comments() -> None:
    text = ("# Run it:\n#   intermodel batch configs/experiments/demo.toml\n"
            "# An index (with `intermodel export-index`) lands beside it.\n"
            "# intermodel reads this file\nname = 'x'  # `intermodel nothing`\n")
    commands = commands_in_config(text, "x.toml")
    assert [c.words[0] for c in commands] == ["batch", "export-index"]
    assert len(problems_of(commands)) == 1
