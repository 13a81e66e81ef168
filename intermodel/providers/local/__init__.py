"""A GGUF model run in-process with llama-cpp-python (the `local` provider).

How a reply is produced:

- Models live in a process-wide pool keyed by (resolved file, configured context size) and counted
  by reference, so two agents on one file share one loaded model; the last provider to close
  frees it. A model is loaded lazily by the first reply that needs it, off the event loop.
- Each reply runs in its own plain thread that holds the model's lock from the first prompt token
  to the last generated one; a second agent's thread waits on that lock, never the event loop.
- The thread never waits for the event loop: it puts events on a `queue.SimpleQueue`, and the
  async generator takes them with `anyio.to_thread.run_sync(queue.get, abandon_on_cancel=True)`,
  everything queued at once. So a busy UI cannot slow generation down, and the generator opens no
  task group or cancel scope around its `yield`s (which anyio forbids).
- Stopping: a `threading.Event`, checked between small prompt batches and at every sampled token,
  ends the thread; the generator's cleanup waits (shielded) until the thread has let go of the
  model, so a model is never used by two threads and the next reply can start at once.
- Loading cannot be stopped, so nothing waits for it once its caller is cancelled: the load runs
  in a daemon thread, and whichever thread holds the model when its last user leaves frees it as
  it lets go. A stopped run ends at once even while its model loads from a slow disk.
- The two agents' conversations differ from their first tokens, so each provider keeps a snapshot
  of its own context (token ids plus llama.cpp's sequence state) and restores it when the shared
  context was last used by the partner: a turn then evaluates only the new messages.
"""

from __future__ import annotations

from intermodel.providers.local.provider import LocalProvider
from intermodel.providers.local.runtime import INSTALL_HINT, bundled_model_path

__all__ = ["INSTALL_HINT", "LocalProvider", "bundled_model_path"]
