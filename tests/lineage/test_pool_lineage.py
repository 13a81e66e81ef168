"""A run on an endpoint pool through the morning-after commands, as real processes against real
loopback servers: its turns name their servers, yet `inspect` matches every request hash, and
`resume` and `branch` go on over the pool; a transcript edited to add a server to the pool is
not vouched for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from intermodel.config.digest import canonical_digest
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer
from tests.fakeserver.handler import GENERATION_PATHS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FakeServer()) for _ in range(3)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**clean, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1",
            "POOL_KEY": "pool-key-value-0001", "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}


def intermodel(*args: str | Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *map(str, args)], cwd=REPO,
                          env=dict(env), capture_output=True, text=True, timeout=60, check=False)


def pool_file(tmp_path: Path, urls: list[str]) -> Path:
    listed = ", ".join(f'"{u}"' for u in urls)
    path = tmp_path / "pool.toml"
    path.write_text("""
name = "pool"
[dialogue]
opener = "Hello."
max_turns = 2
""" + "".join(f"""
[agents.{name}]
provider = "openai"
model = "m"
base_urls = [{listed}]
api_key_env = "POOL_KEY"
""" for name in ("ada", "bo")))
    return path


def served(server: FakeServer) -> int:
    return sum(1 for r in server.requests if r.path in GENERATION_PATHS)


def test_inspect_resume_and_branch_work_on_a_pooled_run(
        tmp_path: Path, servers: list[FakeServer], env: dict[str, str]) -> None:
    urls = [s.base_url + "/v1" for s in servers]
    done = intermodel("run", pool_file(tmp_path, urls), "--headless", env=env)
    assert done.returncode == 0, done.stderr
    [path] = (tmp_path / "runs").glob("*.jsonl")

    resumed = intermodel("resume", path, "--turns", "4", "--headless", env=env)
    assert resumed.returncode == 0, resumed.stderr
    run = read_transcript(path)
    assert [t.index for t in run.turns] == [1, 2, 3, 4]
    # One process per command: each starts its round robin at the first server.
    assert [urls.index(t.endpoint) for t in run.turns] == [0, 1, 0, 1]

    branched = intermodel("branch", path, "--turn", "2", "--say", "Go on.", "--to", "a",
                          "--turns", "3", "--headless", env=env)
    assert branched.returncode == 0, branched.stderr
    [branch] = [p for p in (tmp_path / "runs").glob("*.jsonl") if p != path]
    child = read_transcript(branch)
    assert [t.endpoint for t in child.turns] == [urls[0], urls[1], urls[0]]

    for transcript, turns in ((path, 4), (branch, 3)):
        checked = intermodel("inspect", transcript, env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"{turns} of {turns} turns match their recorded request hash" in checked.stdout
        one = intermodel("inspect", transcript, "--turn", "2", env=env)
        assert one.returncode == 0
        assert f"turn 2 (bo, answered by {urls[1]}): sha256:" in one.stdout
        assert "matches the recorded hash" in one.stdout
    # The run and the resume sent two requests each, the branch one (it copied turns 1 and 2).
    assert [served(s) for s in servers] == [3, 2, 0]


def test_a_transcript_edited_to_add_a_server_to_the_pool_is_refused(
        tmp_path: Path, servers: list[FakeServer], env: dict[str, str]) -> None:
    home, other, evil = servers
    urls = [home.base_url + "/v1", other.base_url + "/v1"]
    assert intermodel("run", pool_file(tmp_path, urls), "--headless",
                      env=env).returncode == 0
    [path] = (tmp_path / "runs").glob("*.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    header: dict[str, Any] = json.loads(lines[0])
    header["config"]["agents"]["ada"]["base_urls"].append(evil.base_url + "/v1")
    header["config_hash"] = canonical_digest(header["config"])
    path.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    before = [served(s) for s in servers]

    refused = intermodel("resume", path, "--turns", "4", "--headless", env=env)
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert f"{evil.base_url}/v1" in line and "--trust" in line
    assert [served(s) for s in servers] == before
    assert evil.requests == []
