"""Every running entry of a batch is reachable, and the batch itself is: its snapshot, its socket
(pause, resume, stop after the running turns or at once), `intermodel status` and `say`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config.experiment import load_experiment
from intermodel.config.model import AgentConfig
from intermodel.control.client import ForeignSocket, find_batch, registered_run, request
from intermodel.control.registry import registered
from intermodel.control.server import IDLE_SECONDS
from intermodel.experiment.batch import LAST_LINE, Batch
from intermodel.experiment.control import BatchServer
from intermodel.experiment.manifest import EntryState
from intermodel.experiment.plan import Entry
from intermodel.providers.base import Provider
from intermodel.providers.registry import make_provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Discard, Interjection
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.experiment.test_batch import REPO, write_experiment
from tests.fakeserver import FakeServer, Fault

pytestmark = pytest.mark.anyio
KEY = "sk-" + "proj-" + "Zx9cV2bN5mQ8wE1rT4yU" * 2  # built here: no key-shaped literal in git


def slow_experiment(tmp_path: Path, *, delay: float = 0.05, turns: int = 6,
                    replicates: int = 1, concurrency: int = 2) -> Path:
    """Two pairings x two openers, replies a word every `delay` seconds."""
    path = write_experiment(tmp_path, replicates=replicates)
    for name in ("pair.toml", "other.toml"):
        text = (tmp_path / name).read_text().replace("delay = 0.01", f"delay = {delay}")
        (tmp_path / name).write_text(text)
    text = path.read_text().replace("turns = 4", f"turns = {turns}").replace(
        "concurrency = 3", f"concurrency = {concurrency}")
    path.write_text(text)
    return path


async def ask(path: Path, payload: dict[str, Any], **options: Any) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(lambda: request(path, payload, **options))


async def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    with anyio.fail_after(timeout):  # a bound for a hang, not for speed
        while not condition():  # noqa: ASYNC110 - the batch's state has no event to wait on
            await anyio.sleep(0.01)


class Providers:
    """A provider factory that keeps every scripted provider it makes, by agent."""

    def __init__(self) -> None:
        self.made: list[tuple[str, ScriptedProvider]] = []

    def __call__(self, agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        provider = make_provider(agent, partner, credentials)
        assert isinstance(provider, ScriptedProvider)
        self.made.append((agent.name, provider))
        return provider


def running(batch: Batch) -> list[dict[str, Any]]:
    return [e for e in batch.snapshot()["entries"] if e["state"] == "running"]


async def test_every_running_entry_serves_its_socket_and_the_batch_serves_its_own(
        tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path)))
    seen: dict[str, Any] = {}

    async def watch() -> None:
        await wait_for(lambda: len(running(batch)) == 2 and all(
            e["turns"] >= 1 for e in running(batch)))
        live = {r.id: r for r in registered()}
        [found] = [r for r in live.values() if r.kind == "batch"]
        seen["batch"] = found
        seen["status"] = await ask(found.socket, {"command": "status"})
        seen["entries"] = {}
        for entry in running(batch):
            sock = registered_run(entry["run_id"])  # by run id, through the registry
            seen["entries"][entry["key"]] = await ask(sock, {"command": "status"})
        await ask(found.socket, {"command": "stop", "now": True})

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await batch.run()
    found = seen["batch"]
    assert (found.kind, found.name, found.id) == ("batch", "trial", batch.id)
    assert found.path == str(tmp_path / "exp.toml")
    assert find_batch(str(tmp_path / "exp.toml")) is None  # gone with the batch
    status = seen["status"]["status"]
    assert status["kind"] == "batch" and status["total"] == 4 and status["pid"] == os.getpid()
    assert [e["key"] for e in status["entries"]] == [e.id for e in batch.entries]
    assert len(seen["entries"]) == 2
    for key, reply in seen["entries"].items():
        assert reply["ok"] and reply["status"]["turns"] >= 1, key
        assert reply["status"]["transcript"] == batch.states[key].transcript
    assert not registered()  # every socket closed, every entry removed


async def test_the_snapshot_says_why_an_entry_retries_and_counts_429s(tmp_path: Path) -> None:
    with FakeServer() as server:
        server.faults.push(Fault.status(429, retry_after="1"))
        (tmp_path / "api.toml").write_text(f"""
name = "api"
[dialogue]
opener = "Hello."
max_turns = 2
[retry]
backoff_initial = 0.2
[agents.ada]
provider = "openai"
model = "m"
base_url = "{server.base_url}/v1"
api_key_env = "THE_KEY"
timeout = 5
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["bo one", "bo two"]
""")
        (tmp_path / "exp.toml").write_text(f"""
