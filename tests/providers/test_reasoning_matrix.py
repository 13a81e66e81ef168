"""The README's reasoning matrix, row by row: where each kind of server puts a model's thinking,
and how an agent's own thinking goes back to it (`thinking.send_back`) and never to its partner.
Each row runs a pairing through the real SDK against the fake server speaking that server's wire
format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config import load_pairing
from intermodel.engine.events import ThinkingChunk
from intermodel.engine.prepare import prepared_run
from intermodel.lineage.audit import verify_transcript
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Reply, ScriptedResponder
from tests.fakeserver.replies import ThinkingStyle

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"


def _anthropic(body: dict[str, Any]) -> list[Any]:
    return [block for m in body["messages"] if m["role"] == "assistant"
            and isinstance(m["content"], list) for block in m["content"]
            if block["type"] == "thinking"]


def _chat(body: dict[str, Any]) -> list[Any]:
    return [m["reasoning_content"] for m in body["messages"]
            if m["role"] == "assistant" and "reasoning_content" in m]


def _responses(body: dict[str, Any]) -> list[Any]:
    return [item for item in body["input"] if item["type"] == "reasoning"]


@dataclass(frozen=True)
class Row:
    """One row of the matrix: the agent's settings, how the server sends thinking, and what the
    agent's own earlier thinking looks like in its next request (`sent_back`)."""

    name: str
    agent: str
    style: ThinkingStyle
    sent_back: Callable[[dict[str, Any]], list[Any]]
    reasoning_output: str = "summary"


ROWS = [
    Row("anthropic thinking", 'provider = "anthropic"\nmodel = "claude-x"\nmax_tokens = 2048\n'
        "[agents.NAME.thinking]\nbudget_tokens = 1024\n", "reasoning_content", _anthropic),
    Row("openai responses summaries", 'provider = "openai"\napi = "responses"\n'
        'model = "gpt-5.2"\n[agents.NAME.thinking]\n', "reasoning_content", _responses),
    Row("reasoning_content (deepseek, vllm)", 'provider = "openai"\nmodel = "deepseek-reasoner"\n'
        "[agents.NAME.thinking]\n", "reasoning_content", _chat),
    Row("reasoning (ollama, openrouter)", 'provider = "openai"\nmodel = "qwen3"\n'
        "[agents.NAME.thinking]\n", "reasoning", _chat),
    Row("think tags (llama.cpp, r1 distills)", 'provider = "openai"\n'
        'model = "deepseek-r1-distill"\n[agents.NAME.thinking]\n', "think_tags", _chat),
]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def write_pairing(srv: FakeServer, row: Row, send_back: bool, path: Path) -> Path:
    url = srv.base_url + ("" if "anthropic" in row.agent else "/v1")
    agents = "".join(f"""
[agents.{name}]
base_url = "{url}"
api_key_env = "TEST_KEY"
prompt = "You are {name}."
timeout = 2
{row.agent.replace("NAME", name)}send_back = {"true" if send_back else "false"}
""" for name in ("ada", "bo"))
    path.write_text('name = "matrix"\n[dialogue]\nopener = "Go."\nmax_turns = 3\n'
                    "share_thinking = true\n" + agents)
    return path


@pytest.mark.parametrize("send_back", [True, False], ids=["send_back", "kept_apart"])
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_thinking_is_shown_recorded_and_sent_back_only_to_its_agent(
        server: FakeServer, tmp_path: Path, row: Row, send_back: bool) -> None:
    server.responder = ScriptedResponder([
        Reply(f"Reply {n}.", thinking=f"thought {n}", thinking_style=row.style)
        for n in (1, 2, 3)])
    pairing = load_pairing(write_pairing(server, row, send_back, tmp_path / "matrix.toml"))
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        subscription = run.session.subscribe()
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns", end.detail
    shown = "".join(e.text for e in subscription.drain() if isinstance(e, ThinkingChunk))
    assert shown == "thought 1thought 2thought 3"
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    assert [(t.thinking, t.text) for t in transcript.turns] == \
        [(f"thought {n}", f"Reply {n}.") for n in (1, 2, 3)]
    bodies = [r.json for r in server.requests if r.method == "POST"]
    ada_third = bodies[2]  # ada's second turn: after her turn 1 and bo's turn 2
    back = row.sent_back(ada_third)
    if send_back:
        assert len(back) == 1
        assert "thought 1" in str(back[0])
    else:
        assert back == []
    # bo's request carries ada's thinking only as text (share_thinking), never as hers.
    assert row.sent_back(bodies[1]) == []
    assert "thought 1" in str(bodies[1])
    assert all(r.matches for r in verify_transcript(transcript))
