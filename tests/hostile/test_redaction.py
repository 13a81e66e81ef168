"""Keys stay out of everything a person sees or a file keeps: the screen, stderr, the transcript,
the end record, notices, the UI's status bar, whatever a server echoes and wherever a message is
cut short.

Each end-to-end test runs the real command in a subprocess against the loopback fake server; the
properties drive real dialogues with random keys, random text around them and random cut points.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import os
import subprocess
import sys
import typing
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from intermodel.config import Pairing, parse_pairing
from intermodel.config.experiment import load_experiment
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.console.progress import ProgressView
from intermodel.console.render import ConsoleRenderer, Style
from intermodel.engine.events import Event, RunStarted, redacted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import ProviderError
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import MANIFEST
from intermodel.providers.base import Finished, Provider, ProviderBase, StreamEvent, TextDelta
from intermodel.providers.errors import error_for_status
from intermodel.providers.scripted import ScriptedProvider
from intermodel.security.secrets import MIN_FRAGMENT, Credentials, Redactor, remember_secrets
from intermodel.security.text import safe_line
from intermodel.tui.app import live_app
from tests.fakeserver import FakeServer, Fault
from tests.tui_support import frozen_clock, status_text, until

REPO = Path(__file__).resolve().parents[2]
# Built here, so no key-shaped literal sits in git.
KEY = "sk-" + "proj-" + "Qx7vR2mN9pL4tW8z" * 3
OTHER_KEY = "sk-" + "ant-" + "unrelatedTokenFromAProxy0042"
KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def pairing_text(base_url: str) -> str:
    return f"""
name = "echo"
[dialogue]
opener = "hello"
max_turns = 2
[retry]
attempts = 0
[agents.ada]
provider = "openai"
model = "m"
base_url = "{base_url}/v1"
api_key_env = "HOSTILE_KEY"
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["fine"]
"""


def run_cli(tmp_path: Path, server: FakeServer) -> tuple[subprocess.CompletedProcess[str], str]:
    """`intermodel run --headless` against `server`; the process and its transcript's text."""
    config = tmp_path / "echo.toml"
    config.write_text(pairing_text(server.base_url))
    out = tmp_path / "transcripts"
    env = {**os.environ, "HOSTILE_KEY": KEY, "INTERMODEL_TRANSCRIPTS": str(out), "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "intermodel", "run", str(config), "--headless"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    [transcript] = out.glob("*.jsonl")
    return done, transcript.read_text(encoding="utf-8")


def fragments(secret: str) -> str:
    """What must never be seen: the secret's first MIN_FRAGMENT characters (every longer
    beginning contains them)."""
    return secret[:MIN_FRAGMENT]


def test_a_key_echoed_inside_invalid_utf8_reaches_no_output(tmp_path: Path) -> None:
    with FakeServer() as server:
        server.echo_key_invalid_utf8 = True
        done, transcript = run_cli(tmp_path, server)
        assert any(KEY in r.headers.get("authorization", "") for r in server.requests)
    assert done.returncode == 1
    assert "finished: error" in done.stdout  # the run says how it ended...
    for where in (done.stdout, done.stderr, transcript):
        assert fragments(KEY) not in where  # ...without the key it was shown


def test_a_key_cut_by_the_message_limit_leaves_no_fragment(tmp_path: Path) -> None:
    # The key straddles the 400-character limit of a provider message: cut first, it would no
    # longer be recognisable, and its beginning would be shown.
    message = "x" * 380 + f" {KEY} and {OTHER_KEY}"
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    with FakeServer() as server:
        server.faults.push(Fault.status(401, body=body))
        done, transcript = run_cli(tmp_path, server)
    assert done.returncode == 1
    assert "401 authentication failed" in done.stderr
    for where in (done.stdout, done.stderr, transcript):
        assert fragments(KEY) not in where
        assert OTHER_KEY[:12] not in where  # key-shaped, unknown: removed before the cut
        assert "[redacted]" in where


# -- properties over real dialogues ------------------------------------------------------------


class EchoingProvider(ProviderBase):
    """A server that echoes: streams `pieces`, then fails with `error` (or finishes)."""

    name = "openai"

    def __init__(self, pieces: list[str], error: ProviderError | None) -> None:
        self.pieces = pieces
        self.error = error

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        for piece in self.pieces:
            yield TextDelta(piece)
        if self.error is not None:
            raise self.error
        yield Finished("stop", "m")

    async def aclose(self) -> None:
        pass


def echo_pairing() -> Pairing:
    return parse_pairing(pairing_text("http://127.0.0.1:9"), source="echo.toml")


async def outputs_of_a_run(key: str, provider: Provider, out: Path) -> list[str]:
    """Everything the run put in front of a person or on disk: the console, the stderr line of
    a failed run, every published event, and the transcript."""

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        return provider

    shown: list[str] = []
    async with prepared_run(echo_pairing(), out_dir=out, environ={"HOSTILE_KEY": key},
                            provider_factory=factory) as run:
        subscription = run.session.subscribe()
        events: list[Event] = []

        async def watch() -> None:
            async for event in subscription:
                events.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            end = await run.session.run()
    console = ConsoleRenderer(Style(color=False), width=80)
    shown.append(console.render(events))
    shown.append(safe_line(end.detail))
    shown.extend(repr(e) for e in events if not isinstance(e, RunStarted))
    assert run.transcript is not None
    shown.append(run.transcript.read_text(encoding="utf-8"))
    return shown


keys = st.text(KEY_ALPHABET, min_size=20, max_size=60).map(lambda s: "sk-" + s)
prose = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=450)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, before=prose, after=prose, cuts=st.lists(st.integers(0, 1000), max_size=6),
       stream_cut=st.integers(0, 2000))