name = "limited"
out = "{tmp_path / 'out'}"
[[pairings]]
file = "api.toml"
label = "api"
""")
        snapshots: list[dict[str, Any]] = []

        def listener(entry: Entry, state: EntryState) -> None:
            if state.status == "retrying" and not snapshots:
                snapshots.append(batch.snapshot())

        batch = Batch(load_experiment(tmp_path / "exp.toml"), environ={"THE_KEY": KEY},
                      listener=listener)
        with anyio.fail_after(60):
            report = await batch.run()
    assert report.count("finished") == 1
    [entry] = snapshots[0]["entries"]
    assert entry["state"] == "retrying"
    host = server.base_url.split("//")[1]
    assert entry["waiting"] == f"openai {host}: rate limited 429"
    assert snapshots[0]["retrying"] == 1
    after = batch.snapshot()
    assert after["providers"]["openai"] == {"streams": 0, "retries": 1, "rate_limited": 1}
    assert after["providers"]["scripted"]["retries"] == 0
    [done] = after["entries"]
    assert (done["state"], done["turns"], done["max_turns"]) == ("done", 2, 2)
    assert done["last"] == "bo one"  # bo answered ada's one turn; the fake's reply was first
    assert after["state"] == "finished" and after["done"] == 1 and after["eta"] is None
    assert KEY not in json.dumps([*snapshots, after])


async def test_pause_holds_every_entry_and_resume_lets_them_go_on(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.02)))
    turns_while_paused: list[int] = []

    async def steer() -> None:
        await wait_for(lambda: len(running(batch)) == 2)
        server = next(r for r in registered() if r.kind == "batch").socket
        reply = await ask(server, {"command": "pause"})
        assert reply["ok"] and "pause" in reply["accepted"]
        # Each running dialogue finishes its streaming turn, then waits at its gate.
        await wait_for(lambda: all(e["activity"] == "paused" for e in running(batch)))
        assert batch.snapshot()["state"] == "paused"
        before = [e["turns"] for e in running(batch)]
        await anyio.sleep(0.3)  # paused runs take no turn (nothing to wait for: it is absent)
        turns_while_paused.extend(e["turns"] - b for e, b in zip(running(batch), before,
                                                                 strict=True))
        assert batch.snapshot()["queued"] == 2  # no new entry started meanwhile
        assert (await ask(server, {"command": "resume"}))["ok"]

    async with anyio.create_task_group() as tg:
        tg.start_soon(steer)
        report = await batch.run()
    assert turns_while_paused == [0, 0]
    assert report.count("finished") == 4


@pytest.mark.parametrize("now", [False, True])
async def test_stop_after_the_running_turns_or_at_once(tmp_path: Path, now: bool) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.03, turns=20)))

    async def steer() -> None:
        # Both first entries are streaming a turn when the stop comes.
        await wait_for(lambda: len(running(batch)) == 2 and all(
            e["turns"] >= 1 and e["activity"].startswith("streaming") for e in running(batch)))
        server = next(r for r in registered() if r.kind == "batch").socket
        reply = await ask(server, {"command": "stop", "now": now})
        assert reply["ok"] and ("stop now" in reply["accepted"]) is now
        assert batch.snapshot()["state"] == ("stopping now" if now else
                                             "stopping after running turns")

    async with anyio.create_task_group() as tg:
        tg.start_soon(steer)
        report = await batch.run()
    assert report.count("interrupted") == 2 and report.count("pending") == 2  # none started
    for state in report.states.values():
        if state.transcript is None:
            continue
        transcript = read_transcript(state.transcript)
        assert transcript.end is not None and transcript.end.reason == "stopped"
        discarded = [r for r in transcript.records if isinstance(r, Discard)]
        assert bool(discarded) is now  # after the turns: the streaming turn was finished
        assert len(transcript.turns) < 20


async def test_say_to_a_batch_entry_reaches_the_agents_next_request(tmp_path: Path) -> None:
    providers = Providers()
    experiment = load_experiment(slow_experiment(tmp_path, delay=0.05, turns=4))
    batch = Batch(experiment, provider_factory=providers)
    key = batch.entries[0].id
    said: list[subprocess.CompletedProcess[str]] = []
    env = {**os.environ, "NO_COLOR": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    async def say() -> None:
        # Paused after its first turn, so the message lands before bo's next turn at any speed.
        await wait_for(lambda: batch.states.get(key) is not None
                       and batch.states[key].status == "running" and batch.states[key].turns >= 1)
        batch.pause()
        transcript = batch.states[key].transcript
        assert transcript is not None
        said.append(await anyio.to_thread.run_sync(
            cli, "say", transcript, "a word from outside", "--to", "bo"))
        batch.resume()

    async with anyio.create_task_group() as tg:
        tg.start_soon(say)
        report = await batch.run()
    assert report.count("finished") == 4
    [done] = said
    assert done.returncode == 0, done.stderr
    assert "accepted: " in done.stdout and "message for bo" in done.stdout
    path = batch.states[key].transcript or ""
    transcript = read_transcript(path)
    [interjection] = [r for r in transcript.records if isinstance(r, Interjection)]
    assert interjection.to == ("bo",)
    # What bo was sent next held the message; ada was never sent it, nor any other entry's bo.
    heard = [(name, p) for name, p in providers.made
             if any("a word from outside" in m.content for r in p.requests for m in r.messages)]
    assert [name for name, _ in heard] == ["bo"]
    assert any(t.agent == "bo" and t.index >= interjection.before_turn for t in transcript.turns)
    # Every turn's recorded request hash matches its request rebuilt from the transcript,
    # the message included.
    checked = await anyio.to_thread.run_sync(cli, "inspect", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_intermodel_status_lists_the_batch_and_its_running_entries(tmp_path: Path) -> None:
    path = slow_experiment(tmp_path, delay=0.2, turns=200)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "intermodel", "batch", str(path), "--yes",
                             "--headless"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # a bound for a hang, not for speed
        while len([r for r in registered() if r.kind == "run"]) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the entries never listened"
            time.sleep(0.1)
        status = subprocess.run([sys.executable, "-m", "intermodel", "status"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].startswith("batch trial: 0/4 done · 2 running · 0 retrying · 0 failed")
        runs = [line for line in lines[1:] if "turns done" in line]
        assert len(runs) == 2 and all("/200 turns done" in line for line in runs)
        assert all(str(tmp_path / "out" / "runs") in line for line in runs)
        stop = subprocess.run([sys.executable, "-m", "intermodel", "status"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        assert stop.returncode == 0
        found = find_batch("trial")
        assert found is not None
        reply = request(found.socket, {"command": "stop", "now": True})
        assert reply["ok"]
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130  # stopped: the same command carries on
    assert "run the same command again to carry on" in out
    assert not registered()


async def test_the_batch_socket_checks_its_peer_and_refuses_bad_input(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.05, turns=3)),
                  serve=False)
    server = BatchServer(batch)

    def raw(data: bytes, *, wait: float = 5) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(wait)
            client.connect(os.fspath(server.path))
            if data:
                client.sendall(data)
            got = b""
            while not got.endswith(b"\n"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got

    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        assert (os.stat(server.path).st_mode & 0o777) == 0o600
        with pytest.raises(ForeignSocket):
            await ask(server.path, {"command": "stop", "now": True},
                      expected_uid=os.getuid() + 1)
        replies = {}
        for name, data in {
            "garbage": b"\x00\xffnot json\n",
            "list": b"[1, 2]\n",
            "deep": b"[" * 100_000 + b"\n",
            "unknown": b'{"command": "launch"}\n',
            "huge": b'{"command": "' + b"x" * 70_000 + b'"}\n',
            "key": json.dumps({"command": KEY}).encode() + b"\n",
        }.items():
            replies[name] = json.loads(await anyio.to_thread.run_sync(raw, data))
        idle_started = time.monotonic()
        idle = await anyio.to_thread.run_sync(lambda: raw(b"", wait=IDLE_SECONDS * 3))
        idle_took = time.monotonic() - idle_started
        status = await ask(server.path, {"command": "status"})
        tg.cancel_scope.cancel()
    assert replies["garbage"] == {"ok": False, "error": "bad request: JSONDecodeError"}
    assert replies["list"] == {"ok": False, "error": "a request is a JSON object"}
    assert replies["deep"]["error"].startswith("bad request: ")
    assert replies["unknown"] == {"ok": False, "error": "unknown command 'launch'"}
    assert replies["huge"] == {"ok": False, "error": "bad request: ValueError"}
    assert KEY not in json.dumps(replies["key"])  # echoed back without the secret
    assert idle == b"" and idle_took < IDLE_SECONDS * 3  # hung up on, not left open
    assert status["ok"] and status["status"]["state"] == "running"  # nothing was stopped
    assert not server.path.exists()


def test_a_long_last_line_is_cut_and_keys_are_redacted() -> None:
    from intermodel.experiment.batch import _last_line

    assert _last_line("first\n\n  second line  \n") == "second line"
    long = _last_line("x" * 500)
    assert len(long) == LAST_LINE and long.endswith("…")
    assert KEY not in _last_line(f"the key is {KEY}")


async def reach_running_entries(batch: Batch, count: int) -> dict[str, dict[str, Any]]:
    """Each running entry's status, asked through its own socket, found by its run id."""
    await wait_for(lambda: len(running(batch)) == count and all(
        e["run_id"] for e in running(batch)))
    replies = {}
    for entry in running(batch):
        reply = await ask(registered_run(entry["run_id"]), {"command": "status"})
        assert reply["ok"], reply
        replies[entry["key"]] = reply["status"]
    return replies


