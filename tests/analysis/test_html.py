"""HTML pages of real (scripted) runs: content, layout, and that model text stays text."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from intermodel.analysis import collect
from intermodel.analysis.html import index_html, run_html, write_html, write_index
from intermodel.analysis.htmlpage import SORT_SCRIPT, STYLE
from intermodel.errors import TranscriptError
from intermodel.lineage.resume import prepared_resume
from intermodel.transcript.reader import read_transcript
from tests.analysis.support import PANEL_OPENER, run_panel_batch
from tests.conftest import PairingFactory

from .test_stats import (
    experiment,
    interject_once,
    make_experiment_folder,
    plain,
    record,
    record_rich,
    tear,
)

pytestmark = pytest.mark.anyio

ATTACK = ('<script>alert(1)</script> "><img src=x onerror=alert(1)> </details> '
          '<a href="javascript:alert(1)">click</a> \x1b[2J \u202egnp.exe')
# The same payloads in TOML (basic strings: escapes for the quotes and control characters).
ATTACK_TOML = (r'<script>alert(1)</script> \"><img src=x onerror=alert(1)> </details> '
               r'<a href=\"javascript:alert(1)\">click</a> \u001b[2J \u202egnp.exe')

EVIL = f"""
name = "evil <script>alert(2)</script>"

[dialogue]
opener = "{ATTACK_TOML}"
max_turns = 4

[agents.ada]
provider = "scripted"
model = "m\\"><svg onload=alert(3)>"
prompt = "{ATTACK_TOML}"
[agents.ada.script]
replies = ["{ATTACK_TOML}"]
thinking = ["{ATTACK_TOML}"]

[agents.bo]
provider = "scripted"
[agents.bo.script]
rule = "echo"
"""

# Every tag and attribute the pages are built from; anything else came from a transcript.
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table",
        "thead", "tbody", "tr", "th", "td", "div", "span", "article", "header", "details",
        "summary", "em", "ul", "li", "a", "svg", "line", "text", "polyline", "circle", "rect",
        "script"}
ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "class", "id", "href",
              "data-v", "xmlns", "viewbox", "width", "height", "role", "aria-label", "x", "y",
              "x1", "y1", "x2", "y2", "cx", "cy", "r", "fill", "stroke", "stroke-width",
              "points", "text-anchor", "transform", "title"}


class Page(HTMLParser):
    """Every tag, attribute and piece of text of a page, as a browser's tokenizer sees them."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.ends: list[str] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        self._in = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        self.ends.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.starts if tag == name]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def assert_inert(page: Page, scripts: int = 0) -> None:
    assert {tag for tag, _ in page.starts} <= TAGS
    for tag, attrs in page.starts:
        assert set(attrs) <= ATTRIBUTES, (tag, attrs)
        href = attrs.get("href") or ""
        assert not re.match(r"\s*[a-z][a-z0-9+.-]*:", href, re.IGNORECASE), href  # no scheme
    for tag in ("details", "script", "svg", "table", "article"):
        assert page.ends.count(tag) == len(page.tags(tag)), tag  # nothing closed early
    assert len(page.tags("script")) == scripts
    assert page.scripts == ([SORT_SCRIPT] if scripts else [])


