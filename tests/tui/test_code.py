"""`intermodel code`'s screen, driven through Textual's Pilot: keys pick labels, write notes and
move between targets, and every pick is checked on disk, in the sidecar beside its transcript.

Transcripts are written from fixed records (tests/coding/study.py), so the screenshots are the
same every time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from intermodel.analysis.study import read_study
from intermodel.coding.labels import Human, LabelRecord, read_sidecar
from intermodel.coding.session import CodingSession, RunLabels
from intermodel.tui.code import CodingApp
from tests.coding.study import ANSWERS, HOSTILE, dialogue_run, panel_run, scheme, study

pytestmark = pytest.mark.anyio

NAMES = ("gpt", "gemma", "claude", "openai", "anthropic", "scripted", "invitation")


def session(folder: Path, name: str = "engagement", coder: str = "alice",
            **options: object) -> CodingSession:
    runs = [RunLabels(run.transcript, run.labels) for run in read_study(folder)[0]]
    return CodingSession.start(runs, scheme(name), Human(coder), **options)  # type: ignore[arg-type]


def app_for(coding: CodingSession) -> CodingApp:
    return CodingApp(coding, blink=False)


def records(folder: Path) -> list[LabelRecord]:
    return [record for path in sorted(folder.glob("*.jsonl")) if not path.name.endswith(
        ".labels.jsonl") for record in read_sidecar(path).records]


def screen_text(app: CodingApp) -> str:
    """Everything the screen shows in words: every visible text block and the frame's titles."""
    context = app.query_one("#context")
    parts = [str(context.border_title), str(context.border_subtitle)]
    parts += [str(w.content) for w in app.query(Static) if w.display and w.parent.display]
    return "\n".join(parts)


async def type_text(pilot: Pilot[int], text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))


async def test_a_number_records_a_single_choice_and_moves_on(tmp_path: Path) -> None:
    folder = study(tmp_path)
    coding = session(folder)
    app = app_for(coding)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        [record] = records(folder)
        assert (record.target, record.labels, record.coder, record.rationale, record.blind) == (
            coding.units[0].target, ("deflecting",), Human("alice"), "", False)
        assert app.position == 1 and "1 of 9 coded" in screen_text(app)
        # A note first, then the label: both in one record.
        await pilot.press("n")
        await type_text(pilot, "talks about tides")
        await pilot.press("enter", "1")
        assert records(folder)[-1].labels == ("engaged",)
        assert records(folder)[-1].rationale == "talks about tides"
        # Back, and a note on a coded target: a new record with the same label supersedes.
        await pilot.press("left", "left")
        assert app.position == 0
        await pilot.press("n")
        await type_text(pilot, "tips, not an answer")
        await pilot.press("enter")
        latest = records(folder)[-1]
        assert (latest.target, latest.labels, latest.rationale) == (
            coding.units[0].target, ("deflecting",), "tips, not an answer")
        assert len(records(folder)) == 3
        # A re-code supersedes too; both stay on disk.
        await pilot.press("3")
        assert [r.labels for r in records(folder)] == [("deflecting",), ("engaged",),
                                                       ("deflecting",), ("mixed",)]
        assert records(folder)[-1].rationale == "tips, not an answer"  # the note is kept
        in_force = read_sidecar(coding.units[0].transcript.path).current()
        assert {r.target.agent: r.labels for r in in_force} == {"gpt": ("mixed",),
                                                                "gemma": ("engaged",)}
        # l picks by number or name (schemes may have more labels than digit keys).
        await pilot.press("l")
        await type_text(pilot, "mixed")
        await pilot.press("enter")
        assert records(folder)[-1].labels == ("mixed",) and app.position == 2
        await pilot.press("q")
    assert app.return_code == 0


async def test_multiple_choice_toggles_then_enter_records(tmp_path: Path) -> None:
    folder = study(tmp_path)
    app = app_for(session(folder, "tone"))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("enter")
        assert records(folder) == [] and "tick at least one label" in screen_text(app)
        await pilot.press("1", "3", "2", "2")
        assert app.ticked == ["warm", "playful"] and records(folder) == []
        await pilot.press("enter")
        [record] = records(folder)
        assert record.labels == ("warm", "playful") and record.target.turn == 1
        assert app.position == 1
        await pilot.press("9")
        assert "no label 9: this scheme has 3" in screen_text(app) and app.ticked == []
        await pilot.press("left")
        assert app.ticked == ["warm", "playful"]  # what was recorded, ready to change
        # Esc leaves a note unwritten, and the keys pick labels again.
        await pilot.press("n", "x", "1", "escape")
        assert len(records(folder)) == 1 and "note not changed" in screen_text(app)
        await pilot.press("1")
        assert app.ticked == ["playful"]


