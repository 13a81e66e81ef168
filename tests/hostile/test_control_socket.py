"""The control socket under abuse: other local users, shared folders, floods of idle connections,
garbage requests, and replies that must not carry secrets.

Another user is played for real where the tests run as root: a forked child that gives up root for
another uid serves or plants sockets. Elsewhere those tests are skipped; the
check itself is then covered by a client told to expect another uid, which proves the comparison
is made and nothing is sent, not that the kernel reports a stranger correctly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config import Pairing
from intermodel.control.client import ForeignSocket, request
from intermodel.control.paths import runtime_dir, socket_path
from intermodel.control.server import IDLE_SECONDS, MAX_CONNECTIONS, ControlServer, connection_cap
from intermodel.engine.prepare import prepared_run
from tests.conftest import SCRIPTED, PairingFactory

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
KEY = "sk-" + "proj-" + "Cq1wE5rT8yU3iO6pA2sD" * 2  # built here: no key-shaped literal in git

SLOW = textwrap.dedent("""
    name = "slow"
    [dialogue]
    opener = "Hello there."
    max_turns = {turns}
    [agents.ada]
    provider = "scripted"
    [agents.ada.script]
    replies = ["ada says one two three four"]
    delay = {delay}
    [agents.bo]
    provider = "scripted"
    [agents.bo.script]
    replies = ["bo says one two three four"]
    delay = {delay}
