"""A bare `intermodel status` finds every live run of this user wherever its transcript is,
through a registry in the private runtime dir whose hostile entries are ignored safely."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from intermodel.control.registry import registry_dir
from tests.control.test_control import REPO, SLOW


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30, check=False)


def test_a_bare_status_finds_a_run_whose_transcript_is_elsewhere(tmp_path: Path) -> None:
    # A short private folder, so the socket sits beside the transcript, outside every folder a
    # bare status looks in by itself.
    elsewhere = Path(tempfile.mkdtemp(prefix="im-"))
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "default"), "NO_COLOR": "1"}
    config = tmp_path / "slow.toml"
    config.write_text(SLOW.replace("delay = 0.05", "delay = 0.4").replace(
        "max_turns = 6", "max_turns = 1000"))
    proc = subprocess.Popen([sys.executable, "-m", "intermodel", "run", str(config),
                             "--headless", "--out", str(elsewhere)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # a bound for a hang, not for speed
        while not list(elsewhere.glob("*.jsonl.sock")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never listened"
            time.sleep(0.1)
        status = cli("status", env=env, cwd=tmp_path)
        [transcript] = elsewhere.glob("*.jsonl")
        assert status.returncode == 0, status.stderr
        assert str(transcript) in status.stdout and "turns done" in status.stdout
        assert cli("control", str(transcript), "stop", "--now", env=env,
                   cwd=tmp_path).returncode == 0
        proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
        shutil.rmtree(elsewhere, ignore_errors=True)
    assert not list(registry_dir().iterdir())  # the run took its entry with it
    assert cli("status", env=env, cwd=tmp_path).stdout.strip() == "no runs in progress"


def test_hostile_and_dead_registry_entries(tmp_path: Path) -> None:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "default"), "NO_COLOR": "1"}
    registry = registry_dir()
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"run_id": "aaaaaaaaaaaa", "socket": "/dev/null", "pid": 1}))
    (registry / "aaaaaaaaaaaa.json").symlink_to(outside)  # a link: never followed
    (registry / "bbbbbbbbbbbb.json").write_text("{not json")  # garbage
    (registry / "cccccccccccc.json").write_text("[" * 100_000)  # deep or large: refused
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (registry / "dddddddddddd.json").write_text(json.dumps(
        {"run_id": "dddddddddddd", "socket": str(tmp_path / "x.sock"),
         "pid": int(dead.stdout)}))  # a run that is gone
    theirs = registry / "eeeeeeeeeeee.json"
    theirs.write_text(json.dumps({"run_id": "eeeeeeeeeeee", "socket": "/dev/null",
                                  "pid": os.getpid()}))
    if os.getuid() == 0:
        os.chown(theirs, 54321, 54321)  # another user's file
    (registry / "not-a-run.json").write_text("{}")
    (registry / "ffffffffffff.json").write_text(json.dumps(
        {"run_id": "000000000000", "socket": "/dev/null", "pid": os.getpid()}))  # wrong id
    status = cli("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == "no runs in progress"
    assert "Traceback" not in status.stderr
    left = {p.name for p in registry.iterdir()}
    assert "dddddddddddd.json" not in left  # cleaned up
    assert {"aaaaaaaaaaaa.json", "bbbbbbbbbbbb.json", "eeeeeeeeeeee.json"} <= left
    assert outside.exists() and Path("/dev/null").exists()
