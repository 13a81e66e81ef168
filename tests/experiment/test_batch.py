"""Experiments: the run matrix, cost bounds, shared limits, and a batch that survives being
interrupted and run again without doing any work twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from intermodel.config.experiment import load_experiment
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.errors import ConfigError
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import MANIFEST, EntryState
from intermodel.experiment.plan import Entry, cost_bound, plan, run_cost_bound
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent
from intermodel.providers.registry import make_provider
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.conftest import SCRIPTED

REPO = Path(__file__).resolve().parents[2]

PAIR = SCRIPTED.replace('[agents.ada.script]', '[agents.ada.price]\ninput = 3.0\noutput = 15.0\n'
                        '[agents.ada.script]').replace(
    '[agents.bo.script]', '[agents.bo.price]\ninput = 1.0\noutput = 5.0\n[agents.bo.script]'
).replace('"ada three"]', '"ada three"]\ndelay = 0.01').replace('"bo three"]',
                                                               '"bo three"]\ndelay = 0.01')


def write_experiment(tmp_path: Path, extra: str = "", replicates: int = 3) -> Path:
    (tmp_path / "pair.toml").write_text(PAIR)
    (tmp_path / "other.toml").write_text(PAIR.replace('name = "test-pair"', 'name = "other"'))
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f"""
name = "trial"
out = "{tmp_path / 'out'}"
replicates = {replicates}
seed = 10
turns = 4
concurrency = 3

[[pairings]]
file = "pair.toml"
label = "one"

[[pairings]]
file = "other.toml"
label = "two"

[[openers]]
label = "hi"
text = "Hi there."