async def test_resumed_entries_of_a_resumed_batch_are_reachable(tmp_path: Path) -> None:
    experiment = load_experiment(slow_experiment(tmp_path, delay=0.05, turns=30))
    first = Batch(experiment)

    async def stop_midway() -> None:
        await wait_for(lambda: len(running(first)) == 2 and all(
            e["turns"] >= 2 for e in running(first)))
        first.stop(now=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_midway)
        await first.run()
    cut = {k: s.transcript for k, s in first.states.items() if s.status == "interrupted"}
    assert len(cut) == 2
    again = Batch(experiment)
    seen: dict[str, dict[str, Any]] = {}

    async def reach() -> None:
        seen.update(await reach_running_entries(again, 2))
        again.stop(now=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reach)
        await again.run()
    assert set(seen) == set(cut)  # the interrupted two were resumed first, in place
    for key, status in seen.items():
        assert status["transcript"] == cut[key] and status["turns"] >= 2
        assert again.states[key].attempts == 2


async def test_a_panel_entry_is_reachable(tmp_path: Path) -> None:
    from tests.analysis.support import panel_trial

    path = panel_trial(tmp_path, replicates=1)
    voices = tmp_path / "voices.toml"
    voices.write_text(voices.read_text().replace("first_token_delay = 0.3",
                                                 "first_token_delay = 30"))
    batch = Batch(load_experiment(path))
    seen: dict[str, dict[str, Any]] = {}

    async def reach() -> None:
        seen.update(await reach_running_entries(batch, 1))
        batch.stop(now=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reach)
        await batch.run()
    [(key, status)] = seen.items()
    assert key == "voices/news/r1" and status["pairing"] == "voices"
    assert batch.snapshot()["entries"][0]["kind"] == "panel"
    assert batch.states[key].end_reason == "interrupted"


