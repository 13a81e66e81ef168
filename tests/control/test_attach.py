"""Watching a run through its control socket: `subscribe`, as `intermodel attach` uses it.

Real runs (scripted agents held at gates where a test needs a moment to stand still), a real
control server, real sockets; the viewers are `Watch`es in the same process, raw sockets that
stop reading, and (in test_attach_processes.py) other processes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import anyio
import pytest

from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.control.server import ControlServer
from intermodel.control.watch import Watch, command
from intermodel.engine.events import (
    Event,
    Paused,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnStarted,
)
from intermodel.engine.prepare import prepared_run
from intermodel.providers.base import Finished, Provider, ProviderBase, StreamEvent, TextDelta
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Turn
from intermodel.security.secrets import Credentials, remember_secrets
from intermodel.transcript.reader import read_transcript
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import Gate, gated_scripted

LONG = SCRIPTED.replace('"ada three"]', '"ada three"]\nthinking = ["", "ada thinks first"]')


class Viewer:
    """A `Watch` in a task, keeping what it was shown."""

    def __init__(self, path: Path) -> None:
        self.watch = Watch(path)
        self.events: list[Event] = []
        self.live = anyio.Event()
        self.done = anyio.Event()

    def publish(self, event: Event) -> None:
        self.events.append(event)
        if self.watch.reader.live:
            self.live.set()

    async def serve(self) -> None:
        try:
            await self.watch.serve(self.publish)
        finally:
            self.done.set()

    def turns(self) -> list[Turn]:
        return [e.turn for e in self.events if isinstance(e, TurnCompleted)]

    def text_of(self, turn: int) -> str:
        return "".join(e.text for e in self.events
                       if isinstance(e, TextChunk) and e.turn == turn)


async def _until(condition: Callable[[], object], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.01)):  # a bound for a hang, not for speed
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("it never happened")


@pytest.mark.anyio
async def test_viewers_get_the_history_the_turn_under_way_then_every_event(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    gate = Gate()
    pairing = make_pairing(LONG)
    factory = gated_scripted(gate, "bo", opening=2)
    async with prepared_run(pairing, out_dir=tmp_path, provider_factory=factory) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        own = run.session.subscribe()
        first, second = Viewer(server.path), Viewer(server.path)
        async def go() -> None:
            run.session_end = await run.session.run()  # type: ignore[attr-defined]
            await first.done.wait()
            await second.done.wait()
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            tg.start_soon(go)
            # bo's turn 2 is under way, two pieces in, held at the gate: now the viewers come.
            async for event in own:
                if isinstance(event, TextChunk) and event.agent == "bo":
                    break
            tg.start_soon(first.serve)
            tg.start_soon(second.serve)
            await first.live.wait()
            await second.live.wait()
            assert (await command(server.path, {"command": "pause"}))["ok"]
            await _until(lambda: any(isinstance(e, Paused) for e in first.events))
            assert (await command(server.path, {"command": "resume"}))["ok"]
            gate.open()
        end = run.session_end  # type: ignore[attr-defined]
    recorded = [r for r in read_transcript(run.transcript).records if isinstance(r, Turn)]
    assert len(recorded) == end.turns == 4
    for viewer in (first, second):
        kinds = [type(e) for e in viewer.events]
        assert kinds[0] is RunStarted
        # History: turn 1 completed; then turn 2 as it stands, then live.
        assert kinds[1:3] == [TurnStarted, TurnCompleted]
        assert isinstance(viewer.events[3], TurnStarted) and viewer.events[3].turn == 2
        assert viewer.turns() == recorded  # every turn, once, as recorded
        assert viewer.text_of(2) == recorded[1].text  # the part before attaching, then the rest
        assert viewer.watch.end == end and isinstance(viewer.events[-1], RunFinished)
        thinking = [e for e in viewer.events if isinstance(e, ThinkingChunk)]
        assert thinking and "".join(e.text for e in thinking if e.turn == 3) == "ada thinks first"
    assert first.turns() == second.turns()
    assert server.viewers == 0 and server.dropped == 0


@pytest.mark.anyio
async def test_a_viewer_that_comes_before_the_run_starts_gets_it_from_its_header(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    async with prepared_run(make_pairing(), out_dir=tmp_path) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        viewer = Viewer(server.path)
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            tg.start_soon(viewer.serve)
            await _until(lambda: viewer.watch.reader.live)
            await run.session.run()
            await viewer.done.wait()
            tg.cancel_scope.cancel()
    assert isinstance(viewer.events[0], RunStarted)
    assert viewer.events[0].spec.name == "test-pair"
    assert [t.index for t in viewer.turns()] == [1, 2, 3, 4]
    assert isinstance(viewer.events[-1], RunFinished)


@pytest.mark.anyio
async def test_a_viewer_that_stops_reading_is_cut_off_and_the_run_goes_on(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    # Many short turns of many pieces: far more events than a viewer may lag behind.
    # Many turns of many pieces: far more than a socket's buffers hold.
    words = " ".join(f"word{i}" for i in range(2000))
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", "max_turns = 100")
                           .replace('"ada three"]', '"ada three"]\nchunk_words = 10')
                           .replace('"bo three"]', '"bo three"]\nchunk_words = 10')
                           .replace('"ada one", "ada two", "ada three"', f'"{words}"')
                           .replace('"bo one", "bo two", "bo three"', f'"{words}"'))
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        server.stall = 0.5  # seconds: what a stopped viewer gets before it is given up on
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled:
            # A small receive buffer fills at once: the run's sends to it would block.
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve)
                stalled.connect(str(server.path))
                stalled.sendall(json.dumps({"command": "subscribe"}).encode() + b"\n")
                await _until(lambda: server.viewers == 1)
                end = await run.session.run()  # never waits for the viewer
                await _until(lambda: server.viewers == 0)
                tg.cancel_scope.cancel()
    assert end.turns == 100
    assert server.dropped == 1
    # The queue it was cut off with is gone: nothing of the run is held for it.
    assert len(run.session.bus._subscriptions) == 1  # the server's feed alone


class EchoingProvider(ProviderBase):
    name = "scripted"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        for piece in self.pieces:
            yield TextDelta(piece)
        yield Finished("stop", "echo")

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_nothing_secret_reaches_a_viewer(make_pairing: PairingFactory,
                                              tmp_path: Path) -> None:
    key = "sk-ant-" + "Q" * 40
    remember_secrets([key])  # as resolving an agent's key does

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        # ada's server echoes the key, split across pieces; bo is scripted.
        if agent.name == "ada":
            return EchoingProvider(["my key is ", key[:10], key[10:], " ok"])
        return ScriptedProvider(agent, partner)

    async with prepared_run(make_pairing(), out_dir=tmp_path, provider_factory=factory) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        raw: list[bytes] = []
        done = anyio.Event()

        async def read_all() -> None:
            stream = await anyio.connect_unix(server.path)
            async with stream:
                await stream.send(b'{"command": "subscribe"}\n')
                try:
                    while True:
                        raw.append(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    done.set()

        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            tg.start_soon(read_all)
            await _until(lambda: server.viewers == 1)
            await run.session.run()
            await done.wait()
            tg.cancel_scope.cancel()
    sent = b"".join(raw)
    assert b"my key is" in sent and key.encode() not in sent
