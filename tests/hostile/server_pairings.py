"""Pairings and providers aimed at a fake server, and what the hostile tests read back from a
run."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import anyio

from intermodel.config import Pairing, parse_pairing
from intermodel.config.request import Message, Request
from intermodel.engine.prepare import prepared_run
from intermodel.providers.anthropic import AnthropicProvider
from intermodel.providers.base import Provider, StreamEvent
from intermodel.providers.openai import OpenAIProvider
from intermodel.records import Note, Record, RunEnd
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import Transcript, read_transcript
from tests.fakeserver import FakeServer

KEY = "hostile-test-key-0123456789"
PROTOCOLS = ["openai", "anthropic"]
ENV = {"TEST_KEY": KEY}


def agent_toml(name: str, protocol: str, base_url: str, extra: str = "") -> str:
    """An agent of `protocol` on the server at `base_url`; `extra` (TOML lines) may set the
    timeout and max_tokens (1 s and 64 otherwise), add keys and tables."""
    url = base_url + ("/v1" if protocol == "openai" else "")
    extra = textwrap.dedent(extra)
    defaults = _unless_set(extra, timeout=1, max_tokens=64)
    return f"""
[agents.{name}]
provider = "{protocol}"
model = "model-{name}"
base_url = "{url}"
api_key_env = "TEST_KEY"
prompt = "You are {{name}}."
{defaults}{extra}
"""


def _unless_set(extra: str, **defaults: object) -> str:
    """TOML lines for the `defaults` that `extra` does not set itself."""
    return "".join(f"{key} = {value}\n" for key, value in defaults.items()
                   if not re.search(rf"^{key}\s*=", extra, re.MULTILINE))


def pairing_text(base_url: str, a: str = "openai", b: str = "anthropic", *, turns: int = 2,
                 extra_a: str = "", extra_b: str = "", retry: str = "") -> str:
    """Two agents on the server at `base_url`, quick retries (`retry` may change them)."""
    retry = textwrap.dedent(retry)
    return f"""
name = "hostile"
[dialogue]
opener = "Start."
max_turns = {turns}
[retry]
{_unless_set(retry, backoff_initial=0.01, backoff_max=0.05, max_retry_after=0.3)}{retry}
{agent_toml("ada", a, base_url, extra_a)}
{agent_toml("bo", b, base_url, extra_b)}
"""


def pairing_for(base_url: str, a: str = "openai", b: str = "anthropic", **kwargs: object
                ) -> Pairing:
    return parse_pairing(pairing_text(base_url, a, b, **kwargs),  # type: ignore[arg-type]
                         source="hostile.toml")


async def run_to_end(pairing: Pairing, tmp_path: Path) -> tuple[RunEnd, Transcript]:
    """Run `pairing` (at most 15 s) with its key set: how it ended, and its transcript."""
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        with anyio.fail_after(15):
            end = await run.session.run()
    return end, transcript_of(run.transcript)


def notes(records: list[Record]) -> list[str]:
    return [r.message for r in records if isinstance(r, Note)]


def transcript_of(path: Path | None) -> Transcript:
    assert path is not None
    return read_transcript(path)


def provider_for(protocol: str, srv: FakeServer, extra: str = "",
                 headers: dict[str, str] | None = None) -> Provider:
    """ada of a pairing on `srv`, as a provider of `protocol` with the test key."""
    agent = pairing_for(srv.base_url, protocol, protocol, extra_a=extra).agent("ada")
    cls = OpenAIProvider if protocol == "openai" else AnthropicProvider
    return cls(agent, Credentials(api_key=KEY, headers=headers or {}))


def request() -> Request:
    return Request(model="m", system="", messages=(Message("user", "Hi"),))


async def collect(provider: Provider) -> list[StreamEvent]:
    """Everything `provider` streams for a one-line request (at most 20 s), then close it."""
    try:
        with anyio.fail_after(20):
            return [event async for event in provider.stream(request())]
    finally:
        await provider.aclose()
