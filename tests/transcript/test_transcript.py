from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import pytest

from intermodel.analysis.markdown import to_markdown
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import Event, TextChunk, TurnCompleted, TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import TranscriptError
from intermodel.lineage.audit import rebuild_request, verify_transcript
from intermodel.records import (
    BudgetChange,
    Discard,
    Flag,
    Interjection,
    Note,
    Retry,
    RunEnd,
    Trim,
    Turn,
    record_to_json,
)
from intermodel.security.secrets import Redactor
from intermodel.transcript.reader import read_transcript
from intermodel.transcript.writer import TranscriptWriter, transcript_name
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import run_dialogue, scripted_providers

pytestmark = pytest.mark.anyio

THINKING_PAIR = SCRIPTED.replace("max_turns = 4", "max_turns = 8\nshare_thinking = true").replace(
    'replies = ["ada one", "ada two", "ada three"]',
    'replies = ["ada one", "ada two", "ada three"]\nthinking = ["hm", "", "ah"]',
).replace("[agents.bo.script]", "[agents.bo.thinking]\nsend_back = true\n[agents.bo.script]"
          ).replace('replies = ["bo one", "bo two", "bo three"]',
                    'replies = ["bo one", "bo two", "bo three"]\nthinking = ["b-think"]')


async def record_run(pairing, tmp_path: Path, react=None) -> Path:  # type: ignore[no-untyped-def]
    writer = TranscriptWriter.create(tmp_path, pairing.name, "abcdef123456")
    try:
        await run_dialogue(pairing, scripted_providers(pairing), react=react, recorder=writer,
                           run_id="abcdef123456")
    finally:
        writer.close()
    return writer.path


def test_names_sort_by_time_and_show_the_pairing() -> None:
    from datetime import UTC, datetime

    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = transcript_name("claude vs/gpt", "0123456789ab", started)
    assert name == "20260102-030405-claude-vs-gpt-012345.jsonl"


