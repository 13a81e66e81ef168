"""A transcript is untrusted input: resuming or branching an edited one sends no key and reads no
key variable for an endpoint that no pairing file of yours vouches for.

The attack: someone edits a transcript so its agents point at their server (here a loopback fake
server), name a variable holding a secret as the key, and add a header that expands another one.
Nothing may reach that server — not a context probe, not a chat request — before the user
consents; headless, the command refuses with one line and exit 2.
"""

from __future__ import annotations

import grp
import json
import os
import pty
import pwd
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config import load_pairing
from intermodel.config.digest import canonical_digest
from intermodel.config.experiment import load_experiment
from intermodel.control.client import live_runs
from intermodel.control.paths import socket_path
from intermodel.engine.prepare import prepared_run
from intermodel.errors import InvalidRunId, UntrustedTranscript
from intermodel.experiment.batch import Batch
from intermodel.lineage.resume import prepared_resume
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault

REPO = Path(__file__).resolve().parents[2]
ADA_KEY, BO_KEY = "ada-key-value-0001", "bo-key-value-0002"
VICTIM_KEY, AWS_SECRET = "victim-key-value-31337", "aws-secret-value-42424242"


def pairing_text(url: str, max_turns: int = 2) -> str:
    return f"""
name = "trusty"
[dialogue]
opener = "Hello."
max_turns = {max_turns}
[agents.ada]
provider = "openai"
model = "m"
prompt = "You are ada."
base_url = "{url}/v1"
api_key_env = "ADA_KEY"
[agents.bo]
provider = "openai"
model = "m"
base_url = "{url}/v1"
api_key_env = "BO_KEY"
"""


@pytest.fixture
def home() -> Iterator[FakeServer]:
    """The server the user's own pairing file names."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def evil() -> Iterator[FakeServer]:
    """The server an edited transcript points at."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**clean, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1",
            "ADA_KEY": ADA_KEY, "BO_KEY": BO_KEY, "VICTIM_KEY": VICTIM_KEY,
            "SOME_SECRET": AWS_SECRET, "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}