async def test_it_resumes_at_the_first_target_not_coded(tmp_path: Path) -> None:
    folder = study(tmp_path)
    first = session(folder)
    for unit, label in zip(first.units[:3], ["engaged", "mixed", "engaged"], strict=True):
        first.code(unit, [label])
    first.code(first.units[5], ["engaged"])
    first.close()
    app = app_for(session(folder))
    async with app.run_test(size=(140, 40)) as pilot:
        assert app.position == 3 and "4 of 9 coded" in screen_text(app)
        await pilot.press("1")  # target 4; the next (5) is not coded either
        assert app.position == 4
        await pilot.press("u")  # 5 was coded before
        assert app.position == 6
        await pilot.press("right", "right", "right")
        assert app.position == 8 and "this is the last target" in screen_text(app)
        await pilot.press("u")
        assert app.position == 4  # round to the first one not coded
    other = app_for(session(folder, coder="bob"))
    async with other.run_test(size=(140, 40)):
        assert other.position == 0


async def test_a_blind_session_hides_names_records_its_seed_and_keeps_its_order(
        tmp_path: Path) -> None:
    folder = study(tmp_path)
    first = session(folder, blind=True)
    order = [(u.run_id, u.target) for u in first.units]
    app = app_for(first)
    async with app.run_test(size=(160, 45)) as pilot:
        shown = screen_text(app).lower()
        assert not [name for name in NAMES if name in shown]
        assert "answer 1" in shown and "run 1 of 3" in shown and "blind" in shown
        await pilot.press("1", "2")
        for _ in range(8):
            assert not [name for name in NAMES if name in screen_text(app).lower()]
            await pilot.press("right")
    written = records(folder)
    assert {(r.blind, r.seed) for r in written} == {(True, first.seed)}
    again = session(folder, blind=True)
    assert again.seed == first.seed
    assert [(u.run_id, u.target) for u in again.units] == order
    resumed = app_for(again)
    async with resumed.run_test(size=(160, 45)):
        assert resumed.position == 2
        assert (resumed.unit.run_id, resumed.unit.target) == order[2]


async def test_a_conversation_in_a_blind_session_shows_agents_as_a_and_b(tmp_path: Path) -> None:
    folder = study(tmp_path)
    app = app_for(session(folder, "tone", blind=True))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("right", "right")
        shown = screen_text(app)
        assert "Hello Agent B, what shall we discuss?" in shown
        assert not [name for name in NAMES if name in shown.lower()]


async def test_model_text_is_shown_as_text_never_markup_or_escapes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    panel_run(runs, 1, {**ANSWERS, "gpt": HOSTILE})
    app = app_for(session(runs))
    async with app.run_test(size=(140, 40)):
        block = next(w for w in app.query(".code-turn"))
        text = str(block.content)
        assert "[bold red]loud[/] [link=https://example.com]x[/link] ␛[2J␛]0;pwned␇ end" in text
        assert "\x1b" not in app.export_screenshot()


async def test_a_sidecar_that_cannot_be_written_is_said_and_nothing_moves(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = panel_run(runs, 1)
    path.with_name(path.name.replace(".jsonl", ".labels.jsonl")).mkdir()  # not a file
    app = app_for(session(runs))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("1")
        assert app.position == 0
        assert "not recorded: cannot open labels" in screen_text(app)


# -- screenshots ---------------------------------------------------------------------------------


def test_snapshot_an_answer_to_code(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    assert snap_compare(app_for(session(study(tmp_path))), terminal_size=(120, 32))


def test_snapshot_a_blind_turn_with_a_note(snap_compare: Callable[..., bool],
                                            tmp_path: Path) -> None:
    app = app_for(session(study(tmp_path), "tone", blind=True, seed=1))

    async def run_before(pilot: Pilot[int]) -> None:
        await pilot.press("1", "3", "enter", "right", "n")
        await type_text(pilot, "plays along")

    assert snap_compare(app, terminal_size=(120, 32), run_before=run_before)


def test_snapshot_hostile_text_and_a_narrow_terminal(snap_compare: Callable[..., bool],
                                                     tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dialogue_run(runs, 1, [HOSTILE, "ok [i]fine[/i]"])
    app = app_for(session(runs, "ending"))

    async def run_before(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_a_turn_is_shown_from_its_first_line_or_with_the_context_before_it(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    long = "\n".join(f"line {n} of a long reply" for n in range(1, 201))
    dialogue_run(runs, 1, [f"short turn {n}" for n in range(1, 21)] + [long])
    app = app_for(session(runs, "tone"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("l")
        await type_text(pilot, "1")  # tick warm by its number, then record turn 1
        await pilot.press("enter", "enter")
        context = app.query_one("#context")
        for _ in range(18):
            await pilot.press("right")
        await pilot.pause()
        assert app.unit.target.turn == 20
        target = app.query_one(".-target")
        assert context.region.contains_region(target.region)  # short: in view, at the bottom
        assert context.scroll_y == context.max_scroll_y > 0
        await pilot.press("right")
        await pilot.pause()
        target = app.query_one(".-target")
        assert target.region.y == context.content_region.y  # long: from its first line
        assert 0 < context.scroll_y < context.max_scroll_y
