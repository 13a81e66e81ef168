"""`intermodel code`: what goes wrong before the screen opens is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from intermodel.cli import main

from .study import dialogue_run, scheme_file, study


def code(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["code", *args])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err.splitlines()


def test_expected_failures_are_one_line_each(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    runs = study(tmp_path)
    schemes = str(scheme_file(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "bad.toml").write_text("[schemes.x]\nscope = 'page'\n")
    cases = {
        (str(tmp_path / "nowhere"), f"{schemes}:engagement"):
            [f"intermodel: {tmp_path / 'nowhere'}: no such file or folder"],
        (str(empty), f"{schemes}:engagement"): [f"intermodel: {empty}: no transcripts to code"],
        (str(runs), f"{schemes}:nosuch"):
            [f"intermodel: {schemes}: schemes: no scheme named 'nosuch' (this file defines: "
             "engagement, tone, ending)"],
        (str(runs), schemes):
            [f"intermodel: {schemes}: defines 3 schemes (engagement, tone, ending); choose one "
             f"as {schemes}:NAME"],
        (str(runs), f"{schemes}:engagement"):
            ["intermodel: code needs a terminal (standard input and output)"],
    }
    for (path, scheme), expected in cases.items():
        assert code(capsys, path, "--scheme", scheme, "--coder", "alice") == (2, expected)
    status, lines = code(capsys, str(runs), "--scheme", str(tmp_path / "bad.toml"))
    assert status == 2 and lines and all(line.startswith(f"intermodel: {tmp_path / 'bad.toml'}: ")
                                         for line in lines)
    assert code(capsys, str(runs), "--scheme", f"{schemes}:tone", "--coder", " al ") == (
        2, ["intermodel: --coder ' al ': a coder name is not blank and has no spaces around it"])
    only_dialogue = tmp_path / "dialogue"
    dialogue_run(only_dialogue, 1, ["hello", "hi"])
    assert code(capsys, str(only_dialogue), "--scheme", f"{schemes}:engagement",
                "--coder", "alice") == (
        2, ["intermodel: nothing to code: scheme engagement codes answers of a panel "
            "(conversations have none), and the transcript read holds none"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jsonl").write_text("not json\n")
    status, lines = code(capsys, str(broken), "--scheme", f"{schemes}:ending", "--coder", "al")
    assert status == 2 and lines[-1] == f"intermodel: {broken}: no transcripts to code"
    assert lines[0].startswith(f"intermodel: skipped {broken / 'x.jsonl'}")
    # Nothing was written anywhere.
    assert not list(runs.glob("*.labels.jsonl"))


def test_a_person_codes_in_a_real_terminal(tmp_path: Path) -> None:
    """The command in a pseudo-terminal, as a person runs it: two picks, quit, a summary; the
    labels are on disk."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    import time

    runs = study(tmp_path)
    schemes = scheme_file(tmp_path)
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "intermodel", "code", str(runs), "--scheme",
         f"{schemes}:engagement", "--coder", "carol"],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, close_fds=True,
        env={**os.environ, "TERM": "xterm-256color"})
    os.close(child_fd)
    seen = b""

    def read_until(text: bytes, timeout: float = 30) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text not in seen:
            assert time.monotonic() < deadline, seen[-2000:]
            try:
                seen += os.read(main_fd, 65536)
            except OSError:  # the child closed the terminal
                break

    try:
        read_until(b"0 of 9 coded")
        os.write(main_fd, b"2")
        read_until(b"1 of 9 coded")
        os.write(main_fd, b"1")
        read_until(b"2 of 9 coded")
        os.write(main_fd, b"q")
        read_until(b"under engagement")
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)
    assert b"coded 2 targets this session (2 new); 2 of 9 coded under engagement" in seen
    written = [line for path in runs.glob("*.labels.jsonl")
               for line in path.read_text().splitlines()]
    assert len(written) == 2 and all('"name":"carol"' in line for line in written)