""")

FAKE_STATUS = (b'{"ok": true, "status": {"state": "faked", "turns": 0, "max_turns": 1, '
               b'"elapsed": 0, "pid": 1, "transcript": "fake"}}\n')


class Stranger:
    """Another local user serving a socket at `path` (replacing whatever is there, as the folder
    lets anyone): a forked child that gives up root for `NOBODY`, answers every connection with a
    faked status at once, and counts the bytes it is sent."""

    def __init__(self, path: Path) -> None:
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process with threads (idle workers of earlier
            # tests): the child only makes system calls, then exits, so no lock can bite.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the test
            try:
                os.close(read_end)
                self._serve(path, write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        self._report = os.fdopen(read_end)
        assert self._report.readline().strip() == "READY"

    @staticmethod
    def _serve(path: Path, report: int) -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        path.chmod(0o777)
        server.listen(8)
        os.write(report, b"READY\n")
        received = 0
        server.settimeout(30)
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn, contextlib.suppress(OSError):
                    conn.sendall(FAKE_STATUS)
                    conn.settimeout(1)
                    while chunk := conn.recv(65536):
                        received += len(chunk)
                os.write(report, f"RECEIVED {received}\n".encode())

    def received(self) -> int:
        """Stop it; how many bytes it was sent in all."""
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        lines = self._report.read().splitlines()
        self._report.close()
        return max((int(line.split()[1]) for line in lines if line.startswith("RECEIVED")),
                   default=0)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A short, world-writable folder in /tmp (pytest's own folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="im-shared-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private runtime dir, so socket paths fit and no test sees another's sockets."""
    folder = Path(tempfile.mkdtemp(prefix="im-run-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# -- who is at the other end --------------------------------------------------------------------


@as_root
def test_the_client_sends_nothing_to_a_socket_served_by_another_user(shared_dir: Path) -> None:
    path = shared_dir / "run.sock"
    stranger = Stranger(path)
    try:
        with pytest.raises(ForeignSocket, match=f"another user \\(uid {NOBODY}\\)"):
            request(path, {"command": "interject", "text": "my secret plans", "to": "a"})
        with pytest.raises(ForeignSocket):
            request(path, {"command": "status"})  # a faked status is not believed
    finally:
        received = stranger.received()
    assert received == 0


def test_the_client_checks_the_uid_it_expects(make_pairing: PairingFactory, tmp_path: Path,
                                              runtime: Path) -> None:
    """Without a second user: a real run's socket, and a client that expects someone else."""
    pairing = make_pairing(SLOW.format(turns=4, delay=0.05))
    seen: list[str] = []

    async def main() -> None:
        async with prepared_run(pairing, out_dir=tmp_path) as run:
            assert run.transcript is not None
            server = ControlServer(run.session, run.transcript)
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve)
                with pytest.raises(ForeignSocket):
                    await anyio.to_thread.run_sync(lambda: request(
                        server.path, {"command": "stop"}, expected_uid=os.getuid() + 1))
                reply = await anyio.to_thread.run_sync(request, server.path, {"command": "status"})
                seen.append(reply["status"]["state"])
                end = await run.session.run()
                tg.cancel_scope.cancel()
        seen.append(end.reason)

    anyio.run(main)
    assert seen[-1] == "max_turns"  # the refused "stop" never reached the run


@as_root
def test_a_socket_planted_in_a_world_writable_folder_steals_nothing(shared_dir: Path,
                                                                     runtime: Path) -> None:
    """The issue's scenario: a run records into a world-writable folder; another user puts a
    socket where the run's would be beside the transcript. `say`, `status` and `stop` still reach
    the run, and the stranger is sent nothing."""
    config = shared_dir / "slow.toml"
    config.write_text(SLOW.format(turns=40, delay=0.1))
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(shared_dir), "NO_COLOR": "1",
           "XDG_RUNTIME_DIR": str(runtime)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=30, check=False)

    run = subprocess.Popen([sys.executable, "-m", "intermodel", "run", str(config),
                            "--headless"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    stranger = None
    try:
        deadline = time.monotonic() + 20
        while not list(shared_dir.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        [transcript] = shared_dir.glob("*.jsonl")
        beside = Path(f"{transcript}.sock")
        while "turns done" not in cli("status", str(shared_dir)).stdout:
            assert time.monotonic() < deadline
        stranger = Stranger(beside)
        said = cli("say", str(transcript), "for the run's eyes only", "--to", "a")
        assert said.returncode == 0, said.stderr
        status = cli("status", str(shared_dir))
        assert "/40 turns done" in status.stdout and "faked" not in status.stdout
        assert f"served by another user (uid {NOBODY})" in status.stderr
        stopped = cli("control", str(transcript), "stop", "--now")
        assert stopped.returncode == 0, stopped.stderr
        _, err = run.communicate(timeout=20)
    finally:
        run.kill()
        received = stranger.received() if stranger else -1
    assert received == 0
    assert run.returncode == 0, err
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert any(r.get("text") == "for the run's eyes only" for r in records)
    assert records[-1]["kind"] == "end" and records[-1]["reason"] == "stopped"


# -- where the socket goes -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o720])
def test_a_run_in_a_shared_folder_listens_in_the_runtime_dir(tmp_path: Path, runtime: Path,
                                                            mode: int) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    folder.chmod(mode)
    path = socket_path(folder / "run.jsonl", "0123456789ab")
    assert path == runtime_dir() / "0123456789ab.sock"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_private_folder_keeps_the_socket_beside_the_transcript(runtime: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="im-", dir="/tmp"))  # short enough for sun_path
    try:
        assert socket_path(folder / "r.jsonl", "0123456789ab") == folder / "r.jsonl.sock"
        inside = folder / "deeper"
        inside.mkdir(mode=0o700)
        folder.chmod(0o777)  # anyone could rename `deeper` and put their own in its place
        assert socket_path(inside / "r.jsonl", "0123456789ab").parent == runtime_dir()
    finally:
        shutil.rmtree(folder)


@as_root
def test_a_folder_owned_by_another_user_is_not_used(runtime: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="im-", dir="/tmp"))
    try:
        os.chown(folder, NOBODY, NOBODY)
        assert socket_path(folder / "r.jsonl", "0123456789ab").parent == runtime_dir()
    finally:
        shutil.rmtree(folder)


# -- floods and garbage ----------------------------------------------------------------------


def test_the_socket_never_takes_more_than_a_quarter_of_the_descriptors() -> None:
    """Under a low limit the run keeps most descriptors for itself: before, 16 idle connections
    under a limit of 24 left a run unable to open a file (an import failed with EMFILE)."""
    import resource

    assert connection_cap(24) == 6
    assert connection_cap(3) == 1  # always one, so `status` can still get through
    assert connection_cap(1024) == MAX_CONNECTIONS
    assert connection_cap(resource.RLIM_INFINITY) == MAX_CONNECTIONS


def test_a_flood_of_idle_connections_under_a_low_descriptor_limit(tmp_path: Path,
                                                                  runtime: Path) -> None:
    """More idle connections than the run has file descriptors: it keeps serving (accept errors
    are waited out), closes idle ones, answers `status` and `say`, and ends normally."""
    config = tmp_path / "slow.toml"
    config.write_text(SLOW.format(turns=12, delay=0.2))
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "t"), "NO_COLOR": "1",
           "XDG_RUNTIME_DIR": str(runtime)}

    # `intermodel run`, allowed 24 file descriptors (a run needs about 10).
    limited = ("import resource, runpy, sys\n"
               "resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))\n"
               "sys.argv = ['intermodel', *sys.argv[1:]]\n"
               "runpy.run_module('intermodel', run_name='__main__')\n")
    run = subprocess.Popen([sys.executable, "-c", limited, "run", str(config), "--headless"],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    clients: list[socket.socket] = []
    try:
        def sockets() -> list[Path]:  # in the runtime dir, or beside the transcript
            return [*runtime.glob("intermodel/*.sock"), *tmp_path.glob("t/*.sock")]

        deadline = time.monotonic() + 20
        while not sockets() and time.monotonic() < deadline:
            time.sleep(0.05)
        [path] = sockets()
        for _ in range(200):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(path))
            clients.append(client)
        time.sleep(IDLE_SECONDS + 2)
        assert run.poll() is None, run.communicate()[1]  # still running
        closed = 0
        for client in clients:
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # still open
                closed += client.recv(1) == b""
        assert closed > 0  # the server closed idle connections by itself
    finally:
        for client in clients:
            client.close()
    [transcript] = (tmp_path / "t").glob("*.jsonl")
    reply = retry_request(path, {"command": "interject", "text": "still there?", "to": "both"})
    assert reply["ok"] is True and "message for ada and bo" in reply["accepted"]
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "Traceback" not in err
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert any(r.get("text") == "still there?" for r in records)
    assert records[-1]["kind"] == "end" and records[-1]["reason"] == "max_turns"
    assert records[-1]["turns"] == 12


