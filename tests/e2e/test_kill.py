"""Crash safety: SIGKILL a headless run at random moments, resume it each time, and compare the
result with an uninterrupted run — no turn lost, none repeated, every request identical."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intermodel.lineage.audit import verify_transcript
from intermodel.transcript.reader import read_transcript

REPO = Path(__file__).resolve().parents[2]
TURNS = 30
SEQUENCES = 3

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


def progress(out: Path) -> tuple[int, int]:
    """(lines, turns) the run's transcript holds so far; a line not yet ended counts too."""
    for path in out.glob("*.jsonl"):
        data = path.read_bytes()
        return data.count(b"\n"), data.count(b'\n{"kind":"turn"')
    return 0, 0


def killed_after_progress(proc: subprocess.Popen[bytes], out: Path, rng: random.Random) -> bool:
    """SIGKILL the process at a random moment measured by what it has done, not by the clock
    (a loaded machine may take seconds just to start it): once its transcript has a new line
    (the header, or a resumed run's marker) or up to seven more turns, then a random part of a
    turn later. False if it ended first."""
    lines, turns = progress(out)
    more = rng.randint(0, 7)
    delay = rng.uniform(0, 0.08)  # a turn takes about 0.1 s: anywhere in it, writes included
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        now_lines, now_turns = progress(out)
        if (now_lines > lines) if more == 0 else (now_turns >= turns + more):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return True
        assert time.monotonic() < deadline, "the run made no progress for 60 s"
        time.sleep(0.002)
    return False


def run_with_kills(config: Path, out: Path, rng: random.Random) -> tuple[Path, int]:
    kills = 0
    while True:
        transcript = resumable(out)
        if transcript is not None and read_transcript(transcript).end is not None \
                and read_transcript(transcript).end.reason == "max_turns":  # type: ignore[union-attr]
            return transcript, kills  # finished, though killed before the process exited
        args = ["resume", str(transcript)] if transcript else ["run", str(config)]
        proc = start(args, out)
        if killed_after_progress(proc, out, rng):
            kills += 1
            continue
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()


@pytest.mark.slow
def test_random_kills_lose_and_repeat_nothing(tmp_path: Path) -> None:
    config = tmp_path / "kill.toml"
    config.write_text(PAIRING)
    reference_out = tmp_path / "reference"
    reference_run = start(["run", str(config)], reference_out)
    # The killed sequences run side by side (and beside the reference run): each spends most
    # of its time waiting for a process to start.
    with ThreadPoolExecutor(SEQUENCES) as pool:
        sequences = [pool.submit(run_with_kills, config, tmp_path / f"killed-{n}",
                                 random.Random(20261126 + n)) for n in range(SEQUENCES)]
        _, err = reference_run.communicate(timeout=60)
        assert reference_run.returncode == 0, err.decode()
        results = [sequence.result() for sequence in sequences]
    reference = read_transcript(next(reference_out.glob("*.jsonl")))
    expected = [(t.index, t.agent, t.text, t.thinking, t.request_hash) for t in reference.turns]
    assert len(expected) == TURNS

    for path, kills in results:
        transcript = read_transcript(path)
        got = [(t.index, t.agent, t.text, t.thinking, t.request_hash) for t in transcript.turns]
        assert got == expected, f"after {kills} kills"
        assert transcript.end is not None and transcript.end.reason == "max_turns"
        assert transcript.torn is None
        assert len(transcript.resumes) <= kills
        assert all(r.matches for r in verify_transcript(transcript))
    assert sum(kills for _, kills in results) >= 15
