"""`intermodel stats` fits the terminal: columns that do not fit are left out, least needed first,
and one line says which; `--wide` shows them all. A pipe gets every column whatever COLUMNS says,
so scripts reading the table see all of it. The command runs on a real pseudo-terminal, sized as
a window would be."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from intermodel.analysis.fitwidth import ColumnFit, text_width
from tests.analysis.support import pairing, run_file

REPO = Path(__file__).resolve().parents[2]
ALL_HEADS = ("STARTED", "TIME", "EVENTS", "COST", "TTFT MEAN/MED", "RETRIES", "WORDS",
             "THINKING", "CHARS MEAN/MED", "LATENCY MEAN/MED", "TURNS BEFORE ENDING MEAN/MED")


@pytest.fixture
async def runs(tmp_path: Path) -> Path:
    await run_file(pairing(["hi", "bye ^C^C"], ["hello there", "fine"], turns=6), tmp_path, "a")
    await run_file(pairing(["one", "two"], ["three"], turns=3), tmp_path, "b")
    return tmp_path / "transcripts"


def stats(folder: Path, *args: str, columns: int | None) -> list[str]:
    """The command's lines on a terminal `columns` wide, or on a pipe (None); COLUMNS is not set
    on a terminal, so its own size counts, and set to 60 on a pipe, where it must not."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    command = [sys.executable, "-m", "intermodel", "stats", str(folder), *args]
    if columns is None:
        result = subprocess.run(command, cwd=REPO, env={**env, "COLUMNS": "60"},
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    with subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=follower,
                          stderr=subprocess.PIPE) as process:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command has closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    return out.decode("utf-8").replace("\r\n", "\n").splitlines()


@pytest.mark.anyio
@pytest.mark.parametrize("columns", [60, 100])
async def test_a_narrow_terminal_gets_a_table_that_fits_and_a_hint(runs: Path,
                                                                   columns: int) -> None:
    lines = stats(runs, columns=columns)
    assert max(text_width(line) for line in lines) <= columns
    hint = lines[-1]
    assert hint.startswith("(to fit, left out: ") and hint.endswith("; --wide shows all)")
    table = "\n".join(lines[:-1])
    for kept in ("RUN", "PAIRING", "END", "AGENT", "MODEL", "stop_phrase", "max_turns",
                 "1/2 = 0.50"):
        assert kept in table
    if columns == 60:
        assert hint == "(to fit, left out: STARTED and 11 more; --wide shows all)"
        assert "STARTED" not in table and "TOKENS IN/OUT" in table
    else:  # room for more: only the least needed columns went
        assert hint == "(to fit, left out: TTFT MEAN/MED, RETRIES, WORDS, THINKING; " \
                       "--wide shows all)"
        assert "STARTED" in table and "LATENCY MEAN/MED" in table and "WORDS" not in table


@pytest.mark.anyio
async def test_a_wide_terminal_a_pipe_and_wide_show_every_column(runs: Path) -> None:
    whole = stats(runs, columns=200)
    assert all(head in "\n".join(whole) for head in ALL_HEADS)
    assert not whole[-1].startswith("(")  # nothing left out, nothing to say
    assert stats(runs, "--wide", columns=60) == whole
    assert stats(runs, columns=None) == whole  # a pipe: everything, though COLUMNS is 60


def test_the_fit_shortens_what_it_cannot_leave_out_and_counts_wide_characters() -> None:
    fit = ColumnFit(24)
    lines = fit.lines(["NAME", "MODEL", "EXTRA"],
                      [["日本語の名前です", "a-very-long-model-id-indeed", "x"]], drop=["EXTRA"])
    assert lines == ["NAME           MODEL", "日本語の名前…  a-very-…"]
    assert max(text_width(line) for line in lines) <= 24
    assert fit.dropped == ["EXTRA"]
    assert fit.hint() == "(1 column left out; --wide shows all)"
    assert ColumnFit(None).hint() == ""
