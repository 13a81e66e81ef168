"""`intermodel say` and `control` print one line saying what the run accepted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.control.test_control import REPO, SLOW


def test_say_and_control_confirm_what_the_run_accepted(tmp_path: Path) -> None:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path), "NO_COLOR": "1"}
    config = tmp_path / "slow.toml"
    config.write_text(SLOW.replace("delay = 0.05", "delay = 0.4").replace(
        "max_turns = 6", "max_turns = 1000"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=30, check=False)

    proc = subprocess.Popen([sys.executable, "-m", "intermodel", "run", str(config),
                             "--headless"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # a bound for a hang, not for speed
        while "turns done" not in cli("status", str(tmp_path)).stdout:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never answered status"
        [transcript] = tmp_path.glob("*.jsonl")
        lines = {}
        for args in (["say", str(transcript), "please wrap up", "--to", "a"],
                     ["say", str(transcript), "and you", "--to", "both"],
                     ["control", str(transcript), "pause"],
                     ["control", str(transcript), "extend", "3"],
                     ["control", str(transcript), "resume"],
                     ["control", str(transcript), "stop", "--now"]):
            result = cli(*args)
            assert result.returncode == 0, result.stderr
            [lines[" ".join(args[2:])]] = result.stdout.splitlines()
        proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
    prefix = "accepted: test-pair ("
    assert all(line.startswith(prefix) for line in lines.values()), lines
    assert re.search(r"\): message for ada \(14 characters\), before turn \d+$",
                     lines["please wrap up --to a"])
    assert "message for ada and bo (7 characters)" in lines["and you --to both"]
    assert lines["pause"].endswith("): pause (a streaming turn is finished first)")
    assert lines["extend 3"].endswith("): 3 more turns")
    assert lines["resume"].endswith("): resume")
    assert lines["stop --now"].endswith("): stop now (a streaming turn is discarded)")
