"""`intermodel attach --headless` as people use it: real runs and real viewers, each its own
process; viewers stopped (SIGSTOP) or killed mid-stream never hold up the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.control.test_control import REPO, SlowRun


def _viewer(run: SlowRun, *target: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "intermodel", "attach", "--headless",
                             *target], cwd=REPO, env=run.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _turns_done(run: SlowRun) -> int:
    status = run.wait_for_status().stdout
    return int(status.split("/")[0].split()[-1])


def _wait_for_turns(run: SlowRun, turns: int) -> None:
    deadline = time.monotonic() + 60  # a bound for a hang, not for speed
    while _turns_done(run) < turns:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)


def test_two_viewers_one_stopped_one_killed_and_the_run_goes_on(tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    viewers: list[subprocess.Popen[str]] = []
    try:
        run.wait_for_status()
        [transcript] = tmp_path.glob("*.jsonl")
        watching = _viewer(run, str(transcript))  # by its transcript
        run_id = transcript.stem.rsplit("-", 1)[1]
        stopped = _viewer(run, run_id)  # by the first characters of its run id
        killed = _viewer(run)  # the one run in progress
        viewers += [watching, stopped, killed]
        _wait_for_turns(run, 2)
        os.kill(stopped.pid, signal.SIGSTOP)
        killed.kill()
        before = _turns_done(run)
        said = run.cli("say", str(transcript), "a word from outside", "--to", "bo")
        assert said.returncode == 0, said.stderr
        _wait_for_turns(run, before + 2)  # turns go on while one viewer sleeps
        assert run.cli("control", str(transcript), "stop").returncode == 0
        out, err = watching.communicate(timeout=60)
        run_out, _ = run.proc.communicate(timeout=60)
    finally:
        for viewer in viewers:
            with_suppressed_kill(viewer)
        run.end()
    assert watching.returncode == 0, err
    # The viewer saw what the run's own console showed: every turn, the message, the end.
    for line in ("── ada · turn 1", "── bo · turn 2", "✎ human → bo", "a word from outside",
                 "══ finished: stopped"):
        assert line in out, line
        assert line in run_out, line
    turns_seen = out.count("✓ ")
    assert turns_seen == run_out.count("✓ ") and turns_seen >= 4


def with_suppressed_kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.communicate()


def test_attach_says_so_when_nothing_runs_or_the_run_has_ended(tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    try:
        run.wait_for_status()
        [transcript] = tmp_path.glob("*.jsonl")
        assert run.cli("control", str(transcript), "stop", "--now").returncode == 0
        run.proc.communicate(timeout=60)
    finally:
        run.end()
    nothing = run.cli("attach", "--headless")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "intermodel: no run in progress to attach to"
    ended = run.cli("attach", str(transcript))
    assert ended.returncode == 2
    assert "has finished (stopped); `intermodel replay` shows it" in ended.stderr
    unknown = run.cli("attach", "0123456789ab")
    assert unknown.returncode == 2 and "no run in progress has the id" in unknown.stderr