[[openers]]
label = "yo"
text = "Yo."
{extra}
""")
    return experiment


def test_the_matrix_and_each_entrys_settings(tmp_path: Path) -> None:
    experiment = load_experiment(write_experiment(tmp_path))
    entries = plan(experiment)
    assert len(entries) == 2 * 2 * 3
    assert [e.id for e in entries[:4]] == ["one/hi/r1", "one/yo/r1", "two/hi/r1", "two/yo/r1"]
    last = entries[-1]
    assert (last.id, last.seed) == ("two/yo/r3", 12)
    assert last.pairing.dialogue.opener == "Yo."
    assert last.pairing.dialogue.max_turns == 4
    assert last.pairing.agent("ada").sampling.seed == 12
    assert last.origin(experiment)["experiment"]["entry"] == "two/yo/r3"


def test_experiment_files_are_validated_like_pairings(tmp_path: Path) -> None:
    path = write_experiment(
        tmp_path, extra="[limits.anthropic]\nstreams = 0\nrequest_per_minute = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    lines = str(caught.value).splitlines()
    assert any("limits.anthropic.streams: expected a value from 1 to 1000, got 0" in ln
               for ln in lines)
    assert any("limits.anthropic.request_per_minute: unknown key; did you mean "
               "'requests_per_minute'?" in ln for ln in lines)


def test_cost_is_bounded_from_the_budgets(tmp_path: Path) -> None:
    entries = plan(load_experiment(write_experiment(tmp_path, replicates=1)))
    pairing = entries[0].pairing
    bound = run_cost_bound(pairing)
    assert bound is not None
    # 4 turns, max_tokens 1024 each, prompts holding every earlier reply: the bound is at least
    # the replies' own cost and at most that plus prompts of 4 x 1024 tokens each.
    replies = 2 * 1024 * 15.0 / 1e6 + 2 * 1024 * 5.0 / 1e6
    assert replies < bound < replies + 4 * 4200 * 3.0 / 1e6
    total = cost_bound(entries)
    assert total.dollars == pytest.approx(sum(run_cost_bound(e.pairing) or 0 for e in entries))
    assert total.unpriced == ()
    capped = pairing.with_max_turns(4)
    assert run_cost_bound(capped) == pytest.approx(bound)


class Watching:
    """A provider factory that records how many requests stream at once."""

    def __init__(self) -> None:
        self.live = 0
        self.most = 0
        self.starts: list[float] = []

    def __call__(self, agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        return _Watched(make_provider(agent, partner, credentials), self)


class _Watched(ProviderWrapper):
    def __init__(self, inner: Provider, watch: Watching) -> None:
        self.inner, self.watch, self.name = inner, watch, inner.name

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        self.watch.live += 1
        self.watch.most = max(self.watch.most, self.watch.live)
        self.watch.starts.append(anyio.current_time())
        try:
            async for event in self.inner.stream(request):
                yield event
        finally:
            self.watch.live -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
async def test_a_batch_runs_every_entry_once_and_writes_its_manifest(tmp_path: Path) -> None:
    experiment = load_experiment(write_experiment(tmp_path))
    watch = Watching()
    report = await Batch(experiment, provider_factory=watch).run()
    assert report.count("finished") == 12 and report.skipped == 0
    assert 1 < watch.most <= 3  # concurrency = 3
    transcripts = sorted((tmp_path / "out" / "runs").glob("*.jsonl"))
    assert len(transcripts) == 12
    headers = [read_transcript(p).header["experiment"] for p in transcripts]
    assert sorted(h["entry"] for h in headers) == sorted(e.id for e in plan(experiment))
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["experiment"] == "trial"
    assert {e["status"] for e in manifest["entries"].values()} == {"finished"}
    assert manifest["entries"]["two/yo/r3"]["turns"] == 4
    again = await Batch(experiment).run()
    assert again.skipped == 12  # nothing to do the second time
    assert len(list((tmp_path / "out" / "runs").glob("*.jsonl"))) == 12


@pytest.mark.anyio
async def test_an_interrupted_batch_carries_on_without_repeating_work(tmp_path: Path) -> None:
    write_experiment(tmp_path)
    # Slower replies, so that runs are still streaming when the batch is stopped.
    for name in ("pair.toml", "other.toml"):
        slow = (tmp_path / name).read_text().replace("delay = 0.01", "delay = 0.05")
        (tmp_path / name).write_text(slow)
    experiment = load_experiment(tmp_path / "exp.toml")
    finished: list[str] = []

    def listener(entry: Entry, state: EntryState) -> None:
        if state.status == "finished" and entry.id not in finished:
            finished.append(entry.id)
        if len(finished) >= 3 and state.status == "running" and state.turns == 2:
            batch.stop()  # with this run (and maybe others) half done

    batch = Batch(experiment, listener=listener)
    first = await batch.run()
    assert first.count("finished") >= 3 and first.count("interrupted") >= 1
    runs = tmp_path / "out" / "runs"
    done_before = {p: p.stat().st_mtime_ns for p in runs.glob("*.jsonl")
                   if (t := read_transcript(p)).end is not None and t.end.reason == "max_turns"}
    interrupted = [p for p in runs.glob("*.jsonl") if p not in done_before]
    second = await Batch(experiment).run()
    assert second.count("finished") == 12
    assert second.skipped == len(done_before)
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before  # untouched
    for path in interrupted:  # resumed in place: same file, one run, a resume marker
        transcript = read_transcript(path)
        assert transcript.resumes and transcript.end is not None
        assert [t.index for t in transcript.turns] == [1, 2, 3, 4]
    assert len(list(runs.glob("*.jsonl"))) == 12


@pytest.mark.anyio
async def test_shared_limits_cap_streams_and_pace_requests(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, replicates=1,
                            extra="[limits.scripted]\nstreams = 1\nrequests_per_minute = 600\n")
    watch = Watching()
    report = await Batch(load_experiment(path), provider_factory=watch).run()
    assert report.count("finished") == 4
    assert watch.most == 1
    # 600 per minute: one every 0.1 s at most. The pacer spaces its grants; a stream starts a
    # little after its grant, by however long the machine takes, so single gaps can look short
    # by that delay. Over the whole batch the delays do not add up: without pacing the span
    # would be a few hundredths of a second.
    span = watch.starts[-1] - watch.starts[0]
    assert span >= (len(watch.starts) - 1) * 0.1 * 0.8, watch.starts


@pytest.mark.anyio
async def test_an_entry_that_cannot_start_fails_alone(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, replicates=1)
    broken = PAIR.replace('[agents.bo]\nprovider = "scripted"',
                          '[agents.bo]\nprovider = "openai"\nmodel = "m"\n'
                          'api_key_env = "ABSENT_KEY"').replace(
        '[agents.bo.script]', '[agents.bo.extra_body]').replace(
        'replies = ["bo one", "bo two", "bo three"]\ndelay = 0.01', '')
    (tmp_path / "other.toml").write_text(broken)
    report = await Batch(load_experiment(path), environ={}).run()
    assert report.count("finished") == 2 and report.count("failed") == 2
    failed = [s for s in report.states.values() if s.status == "failed"]
    assert all("ABSENT_KEY is not set" in s.detail for s in failed)


def test_the_command_estimates_asks_and_runs(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    path = write_experiment(tmp_path, replicates=1)
    dry = subprocess.run([sys.executable, "-m", "intermodel", "batch", str(path), "--dry-run"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert dry.returncode == 0, dry.stderr
    assert "experiment trial: 4 runs (2 pairings x 2 openers x 1 replicates)" in dry.stdout
    assert "cost: at most $" in dry.stdout and "one/hi/r1  seed=10" in dry.stdout
    done = subprocess.run([sys.executable, "-m", "intermodel", "batch", str(path), "--yes"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("✓ ") == 4
    assert "4 of 4 runs finished (0 before this session)" in done.stdout


def test_the_example_experiment_is_valid() -> None:
    experiment = load_experiment(REPO / "configs" / "experiments" / "demo.toml")
    entries = plan(experiment)
    assert len(entries) == 3 * 2 * 2
    # It has a panel entry, on the bundled model like its local pairing: it runs offline.
    panels = [e for e in entries if e.pairing.kind == "panel"]
    assert {e.pairing_label for e in panels} == {"panel"} and len(panels) == 4
    assert {a.provider for e in panels for a in e.pairing.agents} == {"local"}


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
def test_ctrl_c_stops_a_batch_cleanly(tmp_path: Path, signals: int) -> None:
    import signal
    import time

    path = write_experiment(tmp_path, replicates=2)
    for name in ("pair.toml", "other.toml"):
        slow = (tmp_path / name).read_text().replace("delay = 0.01", "delay = 0.1")
        (tmp_path / name).write_text(slow)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "intermodel", "batch", str(path), "--yes"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(2.5)
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "run the same command again to carry on" in out
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    statuses = {e["status"] for e in manifest["entries"].values()}
    assert statuses <= {"finished", "interrupted", "pending", "running"}
    again = subprocess.run([sys.executable, "-m", "intermodel", "batch", str(path), "--yes"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert "8 of 8 runs finished" in again.stdout
    assert len(list((tmp_path / "out" / "runs").glob("*.jsonl"))) == 8


@pytest.mark.anyio
async def test_a_panel_can_be_an_entry_of_a_batch(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text("""
name = "voices"
[panel]
prompt = "Say something."
[agents.ann]
provider = "scripted"
[agents.ann.script]
replies = ["ann answers"]
[agents.ben]
provider = "scripted"
[agents.ben.script]
rule = "echo"
""")
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f"""
name = "panel-trial"
out = "{tmp_path / 'out'}"
replicates = 2
[[pairings]]
file = "panel.toml"
[[openers]]
label = "q"
text = "What is new?"
""")
    report = await Batch(load_experiment(experiment)).run()
    assert report.count("finished") == 2
    for path in (tmp_path / "out" / "runs").glob("*.jsonl"):
        transcript = read_transcript(path)
        assert transcript.is_panel and transcript.end is not None
        assert transcript.end.reason == "complete"
        ben = next(t for t in transcript.turns if t.agent == "ben")
        assert ben.text == "What is new?"  # the experiment's opener is the panel's message
