"""The public API of `intermodel`: exactly the names a user of the library needs, all of them
importable, nothing exported by accident (after httpx's `test_exported_members`)."""

from __future__ import annotations
import __future__

import types
from pathlib import Path

import pytest

import intermodel

REPO = Path(__file__).resolve().parent.parent

EXPORTED = {
    # run specs, and loading them
    "AgentConfig", "Pairing", "Panel", "RunSpec", "load_config", "load_pairing",
    # running: prepare a run, subscribe to its session, steer it
    "Run", "prepared_run", "Session", "Dialogue", "DialogueState", "PanelRun", "Controls",
    "Subscription",
    # reading transcripts, and the records they hold
    "Transcript", "read_transcript", "Turn", "Interjection", "RunEnd", "Usage",
    # the error tree
    "IntermodelError", "ConfigError", "ConfigIssue", "MissingKeyError", "UsageError",
    "UntrustedTranscript", "DependencyMissing", "TranscriptError", "TranscriptInvalid",
    "InvalidRunId", "ProviderError", "TransientError", "RateLimited", "ServerUnavailable",
    "ConnectionFailed", "StreamInterrupted", "TimedOut", "FatalError", "AuthenticationFailed",
    "QuotaExhausted", "ModelNotFound", "BadRequest", "ContextTooLong", "ProviderBroken",
    "__version__",
}


def test_exported_members() -> None:
    assert set(intermodel.__all__) == EXPORTED
    assert len(intermodel.__all__) == len(EXPORTED)  # none listed twice


def test_every_exported_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from intermodel import *", namespace)  # what a user's star import gets
    assert set(namespace) - {"__builtins__"} == EXPORTED
    for name in EXPORTED:
        value = getattr(intermodel, name)
        if name != "__version__":
            assert value.__module__.startswith("intermodel."), (name, value.__module__)


def test_nothing_public_is_exported_by_accident() -> None:
    """Every public name in the package's namespace is listed: a name imported for a new export
    and not added to `__all__` (or added and not meant to be public) fails here."""
    public = {
        name for name, value in vars(intermodel).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # subpackages, bound once imported
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }
    assert public == EXPORTED - {"__version__"}


def test_the_error_tree_is_exported_whole() -> None:
    """Every exception of the tree is public, so a caller can catch exactly what it expects."""
    import intermodel.errors as errors

    tree = {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, intermodel.IntermodelError)}
    assert tree <= EXPORTED
    assert all(issubclass(getattr(intermodel, name), intermodel.IntermodelError) for name in tree)


@pytest.mark.anyio
async def test_the_documented_use_runs(tmp_path: Path) -> None:
    """The package docstring's example, as written: load, prepare, subscribe, run, read back."""
    pairing = intermodel.load_pairing(REPO / "configs" / "scripted.toml")
    async with intermodel.prepared_run(pairing, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
    assert isinstance(end, intermodel.RunEnd)
    assert subscription.drain()  # the subscriber saw the run's events
    assert run.transcript is not None
    transcript = intermodel.read_transcript(run.transcript)
    assert transcript.end == end
    assert transcript.turns and all(isinstance(t, intermodel.Turn) for t in transcript.turns)
