"""One reply, produced by a worker thread that holds the model, read by the event loop."""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from intermodel.config.request import Request
from intermodel.errors import BadRequest, ContextTooLong, ProviderBroken, ProviderError
from intermodel.providers.base import Finished, StreamEvent, UsageReport
from intermodel.providers.local.runtime import (
    CONTEXT_FULL,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    NAME,
    SAMPLER_OPTIONS,
    LoadedModel,
    import_llama,
    llama_errors,
)
from intermodel.providers.local.state import Cancelled, Snapshot, prefill
from intermodel.providers.thinktags import ThinkTagParser

if TYPE_CHECKING:
    from intermodel.providers.local.pool import SharedModel
    from intermodel.providers.local.provider import LocalProvider

__all__ = ["End", "Reply", "StopMatcher", "sampler_options"]


class StopMatcher:
    """Cuts text at the first stop sequence, holding back only what may still become one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text that is safe to show, whether a stop sequence was reached)."""
        text = self._held + text
        hits = [at for at in (text.find(s) for s in self._stops) if at >= 0]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        keep = max((n for s in self._stops for n in range(1, len(s)) if text.endswith(s[:n])),
                   default=0)
        self._held = text[len(text) - keep:]
        return text[: len(text) - keep], False

    def flush(self) -> str:
        text, self._held = self._held, ""
        return text


class End:
    """Internal: the last item a reply's thread queues."""


Item = Sequence[StreamEvent] | ProviderError | End


class Reply:
    """One request, produced by `run` in a worker thread, read with `next_items` in the loop."""

    def __init__(self, provider: LocalProvider, request: Request,
                 options: dict[str, Any]) -> None:
        self.provider = provider
        self.request = request
        self.options = options
        self.cancel = threading.Event()
        self.finished = threading.Event()  # set once the thread has let go of the model
        self.prompt_tokens = 0
        self.sampled = 0  # tokens sampled so far, the one being decided included
        self.loading = False  # the thread is loading the model, which nothing can interrupt
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()

    def wake(self) -> None:
        """Wake a reader that was cancelled while waiting for an item (its worker thread is
        left waiting on the queue otherwise, if this reply's thread never ends)."""
        self._queue.put(End())

    async def next_items(self) -> list[Item]:
        """Wait for the next item, then take everything queued behind it too."""
        items = [await anyio.to_thread.run_sync(self._queue.get, abandon_on_cancel=True)]
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._queue.get_nowait())
        return items

    def run(self) -> None:
        shared = self.provider.shared
        try:
            with self._holding(shared):
                self.loading = shared.model is None
                model = shared.loaded()
                self.loading = False
                self._generate(model)
        except Cancelled:
            pass
        except Exception as exc:  # every llama.cpp failure ends as a ProviderError
            self._emit(exc if isinstance(exc, ProviderError) else _translate(exc))
        finally:
            # Also wakes a reader that was cancelled while waiting for an item.
            self._queue.put(End())
            self.finished.set()

    @contextlib.contextmanager
    def _holding(self, shared: SharedModel) -> Iterator[None]:
        """Wait for the model while staying stoppable."""
        while not shared.lock.acquire(timeout=0.05):
            if self.cancel.is_set():
                raise Cancelled
        try:
            yield
        finally:
            shared.let_go()

    def _generate(self, model: LoadedModel) -> None:
        llm = model.llm
        llama_errors.clear()  # what llama.cpp logs from here on explains this reply's failure
        prompt = model.chat(messages=_chat_messages(self.request))
        tokens = llm.tokenize(prompt.prompt.encode("utf-8"), add_bos=not prompt.added_special,
                              special=True)
        sampling = self.request.sampling
        if len(tokens) + sampling.max_tokens > model.n_ctx:
            raise ContextTooLong(
                f"the conversation is {len(tokens)} tokens and max_tokens is "
                f"{sampling.max_tokens}: more than the context of {model.n_ctx} tokens "
                "(raise context_size or lower max_tokens)", provider=NAME)
        prefill(llm, tokens, self.provider.snapshot, self.cancel)
        self.prompt_tokens = len(tokens)
        stops = list(sampling.stop) + _as_list(prompt.stop)
        finish, output = self._stream(llm, tokens, StopMatcher(stops))
        self.provider.snapshot = Snapshot.take(llm)
        self._emit([UsageReport(len(tokens), output), Finished(finish, model.name)])

    def _stream(self, llm: Any, tokens: list[int], stops: StopMatcher) -> tuple[str, int]:
        """Generate and emit text; returns (finish reason, tokens generated)."""
        sampling = self.request.sampling
        llama_cpp = import_llama()
        chunks = llm.create_completion(
            prompt=tokens,
            max_tokens=sampling.max_tokens,
            temperature=DEFAULT_TEMPERATURE if sampling.temperature is None
            else sampling.temperature,
            top_p=DEFAULT_TOP_P if sampling.top_p is None else sampling.top_p,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed,
            stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([self._after_token]),
            **self._grammar(),
            **self.options,
        )
        think = ThinkTagParser()
        finish = "stop"
        with contextlib.closing(chunks):
            for chunk in chunks:
                if self.cancel.is_set():
                    raise Cancelled
                choice = chunk["choices"][0]
                text, stopped = stops.feed(choice["text"])
                if stopped:
                    self._emit(think.feed(text) + think.flush())
                    return "stop", self.sampled
                self._emit(think.feed(text))
                finish = choice["finish_reason"] or finish
        if self.cancel.is_set():
            raise Cancelled
        self._emit(think.feed(stops.flush()) + think.flush())
        # llama reports "stop" (with no stop strings of its own to match) only for an
        # end-of-generation token, which it sampled but does not count as output.
        return finish, self.sampled - 1 if finish == "stop" else self.sampled

    def _grammar(self) -> dict[str, Any]:
        """A request with an answer schema is held to it by a grammar on sampling."""
        schema = self.request.answer_schema
        if schema is None:
            return {}
        return {"grammar": _schema_grammar(json.dumps(schema, sort_keys=True))}

    def _after_token(self, evaluated: Sequence[int], _logits: Any) -> bool:
        """Called as each token is sampled, with the tokens evaluated before it."""
        self.sampled = len(evaluated) - self.prompt_tokens + 1
        return self.cancel.is_set()

    def _emit(self, item: Item) -> None:
        if isinstance(item, ProviderError | End) or item:
            self._queue.put(item)


