"""What an agent is sent for one turn: the provider-neutral request, and its sampling settings.

A request is the agent's own view of the conversation (see `intermodel.engine.requests`) plus its
settings, the same for every wire protocol. It lives with the configuration, below the providers,
because both sides need it: an agent's config holds its `Sampling`, and every provider takes a
`Request`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from intermodel.config.digest import ListDigest, canonical_digest
from intermodel.records import ReasoningItem, reasoning_item_to_json

__all__ = ["Message", "Request", "RequestDigests", "Role", "Sampling", "estimate_text_tokens"]

Role = Literal["user", "assistant"]
CHARS_PER_TOKEN_ESTIMATE = 4


def estimate_text_tokens(chars: int) -> int:
    """About how many tokens `chars` characters of text take, without the model's tokenizer:
    four characters a token, rounded up (an estimate errs towards too many; any text is at least
    one). The one estimate of text: a context window is fitted with it, and the scripted provider
    reports its usage with it."""
    return -(-chars // CHARS_PER_TOKEN_ESTIMATE)


@dataclass(frozen=True, slots=True)
class Message:
    """One message of an agent's view. `thinking` is set only on the agent's own turns when its
    pairing sends its thinking back to it; `signature` is the provider's proof for that thinking
    (Anthropic requires it to accept thinking blocks back), `reasoning_items` the reasoning items
    OpenAI's Responses API takes back (encrypted) before the message they led to."""

    role: Role
    content: str
    thinking: str = ""
    signature: str = ""
    reasoning_items: tuple[ReasoningItem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            data["thinking"] = self.thinking
        if self.signature:
            data["signature"] = self.signature
        if self.reasoning_items:
            data["reasoning_items"] = [reasoning_item_to_json(i) for i in self.reasoning_items]
        return data


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class Request:
    """Everything a provider needs for one call, and nothing that identifies the caller's secrets.

    `thinking_budget` asks for extended thinking where the API has it (Anthropic), `reasoning` for
    OpenAI's reasoning settings (`effort`, `summary`) where the API has them; `extra_body` and
    `extra_headers` pass through provider extras. Header values are as the pairing wrote them,
    `${VAR}` references unexpanded: a request never holds a secret, so it can be hashed and
    stored; providers send the values resolved from their credentials.

    `answer_schema` is a JSON schema the reply must follow (a judge's answer). A provider that
    can constrain its output enforces it (the local model, with a grammar); the others rely on
    the request's own instructions. It enters the canonical JSON only when set, so every other
    request hashes as it always has.
    """

    model: str
    system: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    thinking_budget: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    reasoning: Mapping[str, str] = field(default_factory=dict)
    answer_schema: Mapping[str, Any] | None = None
    # Set by `RequestDigests.attach` only: the same digest, from work shared with the requests
    # built before. Not part of the request (never compared, and `replace` leaves it out).
    _digester: Callable[[Request], str] | None = field(
        default=None, init=False, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = {
            "model": self.model,
            "system": self.system,
            "messages": [m.to_json() for m in self.messages],
            "sampling": self.sampling.to_json(),
            "thinking_budget": self.thinking_budget,
            "extra_body": dict(self.extra_body),
            "extra_headers": dict(self.extra_headers),
        }
        if self.reasoning:  # absent otherwise, so requests without it hash as they always did
            data["reasoning"] = dict(self.reasoning)
        if self.answer_schema is not None:
            data["answer_schema"] = dict(self.answer_schema)
        return data

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of this request: the fingerprint a transcript keeps so
        anyone can later check that a rebuilt request is exactly the one that was sent."""
        if self._digester is not None:
            return self._digester(self)
        return canonical_digest(self.to_json())

    def settings(self) -> tuple[Any, ...]:
        """Everything but the messages, to compare."""
        return (self.model, self.system, self.sampling, self.thinking_budget, self.extra_body,
                self.extra_headers, self.reasoning, self.answer_schema)


class RequestDigests:
    """The digests of a series of requests with the same settings, each one's messages those of
    the request before (but for its last message, which may have grown) with more after them,
    as one agent's view grows turn after turn. The digest of a request attached here is exactly
    `Request.digest`'s, but the messages the earlier requests share are serialised and hashed
    once, not once per request. A request that does not fit the series (its settings differ, or
    a later request's messages were hashed first) is hashed whole, as any other."""

    def __init__(self, settings: Request) -> None:
        members = settings.to_json()
        del members["messages"]
        self._settings = settings.settings()
        self._hashed = ListDigest(members, "messages")

    def fresh(self) -> RequestDigests:
        """A new series of the same settings (after the messages changed other than at the end:
        a trim, or a view rebuilt)."""
        other = object.__new__(RequestDigests)
        other._settings, other._hashed = self._settings, self._hashed.fresh()
        return other

    def attach(self, request: Request) -> Request:
        """`request`, its digest to be worked out with the series'."""
        object.__setattr__(request, "_digester", self._digest)
        return request

    def _digest(self, request: Request) -> str:
        messages = request.messages
        # The last message may yet be merged with the next: it is hashed apart, not kept.
        settled = max(len(messages) - 1, 0)
        hashed = self._hashed
        if hashed.count > settled or request.settings() != self._settings:
            return canonical_digest(request.to_json())
        for message in messages[hashed.count:settled]:
            hashed.add(message.to_json())
        return hashed.digest(m.to_json() for m in messages[settled:])
