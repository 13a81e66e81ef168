"""A pairing with `api = "responses"` against a real server that implements OpenAI's Responses
API: llama.cpp's C++ `llama-server` serving the bundled model, started here on loopback (see
tests/llama_cpp_server.py; `scripts/build-llama-server` builds it once).

The server runs with a ChatML template that puts reasoning in `<think>` tags, and ada's requests
carry a grammar that makes the small model think before it answers, so llama.cpp streams her
reasoning as `response.reasoning_text.delta` and gives it back as a reasoning item with its text.
With `thinking.send_back`, those items go back to it, and its template puts them back in the
prompt: ada's later prompts grow by her earlier thinking.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intermodel.config import Pairing, load_pairing
from intermodel.engine.events import Retrying
from intermodel.engine.prepare import prepared_run
from intermodel.lineage.audit import verify_transcript
from intermodel.transcript.reader import Transcript, read_transcript
from tests import llama_cpp_server

pytestmark = [pytest.mark.anyio, pytest.mark.local]

TEMPLATE = Path(__file__).parents[1] / "fakeserver" / "wire" / "chatml-think.jinja"
# A <think> block of a few words, then a short answer, whatever the small model would say.
THINK_GRAMMAR = 'root ::= "<think>\\n" [a-z ]{10,40} "\\n</think>\\n\\n" [A-Za-z ]{3,30} "."'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server.running(tmp_path_factory.mktemp("llama-server") / "log",
                                  extra=["--chat-template-file", str(TEMPLATE)]) as base:
        yield base


def pairing(base: str, folder: Path, *, send_back: bool) -> Pairing:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "llama-responses.toml"
    path.write_text(f"""
name = "llama-responses"
[dialogue]
opener = "Name a planet, then ask me for another."
max_turns = 3

[agents.ada]
provider = "openai"
api = "responses"
model = "smollm2"
base_url = "{base}/v1"
prompt = "You are {{name}}. Be brief."
max_tokens = 60
timeout = 60
[agents.ada.extra_body]
seed = 1
grammar = '{THINK_GRAMMAR}'
[agents.ada.thinking]
send_back = {"true" if send_back else "false"}

[agents.bo]
provider = "openai"
api = "responses"
model = "smollm2"
base_url = "{base}/v1"
prompt = "You are {{name}}. Be brief."
max_tokens = 12
timeout = 60
[agents.bo.extra_body]
seed = 2
""")
    return load_pairing(path)


async def run(pairing: Pairing, folder: Path) -> tuple[Transcript, int]:
    async with prepared_run(pairing, out_dir=folder, environ={}) as prepared:
        subscription = prepared.session.subscribe()
        with anyio.fail_after(240):
            end = await prepared.session.run()
    assert end.reason == "max_turns", end.detail
    retries = sum(isinstance(e, Retrying) for e in subscription.drain())
    assert prepared.transcript is not None
    return read_transcript(prepared.transcript), retries


async def test_a_pairing_on_llama_servers_responses_api(server: str, tmp_path: Path) -> None:
    transcript, retries = await run(pairing(server, tmp_path / "on", send_back=True),
                                    tmp_path / "on")
    assert retries == 0
    turns = transcript.turns
    assert [t.agent for t in turns] == ["ada", "bo", "ada"]
    assert all(t.text.strip() for t in turns)
    assert all(t.stop_reason == "completed" for t in turns)
    assert all(t.model == llama_cpp_server.MODEL_FILE for t in turns)  # as the server says
    assert all(t.usage.input_tokens and t.usage.output_tokens for t in turns)
    ada = [t for t in turns if t.agent == "ada"]
    # ada's thinking came as reasoning text, apart from her reply, and its item was kept with it.
    for turn in ada:
        assert turn.thinking.strip() and "<think>" not in turn.text + turn.thinking
        [item] = turn.reasoning_items
        assert item.content == (turn.thinking,)
    assert all(not t.thinking and not t.reasoning_items for t in turns if t.agent == "bo")
    # The server accepted every request, her own reasoning items included, and each request
    # rebuilt from the transcript is the one that was sent.
    assert all(r.matches for r in verify_transcript(transcript))

    # Without send-back the same run's third turn (ada's second) has a shorter prompt: it lacks
    # the thinking of her first turn, which the server put back into the prompt.
    without, _ = await run(pairing(server, tmp_path / "off", send_back=False), tmp_path / "off")
    assert [t.text for t in without.turns[:2]] == [t.text for t in turns[:2]]
    assert without.turns[2].reasoning_items == ()
    sent_back = turns[2].usage.input_tokens
    plain = without.turns[2].usage.input_tokens
    assert sent_back is not None and plain is not None
    assert sent_back > plain
