"""`intermodel say` and `control` print one line saying what the run accepted."""

from __future__ import annotations

import re
from pathlib import Path

from tests.control.test_control import SlowRun


def test_say_and_control_confirm_what_the_run_accepted(tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    cli = run.cli
    try:
        run.wait_for_status()
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
        run.proc.communicate(timeout=20)
    finally:
        run.end()
    prefix = "accepted: test-pair ("
    assert all(line.startswith(prefix) for line in lines.values()), lines
    assert re.search(r"\): message for ada \(14 characters\), before turn \d+$",
                     lines["please wrap up --to a"])
    assert "message for ada and bo (7 characters)" in lines["and you --to both"]
    assert lines["pause"].endswith("): pause (a streaming turn is finished first)")
    assert lines["extend 3"].endswith("): 3 more turns")
    assert lines["resume"].endswith("): resume")
    assert lines["stop --now"].endswith("): stop now (a streaming turn is discarded)")
