"""A batch with one provider down: its runs wait out their backoffs without holding the places
that runs on healthy providers need, its own limit bounds its share, and the progress line says
who is retrying and why. The down provider is a real loopback server that rate-limits every
request with Retry-After; the healthy runs are scripted."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pytest

from intermodel.config.experiment import Experiment, load_experiment
from intermodel.console.progress import ProgressView
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import EntryState
from intermodel.experiment.plan import Entry
from tests.conftest import SCRIPTED
from tests.fakeserver import FakeServer, Fault

pytestmark = pytest.mark.anyio


def write_experiment(tmp_path: Path, base_url: str, limits: str = "") -> Path:
    (tmp_path / "ok.toml").write_text(SCRIPTED.replace("max_turns = 4", "max_turns = 2"))
    (tmp_path / "down.toml").write_text(f"""
name = "down"
[dialogue]
opener = "Hello."
max_turns = 2
[retry]
attempts = 30
backoff_initial = 0.2
backoff_max = 0.5
[agents.ada]
provider = "openai"
model = "m"
base_url = "{base_url}/v1"
api_key_env = "DOWN_KEY"
timeout = 5
[agents.bo]
provider = "openai"
model = "m"
base_url = "{base_url}/v1"
api_key_env = "DOWN_KEY"
timeout = 5
""")
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f"""
name = "isolation"
out = "{tmp_path / 'out'}"
replicates = 4
concurrency = 2

[[pairings]]
file = "down.toml"
label = "down"

[[pairings]]
file = "ok.toml"
label = "ok"
{limits}
""")
    return experiment


async def run_until_healthy_done(experiment: Experiment
                                 ) -> tuple[Batch, list[str], int]:
    """Run the batch until every healthy entry has finished and a down one is retrying, then
    stop it. Returns status lines seen while down runs were retrying, and the most down runs in
    progress at once."""
    lines: list[str] = []
    most_down = 0
    all_ok_done = anyio.Event()

    def listen(entry: Entry, state: EntryState) -> None:
        nonlocal most_down
        view.on_change(entry, state)
        states = batch.states
        down = sum(1 for key, s in states.items()
                   if key.startswith("down/") and s.status in ("running", "retrying"))
        most_down = max(most_down, down)
        if any(s.status == "retrying" for s in states.values()):
            lines.append(view.status_line())
            if all(s.status == "finished" for key, s in states.items()
                   if key.startswith("ok/")):
                all_ok_done.set()

    batch = Batch(experiment, environ={"DOWN_KEY": "k"}, listener=listen)
    view = ProgressView(io.StringIO(), color=False, live=False)
    view.attach(batch)

    async def stop_when_done() -> None:
        await all_ok_done.wait()
        batch.stop()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_done)
            await batch.run()
            tg.cancel_scope.cancel()
    return batch, lines, most_down


@pytest.mark.parametrize("limited", [False, True], ids=["no-limit", "streams-1"])
async def test_healthy_runs_proceed_while_a_provider_is_down(tmp_path: Path,
                                                             limited: bool) -> None:
    with FakeServer() as srv:
        srv.fault_rate(1.0, kinds=[Fault.status(429, retry_after="1")])
        limits = "[limits.openai]\nstreams = 1\n" if limited else ""
        experiment = load_experiment(write_experiment(tmp_path, srv.base_url, limits))
        batch, lines, most_down = await run_until_healthy_done(experiment)
    ok = {key: s for key, s in batch.states.items() if key.startswith("ok/")}
    assert len(ok) == 4 and all(s.status == "finished" for s in ok.values())
    assert not any(s.status == "finished" for key, s in batch.states.items()
                   if key.startswith("down/"))
    host = srv.base_url.removeprefix("http://")
    assert any(f"retrying (openai {host}: rate limited 429" in line for line in lines), lines
    if limited:  # the provider's own limit bounds its share of the batch
        assert most_down == 1