def csp(page: Page) -> str:
    [meta] = [a for a in page.tags("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    return meta["content"] or ""


def digest(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


async def test_model_text_cannot_inject_markup_or_script(make_pairing: PairingFactory,
                                                         tmp_path: Path) -> None:
    pairing = make_pairing(EVIL)
    path = await record(pairing, tmp_path, react=interject_once(1, ATTACK, "both"))
    source = run_html(read_transcript(path))
    page = Page(source)
    assert_inert(page)
    text = page.all_text
    # Every payload is on the page, as text: reply, thinking, prompt, opener and interjection.
    visible = ATTACK.replace("\x1b", "␛").replace("\u202e", "�")
    assert text.count(visible) >= 5
    assert "evil <script>alert(2)</script>" in text
    assert 'm"><svg onload=alert(3)>' in text
    assert "\x1b" not in source and "\u202e" not in source
    assert len(page.tags("details")) == 2  # the two thinking blocks, still closed
    assert all("open" not in attrs for attrs in page.tags("details"))


async def test_hand_edited_records_stay_inert_or_are_refused(make_pairing: PairingFactory,
                                                             tmp_path: Path) -> None:
    path = await record(plain(make_pairing), tmp_path)
    text = path.read_text(encoding="utf-8")
    # Markup where text belongs is text: escaped.
    discard = ('{"kind":"discard","turn":3,"agent":"ada","reason":"<img src=x onerror=alert(7)>",'
               '"text":"</details><script>alert(8)</script>"}\n')
    path.write_text(text + discard, encoding="utf-8")
    page = Page(run_html(read_transcript(path)))
    assert_inert(page)
    # A reason is a closed name: one this version does not know is shown as `unknown`.
    assert "✗ turn 3 (ada) discarded: unknown" in page.all_text

    # Markup where a number belongs is refused by the reader, with the line and the field.
    bad_turn = text.replace('"index":2,', '"index":"2<script>alert(9)</script>",')
    path.write_text(bad_turn, encoding="utf-8")
    with pytest.raises(TranscriptError, match=r'\.jsonl:3: turn\.index: expected a whole '
                       r'number, got "2<script>alert\(9\)</script>"$'):
        write_html(path)
    runs, skipped = collect(tmp_path)
    assert runs == [] and skipped == [f"{path}:3: turn.index: expected a whole number, got "
                                      '"2<script>alert(9)</script>"']


async def test_pages_load_nothing_from_anywhere(make_pairing: PairingFactory,
                                                tmp_path: Path) -> None:
    path = await record_rich(make_pairing, tmp_path)
    source = run_html(read_transcript(path))
    page = Page(source)
    policy = csp(page)
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    assert f"style-src {digest(STYLE)}" in policy  # only the page's own stylesheet applies
    assert not re.search(r"\bsrc=|url\(|@import", source)
    assert re.findall(r"https?://[^\s\"']+", source) == ["http://www.w3.org/2000/svg"]  # xmlns


async def test_a_run_page_reads_as_the_conversation(make_pairing: PairingFactory,
                                                    tmp_path: Path) -> None:
    path = await record_rich(make_pairing, tmp_path)
    source = run_html(read_transcript(path))
    page = Page(source)
    assert_inert(page)
    turns = page.tags("article")
    assert [t["id"] for t in turns] == [f"t{i}" for i in range(1, 7)]
    assert [t["class"] for t in turns] == ["turn a", "turn b"] * 3  # ada left, bo right
    # The interjection arrived while turn 2 streamed; it stands where ada saw it: before turn 3.
    human = source.index("✎ Human → ada")
    assert source.index('id="t2"') < human < source.index('id="t3"')
    text = page.all_text
    assert "↻ turn 2 (bo) attempt 1 failed: rate_limited 429 — slow down" in text
    assert "↻ turn 4 (bo) attempt 1 failed: stream_interrupted — cut" in text
    assert text.count("⚑ repetition (mark)") == 3
    assert "2 attempts" in text and "tiny-1" in text
    assert "You are ada, talking with bo." in text  # the role prompt, placeholders filled
    assert "■ ended: max_turns" in text
    assert [s.startswith("thinking · ") for s in re.findall(r"<summary>([^<]*)", source)] == \
        [True, True]
    # The chart: one line per agent, a point per turn linking to it.
    assert len(page.tags("polyline")) == 2
    assert [a["href"] for a in page.tags("a")] == [f"#t{i}" for i in (1, 3, 5, 2, 4, 6)]
    assert "turn 2 · bo: 7 characters" in text and "turn 3 · ada: 15 characters" in text
    # The figures table holds the stats.
    assert "8.33 / 7.00" in text  # reply characters, mean / median


async def test_resumed_and_torn_runs_say_so(make_pairing: PairingFactory,
                                            tmp_path: Path) -> None:
    pairing = plain(make_pairing, turns=6)
    resumed = await record(pairing, tmp_path / "resumed")
    lines = resumed.read_text(encoding="utf-8").splitlines(keepends=True)
    resumed.write_text("".join(lines[:4]), encoding="utf-8")  # killed after turn 3
    async with prepared_resume(resumed) as run:
        await run.session.run()
    text = Page(run_html(read_transcript(resumed))).all_text
    assert "⟳ resumed after turn 3" in text and "no final record" not in text

    torn = await record(pairing, tmp_path / "torn")
    tear(torn, keep_lines=3)
    text = Page(run_html(read_transcript(torn))).all_text
    assert "incomplete record" in text and "no final record" in text
    assert "not finished" in text


async def test_write_html_writes_a_private_page_beside_the_transcript(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    path = await record(plain(make_pairing), tmp_path)
    out = write_html(path)
    assert out == path.with_suffix(".html")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert write_html(path, tmp_path / "elsewhere.html") == tmp_path / "elsewhere.html"


async def test_the_index_links_every_run_and_summarises_groups(make_pairing: PairingFactory,
                                                               tmp_path: Path) -> None:
    folder = await make_experiment_folder(make_pairing, tmp_path / "night")
    index, listed, skipped = write_index(folder)
    source = index.read_text(encoding="utf-8")
    page = Page(source)
    assert_inert(page, scripts=1)
    assert f"script-src {digest(SORT_SCRIPT)}" in csp(page)
    links = [unquote(a["href"] or "") for a in page.tags("a")]
    transcripts = sorted(folder.rglob("*.jsonl"))
    assert len(links) == 6
    for link in links:
        assert (folder / link).is_file() and (folder / link).with_suffix(".jsonl") in transcripts
    assert "more/" in " ".join(links)  # runs in subfolders too
    text = page.all_text
    assert "Experiment groups" in text
    assert "max_turns 33%, stop_phrase 33%, unfinished 33%" in text
    assert "unfinished, torn" in text
    assert "notes.jsonl:1: not an intermodel transcript" in text  # skipped files are listed
    assert listed == 6 and len(skipped) == 2

    # A page newer than its transcript is kept; a changed transcript gets a new one.
    pages = {p: p.stat().st_mtime_ns for p in folder.rglob("*.html") if p != index}
    old = next(iter(pages))
    os.utime(old, ns=(1, 1))
    os.utime(old.with_suffix(".jsonl"), ns=(2, 2))
    write_index(folder)
    assert old.stat().st_mtime_ns > 2
    assert all(p.stat().st_mtime_ns == t for p, t in pages.items() if p != old)


async def test_the_index_escapes_labels_and_names(make_pairing: PairingFactory,
                                                  tmp_path: Path) -> None:
    origin = experiment(ATTACK, '"><img src=x onerror=alert(1)>', 1)
    origin["experiment"]["name"] = "</td></tr></table><script>alert(4)</script>"
    await record(make_pairing(EVIL), tmp_path, origin=origin)
    runs, _ = collect(tmp_path)
    page = Page(index_html(runs, tmp_path, ["javascript:alert(5) <b>not a file</b>"]))
    assert_inert(page, scripts=1)
    assert "<script>alert(4)</script>" in page.all_text
    assert "<b>not a file</b>" in page.all_text
    assert "1" in [a.get("data-v") for a in page.tags("td")]  # the replicate, as a sort key
    # Markup where a number belongs (it would land in an attribute) never gets that far.
    origin["experiment"]["replicate"] = '1" onmouseover="alert(6)'
    await record(make_pairing(EVIL), tmp_path / "edited", origin=origin)
    runs, skipped = collect(tmp_path / "edited")
    assert runs == [] and skipped[0].endswith(
        ':1: header.experiment.replicate: expected a whole number, got "1\\" onmouseover=\\"'
        'alert(6)"')


# -- panels ------------------------------------------------------------------------------------

EVIL_PANEL = f"""
name = "evil panel"
[panel]
prompt = "{ATTACK_TOML} {'and more words ' * 20}"
[agents.ann]
provider = "scripted"
[agents.ann.script]
replies = ["{ATTACK_TOML}"]
thinking = ["{ATTACK_TOML}"]
[agents.ben]
provider = "scripted"
[agents.ben.script]
rule = "echo"
"""


def positions(source: str, *needles: str) -> list[int]:
    found = [source.find(needle) for needle in needles]
    assert -1 not in found, dict(zip(needles, found, strict=True))
    return found


async def test_a_panel_page_shows_the_message_then_answers_by_agent(tmp_path: Path) -> None:
    [path, _] = await run_panel_batch(tmp_path / "study")
    transcript = read_transcript(path)
    assert [t.agent for t in transcript.turns] == ["cy", "ben", "ann"]  # completion order
    source = run_html(transcript)
    page = Page(source)
    assert_inert(page)
    assert "Opener" not in page.all_text and "to ?" not in page.all_text
    message = source.index("<h2>Message")
    assert source.index(PANEL_OPENER, message) < source.index("<h2>Answers")
    # One column per agent, in the panel file's order, in a grid (three agents).
    answers = source[source.index("<h2>Answers"):source.index("<h2>Figures")]
    assert '<div class="grid answers">' in answers
    assert answers.count('<div class="answer">') == 3
    ann, ben, cy = positions(answers, '<span class="who">ann</span> · answer 1',
                             '<span class="who">ben</span> · answer 2',
                             '<span class="who">cy</span> · answer 3')
    assert ann < ben < cy
    # Thinking folded, model text escaped.
    [details] = [a for a in page.tags("details") if a.get("class") == "thinking"]
    assert "open" not in details
    assert "ann weighs the question first" in answers
    assert "ann answers &lt;b&gt;boldly&lt;/b&gt; &amp; plainly" in answers
    assert "■ ended: complete · 3 answers" in page.all_text


async def test_a_panel_of_two_is_side_by_side_and_an_agent_without_answer_says_so(
        tmp_path: Path) -> None:
    from intermodel.config import load_config
    from intermodel.engine.prepare import prepared_run
    from intermodel.errors import AuthenticationFailed
    from intermodel.providers.registry import make_provider
    from tests.fakes import FailingProvider

    def factory(agent, partner, credentials):  # type: ignore[no-untyped-def]
        inner = make_provider(agent, partner, credentials)
        if agent.name != "ann":
            return inner
        return FailingProvider(inner, [AuthenticationFailed("bad key", provider="x", status=401)])

    (tmp_path / "two.toml").write_text(EVIL_PANEL, encoding="utf-8")
    async with prepared_run(load_config(tmp_path / "two.toml"), out_dir=tmp_path,
                            provider_factory=factory) as run:
        await run.session.run()
    assert run.transcript is not None
    source = run_html(read_transcript(run.transcript))
    page = Page(source)
    assert_inert(page)
    answers = source[source.index("<h2>Answers"):source.index("<h2>Figures")]
    assert '<div class="columns answers">' in answers
    ann, ben = positions(answers, '<span class="who">ann</span>', '<span class="who">ben</span>')
    assert ann < ben
    assert '(no answer)' in answers[ann:ben]
    # ben echoes the message: the attack is on the page twice (message, answer), as text.
    visible = ATTACK.replace("\x1b", "␛").replace("\u202e", "�")
    assert page.all_text.count(visible) == 2


async def test_the_index_lists_panels_with_their_message_escaped_and_cut(
        tmp_path: Path) -> None:
    await run_panel_batch(tmp_path / "study")
    (tmp_path / "study" / "evil.toml").write_text(EVIL_PANEL, encoding="utf-8")
    from tests.analysis.support import run_file

    await run_file(EVIL_PANEL, tmp_path / "study", "evil")
    index, listed, skipped = write_index(tmp_path / "study")
    assert (listed, skipped) == (3, [])
    source = index.read_text(encoding="utf-8")
    page = Page(source)
    assert_inert(page, scripts=1)
    panels = source[source.index("<h2>Panels"):]
    rows = panels[:panels.index("</table>")].count("<tr>") - 1
    assert rows == 3
    assert panels.count(f'<td class="text">{PANEL_OPENER}</td>') == 2
    evil = next(line for line in panels.splitlines() if "evil" in line)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil and "<script>" not in evil
    shown = Page(evil).all_text
    assert shown.endswith("…") and "and more words" in shown
    assert len(shown.split("evil panel")[-1]) < 300  # the message is cut short
