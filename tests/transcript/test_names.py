"""Closed sets of names in transcripts: how a run ended (`EndReason`) and what kind of error a
retry met (`ErrorKind`). Known names read as their members and are written back as the same
bytes; a name this version does not know reads as UNKNOWN, and every reader shows this version's
own wording for it, never the file's text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from intermodel.analysis import run_stats
from intermodel.analysis.html import run_html
from intermodel.analysis.markdown import to_markdown
from intermodel.errors import ErrorKind, RateLimited
from intermodel.records import Discard, EndReason, Retry, RunEnd, exit_code_for, record_to_json
from intermodel.transcript.reader import read_transcript
from tests.hostile.support import cli

FORMAT1 = Path(__file__).parent / "format1"
HOSTILE = "\x1b[2J\x1b]0;owned\x07budget_of_2030"


def _edited(tmp_path: Path, name: str, value: str, *fields: str) -> Path:
    """A copy of a format-1 fixture with each of `fields` ("end.reason": the reason of every end
    record) set to `value`."""
    path = tmp_path / name
    shutil.copy(FORMAT1 / name, path)
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for kind, _, field in (f.partition(".") for f in fields):
            if record.get("kind") == kind:
                record[field] = value
                line = json.dumps(record, ensure_ascii=False)
        lines.append(line + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_known_names_read_as_members_and_write_back_the_same_bytes() -> None:
    transcript = read_transcript(FORMAT1 / "dialogue.jsonl")
    ends = [r for r in transcript.records if isinstance(r, RunEnd)]
    retries = [r for r in transcript.records if isinstance(r, Retry)]
    assert [e.reason for e in ends] == [EndReason.MAX_TURNS, EndReason.MAX_TURNS]
    assert [r.error for r in retries] == [ErrorKind.RATE_LIMITED]
    written = {json.dumps(record_to_json(r), separators=(",", ":"), ensure_ascii=False)
               for r in [*ends, *retries]}
    on_disk = set((FORMAT1 / "dialogue.jsonl").read_text(encoding="utf-8").splitlines())
    assert written <= on_disk


@pytest.mark.parametrize("value", ["budget_of_2030", HOSTILE, ""])
def test_an_unknown_end_reason_reads_as_unknown(tmp_path: Path, value: str) -> None:
    path = _edited(tmp_path, "branch.jsonl", value, "end.reason", "discard.reason")
    transcript = read_transcript(path)
    assert transcript.end is not None and transcript.end.reason is EndReason.UNKNOWN
    discard = next(r for r in transcript.records if isinstance(r, Discard))
    assert discard.reason is EndReason.UNKNOWN
    assert run_stats(transcript).end_reason == "unknown"
    assert exit_code_for(transcript.end) == 0


def test_an_unknown_error_kind_reads_as_unknown(tmp_path: Path) -> None:
    path = _edited(tmp_path, "dialogue.jsonl", HOSTILE, "retry.error")
    retry = next(r for r in read_transcript(path).records if isinstance(r, Retry))
    assert retry.error is ErrorKind.UNKNOWN
    assert retry.error.words == "unknown error"


def test_no_reader_shows_the_text_of_an_unknown_name(tmp_path: Path) -> None:
    path = _edited(tmp_path, "dialogue.jsonl", HOSTILE, "end.reason", "retry.error")
    transcript = read_transcript(path)
    shown = {"markdown": to_markdown(transcript), "html": run_html(transcript)}
    for command in (["inspect"], ["stats"], ["export"], ["export", "--format", "html"]):
        result = cli(command[0], path, *command[1:])
        assert result.code == 0, (command, result.err)
        shown[" ".join(command)] = result.out + result.err
    for name, text in shown.items():
        assert "budget_of_2030" not in text and "owned" not in text, name
        assert "\x1b" not in text, name
    assert "unknown" in shown["markdown"] and "unknown" in shown["html"]


def test_code_naming_a_reason_that_does_not_exist_is_an_error() -> None:
    assert RunEnd("max_turns").reason is EndReason.MAX_TURNS  # the value's text will do
    with pytest.raises(ValueError, match="'max_turn' is not a valid EndReason"):
        RunEnd("max_turn")
    with pytest.raises(ValueError, match="'rate_limit' is not a valid ErrorKind"):
        Retry(1, "ada", 1, "rate_limit", "slow", 429, 1.0)


def test_every_reason_and_kind_has_words() -> None:
    assert EndReason.MAX_TURNS.words == "max turns"
    assert EndReason.MAX_TURNS.outcome == "turn budget reached"
    assert all(reason.outcome for reason in EndReason)
    assert ErrorKind.RATE_LIMITED.words == "rate limited"
    assert RateLimited("slow down", provider="openai", status=429).describe() == \
        "openai 429 rate limited: slow down"
