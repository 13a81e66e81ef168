"""A batch whose pairing runs on an endpoint pool of three real loopback servers, one of them
failing: the concurrent runs share the pool, so the failing server is set aside once for all of
them, the turns spread over the healthy two, and every run finishes with every turn."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from intermodel.config.experiment import Limit, load_experiment
from intermodel.config.model import AgentConfig
from intermodel.config.request import Message, Request
from intermodel.errors import RateLimited
from intermodel.experiment.batch import Batch
from intermodel.experiment.limits import LimitedProvider, SharedLimit
from intermodel.experiment.slots import RunSlot, SlotProvider
from intermodel.providers.base import Finished
from intermodel.providers.registry import make_provider
from intermodel.records import Retry
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault
from tests.fakeserver.handler import GENERATION_PATHS

pytestmark = pytest.mark.anyio


def served(server: FakeServer) -> int:
    return sum(1 for r in server.requests if r.path in GENERATION_PATHS)


def write_experiment(tmp_path: Path, urls: list[str]) -> Path:
    listed = ", ".join(f'"{u}"' for u in urls)
    (tmp_path / "pool.toml").write_text("""
name = "pool"
[dialogue]
opener = "Hello."
max_turns = 2
[retry]
backoff_initial = 5
""" + "".join(f"""
[agents.{name}]
provider = "openai"
model = "m"
base_urls = [{listed}]
api_key_env = "POOL_KEY"
timeout = 5
""" for name in ("ada", "bo")))
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f"""
name = "pooled"
out = "{tmp_path / 'out'}"
replicates = 3
concurrency = 3

[[pairings]]
file = "pool.toml"
label = "pool"
""")
    return experiment


async def test_concurrent_runs_share_one_pool(tmp_path: Path) -> None:
    with ExitStack() as stack:
        bad, one, two = [stack.enter_context(FakeServer()) for _ in range(3)]
        bad.fault_rate(1.0, seed=1, kinds=[Fault.status(503)])
        urls = [s.base_url + "/v1" for s in (bad, one, two)]
        batch = Batch(load_experiment(write_experiment(tmp_path, urls)),
                      environ={"POOL_KEY": "k"})
        with anyio.fail_after(60):
            report = await batch.run()

        assert report.count("finished") == 3
        transcripts = [read_transcript(s.transcript) for s in report.states.values()
                       if s.transcript]
        turns = [t for run in transcripts for t in run.turns]
        assert len(turns) == 6  # no turn lost
        assert {t.endpoint for t in turns} == set(urls[1:])  # both healthy servers work
        # Set aside by the first run it failed, for every run: asked once in the whole batch
        # (runs with a pool each would each have tried it first). With at most three requests
        # in flight, a new one always finds a healthy server less busy than the failing one.
        assert served(bad) == 1
        [retry] = [r for run in transcripts for r in run.records if isinstance(r, Retry)]
        assert (retry.endpoint, retry.wait) == (urls[0], 0.0)
        assert served(one) + served(two) == 6


async def slowed(limit: SharedLimit) -> bool:
    """Whether the limit holds its runs back (a 429 made it cool down)."""
    with anyio.move_on_after(0.5):
        await limit.cooled()
        return False
    return True


@pytest.mark.parametrize("servers", [1, 2])
async def test_a_429_from_one_server_of_a_pool_holds_back_that_server_alone(
        servers: int) -> None:
    """A run's place among the batch's concurrency, and the provider's shared limit, as the
    batch wraps a pooled provider: a server's 429 with another server ready keeps the place and
    slows no one; a 429 with no other server behaves as for one server."""
    with ExitStack() as stack:
        pool = [stack.enter_context(FakeServer()) for _ in range(servers)]
        pool[0].faults.push(Fault.status(429, retry_after="30"))
        agent = AgentConfig(name="ada", provider="openai", model="m", timeout=5,
                            base_urls=tuple(s.base_url + "/v1" for s in pool))
        limit = SharedLimit("openai", Limit(streams=4))
        places = anyio.CapacityLimiter(1)
        slot = RunSlot(places)
        provider = SlotProvider(LimitedProvider(
            make_provider(agent, "", Credentials(api_key="k")), limit), slot, limit)
        request = Request(model="m", system="", messages=(Message("user", "Hi"),))
        async with provider:
            with pytest.raises(RateLimited) as refused:
                async for _ in provider.stream(request):
                    pass
            assert refused.value.elsewhere is (servers == 2)
            assert slot.held is (servers == 2)
            assert await slowed(limit) is (servers == 1)
            if servers == 2:  # and the retry goes to the other server, in the same place
                events = [event async for event in provider.stream(request)]
                assert isinstance(events[-1], Finished)
                assert served(pool[1]) == 1