def retry_request(path: Path, payload: dict[str, Any], seconds: float = 20) -> dict[str, Any]:
    """Ask until the run answers (it may still be working through closed connections)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            reply = request(path, payload, timeout=2)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        if reply.get("error", "").startswith("the run is busy") and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        return reply


def serve_and_abuse(pairing: Pairing, out: Path, environ: dict[str, str],
                    abuse: Any) -> tuple[str, Any]:
    """Run `pairing` with its control socket; `abuse(path)` runs in a thread meanwhile. The end
    reason and what `abuse` returned."""
    found: list[Any] = []

    async def main() -> str:
        async with prepared_run(pairing, out_dir=out, environ=environ) as run:
            assert run.transcript is not None
            server = ControlServer(run.session, run.transcript)
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve)

                async def attack() -> None:
                    found.append(await anyio.to_thread.run_sync(abuse, server.path))

                tg.start_soon(attack)
                end = await run.session.run()
                tg.cancel_scope.cancel()
        return end.reason

    reason = anyio.run(main)
    return reason, found[0] if found else None


def test_connections_beyond_the_cap_are_told_the_run_is_busy(make_pairing: PairingFactory,
                                                             tmp_path: Path,
                                                             runtime: Path) -> None:
    pairing = make_pairing(SLOW.format(turns=8, delay=0.1))

    def abuse(path: Path) -> dict[str, Any]:
        idle = []
        try:
            for _ in range(MAX_CONNECTIONS):
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(str(path))
                idle.append(client)
            time.sleep(0.5)  # let the run accept them all
            # The run answers "busy" at once, without reading: often before this request is
            # sent, which then meets a closed socket (EPIPE); the answer must still be read.
            busy = request(path, {"command": "status"})
        finally:
            for client in idle:
                client.close()
        return {"busy": busy, "after": retry_request(path, {"command": "status"})}

    reason, replies = serve_and_abuse(pairing, tmp_path, {}, abuse)
    assert replies["busy"]["ok"] is False and "busy" in replies["busy"]["error"]
    assert replies["after"]["ok"] is True
    assert reason == "max_turns"


def test_a_reply_sent_before_the_request_was_read_is_still_read(tmp_path: Path) -> None:
    """A busy run answers at once and hangs up without reading. A request too big for the
    socket's buffers makes the client still be sending when that happens (EPIPE), every time."""
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def answer_unread() -> None:
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b'{"ok": false, "error": "busy"}\n')
                time.sleep(0.2)  # the client is blocked sending by now

        server = threading.Thread(target=answer_unread)
        server.start()
        try:
            reply = request(path, {"command": "status", "padding": "x" * 8_000_000})
        finally:
            server.join()
    assert reply == {"ok": False, "error": "busy"}