def test_no_beginning_of_a_key_survives_any_output(tmp_path: Path, key: str, before: str,
                                                   after: str, cuts: list[int],
                                                   stream_cut: int) -> None:
    """A server echoes the key in its reply, cut off at a random point, then in an error whose
    message puts it anywhere around the 400-character limit."""
    assume(fragments(key) not in before + after)
    echoed = before + key + after
    points = sorted({min(c, len(echoed)) for c in cuts})
    pieces = [echoed[a:b] for a, b in zip([0, *points], [*points, len(echoed)], strict=True)]
    streamed = "".join(pieces)[:stream_cut]  # the connection drops somewhere
    cut = [streamed[a:b] for a, b in zip([0, *points], [*points, len(streamed)], strict=True)]
    error = error_for_status(401, echoed, provider="openai")
    out = tmp_path / f"run-{abs(hash((key, before, after, stream_cut)))}"
    shown = anyio.run(outputs_of_a_run, key, EchoingProvider([p for p in cut if p], error), out)
    for text in shown:
        assert fragments(key) not in text


@settings(max_examples=200)
@given(key=keys, before=prose, after=prose, cut=st.integers(0, 1000),
       mark=st.sampled_from(["", "…", "...", "… (gave up after 3 attempts)"]))
def test_a_cut_off_key_counts_as_the_key(key: str, before: str, after: str, cut: int,
                                         mark: str) -> None:
    """Wherever a message is cut (and whatever the cut adds), what is left of a known key is
    redacted, as long as at least MIN_FRAGMENT characters of it remain."""
    assume(fragments(key) not in before + after)
    remember_secrets([key])
    message = (before + key + after)[:cut] + mark
    for redact in (Redactor(), Redactor().known, safe_line):
        assert fragments(key) not in redact(message)


@settings(max_examples=200)
@given(key=keys, text=prose, points=st.lists(st.integers(0, 600), max_size=8),
       end=st.integers(0, 2000))
def test_a_streamed_key_is_held_back_and_removed(key: str, text: str, points: list[int],
                                                 end: int) -> None:
    """Chunks of a reply, split anywhere, the stream ending anywhere: nothing shown or kept holds
    the key's beginning; text without the key comes through unchanged."""
    assume(fragments(key) not in text)
    whole = (text[: len(text) // 2] + key + text[len(text) // 2:])[:end]
    bounds = sorted({min(p, len(whole)) for p in points})
    scrub = Redactor([key]).stream()
    shown = [scrub.feed(whole[a:b]) for a, b in zip([0, *bounds], [*bounds, len(whole)],
                                                    strict=True)]
    shown.append(scrub.flush())
    assert fragments(key) not in "".join(shown)
    clean = Redactor([key]).stream()
    assert "".join([clean.feed(text), clean.flush()]) == text


# -- every event, every field --------------------------------------------------------------------


def example(kind: Any, secret: str) -> Any:
    """A value of type `kind` in which every string is `secret`."""
    origin = typing.get_origin(kind)
    if kind is str:
        return secret
    if kind in (int, float):
        return kind(1)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return next(iter(kind))  # a closed set's name: it cannot hold a secret
    if kind is bool:
        return True
    if origin in (typing.Union, type(int | str)):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return example(str if str in options else options[0], secret)
    if origin is tuple:
        return (secret,)
    if origin is not None and issubclass(origin, typing.Mapping | dict):  # type: ignore[arg-type]
        return {}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: example(hints[f.name], secret) for f in dataclasses.fields(kind)
                       if f.init})
    raise AssertionError(f"no example for {kind!r}")


