"""`intermodel replay --follow` as a person runs it: real processes, a real run writing the
transcript while another process follows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from intermodel.records import Resumption, RunEnd
from intermodel.transcript.reader import read_transcript
from tests.lineage.follow_support import header_of, line_of, turns_of
from tests.transcripts import at, finished

REPO = Path(__file__).resolve().parents[2]
TURNS = 6

SLOW = f"""
name = "slow-pair"
[dialogue]
opener = "Take your time."
max_turns = {TURNS}
[agents.ada]
provider = "scripted"
[agents.ada.script]
replies = ["ada speaks slowly, one word at a time, in reply {{reply}} of hers."]
thinking = ["ada weighs reply {{reply}}."]
delay = 0.08
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["bo answers, just as slowly, with reply {{reply}} of his own."]
delay = 0.08
"""


def intermodel(*args: str, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(out), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_headless_follow_of_a_running_run_prints_every_turn_and_exits_with_its_code(
        tmp_path: Path) -> None:
    config = tmp_path / "slow.toml"
    config.write_text(SLOW)
    out = tmp_path / "runs"
    run = intermodel("run", str(config), "--headless", out=out)
    try:
        wait_for(lambda: list(out.glob("*.jsonl")))
        path = next(out.glob("*.jsonl"))
        follower = intermodel("replay", "--follow", str(path), out=out)  # stdout is a pipe
        wait_for(lambda: path.read_bytes().count(b'"kind":"turn"') >= 1)
        # The run is still going while it is followed.
        assert b'"kind":"end"' not in path.read_bytes()
        output, errors = follower.communicate(timeout=120)
    finally:
        run.communicate(timeout=120)
    assert run.returncode == 0 and follower.returncode == 0, errors
    assert errors == ""
    transcript = read_transcript(path)
    positions = [output.index(f"✓ {t.agent} turn {t.index} ") for t in transcript.turns]
    assert len(positions) == TURNS and positions == sorted(positions)
    for t in transcript.turns:
        assert t.text in output
    assert "ada weighs reply 1." in output
    assert output.rstrip().splitlines()[-1] == f"  transcript: {path}"
    assert "══ finished: max turns" in output


def write_run(path: Path, end: RunEnd | None, pairing_text: str = SLOW) -> None:
    from intermodel.config import parse_pairing

    pairing = parse_pairing(pairing_text, source="slow.toml")
    data = line_of(header_of(pairing)) + b"".join(line_of(t) for t in turns_of(2))
    path.write_bytes(data + (line_of(end) if end else b""))


@pytest.mark.parametrize(("reason", "code"), [("max_turns", 0), ("error", 1),
                                               ("interrupted", 130)])
def test_the_exit_code_is_the_runs(tmp_path: Path, reason: str, code: int) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, None)
    follower = intermodel("replay", "--follow", "--headless", str(path), out=tmp_path)
    time.sleep(0.3)
    with path.open("ab") as file:
        file.write(line_of(finished(turns_of(2), reason=reason, detail="the server fell over")))
    output, errors = follower.communicate(timeout=60)
    assert follower.returncode == code
    assert "bo says line 2." in output
    if reason == "error":
        assert errors == "intermodel: the server fell over\n"


def test_a_garbage_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, None)
    follower = intermodel("replay", "--follow", "--headless", str(path), out=tmp_path)
    assert follower.stdout is not None
    wait_for(lambda: "opener" in follower.stdout.readline())  # type: ignore[union-attr]
    half = line_of(turns_of(1, first=3)[0])
    with path.open("ab") as file:
        file.write(half[:25])  # torn: waited for, not reported
    time.sleep(0.5)
    assert follower.poll() is None
    with path.open("ab") as file:
        file.write(half[25:] + b'{"kind": "turn", "index": NaN}\n')
    output, errors = follower.communicate(timeout=60)
    assert follower.returncode == 2
    assert "ada says line 3." in output  # what came before the bad line is shown
    assert errors == f"intermodel: {path}:5: NaN is not a number a transcript may hold\n"


def test_ctrl_c_stops_following_quietly_with_130(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, None)
    follower = intermodel("replay", "--follow", "--headless", str(path), out=tmp_path)
    assert follower.stdout is not None
    wait_for(lambda: "bo says line 2." in follower.stdout.readline())  # type: ignore[union-attr]
    follower.send_signal(signal.SIGINT)
    _, errors = follower.communicate(timeout=60)
    assert follower.returncode == 130
    assert errors == ""


def test_a_finished_transcript_is_printed_and_done(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, finished(turns_of(2)))
    follower = intermodel("replay", "--follow", str(path), "--color", "always", out=tmp_path)
    output, errors = follower.communicate(timeout=60)
    assert follower.returncode == 0 and errors == ""
    assert "\x1b[1m══ finished: max turns" in output


def test_follow_is_in_the_help() -> None:
    result = subprocess.run([sys.executable, "-m", "intermodel", "replay", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert "--follow" in result.stdout and "--headless" in result.stdout


def test_a_bad_line_already_there_is_refused_before_anything_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, None)
    with path.open("ab") as file:
        file.write(b"[1, 2]\n")
    follower = intermodel("replay", "--follow", str(path), out=tmp_path)
    output, errors = follower.communicate(timeout=60)
    assert (follower.returncode, output) == (2, "")
    assert errors == f"intermodel: {path}:4: not a JSON object (got a list)\n"


def test_a_panel_is_followed_headless(tmp_path: Path) -> None:
    from intermodel.config import load_config
    from tests.transcripts import turn

    config = tmp_path / "panel.toml"
    config.write_text('name = "voices"\n[panel]\nprompt = "What now?"\n'
                      '[agents.ann]\nprovider = "scripted"\n[agents.ann.script]\nreplies = ["a"]\n'
                      '[agents.ben]\nprovider = "scripted"\n[agents.ben.script]\nreplies = ["b"]\n')
    panel = load_config(config)
    answers = [turn(2, "ben", "ben answers first.", done_at=3.0),
               turn(1, "ann", "ann answers \x1b[2Jsecond.", done_at=4.0)]
    path = tmp_path / "panel.jsonl"
    path.write_bytes(line_of(header_of(panel)) + line_of(answers[0]))  # type: ignore[arg-type]
    follower = intermodel("replay", "--follow", str(path), out=tmp_path)
    assert follower.stdout is not None
    wait_for(lambda: "ben answers first." in follower.stdout.readline())  # type: ignore[union-attr]
    with path.open("ab") as file:
        file.write(line_of(answers[1]) + line_of(finished(answers, reason="complete")))
    output, errors = follower.communicate(timeout=60)
    assert (follower.returncode, errors) == (0, "")
    assert "ann answers ␛[2Jsecond." in output and "\x1b" not in output  # shown, not obeyed
    assert "══ finished: complete" in output


def test_speed_does_not_apply_to_a_followed_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_run(path, None)
    follower = intermodel("replay", "--follow", "--speed", "4", str(path), out=tmp_path)
    output, errors = follower.communicate(timeout=60)
    assert (follower.returncode, output) == (2, "")
    assert errors.startswith("intermodel: --speed does not apply to --follow")


def test_a_resumed_run_followed_headless_still_ends_with_its_transcript(tmp_path: Path) -> None:
    from intermodel.config import parse_pairing

    pairing = parse_pairing(SLOW, source="slow.toml")
    path = tmp_path / "run.jsonl"
    resumed = Resumption("feedc0ffee00", after_turn=2, max_turns=4, at=at(100))
    records = [header_of(pairing), *turns_of(2), resumed, *turns_of(2, first=3),
               finished(turns_of(4))]
    path.write_bytes(b"".join(line_of(r) for r in records))
    follower = intermodel("replay", "--follow", str(path), out=tmp_path)
    output, errors = follower.communicate(timeout=60)
    assert follower.returncode == 0 and errors == ""
    assert "(resumed)" in output
    assert output.rstrip().splitlines()[-1] == f"  transcript: {path}"