def as_nobody(path: Path) -> bytes:
    """What another local user (uid 65534, in a forked child) is answered on `path`."""
    import warnings

    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a fork beside idle threads
        pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(IDLE_SECONDS * 3)
                client.connect(os.fspath(path))
                client.sendall(b'{"command": "stop", "now": true}\n')
                got = b""
                while chunk := client.recv(65536):
                    got += chunk
            os.write(write_end, b"ANSWER " + got)
        except (ConnectionResetError, BrokenPipeError):  # hung up on, before or after it spoke
            os.write(write_end, b"ANSWER ")
        except OSError as exc:
            os.write(write_end, f"FAILED {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        said = report.read()
    os.waitpid(pid, 0)
    return said


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
async def test_another_user_gets_no_answer_from_the_batch_socket(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path)), serve=False)
    server = BatchServer(batch)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        # Opened up on purpose (a careless chmod), so only the peer check stands in the way.
        for folder in (server.path.parent, server.path.parent.parent):  # this test's own
            folder.chmod(0o755)
        server.path.chmod(0o777)
        said = await anyio.to_thread.run_sync(as_nobody, server.path)
        tg.cancel_scope.cancel()
    assert said == b"ANSWER "  # connected, sent a stop, and was told nothing
    assert batch.state == "running"  # the stop was not heard


async def test_connections_beyond_the_cap_are_told_the_batch_is_busy(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path)), serve=False)
    server = BatchServer(batch)

    def flood() -> dict[str, Any]:
        idle = []
        try:
            for _ in range(server.cap):
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(os.fspath(server.path))
                idle.append(client)
            time.sleep(0.5)  # let the server accept them all
            return request(server.path, {"command": "status"})
        finally:
            for client in idle:
                client.close()

    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        busy = await anyio.to_thread.run_sync(flood)
        await wait_for(lambda: server.connections == 0)
        after = await ask(server.path, {"command": "status"})
        tg.cancel_scope.cancel()
    assert busy == {"ok": False, "error": "the batch is busy with other control connections; "
                                          "try again"}
    assert after["ok"]