def intermodel(*args: str, env: Mapping[str, str], timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def recorded_run(tmp_path: Path, home: FakeServer, env: Mapping[str, str]) -> tuple[Path, Path]:
    """A finished two-turn run of the user's own pairing file: (pairing file, transcript)."""
    pairing = tmp_path / "pair.toml"
    pairing.write_text(pairing_text(home.base_url))
    done = intermodel("run", str(pairing), "--headless", env=env)
    assert done.returncode == 0, done.stderr
    [transcript] = (tmp_path / "runs").glob("*.jsonl")
    home.reset()
    return pairing, transcript


def edit_header(transcript: Path, change: Any, *, rehash: bool = True) -> None:
    """Change the header's config as an attacker would, recomputing its hash (a careful one)."""
    lines = transcript.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    change(header["config"])
    if rehash:
        header["config_hash"] = canonical_digest(header["config"])
    lines[0] = json.dumps(header) + "\n"
    transcript.write_text("".join(lines))


def hijack(url: str) -> Any:
    def change(config: dict[str, Any]) -> None:
        ada = config["agents"]["ada"]
        ada["base_url"] = f"{url}/v1"
        ada["api_key_env"] = "VICTIM_KEY"
        ada["extra_headers"] = {"X": "${SOME_SECRET}"}
    return change


def continue_args(command: str, transcript: Path, *extra: str) -> list[str]:
    if command == "resume":
        return ["resume", str(transcript), "--turns", "4", "--headless", *extra]
    return ["branch", str(transcript), "--turn", "1", "--turns", "4", "--headless", *extra]


@pytest.mark.parametrize("command", ["resume", "branch"])
def test_an_edited_transcript_is_refused_headless_and_nothing_goes_out(
        command: str, tmp_path: Path, home: FakeServer, evil: FakeServer,
        env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    edit_header(transcript, hijack(evil.base_url))
    before = transcript.read_bytes()
    result = intermodel(*continue_args(command, transcript), env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("intermodel: ") and "--trust" in line
    assert f"{evil.base_url}/v1" in line and "$VICTIM_KEY" in line and "header X" in line
    assert VICTIM_KEY not in result.stderr + result.stdout
    assert AWS_SECRET not in result.stderr + result.stdout
    assert evil.requests == [] and home.requests == []  # no probe, no chat, anywhere
    assert transcript.read_bytes() == before  # not even a resume or branch record
    assert len(list(transcript.parent.glob("*.jsonl"))) == 1


@pytest.mark.parametrize("command", ["resume", "branch"])
def test_with_trust_the_edited_transcript_goes_where_it_says(
        command: str, tmp_path: Path, home: FakeServer, evil: FakeServer,
        env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    edit_header(transcript, hijack(evil.base_url))
    result = intermodel(*continue_args(command, transcript, "--trust"), env=env)
    assert result.returncode == 0, result.stderr
    chats = [r for r in evil.requests if r.path == "/v1/chat/completions"]
    assert chats and all(r.headers["authorization"] == f"Bearer {VICTIM_KEY}" for r in chats)
    assert all(r.headers["x"] == AWS_SECRET for r in chats)


@pytest.mark.parametrize("command", ["resume", "branch"])
def test_an_unedited_transcript_of_an_unchanged_pairing_goes_on_without_asking(
        command: str, tmp_path: Path, home: FakeServer, env: dict[str, str]) -> None:
    pairing, transcript = recorded_run(tmp_path, home, env)
    # An edit that touches no endpoint, key variable or header does not count.
    pairing.write_text(pairing.read_text().replace('"You are ada."', '"You are ada, kind."'))
    result = intermodel(*continue_args(command, transcript), env=env)
    assert result.returncode == 0, result.stderr
    assert any(r.path == "/v1/chat/completions" for r in home.requests)


@pytest.mark.parametrize("edit", ["endpoint", "key variable", "header", "gone"])
def test_a_pairing_file_changed_where_it_matters_no_longer_vouches(
        edit: str, tmp_path: Path, home: FakeServer, evil: FakeServer,
        env: dict[str, str]) -> None:
    pairing, transcript = recorded_run(tmp_path, home, env)
    text = pairing.read_text()
    if edit == "endpoint":
        pairing.write_text(text.replace(home.base_url, evil.base_url, 1))
    elif edit == "key variable":
        pairing.write_text(text.replace('"ADA_KEY"', '"VICTIM_KEY"'))
    elif edit == "header":
        pairing.write_text(text.replace('api_key_env = "BO_KEY"',
                                        'api_key_env = "BO_KEY"\nextra_headers = {X = "1"}'))
    else:
        pairing.unlink()
    result = intermodel(*continue_args("resume", transcript), env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert home.requests == [] and evil.requests == []


def test_a_pairing_file_of_another_user_vouches_for_nothing(
        tmp_path: Path, home: FakeServer, env: dict[str, str]) -> None:
    pairing, transcript = recorded_run(tmp_path, home, env)
    pairing.chmod(0o666)  # anyone could have written what it says
    result = intermodel(*continue_args("resume", transcript), env=env)
    assert result.returncode == 2 and "can be changed by any user" in result.stderr
    assert home.requests == []


def a_shared_group() -> int | None:
    """A group we may give a file to that is not ours alone, if there is one."""
    me = pwd.getpwuid(os.getuid()).pw_name
    candidates = [g.gr_gid for g in grp.getgrall()] if os.getuid() == 0 else os.getgroups()
    for gid in candidates:
        group = grp.getgrgid(gid)
        if group.gr_name != me:
            return gid
    return None


def test_a_pairing_file_a_shared_group_may_write_vouches_for_nothing(
        tmp_path: Path, home: FakeServer, env: dict[str, str]) -> None:
    gid = a_shared_group()
    if gid is None:
        pytest.skip("no group other than our own to give the file to")
    pairing, transcript = recorded_run(tmp_path, home, env)
    os.chown(pairing, -1, gid)
    pairing.chmod(0o664)
    result = intermodel(*continue_args("resume", transcript), env=env)
    assert result.returncode == 2 and "its group may write it" in result.stderr
    assert home.requests == []
    pairing.chmod(0o644)  # only its owner may write it again: it vouches
    again = intermodel(*continue_args("resume", transcript), env=env)
    assert again.returncode == 0, again.stderr


def test_a_seat_swapped_in_from_a_file_named_on_the_command_line_is_vouched_for(
        tmp_path: Path, home: FakeServer, evil: FakeServer, env: dict[str, str]) -> None:
    pairing, transcript = recorded_run(tmp_path, home, env)

    def move_bo(config: dict[str, Any]) -> None:
        config["agents"]["bo"]["base_url"] = f"{evil.base_url}/v1"

    edit_header(transcript, move_bo)
    swapped = intermodel("branch", str(transcript), "--turn", "1", "--headless",
                         "--swap", f"bo={pairing}:bo", env=env)
    assert swapped.returncode == 0, swapped.stderr
    assert evil.requests == [] and home.requests
    # The branch remembers which file filled the seat: resuming it needs no consent either.
    [child] = [p for p in (tmp_path / "runs").glob("*.jsonl") if p != transcript]
    assert read_transcript(child).header["parent"]["swap"] == {"bo": f"{pairing}:bo"}
    home.reset()
    again = intermodel("resume", str(child), "--turns", "4", "--headless", env=env)
    assert again.returncode == 0, again.stderr
    # A swap vouches for its own seat only.
    edit_header(transcript, hijack(evil.base_url))
    other = intermodel("branch", str(transcript), "--turn", "1", "--headless",
                       "--swap", f"bo={pairing}:bo", env=env)
    assert other.returncode == 2 and "ada" in other.stderr
    assert evil.requests == []


class WatchedEnviron(dict[str, str]):
    """An environment that remembers every variable looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.read.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.append(str(key))
        return super().__contains__(key)


@pytest.mark.anyio
async def test_no_variable_named_by_an_untrusted_transcript_is_read_before_consent(
        tmp_path: Path, home: FakeServer, evil: FakeServer, env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    edit_header(transcript, hijack(evil.base_url))
    environ = WatchedEnviron({"VICTIM_KEY": VICTIM_KEY, "SOME_SECRET": AWS_SECRET})
    with pytest.raises(UntrustedTranscript):
        async with prepared_resume(transcript, turns=4, environ=environ):
            pass
    assert environ.read == [] and evil.requests == []


def read_until(fd: int, marker: bytes, seconds: float = 30) -> bytes:
    """Everything a pty shows until `marker` (or the end, or the time)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


def on_a_terminal(args: list[str], env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "intermodel", *args], cwd=REPO,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "120",
                                 "LINES": "40"},
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return proc, master


def test_on_a_terminal_the_user_is_shown_the_seats_and_asked_and_no_is_the_default(
        tmp_path: Path, home: FakeServer, evil: FakeServer, env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    edit_header(transcript, hijack(evil.base_url))
    proc, master = on_a_terminal(["resume", str(transcript), "--turns", "4"], env)
    try:
        shown = read_until(master, b"[y/N]").decode()
        assert "[y/N]" in shown, shown
        assert f"{evil.base_url}/v1" in shown and f"{home.base_url}/v1" in shown
        assert "$VICTIM_KEY" in shown and "$BO_KEY" in shown
        assert "header X (from $SOME_SECRET)" in shown
        assert VICTIM_KEY not in shown and AWS_SECRET not in shown and BO_KEY not in shown
        os.write(master, b"\r")  # just Enter: the default is no
        rest = read_until(master, b"\x00", seconds=20).decode()
        assert proc.wait(timeout=20) == 2
        assert "not resumed" in rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    assert evil.requests == [] and home.requests == []


def test_on_a_terminal_yes_lets_the_run_go_on(
        tmp_path: Path, home: FakeServer, evil: FakeServer, env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    edit_header(transcript, hijack(evil.base_url))
    proc, master = on_a_terminal(["resume", str(transcript), "--turns", "4"], env)
    try:
        assert b"[y/N]" in read_until(master, b"[y/N]")
        assert evil.requests == []
        os.write(master, b"y\r")
        deadline = time.monotonic() + 60
        while not any(r.path == "/v1/chat/completions" for r in evil.requests):
            assert time.monotonic() < deadline, "the run never started"
            read_until(master, b"\x00", seconds=0.5)  # keep the terminal drained
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)


def test_inspect_reports_a_tampered_config(tmp_path: Path, home: FakeServer,
                                           env: dict[str, str]) -> None:
    _, transcript = recorded_run(tmp_path, home, env)
    clean = intermodel("inspect", str(transcript), env=env)
    assert clean.returncode == 0 and clean.stdout.startswith("ok       config")
    def redirect(config: dict[str, Any]) -> None:
        config["agents"]["ada"].update(base_url="http://127.0.0.1:9/v1", api_key_env="VICTIM_KEY")

    # Endpoints and key variables are in no request: every request hash still matches.
    edit_header(transcript, redirect, rehash=False)
    tampered = intermodel("inspect", str(transcript), env=env)
    assert tampered.returncode == 1
    assert tampered.stdout.startswith("MISMATCH config")
    assert "2 of 2 turns match" in tampered.stdout
    one = intermodel("inspect", str(transcript), "--turn", "1", env=env)
    assert one.returncode == 1 and "MISMATCH config" in one.stdout
    lines = transcript.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["config_hash"] = None  # not the same as no hash at all
    transcript.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    nulled = intermodel("inspect", str(transcript), env=env)
    assert nulled.returncode == 1 and nulled.stdout.startswith("MISMATCH config")


def test_a_transcript_from_before_config_hashes_still_reads_resumes_and_inspects(
        tmp_path: Path, env: dict[str, str]) -> None:
    done = intermodel("run", "configs/scripted.toml", "--headless", "--turns", "2", env=env)
    assert done.returncode == 0, done.stderr
    [transcript] = (tmp_path / "runs").glob("*.jsonl")
    lines = transcript.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["config_hash"]
    transcript.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    inspected = intermodel("inspect", str(transcript), env=env)
    assert inspected.returncode == 0, inspected.stdout
    assert "the header has no config hash" in inspected.stdout
    resumed = intermodel("resume", str(transcript), "--turns", "4", "--headless", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_transcript(transcript).turns) == 4


BAD_RUN_IDS = ["../../../tmp/pwned", "ABCDEF123456", "abcdef12345", "abcdef1234567", "",
               "abcdef12345/", 123456789012, None]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_a_run_id_that_is_not_12_lowercase_hex_digits_is_refused(
        run_id: object, tmp_path: Path, env: dict[str, str]) -> None:
    done = intermodel("run", "configs/scripted.toml", "--headless", "--turns", "2", env=env)
    assert done.returncode == 0, done.stderr
    [transcript] = (tmp_path / "runs").glob("*.jsonl")
    lines = transcript.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["run_id"] = run_id
    transcript.write_text(json.dumps(header) + "\n" + "".join(lines[1:-1]))  # no end: "live"
    for args in (["resume", str(transcript), "--turns", "4", "--headless"],
                 ["branch", str(transcript), "--turn", "1", "--headless"],
                 ["say", str(transcript), "hello"],
                 ["control", str(transcript), "pause"],
                 ["inspect", str(transcript)]):
        result = intermodel(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.splitlines()
        assert "12 lowercase hex digits" in line
    assert not (tmp_path / "xdg").exists() or not list((tmp_path / "xdg").rglob("*.sock"))


def test_run_ids_are_checked_where_they_name_sockets(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    with pytest.raises(InvalidRunId):
        socket_path("x" * 200, "../../evil")
    assert socket_path("x" * 200, "0123456789ab").name == "0123456789ab.sock"
    pairing = load_pairing(REPO / "configs" / "scripted.toml")

    async def start() -> None:
        async with prepared_run(pairing, out_dir=tmp_path / "runs", run_id="../x"):
            pass

    with pytest.raises(InvalidRunId):
        anyio.run(start)
    assert not (tmp_path / "runs").exists()


def test_status_ignores_sockets_in_the_runtime_dir_not_named_by_a_run_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "xdg"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    (runtime / "intermodel").mkdir(parents=True, mode=0o700)
    planted = runtime / "intermodel" / "not-a-run.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(planted))
        listener.listen()
        listener.setblocking(False)
        assert list(live_runs([])) == []
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody even connected to it


@pytest.mark.anyio
async def test_a_batch_resumes_its_own_entries_and_refuses_an_edited_one(
        tmp_path: Path, home: FakeServer, evil: FakeServer) -> None:
    (tmp_path / "pair.toml").write_text(pairing_text(home.base_url))
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f"""
name = "trial"
out = "{tmp_path / 'out'}"
concurrency = 1
[[pairings]]
file = "pair.toml"
[[openers]]
label = "one"
text = "First."
[[openers]]
label = "two"
text = "Second."
""")
    environ = {"ADA_KEY": ADA_KEY, "BO_KEY": BO_KEY, "VICTIM_KEY": VICTIM_KEY}
    home.faults.push(Fault.status(401), Fault.status(401))  # both entries end in an error
    first = await Batch(load_experiment(experiment), environ=environ).run()
    assert first.count("failed") == 2
    transcripts = sorted((tmp_path / "out" / "runs").glob("*.jsonl"))
    edited = next(p for p in transcripts
                  if read_transcript(p).header["experiment"]["opener"] == "one")
    edit_header(edited, hijack(evil.base_url))
    home.reset()
    second = await Batch(load_experiment(experiment), environ=environ).run()
    states = {entry.split("/")[1]: state for entry, state in second.states.items()}
    assert states["two"].status == "finished"  # resumed: vouched for by the experiment
    assert states["one"].status == "failed"
    assert "the experiment's pairing 'trusty' has other endpoints" in states["one"].detail
    assert evil.requests == []