@functools.lru_cache(maxsize=8)
def _schema_grammar(schema: str) -> Any:
    """llama.cpp's grammar for a JSON schema, built once per schema (a judge sends the same
    one with every target)."""
    grammar = import_llama().llama_grammar.LlamaGrammar
    try:
        return grammar.from_json_schema(schema, verbose=False)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise BadRequest(f"answer schema not usable as a grammar: {exc}", provider=NAME) from exc


def _chat_messages(request: Request) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role, "content": m.content} for m in request.messages]
    return messages


def _as_list(stop: str | list[str] | None) -> list[str]:
    return [] if stop is None else [stop] if isinstance(stop, str) else list(stop)


def sampler_options(extra_body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(extra_body) - SAMPLER_OPTIONS)
    if unknown:
        raise BadRequest(f"extra_body {', '.join(unknown)}: not a llama.cpp sampling option "
                         f"(known: {', '.join(sorted(SAMPLER_OPTIONS))})", provider=NAME)
    return dict(extra_body)


def _translate(exc: Exception) -> ProviderError:
    """llama-cpp-python raises ValueError and RuntimeError for nearly everything; a template
    refusing the conversation raises a jinja2 error."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if llama_errors:
        detail += f" ({llama_errors[-1]})"
    if CONTEXT_FULL.search(detail):
        return ContextTooLong(detail, provider=NAME)
    if type(exc).__module__.startswith("jinja2"):
        return BadRequest(f"the model's chat template refused the conversation: {detail}",
                          provider=NAME)
    return ProviderBroken(f"llama.cpp failed: {detail}", provider=NAME)
