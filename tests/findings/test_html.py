"""HTML export with findings: labels beside turns and answers, a run's end state and labels, and
the index's end states and chart of label fractions per model. Sidecar text stays text."""

from __future__ import annotations

import os
import re
from pathlib import Path

from intermodel.coding.labels import Human, Judge, Target, sidecar_path
from tests.analysis.test_html import Page, assert_inert
from tests.hostile.support import cli

from .support import Study, label


def export(study: Study) -> None:
    result = cli("export", study.runs, "--format", "html")
    assert result.code == 0, result.err
    assert result.err == ""


def page_of(path: Path) -> Path:
    return path.with_suffix(".html")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_index_charts_label_fractions_per_model(study: Study) -> None:
    export(study)
    source = (study.runs / "index.html").read_text(encoding="utf-8")
    page = Page(source)
    assert_inert(page, scripts=1)
    text = page.all_text
    assert "End states" in text and "1/4 = 0.25 [0.05, 0.70]" in text
    chart = source[source.index("<h3>engagement · alice</h3>"):]
    chart = chart[:chart.index("</svg>")]
    # alice: gpt deflecting 3 of 4, a bar of 0.75 of 340 units, its interval [0.30, 0.95].
    bars = re.findall(r'<rect x="300" y="[\d.]+" width="([\d.]+)".*?<title>(\w+): ([^<]+)'
                      r'</title>', chart)
    assert ("255.0", "deflecting", "3/4 = 0.75 [0.30, 0.95]") in bars
    assert ("0.0", "engaged", "0/4 = 0.00 [0.00, 0.49]") in bars
    assert len(bars) == 6  # two models, three labels


def test_a_run_page_shows_labels_beside_answers_and_its_findings(study: Study) -> None:
    export(study)
    panel = Page(read(page_of(study.panels[0])))
    assert_inert(panel)
    text = panel.all_text
    assert "engagement: deflecting · alice" in text  # beside gpt's answer
    assert "engagement: no label · judge local (smollm2-135m)" not in text  # p1: all labelled
    assert "alice on gpt" in text  # the rationale, in the findings table
    assert "bob (blind)" in text
    dialogue = Page(read(page_of(study.emoji))).all_text
    assert "End state: emoji_collapse" in dialogue
    assert "turns 3-6: emoji and symbols are 1.00, 1.00, 1.00, 1.00" in dialogue
    assert "end_state: emoji_collapse · alice" not in dialogue  # a run's label: in the table
    third = Page(read(page_of(study.panels[2]))).all_text
    assert "engagement: no label · judge local (smollm2-135m)" in third
    assert "no valid label after 3 attempts" in third


def test_labels_added_after_an_export_are_on_the_next(study: Study) -> None:
    export(study)
    page = page_of(study.stopped)
    written = os.stat(page).st_mtime
    os.utime(study.stopped, (written - 60, written - 60))  # the transcript is older
    label(study.stopped, study.engagement.__class__(
        "tone", "turn", "single", "How warm is the turn?", study.engagement.labels),
        Target.of_turn(2), ["engaged"], Human("carol"))
    os.utime(sidecar_path(study.stopped), (written + 5, written + 5))
    export(study)
    assert "tone: engaged · carol" in Page(read(page)).all_text


def test_sidecar_text_cannot_inject_markup(study: Study) -> None:
    attack = '</td><script>alert(1)</script><img src=x onerror=alert(2)> \u202egnp.exe'
    label(study.panels[1], study.engagement, Target.answer("gpt"), ["engaged"],
          Human("<b>eve</b>\u202e"), rationale=attack)
    label(study.panels[1], study.engagement, Target.answer("gem"), [],
          Judge("<svg onload=alert(3)>", "m\"><x>"), unlabelled=attack)
    export(study)
    source = read(page_of(study.panels[1]))
    page = Page(source)
    assert_inert(page)
    assert "\u202e" not in source
    assert "</td><script>alert(1)</script>" in page.all_text  # shown as text
    assert "judge <svg onload=alert(3)> (m\"><x>)" in page.all_text
    index = (study.runs / "index.html").read_text(encoding="utf-8")
    assert_inert(Page(index), scripts=1)
    assert "&lt;b&gt;eve&lt;/b&gt;" in index


def test_a_damaged_sidecar_is_named_on_the_page_not_fatal(study: Study) -> None:
    sidecar_path(study.loop).write_text("not json\n")
    result = cli("export", study.loop, "--format", "html")
    assert result.code == 0, result.err
    text = Page(read(page_of(study.loop))).all_text
    assert f"⚠ labels not shown: {sidecar_path(study.loop)}:1: " in text
    assert "End state: self_repetition" in text
