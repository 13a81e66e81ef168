"""Headless control: steering a run from outside its process through its control socket."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from intermodel.control.client import request
from intermodel.control.server import ControlServer
from intermodel.engine.events import Interjected, TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.transcript.reader import read_transcript
from tests.conftest import SCRIPTED, PairingFactory

REPO = Path(__file__).resolve().parents[2]
SLOW = SCRIPTED.replace("max_turns = 4", "max_turns = 6").replace(
    '"ada three"]', '"ada three"]\ndelay = 0.05').replace(
    '"bo three"]', '"bo three"]\ndelay = 0.05')


@pytest.mark.anyio
async def test_the_socket_steers_the_run_and_answers_status(make_pairing: PairingFactory,
                                                            tmp_path: Path) -> None:
    pairing = make_pairing(SLOW)
    replies: list[dict[str, object]] = []
    seen: list[Interjected] = []
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        subscription = run.session.subscribe()

        async def ask(payload: dict[str, object]) -> dict[str, object]:
            reply = await anyio.to_thread.run_sync(request, server.path, payload)
            replies.append(reply)
            return reply

        async def drive() -> None:
            async for event in subscription:
                if isinstance(event, Interjected):
                    seen.append(event)
                if isinstance(event, TurnCompleted) and event.turn.index == 1:
                    status = await ask({"command": "status"})
                    assert status["ok"]
                    await ask({"command": "interject", "text": "hi from outside", "to": "b"})
                    await ask({"command": "interject", "text": "x", "to": "carol"})
                    await ask({"command": "extend", "turns": 2})
                    await ask({"command": "launch"})

        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
            tg.start_soon(drive)
            end = await run.session.run()
            tg.cancel_scope.cancel()
    assert not server.path.exists()  # removed when the run ends
    assert end.turns == 8
    status = replies[0]["status"]
    assert isinstance(status, dict)
    assert status["turns"] >= 1 and status["max_turns"] == 6 and status["pid"] == os.getpid()
    assert replies[1]["ok"] is True and "message for bo" in replies[1]["accepted"]
    assert replies[2] == {"ok": False, "error": "no such addressee: use a, b, both, ada or bo"}
    assert replies[4] == {"ok": False, "error": "unknown command 'launch'"}
    assert run.transcript is not None
    bo_turns = [r for r in read_transcript(run.transcript).records
                if getattr(r, "text", "") == "hi from outside"]
    assert bo_turns and bo_turns[0].to == ("bo",)  # type: ignore[union-attr]
    # Published live as well as recorded: exactly the one valid interjection, to bo.
    assert [(e.interjection.text, e.interjection.to) for e in seen] == [
        ("hi from outside", ("bo",))]


class SlowRun:
    """`intermodel run --headless` of a pairing too slow to end by itself, in a real process,
    with `cli` to speak to it from other processes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(folder), "NO_COLOR": "1"}
        config = folder / "slow.toml"
        # A budget the run cannot reach while a test talks to it: only a stop ends it.
        config.write_text(SLOW.replace("delay = 0.05", "delay = 0.4").replace(
            "max_turns = 6", "max_turns = 1000"))
        self.proc = subprocess.Popen([sys.executable, "-m", "intermodel", "run", str(config),
                                      "--headless"], cwd=REPO, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=30,
                              check=False)

    def wait_for_status(self) -> subprocess.CompletedProcess[str]:
        """`status` asked until the run answers: a busy machine may take many seconds to start
        it."""
        deadline = time.monotonic() + 60  # a bound for a hang, not for speed
        status = self.cli("status", str(self.folder))
        while "turns done" not in status.stdout:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never answered status"
            status = self.cli("status", str(self.folder))
        return status

    def end(self) -> None:
        self.proc.kill()
        self.proc.communicate()  # reaps it and closes its pipes, however the test ended


def test_say_status_and_stop_from_another_process(tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    proc, cli = run.proc, run.cli
    try:
        # pytest's temporary paths are too long for a socket beside the transcript, so this also
        # covers the fallback socket in the private runtime folder.
        status = run.wait_for_status()
        [transcript] = tmp_path.glob("*.jsonl")
        assert status.returncode == 0
        assert "/1000 turns done" in status.stdout
        assert str(transcript) in status.stdout
        said = cli("say", str(transcript), "please wrap up", "--to", "a")
        assert said.returncode == 0, said.stderr
        wrong = cli("say", str(transcript), "hello", "--to", "carol")
        assert wrong.returncode == 2
        assert wrong.stderr.strip() == "intermodel: no such addressee: use a, b, both, ada or bo"
        stopped = cli("control", str(transcript), "stop", "--now")
        assert stopped.returncode == 0, stopped.stderr
        out, err = proc.communicate(timeout=20)
    finally:
        run.end()
    assert proc.returncode == 0, err
    assert "✎ human → ada" in out
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert {"kind": "interjection", "to": ["ada"], "text": "please wrap up"}.items() <= \
        next(r for r in records if r["kind"] == "interjection").items()
    assert records[-1]["reason"] == "stopped"
    assert not list(tmp_path.glob("*.sock"))
    assert cli("status", str(tmp_path)).stdout.strip() == "no runs in progress"
    late = cli("say", str(transcript), "too late")
    assert late.returncode == 2 and "has finished (stopped)" in late.stderr