def test_an_idle_connection_is_closed(make_pairing: PairingFactory, tmp_path: Path,
                                      runtime: Path) -> None:
    pairing = make_pairing(SLOW.format(turns=1000, delay=0.05))  # stopped by the test

    def abuse(path: Path) -> float:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            client.settimeout(IDLE_SECONDS + 10)
            began = time.monotonic()
            assert client.recv(1) == b""  # closed by the run, unanswered
            waited = time.monotonic() - began
        request(path, {"command": "stop", "now": True})
        return waited

    reason, waited = serve_and_abuse(pairing, tmp_path, {}, abuse)
    assert IDLE_SECONDS - 1 < waited < IDLE_SECONDS + 5
    assert reason == "stopped"


def test_garbage_and_hangups_leave_the_run_alone(make_pairing: PairingFactory,
                                                 tmp_path: Path, runtime: Path) -> None:
    pairing = make_pairing(SLOW.format(turns=6, delay=0.02))

    def raw(path: Path, data: bytes, read: bool = True) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(data)
            return client.recv(65536) if read else b""

    def abuse(path: Path) -> list[bytes]:
        answers = [
            raw(path, b"\xff\xfe not json\n"),
            raw(path, b"[" * 60_000 + b"\n"),  # nested too deep for the JSON parser
            raw(path, b"x" * 70_000),  # too large, no newline
            raw(path, b'{"command": "status"}\n', read=False),  # hangs up before the reply
            raw(path, b'"a string"\n'),
            raw(path, b'{"command": "extend", "turns": true}\n'),
        ]
        answers.append(raw(path, b'{"command": "status"}\n'))
        return answers

    reason, answers = serve_and_abuse(pairing, tmp_path, {}, abuse)
    replies = [json.loads(a) for a in answers if a]
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert reason == "max_turns"


def test_replies_carry_no_secret_and_no_command_line_wording(make_pairing: PairingFactory,
                                                             tmp_path: Path,
                                                             runtime: Path) -> None:
    pairing = make_pairing(SCRIPTED.replace(
        '[agents.bo.script]', '[agents.bo.extra_headers]\nX-Api-Key = "${HOSTILE_KEY}"\n'
        '[agents.bo.script]').replace("max_turns = 4", "max_turns = 6").replace(
        '"bo three"]', '"bo three"]\ndelay = 0.05'))

    def abuse(path: Path) -> list[dict[str, Any]]:
        return [request(path, payload) for payload in (
            {"command": f"tell me {KEY}"},
            {"command": "interject", "text": "hi", "to": KEY},
            {"command": "interject", "text": "hi", "to": "carol"},
            {"command": "status"},
        )]

    reason, replies = serve_and_abuse(pairing, tmp_path, {"HOSTILE_KEY": KEY}, abuse)
    text = json.dumps(replies)
    assert KEY[:8] not in text
    assert replies[2] == {"ok": False, "error": "no such addressee: use a, b, both, ada or bo"}
    assert "--" not in text
    assert reason == "max_turns"
