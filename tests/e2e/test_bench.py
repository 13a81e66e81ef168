"""The benchmarks still run (tiny settings; their figures are not checked — see bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_local_model

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "relay.py": ["--chunks", "50", "--runs", "1", "--protocol", "openai", "anthropic", "responses"],
    "relay_replay.py": ["--chunks", "50", "--runs", "1"],
    "tui_stream.py": ["--turns", "1", "--words", "10", "--paced-turns", "1", "--paced-words", "5",
                      "--history-words", "10", "--repeat", "1", "--histories", "2,3"],
    "local.py": ["--tokens", "8", "--runs", "1", "--launches", "1"],
    "judge.py": ["--targets", "20", "--local", "0", "--runs", "1"],
    "follow.py": ["--idle", "0.5", "--runs", "1", "--turns", "2", "--history", "20"],
    "dashboard.py": ["--entries", "5", "--seconds", "0.5", "--runs", "1"],
    "attach.py": ["--turns", "2", "--words", "5", "--rounds", "1"],
    "history.py": ["--turns", "30", "--at", "5,20", "--words", "5", "--span", "3", "--repeat", "1",
                   "--rounds", "1", "--burst", "3", "--sdk-repeat", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_the_benchmark_runs(script: str) -> None:
    if script == "local.py":
        require_local_model()
    result = subprocess.run([sys.executable, str(REPO / "bench" / script), *TINY[script]],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    # It printed its table (a Markdown one, or columns with these headings).
    assert any(mark in result.stdout for mark in ("|", "lag", "RSS growth"))