@pytest.mark.parametrize("kind", [k for k in typing.get_args(Event) if k is not RunStarted],
                         ids=lambda k: k.__name__)
def test_every_event_leaves_the_bus_without_the_key(kind: type) -> None:
    """Every kind of event a run publishes, with the key in every string field (of the record it
    carries too), comes out of `redacted` without it: a new event or field is covered as soon as
    it exists. Opaque values that go back to a provider byte for byte are left alone."""
    secret = "sk-" + "live-a1b2c3d4e5f6g7h8i9j0"
    event = example(kind, secret)
    cleaned = redacted(event, Redactor([secret]))
    leftover = json.dumps(dataclasses.asdict(cleaned), default=str)
    for opaque in ("signature", "request_hash"):
        leftover = leftover.replace(f'"{opaque}": "{secret}"', "")
    assert secret not in leftover


def test_the_console_the_transcript_and_the_end_record_agree(tmp_path: Path) -> None:
    """A reply that echoes the key is the same everywhere: on screen, in the transcript, in what
    the partner is sent next (so a rebuilt request still matches its recorded hash)."""
    provider = EchoingProvider(["my key ", KEY[:10], KEY[10:], " ok"], None)
    shown = anyio.run(outputs_of_a_run, KEY, provider, tmp_path)
    console, _, *_rest, transcript = shown
    assert "my key [redacted] ok" in console
    turn = next(json.loads(line) for line in transcript.splitlines()
                if json.loads(line)["kind"] == "turn")
    assert turn["text"] == "my key [redacted] ok"


@pytest.mark.anyio
async def test_the_terminal_ui_shows_no_key(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """The UI's panes, status bar and notifications come from the run's events: a reply that
    echoes the key and an error that quotes it show without it."""
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    error = error_for_status(401, f"bad key {KEY}", provider="openai")
    provider = EchoingProvider(["echo: ", KEY[:9], KEY[9:]], error)

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        return provider

    app = live_app(echo_pairing(), out_dir=tmp_path, provider_factory=factory,
                   clock=frozen_clock, blink=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, app.served.is_set)
        status = status_text(app)
        screen = app.export_screenshot()  # panes, status bar, notifications: all of it
    assert "error" in status and "[redacted]" in status
    for where in (status, screen):
        assert fragments(KEY) not in where


def test_a_batch_shows_and_keeps_no_key(tmp_path: Path) -> None:
    """A batch entry that fails on an error quoting the key: its progress line, the manifest and
    the transcript are without it."""
    (tmp_path / "echo.toml").write_text(pairing_text("http://127.0.0.1:9"))
    spec = tmp_path / "exp.toml"
    spec.write_text(f'name = "trial"\nout = "{tmp_path / "out"}"\nreplicates = 1\n'
                    '[[pairings]]\nfile = "echo.toml"\nlabel = "echo"\n'
                    '[[openers]]\nlabel = "hi"\ntext = "Hi there."\n')
    experiment = load_experiment(spec)

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        if agent.provider == "scripted":
            return ScriptedProvider(agent, partner)
        return EchoingProvider([f"here: {KEY}"], error_for_status(401, f"bad key {KEY}",
                                                                  provider="openai"))

    stream = io.StringIO()
    view = ProgressView(stream, color=False, live=False)
    batch = Batch(experiment, environ={"HOSTILE_KEY": KEY}, provider_factory=factory,
                  listener=view.on_change)
    view.attach(batch)
    report = anyio.run(batch.run)
    assert report.count("failed") == 1
    progress = stream.getvalue()
    assert "✗ echo/hi/r1" in progress and "[redacted]" in progress
    kept = [(tmp_path / "out" / MANIFEST).read_text(encoding="utf-8"),
            *(p.read_text(encoding="utf-8") for p in (tmp_path / "out").rglob("*.jsonl"))]
    for where in (progress, *kept):
        assert fragments(KEY) not in where
