"""The index page's models and outcome columns, on runs against the real SDKs and a loopback
server that reports its own model id (as llama.cpp reports the file it loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intermodel.analysis import collect
from intermodel.analysis.html import index_html
from tests.analysis.support import run_file
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder

from .test_html import ATTACK_TOML, Page, assert_inert

pytestmark = pytest.mark.anyio

GGUF = "/srv/models/llama/Llama-3.2-3B-Instruct-Q4_K_M.gguf"
SERVED = "/models/qwen2.5-7b-instruct-q4_k_m.gguf"


def wire(base_url: str, *, stop_phrase: bool = True, turns: int = 4, model: str = "qwen-7b"
         ) -> str:
    """ada on an OpenAI-compatible server, bo a scripted model configured by a GGUF path."""
    return f"""
name = "index-models"
[dialogue]
opener = "Start."
max_turns = {turns}
stop_phrases = {'["^C^C"]' if stop_phrase else "[]"}
[retry]
attempts = 1
[agents.ada]
provider = "openai"
model = "{model}"
base_url = "{base_url}/v1"
[agents.bo]
provider = "scripted"
model = "{GGUF}"
[agents.bo.script]
replies = ["Fine.", "Bye now ^C^C"]
"""


async def test_the_index_shows_model_names_with_the_reported_id_on_hover_and_the_outcome(
        tmp_path: Path) -> None:
    with FakeServer() as srv:
        srv.responder = ScriptedResponder([Reply("Hello.", model=SERVED)])
        await run_file(wire(srv.base_url), tmp_path, "stops")  # bo says ^C^C at turn 4
        await run_file(wire(srv.base_url, stop_phrase=False, turns=2), tmp_path, "budget")
        srv.faults.push(Fault.status(404))
        await run_file(wire(srv.base_url), tmp_path, "fails")
    runs, skipped = collect(tmp_path / "transcripts")
    assert len(runs) == 3 and skipped == []
    source = index_html(runs, tmp_path)
    page = Page(source)
    assert_inert(page, scripts=1)

    heads = [c for c in page.text if c in ("models", "outcome", "end", "ended by")]
    assert heads == ["models", "outcome"]
    # The configured names, a path by its file's name: no row is made tall by a path.
    assert GGUF not in page.all_text and SERVED not in page.all_text
    hovers = {a.get("title") for a in page.tags("span") if a.get("title")}
    assert f"reported: {SERVED}" in hovers
    assert f"configured: {GGUF} · reported: {GGUF}" in hovers
    shown = [t for t in page.text if t.startswith(("ada: ", "bo: "))]
    assert set(shown) == {"ada: qwen-7b", "bo: Llama-3.2-3B-Instruct-Q4_K_M.gguf"}

    outcomes = {t for t in page.text if t in ("stop phrase · bo", "max turns", "error")}
    assert outcomes == {"stop phrase · bo", "max turns", "error"}
    [error] = [a for a in page.tags("td") if (a.get("title") or "").startswith("ada: openai 404")]
    assert "model not found" in (error.get("title") or "")


async def test_model_names_and_outcomes_are_escaped(tmp_path: Path) -> None:
    with FakeServer() as srv:
        srv.responder = ScriptedResponder([Reply("Hi.", model='"><script>alert(1)</script>')])
        await run_file(wire(srv.base_url, turns=2, model=ATTACK_TOML), tmp_path, "evil")
    runs, _ = collect(tmp_path / "transcripts")
    page = Page(index_html(runs, tmp_path))
    assert_inert(page, scripts=1)
    hovers = {a.get("title") for a in page.tags("span") if a.get("title")}
    assert 'reported: "><script>alert(1)</script>' in hovers
    assert any(t.startswith("ada: <script>alert(1)</script>") for t in page.text)