async def test_a_run_writes_header_turns_and_end(make_pairing: PairingFactory,
                                                  tmp_path: Path) -> None:
    path = await record_run(make_pairing(), tmp_path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["kind"] for line in lines] == ["header", "turn", "turn", "turn", "turn", "end"]
    header = lines[0]
    assert header["format"] == 1
    assert header["run_id"] == "abcdef123456"
    assert header["versions"]["intermodel"]
    assert header["config"]["agents"]["ada"]["provider"] == "scripted"
    turn = lines[1]
    for key in ("agent", "text", "thinking", "usage", "latency", "ttft", "stop_reason", "model",
                "attempts", "request_hash"):
        assert key in turn
    assert lines[-1]["reason"] == "max_turns"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_every_turn_request_can_be_rebuilt_from_the_transcript(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    pairing = make_pairing(THINKING_PAIR)

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn in (2, 5):
            dialogue.controls.interject(f"note before {event.turn + 1}",
                                        to="a" if event.turn == 2 else "both")
        if isinstance(event, TextChunk) and event.turn == 6:
            dialogue.controls.interject("mid-stream note", to="b")

    path = await record_run(pairing, tmp_path, react)
    transcript = read_transcript(path)
    assert len(transcript.turns) == 8
    assert sum(isinstance(r, Interjection) for r in transcript.records) >= 3
    assert any(t.thinking for t in transcript.turns)
    results = verify_transcript(transcript)
    assert [r.turn.index for r in results] == list(range(1, 9))
    assert all(r.matches for r in results), [r.turn.index for r in results if not r.matches]
    # The rebuilt request really is what the provider received.
    providers_view = rebuild_request(transcript, 4).request
    assert providers_view.messages[-1].content.endswith("ada two")
    assert providers_view.messages[1].thinking == "b-think"  # bo's own thinking sent back


async def test_a_tampered_turn_no_longer_matches(make_pairing: PairingFactory,
                                                 tmp_path: Path) -> None:
    path = await record_run(make_pairing(), tmp_path)
    text = path.read_text(encoding="utf-8").replace('"text":"ada one"', '"text":"ada 1"')
    path.write_text(text, encoding="utf-8")
    results = verify_transcript(read_transcript(path))
    assert [r.matches for r in results] == [True, False, False, False]  # every later request


async def test_a_torn_last_line_is_reported_not_read(make_pairing: PairingFactory,
                                                     tmp_path: Path) -> None:
    path = await record_run(make_pairing(), tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # header, 2 turns, half a turn
    transcript = read_transcript(path)
    assert [t.index for t in transcript.turns] == [1, 2]
    assert transcript.torn is not None and transcript.torn.startswith('{"kind":"turn"')
    assert transcript.end is None
    assert "incomplete record" in to_markdown(transcript)


async def test_a_corrupt_middle_line_is_an_error(make_pairing: PairingFactory,
                                                 tmp_path: Path) -> None:
    path = await record_run(make_pairing(), tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join([lines[0], "not json\n", *lines[1:]]), encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"\.jsonl:2: not valid JSON \(Expecting value at "
                       r"column 1\)$"):
        read_transcript(path)


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(TranscriptError, match="not an intermodel transcript"):
        read_transcript(path)


async def test_secrets_never_reach_the_transcript(make_pairing: PairingFactory,
                                                  tmp_path: Path) -> None:
    # Not key-shaped: a pairing file holding anything key-shaped is refused at load.
    secret = "live-0123456789abcdefghij"
    text = SCRIPTED.replace('"ada two"', f'"my key is {secret}"')
    pairing = make_pairing(text)
    writer = TranscriptWriter.create(tmp_path, pairing.name, "r1", redactor=Redactor([secret]))
    try:
        await run_dialogue(pairing, recorder=writer)
    finally:
        writer.close()
    content = writer.path.read_text(encoding="utf-8")
    assert secret not in content
    assert "my key is [redacted]" in content


async def test_prepared_run_resolves_keys_and_redacts_them(tmp_path: Path,
                                                           make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace('"ada two"', '"the key: k-0123456789-secret"')
    pairing = make_pairing(text.replace('[agents.bo.script]', '[agents.bo.extra_headers]\n'
                                        'X-Api-Key = "${MY_SECRET}"\n[agents.bo.script]'))
    env = {"MY_SECRET": "k-0123456789-secret"}
    async with prepared_run(pairing, out_dir=tmp_path, environ=env) as run:
        await run.session.run()
    assert run.transcript is not None
    content = run.transcript.read_text(encoding="utf-8")
    assert "k-0123456789-secret" not in content
    assert "${MY_SECRET}" in content  # the reference is kept, the value is not


async def test_write_failure_stops_the_run_with_a_clear_error(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    pairing = make_pairing()
    writer = TranscriptWriter.create(tmp_path, pairing.name, "r2")
    writer.close()  # every later write fails, as on a vanished disk
    dialogue = Dialogue(pairing, scripted_providers(pairing), recorder=writer)
    with pytest.raises(TranscriptError, match="is closed"):
        with anyio.fail_after(5):
            await dialogue.run()


async def test_markdown_export_reads_as_a_conversation(make_pairing: PairingFactory,
                                                       tmp_path: Path) -> None:
    pairing = make_pairing(THINKING_PAIR)

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.turn.index == 2:
            dialogue.controls.interject("a human note", to="both")

    path = await record_run(pairing, tmp_path, react)
    markdown = to_markdown(read_transcript(path))
    assert markdown.startswith("# test-pair\n")
    assert "### Turn 1 · ada" in markdown
    assert "<details><summary>thinking</summary>" in markdown
    assert "**Human → ada and bo**" in markdown
    assert "You are ada, talking with bo for 8 turns." in markdown  # rendered role prompt
    assert "- reason: **max_turns**" in markdown


def test_turn_records_round_trip() -> None:
    from intermodel.records import Usage
    from intermodel.transcript.schema import Run, read_record

    turn = Turn(3, "ada", "hi", "th", "sig", Usage(1, 2, None), 0.5, 0.1, "stop", "m", 2,
                "sha256:x", "t")
    again = read_record(json.loads(json.dumps(record_to_json(turn))), Run(("ada", "bo")))
    assert again == turn


async def test_markdown_export_carries_no_raw_html_from_models(make_pairing: PairingFactory,
                                                                tmp_path: Path) -> None:
    hostile = "Hi <script>alert(1)</script> & </details><img src=x onerror=alert(1)>"
    text = SCRIPTED.replace('"ada one"', f'"{hostile}"').replace(
        'replies = ["bo one", "bo two", "bo three"]',
        'replies = ["bo one", "bo two", "bo three"]\nthinking = ["</details><b>bold</b>"]')
    path = await record_run(make_pairing(text), tmp_path)
    markdown = to_markdown(read_transcript(path))
    assert "<script>" not in markdown and "<img" not in markdown and "<b>" not in markdown
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;/details&gt;" in markdown
    assert markdown.count("</details>") == markdown.count("<details>")


def test_every_record_kind_maps_to_the_event_that_carried_it() -> None:
    from intermodel.engine.events import event_for, record_of
    from intermodel.records import RECORD_TYPES, Branch, Resumption

    samples = {
        "turn": Turn(1, "ada", "hi"), "interjection": Interjection(2, ("bo",), "x"),
        "retry": Retry(1, "ada", 1, "rate_limited", "slow", 429, 1.0),
        "discard": Discard(1, "ada", "stopped"), "trim": Trim("ada", 5, 2, (1, 2), 900, 800),
        "flag": Flag("empty", 3, "bo", "warn", "two empty"), "note": Note("hello"),
        "budget": BudgetChange(8), "end": RunEnd("max_turns"),
        "resume": Resumption("r", 2, 8), "branch": Branch("c", "c.jsonl", 2),
    }
    assert set(samples) == set(RECORD_TYPES)  # a new record kind needs a line here
    for kind, record in samples.items():
        event = event_for(record)
        if kind in ("resume", "branch"):
            assert event is None  # written outside the event stream
        else:
            assert event is not None
            kept = record_of(event)
            assert kept == record or kind == "note"  # a note's time is stamped when written
            assert isinstance(kept, Note) or kind != "note"
