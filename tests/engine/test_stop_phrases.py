"""Stop phrases end a run only where they mean it (`dialogue.stop_match`), and the end record
says which phrase matched, how and where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intermodel.config.loader import parse_pairing
from intermodel.engine.events import Notice, TurnCompleted
from intermodel.engine.stops import REGEX_SECONDS, RegexTimedOut, find_literal_stop, find_stop
from intermodel.errors import ConfigError
from intermodel.records import StopMatch
from intermodel.security.patterns import pattern_problem
from intermodel.transcript.reader import read_transcript
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import run_dialogue

REPO = Path(__file__).resolve().parents[2]
QUOTED = "If I wanted to stop, the narrative would be written as ^C^C and then it would end."


def pairing_text(bo_reply: str, mode: str | None = None, phrases: str = '["^C^C"]') -> str:
    settings = f"max_turns = 6\nstop_phrases = {phrases}"
    if mode is not None:
        settings += f'\nstop_match = "{mode}"'
    return SCRIPTED.replace("max_turns = 4", settings).replace('"bo one"', json.dumps(bo_reply))


@pytest.mark.parametrize(("text", "mode", "where"), [
    ("Thank you. ^C^C", "end", 11),
    ("Thank you. ^C^C.  \n", "end", 11),
    ("Thank you. **^C^C**", "end", 13),
    ("Thank you. `^C^C`!", "end", 12),
    ("^C^C", "end", 0),
    (QUOTED, "end", None),
    ("^C^C is what I would write, but not yet", "end", None),
    ("Goodbye.\n^C^C\nThat was nice.", "line", 9),
    ("Goodbye.\n  *^C^C*  \n", "line", 12),
    (QUOTED, "line", None),
    ("ends with ^C^C", "line", None),
    (QUOTED, "anywhere", QUOTED.index("^C^C")),
    ("nothing here", "anywhere", None),
])
def test_where_a_phrase_counts(text: str, mode: str, where: int | None) -> None:
    found = find_literal_stop(text, ["^C^C"], mode)
    assert (found.start if found else None) == where
    if found is not None:
        assert text[found.start:found.end] == "^C^C" and found.mode == mode


@pytest.mark.anyio
async def test_a_quoted_stop_phrase_does_not_end_the_run_by_default(
        make_pairing: PairingFactory) -> None:
    end, events = await run_dialogue(make_pairing(pairing_text(QUOTED)))
    assert end.reason == "max_turns" and end.stop is None
    assert len([e for e in events if isinstance(e, TurnCompleted)]) == 6


@pytest.mark.anyio
async def test_a_closing_stop_phrase_ends_the_run_and_says_where(
        make_pairing: PairingFactory) -> None:
    end, _ = await run_dialogue(make_pairing(pairing_text("It was good to talk. ^C^C")))
    assert (end.reason, end.ended_by, end.turns) == ("stop_phrase", "bo", 2)
    assert end.stop == StopMatch("^C^C", "end", 2, 21, 25)


@pytest.mark.anyio
async def test_anywhere_keeps_the_old_meaning(make_pairing: PairingFactory) -> None:
    end, _ = await run_dialogue(make_pairing(pairing_text(QUOTED, "anywhere")))
    assert end.stop == StopMatch("^C^C", "anywhere", 2, QUOTED.index("^C^C"),
                                 QUOTED.index("^C^C") + 4)


@pytest.mark.anyio
async def test_regex_phrases(make_pairing: PairingFactory) -> None:
    reply = "Well.\nGOODBYE, friend!\nbye"
    end, _ = await run_dialogue(make_pairing(pairing_text(
        reply, "regex", r"""['(?im)^goodbye\b', 'never']""")))
    assert end.stop == StopMatch(r"(?im)^goodbye\b", "regex", 2, 6, 13)


@pytest.mark.parametrize(("phrase", "problem"), [
    ("(unclosed", "not a regular expression"),
    ("(a+)+$", "exponential"),
    (r"(\w+\s?)*$", "exponential"),
    (r"(a)\1", "backreferences"),
    ("x" * 201, "longer than 200"),
])
def test_bad_regex_phrases_are_refused_at_load(tmp_path: Path, phrase: str, problem: str
                                               ) -> None:
    text = pairing_text("hi", "regex", json.dumps(["fine", phrase]))
    with pytest.raises(ConfigError) as caught:
        parse_pairing(text, source="p.toml", base_dir=tmp_path)
    [issue] = caught.value.issues
    assert str(issue).startswith("dialogue.stop_phrases[1]: ") and problem in str(issue)


def test_a_regex_is_not_checked_in_other_modes(tmp_path: Path) -> None:
    parse_pairing(pairing_text("hi", "end", '["(a+)+"]'), source="p.toml", base_dir=tmp_path)


@settings(deadline=None)
@given(st.text(max_size=60))
def test_any_pattern_is_judged_without_an_exception(pattern: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is None or isinstance(problem, str)


@pytest.mark.anyio
async def test_a_slow_regex_search_is_given_up_in_time() -> None:
    # Checked shapes aside, a backtracking search can still take minutes: this one takes
    # about a minute on 4 000 characters. It is searched in a worker process and abandoned.
    started = time.monotonic()
    with pytest.raises(RegexTimedOut):
        await find_stop("a" * 4000, [r"(?s).*a.*b"], "regex", limit=0.5)
    assert time.monotonic() - started < 10
    # and the worker can serve the next search
    found = await find_stop("the end", [r"end$"], "regex")
    assert found is not None and found.start == 4


@pytest.mark.anyio
async def test_a_run_goes_on_when_a_regex_search_is_given_up(
        make_pairing: PairingFactory) -> None:
    with anyio.fail_after(REGEX_SECONDS + 50):  # the search alone would take about a minute
        end, events = await run_dialogue(make_pairing(pairing_text(
            "a" * 4000, "regex", r"""['(?s).*a.*b']""")), timeout=REGEX_SECONDS + 50)
    assert end.reason == "max_turns"
    assert any(isinstance(e, Notice) and f"took more than {REGEX_SECONDS:g} s" in e.message
               for e in events)


def test_the_end_record_is_written_and_read_back(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(pairing_text("It was good to talk. ^C^C"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "intermodel", "run", str(config), "--headless",
         "--out", str(tmp_path / "runs")], cwd=REPO, env={**env, "NO_COLOR": "1"},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    [path] = (tmp_path / "runs").glob("*.jsonl")
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["stop"] == {"phrase": "^C^C", "mode": "end", "turn": 2, "start": 21, "end": 25}
    assert read_transcript(path).end.stop == StopMatch("^C^C", "end", 2, 21, 25)


def test_transcripts_written_before_stop_modes_still_read() -> None:
    transcript = read_transcript(REPO / "tests/transcript/format1/dialogue.jsonl")
    assert transcript.end is not None and transcript.end.stop is None
