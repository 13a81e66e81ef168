"""Crash safety: SIGKILL a headless run at random moments, resume it each time, and compare the
result with an uninterrupted run — no turn lost, none repeated, every request identical."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intermodel.lineage.audit import verify_transcript
from intermodel.transcript.reader import read_transcript

REPO = Path(__file__).resolve().parent.parent
TURNS = 40

PAIRING = f"""
name = "kill"
[dialogue]
opener = "Count with me."
max_turns = {TURNS}
[agents.ada]
provider = "scripted"
[agents.ada.script]
replies = ["ada says one two three four five six seven eight, reply {{reply}}",
           "ada again with a b c d e f g h, reply {{reply}}"]
thinking = ["thinking about it for a while, reply {{reply}}"]
delay = 0.004
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["bo answers nine ten eleven twelve thirteen fourteen, reply {{reply}}"]
delay = 0.004
"""


def start(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(out), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "intermodel", *args, "--headless"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def resumable(out: Path) -> Path | None:
    """The run's transcript, once its header made it to disk."""
    for path in out.glob("*.jsonl"):
        first = path.read_bytes().split(b"\n", 1)
        if len(first) == 2:  # a complete header line
            return path
        path.unlink()  # killed while writing the header: nothing to resume, start again
    return None


def run_with_kills(config: Path, out: Path, rng: random.Random) -> tuple[Path, int]:
    kills = 0
    while True:
        transcript = resumable(out)
        if transcript is not None and read_transcript(transcript).end is not None \
                and read_transcript(transcript).end.reason == "max_turns":  # type: ignore[union-attr]
            return transcript, kills  # finished, though killed before the process exited
        args = ["resume", str(transcript)] if transcript else ["run", str(config)]
        proc = start(args, out)
        try:
            _, err = proc.communicate(timeout=rng.uniform(0.15, 0.6))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        assert proc.returncode == 0, err.decode()


@pytest.mark.slow
def test_random_kills_lose_and_repeat_nothing(tmp_path: Path) -> None:
    config = tmp_path / "kill.toml"
    config.write_text(PAIRING)
    reference_out = tmp_path / "reference"
    proc = start(["run", str(config)], reference_out)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    reference = read_transcript(next(reference_out.glob("*.jsonl")))
    expected = [(t.index, t.agent, t.text, t.thinking, t.request_hash) for t in reference.turns]
    assert len(expected) == TURNS

    rng = random.Random(20261126)
    total_kills = 0
    for attempt in range(3):
        started = time.monotonic()
        path, kills = run_with_kills(config, tmp_path / f"killed-{attempt}", rng)
        total_kills += kills
        transcript = read_transcript(path)
        got = [(t.index, t.agent, t.text, t.thinking, t.request_hash) for t in transcript.turns]
        assert got == expected, f"after {kills} kills"
        assert transcript.end is not None and transcript.end.reason == "max_turns"
        assert transcript.torn is None
        assert len(transcript.resumes) <= kills
        assert all(r.matches for r in verify_transcript(transcript))
        assert time.monotonic() - started < 120
    assert total_kills >= 15
