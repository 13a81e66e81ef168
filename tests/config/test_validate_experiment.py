"""`intermodel validate` on experiment files: recognised by their content, checked whole with
every pairing and panel they name, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def validate(*files: str, strict: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    args = [*(["--strict"] if strict else []), *files]
    return subprocess.run([sys.executable, "-m", "intermodel", "validate", *args], cwd=REPO,
                          env={**env, "NO_COLOR": "1"}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_example_experiment_is_valid() -> None:
    result = validate("configs/experiments/demo.toml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("ok  configs/experiments/demo.toml  (experiment demo: 3 pairings x "
                        "2 openers x 2 replicates = 12 runs)")
    assert any(line.strip().startswith("scripted: ") and "scripted.toml" in line
               for line in lines[1:])
    assert result.stderr == ""


def test_every_problem_of_an_experiment_and_its_pairings_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad-pairing.toml").write_text(
        'name = "x"\n[dialogue]\nopener = "Hi."\nmax_turns = "ten"\n'
        '[agents.ada]\nprovider = "scripted"\n[agents.bo]\nprovider = "nope"\n')
    (tmp_path / "bad-panel.toml").write_text(
        'name = "p"\n[panel]\nprompt = "Hi."\nwait = 1\n[agents.ada]\nprovider = "scripted"\n')
    experiment = tmp_path / "x.toml"
    experiment.write_text(
        f'replicates = 0\ncolour = "red"\n'
        f'[[pairings]]\nfile = "{REPO / "configs/scripted.toml"}"\n'
        '[[pairings]]\nfile = "bad-pairing.toml"\n'
        '[[pairings]]\nfile = "bad-panel.toml"\n'
        '[[pairings]]\nfile = "missing.toml"\n'
        '[[openers]]\ntext = "Hello."\nlabel = "hello there"\n')
    result = validate(str(experiment))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"{experiment}: ") for line in lines), lines
    for expected in ["replicates: expected a value from 1", "colour: unknown key",
                     "pairings[1]: ", "dialogue.max_turns: expected an integer",
                     "agents.bo.provider: expected one of", "pairings[2]: ", "panel.wait",
                     "pairings[3]: ", "missing.toml: no such file", "openers[0].label"]:
        assert any(expected in line for line in lines), (expected, lines)
    assert "Traceback" not in result.stderr


def test_missing_keys_of_an_experiments_pairings_are_notes_or_errors(tmp_path: Path) -> None:
    experiment = tmp_path / "cloud.toml"
    experiment.write_text(f'[[pairings]]\nfile = "{REPO / "configs/claude-vs-gpt.toml"}"\n'
                          'label = "cloud"\n')
    relaxed = validate(str(experiment))
    assert relaxed.returncode == 0, relaxed.stderr
    assert "note: " in relaxed.stdout and "ANTHROPIC_API_KEY" in relaxed.stdout
    strict = validate(str(experiment), strict=True)
    assert strict.returncode == 2
    assert "error: " in strict.stdout


def test_an_experiment_without_pairings_says_so(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("replicates = 3\n")
    result = validate(str(path))
    assert result.returncode == 2
    assert result.stderr == (f"{path}: pairings: missing; an experiment needs at least one "
                             "[[pairings]] file\n")


def test_a_file_with_a_pairings_tables_is_a_pairing(tmp_path: Path) -> None:
    # a file with both kinds of tables is checked as a pairing (which says what does not belong)
    path = tmp_path / "x.toml"
    path.write_text("[[pairings]]\nfile = 'a.toml'\n[agents.ada]\nprovider = 'scripted'\n")
    result = validate(str(path))
    assert result.returncode == 2
    assert "unknown key" in result.stderr
