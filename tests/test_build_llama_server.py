"""scripts/build-llama-server: a cached binary that runs is reused as it is; without an
environment to read llama-cpp-python's version from, it says what to do. (The build itself takes
minutes; CI runs it before the tests.)"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build-llama-server"
VENV = Path(sys.prefix)  # the environment running the tests


def run(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INTERMODEL_CACHE": str(tmp_path / "cache"), **environ}
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_a_cached_binary_that_runs_is_reused(tmp_path: Path) -> None:
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llama-cpp-python is not installed (the local extra)")
    home = tmp_path / "cache" / f"llama-server-{version}"
    home.mkdir(parents=True)
    binary = home / "llama-server"
    binary.write_text("#!/bin/sh\necho 'version: 1 (cached)' >&2\n")
    binary.chmod(0o755)

    result = run(tmp_path, VENV=str(VENV))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{binary}\n", "")
    assert sorted(p.name for p in home.iterdir()) == ["llama-server"]  # nothing built


def test_without_an_environment_it_says_to_run_setup(tmp_path: Path) -> None:
    result = run(tmp_path, VENV=str(tmp_path / "no-venv"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "run scripts/setup dev first" in result.stderr
    assert not (tmp_path / "cache").exists()
