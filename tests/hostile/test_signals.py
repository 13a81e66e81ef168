"""The first Ctrl-C (or SIGTERM) stops a run at once, whatever it is waiting on.

Each test starts a real `intermodel run --headless` process against a hostile server (or a model
file that never finishes loading), waits until the run is stuck in that wait, sends the signal,
and requires the process to end within 2 seconds with exit code 130 and a complete transcript:
its `end` record present, the reason `interrupted`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intermodel.errors import EXIT_SIGNAL
from intermodel.records import Discard, Retry
from intermodel.transcript.reader import Transcript, read_transcript
from tests.fakeserver import Backlogged, FakeServer, Fault

from .server_pairings import KEY, pairing_text

REPO = Path(__file__).resolve().parents[2]
SIGNALS = [signal.SIGINT, signal.SIGTERM]
ENDS_WITHIN = 2.0  # seconds from the signal to the process's exit


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


class Run:
    """A run in its own process, and its transcript folder: headless, or (`terminal`) in the
    terminal UI on a pseudo-terminal of its own."""

    def __init__(self, tmp_path: Path, config_text: str, *, terminal: bool = False) -> None:
        self.out = tmp_path / "transcripts"
        config = tmp_path / "pairing.toml"
        config.write_text(config_text)
        env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(self.out), "NO_COLOR": "1",
               "TEST_KEY": KEY, "TERM": "xterm-256color"}
        command = [sys.executable, "-m", "intermodel", "run", str(config)]
        self.screen: list[bytes] = []
        if not terminal:
            self.proc = subprocess.Popen([*command, "--headless"], cwd=REPO, env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
            return
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=follower,
                                     stdout=follower, stderr=follower, start_new_session=True)
        os.close(follower)
        threading.Thread(target=self._read_screen, args=(leader,), daemon=True).start()

    def _read_screen(self, leader: int) -> None:
        """Drain the terminal (a UI blocks once nobody reads it)."""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 65536):
                self.screen.append(chunk)
        os.close(leader)

    def _finish(self, seconds: float | None) -> tuple[str, str]:
        if self.proc.stdout is None:  # a terminal: its output is the screen
            self.proc.wait(timeout=seconds)
            return "", b"".join(self.screen).decode(errors="replace")
        out, err = self.proc.communicate(timeout=seconds)
        return out, err

    def transcript_path(self) -> Path | None:
        found = list(self.out.glob("*.jsonl")) if self.out.exists() else []
        return found[0] if found else None

    def records(self) -> list[dict[str, object]]:
        path = self.transcript_path()
        if path is None:
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def wait_for(self, what: str, condition: Callable[[], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if self.proc.poll() is not None:
                out, err = self._finish(None)
                pytest.fail(f"the run ended before {what}: {self.proc.returncode}\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}")
            time.sleep(0.05)

    def stop_with(self, number: int) -> Transcript:
        """Send the signal; the process must end within ENDS_WITHIN seconds, exit 130 and leave
        a complete transcript."""
        self.proc.send_signal(number)
        sent = time.monotonic()
        try:
            out, err = self._finish(ENDS_WITHIN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self._finish(None)
            pytest.fail(f"still running {ENDS_WITHIN} s after {signal.Signals(number).name}:"
                        f"\n{out[-2000:]}\n{err[-2000:]}")
        took = time.monotonic() - sent
        assert self.proc.returncode == EXIT_SIGNAL, err[-2000:]
        assert "Traceback" not in err
        assert took < ENDS_WITHIN
        path = self.transcript_path()
        assert path is not None
        transcript = read_transcript(path)
        assert transcript.end is not None and transcript.end.reason == "interrupted"
        assert transcript.torn is None
        return transcript

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self._finish(None)


@pytest.fixture
def runs() -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(tmp_path: Path, config_text: str, *, terminal: bool = False) -> Run:
        run = Run(tmp_path, config_text, terminal=terminal)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


def posted(srv: FakeServer) -> bool:
    return any(r.method == "POST" and r.path.startswith("/v1/") for r in srv.requests)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_during_the_context_probes(server: FakeServer, tmp_path: Path, runs, number: int  # type: ignore[no-untyped-def]
                                   ) -> None:
    # Every answer drips a byte every 2 s: the probes would wait for ever on reads alone.
    server.every_request = Fault.drip(seconds=2)
    run = runs(tmp_path, pairing_text(server.base_url, "openai", "anthropic",
                                      extra_a="timeout = 60\n", extra_b="timeout = 60\n"))
    run.wait_for("the first probe", lambda: any(r.path == "/props" for r in server.requests))
    time.sleep(0.5)
    transcript = run.stop_with(number)
    assert transcript.turns == [] and not posted(server)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_in_the_terminal_ui_too(server: FakeServer, tmp_path: Path, runs, number: int  # type: ignore[no-untyped-def]
                                ) -> None:
    server.every_request = Fault.drip(seconds=2)
    run = runs(tmp_path, pairing_text(server.base_url, "openai", "anthropic",
                                      extra_a="timeout = 60\n"), terminal=True)
    run.wait_for("the first probe", lambda: any(r.path == "/props" for r in server.requests),
                 seconds=30)
    time.sleep(0.5)
    transcript = run.stop_with(number)
    assert transcript.turns == [] and not posted(server)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_while_connecting(tmp_path: Path, runs, number: int) -> None:  # type: ignore[no-untyped-def]
    # Anthropic agents are not probed: the first turn's connection attempt is what hangs.
    with Backlogged() as port:
        run = runs(tmp_path, pairing_text(port.base_url, "anthropic", "anthropic",
                                          extra_a="timeout = 60\n"))
        run.wait_for("the run to start", lambda: bool(run.records()))
        time.sleep(1.0)
        transcript = run.stop_with(number)
    [discard] = [r for r in transcript.records if isinstance(r, Discard)]
    assert (discard.turn, discard.reason) == (1, "interrupted")


def test_while_a_server_accepts_and_never_answers(server: FakeServer, tmp_path: Path,
                                                  runs) -> None:  # type: ignore[no-untyped-def]
    server.faults.push(Fault.silent())
    run = runs(tmp_path, pairing_text(server.base_url, extra_a="timeout = 60\n"))
    run.wait_for("the first request", lambda: posted(server))
    time.sleep(0.3)
    transcript = run.stop_with(signal.SIGINT)
    assert [r.reason for r in transcript.records if isinstance(r, Discard)] == ["interrupted"]


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_during_a_retrys_backoff(server: FakeServer, tmp_path: Path, runs, number: int  # type: ignore[no-untyped-def]
                                 ) -> None:
    server.faults.push(Fault.status(429, retry_after="3600"))
    run = runs(tmp_path, pairing_text(server.base_url, retry="max_retry_after = 600\n"))
    run.wait_for("the retry record", lambda: any(r["kind"] == "retry" for r in run.records()))
    time.sleep(0.3)
    transcript = run.stop_with(number)
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert retry.wait >= 600


@pytest.mark.parametrize("fault", [Fault.stall(after_chunks=3, seconds=60),
                                   Fault.drip(after_chunks=3, seconds=2)],
                         ids=["stalled", "dripping"])
def test_during_a_stalled_stream(server: FakeServer, tmp_path: Path, runs,  # type: ignore[no-untyped-def]
                                 fault: Fault) -> None:
    server.faults.push(fault)
    run = runs(tmp_path, pairing_text(server.base_url, extra_a="timeout = 60\n"))
    run.wait_for("the stream", lambda: posted(server))
    time.sleep(0.5)
    transcript = run.stop_with(signal.SIGINT)
    [discard] = [r for r in transcript.records if isinstance(r, Discard)]
    assert discard.reason == "interrupted" and discard.text  # the part that had streamed


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="the local extra is not installed")
@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_while_the_local_model_loads(tmp_path: Path, runs, number: int) -> None:  # type: ignore[no-untyped-def]
    # A model file that never arrives: a FIFO. The model check at start reads its magic number
    # (written here); after that nothing holds the FIFO open for writing, so llama.cpp's open of
    # it blocks for good, as on a stalled network disk. A load cannot be interrupted; the run
    # must not wait for it (whether it is the load at start, or a reply's own).
    model = tmp_path / "stalled.gguf"
    os.mkfifo(model)
    writer = os.open(model, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(writer, b"GGUF")
        run = runs(tmp_path, f"""
name = "slow-load"
[dialogue]
opener = "Hello."
max_turns = 2
[agents.ada]
provider = "local"
model = "{model}"
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["hi"]
""")
        deadline = time.monotonic() + 30
        while _unread(writer) and time.monotonic() < deadline and run.proc.poll() is None:
            time.sleep(0.001)
    finally:
        os.close(writer)
    run.wait_for("the run to start", lambda: bool(run.records()))
    time.sleep(1.0)
    transcript = run.stop_with(number)
    assert transcript.turns == []


def _unread(fd: int) -> int:
    """Bytes waiting in the FIFO."""
    count = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return int.from_bytes(count, sys.byteorder)
