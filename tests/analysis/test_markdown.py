"""The Markdown export of a panel: answers by agent, named as answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intermodel.analysis.markdown import to_markdown
from intermodel.transcript.reader import read_transcript
from tests.analysis.support import PANEL_OPENER, run_panel_batch

pytestmark = pytest.mark.anyio


async def test_a_panel_lists_its_answers_by_agent_and_calls_them_answers(tmp_path: Path) -> None:
    [path, _] = await run_panel_batch(tmp_path / "study")
    transcript = read_transcript(path)
    assert [t.agent for t in transcript.turns] == ["cy", "ben", "ann"]  # completion order
    markdown = to_markdown(transcript)
    assert f"## Message (to every agent)\n\n> {PANEL_OPENER}\n\n## Answers" in markdown
    assert re.findall(r"^### .*$", markdown, re.MULTILINE) == [
        "### Answer 1 · ann", "### Answer 2 · ben", "### Answer 3 · cy"]
    assert "Turn" not in markdown and "turns" not in markdown
    assert "- 3 answers in" in markdown
    ann = markdown.index("### Answer 1 · ann")
    assert markdown.index("ann weighs the question first", ann) < markdown.index(
        "ann answers &lt;b&gt;boldly&lt;/b&gt; &amp; plainly", ann) < markdown.index(
        "### Answer 2")


async def test_a_panel_agent_without_an_answer_is_listed_in_its_place(tmp_path: Path) -> None:
    [path, _] = await run_panel_batch(tmp_path / "study")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # ben's answer gone, as when its agent failed: ben still has its place between ann and cy.
    path.write_text("".join(line for line in lines if '"agent":"ben"' not in
                            line.replace(" ", "")), encoding="utf-8")
    markdown = to_markdown(read_transcript(path))
    assert re.findall(r"^### .*$", markdown, re.MULTILINE) == [
        "### Answer 1 · ann", "### ben", "### Answer 3 · cy"]
    assert "### ben\n\n*(no answer)*" in markdown
