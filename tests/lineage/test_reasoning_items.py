"""Encrypted reasoning (OpenAI's Responses API) across processes: the items kept in a transcript
are what `inspect` checks, and what `resume` and `branch` hand back to the agent that reasoned,
exactly as an uninterrupted run would have."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intermodel.config import Pairing, load_pairing
from intermodel.engine.prepare import prepared_run
from intermodel.lineage.audit import verify_transcript
from intermodel.lineage.branch import prepared_branch
from intermodel.lineage.resume import prepared_resume
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Reply, ScriptedResponder
from tests.fakeserver.server import RecordedRequest

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"
ENVIRON = {"TEST_KEY": KEY}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        srv.responder = ScriptedResponder([Reply(f"Reply {n}.", thinking=f"thought {n}")
                                           for n in range(1, 20)])
        yield srv


def pairing(srv: FakeServer, tmp_path: Path, turns: int) -> Pairing:
    agents = "".join(f"""
[agents.{name}]
provider = "openai"
api = "responses"
model = "gpt-5.2"
base_url = "{srv.base_url}/v1"
api_key_env = "TEST_KEY"
prompt = "You are {name}."
timeout = 2
[agents.{name}.thinking]
send_back = true
""" for name in ("ada", "bo"))
    path = tmp_path / "reasoning.toml"
    path.write_text(f'name = "reasoning"\n[dialogue]\nopener = "Go."\nmax_turns = {turns}\n'
                    + agents)
    return load_pairing(path)


async def first_run(srv: FakeServer, tmp_path: Path, turns: int) -> Path:
    async with prepared_run(pairing(srv, tmp_path, turns), out_dir=tmp_path / "runs",
                            environ=ENVIRON) as run:
        with anyio.fail_after(20):
            await run.session.run()
    assert run.transcript is not None
    return run.transcript


def requests_of(srv: FakeServer, agent: str) -> list[RecordedRequest]:
    return [r for r in srv.requests if r.path.endswith("/responses")
            and r.json["instructions"] == f"You are {agent}."]


def handed_back(srv: FakeServer, request: RecordedRequest) -> list[str]:
    """For each reasoning item a request hands back, the id of the response that issued it, as
    the server traces it ("?" for an item it did not issue)."""
    return [str(origin.response_id) if origin else "?"
            for origin in srv.reasoning_origins(request)]


async def test_resume_hands_back_the_reasoning_kept_in_the_transcript(
        server: FakeServer, tmp_path: Path) -> None:
    path = await first_run(server, tmp_path, turns=3)  # ada, bo, ada; then resumed to 5
    async with prepared_resume(path, turns=5, environ=ENVIRON) as run:
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns"
    ada = requests_of(server, "ada")
    assert len(ada) == 3
    # Turn 5, sent by a new process, hands back ada's turns 1 and 3 as their responses issued
    # them (the server verifies every blob).
    assert handed_back(server, ada[2]) == [str(ada[0].response_id), str(ada[1].response_id)]
    transcript = read_transcript(path)
    assert [len(t.reasoning_items) for t in transcript.turns] == [1] * 5
    assert all(r.matches for r in verify_transcript(transcript))


async def test_a_branch_hands_back_its_parents_reasoning(server: FakeServer,
                                                         tmp_path: Path) -> None:
    parent = await first_run(server, tmp_path, turns=4)
    issued = [r.response_id for r in requests_of(server, "ada")]
    async with prepared_branch(parent, 3, environ=ENVIRON, out_dir=tmp_path / "branch") as run:
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns"
    # The branch's own turn 4 is bo's: it hands back bo's turn 2 from the parent, not ada's.
    bo = requests_of(server, "bo")
    assert len(bo) == 3
    assert handed_back(server, bo[2]) == [str(bo[0].response_id)]
    assert str(issued[0]) not in handed_back(server, bo[2])
    assert run.transcript is not None
    child = read_transcript(run.transcript)
    assert [t.reasoning_items for t in child.turns[:3]] == \
        [t.reasoning_items for t in read_transcript(parent).turns[:3]]
    assert all(r.matches for r in verify_transcript(child))


def intermodel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], capture_output=True,
                          text=True, timeout=60, check=False)


async def test_inspect_reproduces_the_hash_and_sees_an_altered_item(
        server: FakeServer, tmp_path: Path) -> None:
    path = await first_run(server, tmp_path, turns=3)
    checked = intermodel("inspect", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 of 3 turns match their recorded request hash" in checked.stdout
    shown = intermodel("inspect", str(path), "--turn", "3")
    assert shown.returncode == 0
    out = shown.stdout  # the config's check, the request as JSON, the verdict
    request = json.loads(out[out.index("{"):out.rindex("}") + 1])
    [item] = request["messages"][1]["reasoning_items"]  # ada's turn 1, before her reply
    assert item["summary"] == ["thought 1"]
    assert item["encrypted_content"] == \
        requests_of(server, "ada")[1].json["input"][1]["encrypted_content"]

    # One character of one encrypted item changed: turn 3's request is no longer the one sent.
    lines = path.read_text().splitlines()
    first = next(n for n, line in enumerate(lines) if '"kind": "turn"' in line
                 or '"kind":"turn"' in line)
    record = json.loads(lines[first])
    blob = record["reasoning_items"][0]["encrypted_content"]
    record["reasoning_items"][0]["encrypted_content"] = blob[:-1] + ("A" if blob[-1] != "A"
                                                                      else "B")
    lines[first] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    altered = intermodel("inspect", str(path))
    assert altered.returncode == 1
    assert [line.split()[0] for line in altered.stdout.splitlines()[1:4]] == \
        ["ok", "ok", "MISMATCH"]
