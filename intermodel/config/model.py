"""The validated, frozen form of pairing and panel files (built only by `config.loader`)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Literal

from intermodel.config.request import Sampling
from intermodel.errors import UsageError

__all__ = [
    "DEFAULT_COOL_DOWN",
    "PLACEHOLDERS",
    "Addressee",
    "AgentConfig",
    "DetectorConfig",
    "DialogueConfig",
    "Pairing",
    "Panel",
    "Price",
    "ProviderName",
    "RetryConfig",
    "RunSpec",
    "ScriptConfig",
    "render_placeholders",
]

# A name in `config.capabilities.PROVIDERS` (the config check refuses any other).
ProviderName = str

# Seconds a server of an endpoint pool that failed is set aside, unless the agent says otherwise.
DEFAULT_COOL_DOWN = 30.0

# Placeholders a role prompt may use, filled once per agent when the run starts.
PLACEHOLDERS = ("name", "partner", "max_turns")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def render_placeholders(template: str, values: Mapping[str, object]) -> str:
    """Fill `{name}`-style placeholders; `{{` and `}}` stand for literal braces."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(values[match.group(1)])

    return _PLACEHOLDER.sub(replace, template)


def unknown_placeholders(template: str, known: tuple[str, ...] = PLACEHOLDERS) -> list[str]:
    """Placeholder names in `template` that `render_placeholders` would not be given."""
    return [
        m.group(1)
        for m in _PLACEHOLDER.finditer(template)
        if m.group(1) is not None and m.group(1) not in known
    ]


@dataclass(frozen=True)
class ScriptConfig:
    """Replies of the `scripted` provider: a list, one file, or a rule."""

    replies: tuple[str, ...] = ()
    thinking: tuple[str, ...] = ()
    # (text, reply): the first text found in the last message the agent was sent picks the reply.
    when: tuple[tuple[str, str], ...] = ()
    rule: Literal["list", "echo", "count"] = "list"
    when_exhausted: Literal["cycle", "repeat_last", "fail"] = "cycle"
    chunk_words: int = 1
    delay: float = 0.0
    first_token_delay: float = 0.0


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return ((input_tokens or 0) * self.input + (output_tokens or 0) * self.output) / 1e6


@dataclass(frozen=True)
class AgentConfig:
    name: str
    provider: ProviderName
    model: str
    prompt: str = ""
    base_url: str | None = None
    # An endpoint pool: servers of the same model, each request to the least busy one
    # (`providers.pool`); empty for an agent of one server. Never given with base_url.
    base_urls: tuple[str, ...] = ()
    endpoint_cool_down: float = DEFAULT_COOL_DOWN  # seconds a pool's failing server is set aside
    api_key_env: str | None = None
    # False when a missing key variable is acceptable (a local OpenAI-compatible server).
    key_required: bool = True
    sampling: Sampling = field(default_factory=Sampling)
    thinking_budget: int | None = None
    send_thinking_back: bool = False
    api: Literal["chat", "responses"] = "chat"  # which OpenAI API an `openai` agent speaks
    reasoning: Mapping[str, str] = field(default_factory=dict)  # OpenAI's effort and summary
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    max_reply_seconds: float = 3600.0
    max_reply_chars: int = 4_000_000
    context_size: int | None = None
    context_window: int | None = None
    script: ScriptConfig | None = None
    price: Price | None = None

    def at_endpoint(self, url: str) -> AgentConfig:
        """This agent as if it had one server, `url` (one member of its endpoint pool)."""
        return replace(self, base_url=url, base_urls=())


@dataclass(frozen=True)
class DialogueConfig:
    opener: str
    opener_to: str
    opener_shared: bool
    first: str
    max_turns: int
    max_total_tokens: int | None = None
    max_seconds: float | None = None
    max_cost: float | None = None
    stop_phrases: tuple[str, ...] = ()
    stop_match: Literal["end", "line", "anywhere", "regex"] = "end"
    share_thinking: bool = False
    interjection_format: str = "[Human]: {text}"
    empty_reply: str = "[no reply]"
    context_policy: Literal["drop_oldest", "stop"] = "drop_oldest"


Action = Literal["stop", "warn", "mark", "off"]


@dataclass(frozen=True)
class DetectorConfig:
    repetition: Action = "mark"
    repetition_similarity: float = 0.9
    repetition_lookback: int = 4
    empty: Action = "warn"
    empty_limit: int = 2
    goodbye: Action = "mark"
    goodbye_turns: int = 4
    self_repetition: Action = "mark"
    self_repetition_repeats: int = 3
    self_repetition_share: float = 0.5
    self_repetition_words: int = 10
    emoji_collapse: Action = "mark"
    emoji_collapse_turns: int = 3
    emoji_collapse_share: float = 0.5


@dataclass(frozen=True)
class RetryConfig:
    """Defaults suit an unattended night: a provider outage of an hour or two is waited out
    (30 attempts, backoff up to 5 minutes, at most 3 hours for one turn)."""

    attempts: int = 30
    backoff_initial: float = 2.0
    backoff_max: float = 300.0
    max_retry_after: float = 600.0
    max_wait: float = 10800.0


class Addressee(StrEnum):
    """Who a human message is for, besides an agent named outright."""

    A = "a"  # the first agent of the file
    B = "b"  # the second
    BOTH = "both"  # every agent


@dataclass(frozen=True, kw_only=True)
class RunSpec(ABC):
    """What a run runs: a `Pairing` (two agents in conversation) or a `Panel` (one message, every
    agent answering on its own). `resolved` is the normalised config (every default filled in,
    prompt files inlined, no secrets): what transcripts store and what `config_from_resolved`
    loads back. `kind` tells the two apart where a screen or an export truly differs."""

    kind: ClassVar[Literal["pairing", "panel"]]
    name: str
    description: str
    agents: tuple[AgentConfig, ...]
    retry: RetryConfig
    transcripts: str
    source: str
    resolved: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(agent.name for agent in self.agents)

    def agent(self, name: str) -> AgentConfig:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    def partner_of(self, name: str) -> str:
        """The agent `name` talks with ("" when it talks with nobody, as in a panel)."""
        return ""

    def addressees(self, to: str) -> tuple[str, ...]:
        """The agents a human message `to` someone is for: `a` and `b` by seat, `both`, or an
        agent's name (in any case). The one resolver of the CLI, the control socket and the
        session; its error says the same thing to all of them."""
        key = to.strip().lower()
        names = self.agent_names
        match key:
            case Addressee.BOTH:
                return names
            case Addressee.A:
                return names[:1]
            case Addressee.B:
                return names[1:2]
        for name in names:
            if name.lower() == key:
                return (name,)
        choices = ", ".join([*Addressee, *names[:-1]]) + f" or {names[-1]}"
        # The text asked for is not repeated: it may be anything, from anyone on the socket.
        raise UsageError(f"no such addressee: use {choices}")

    @property
    @abstractmethod
    def max_turns(self) -> int:
        """The turn budget as configured (a panel: one answer per agent)."""

    @abstractmethod
    def system_prompt(self, name: str) -> str:
        """The agent's role prompt with its placeholders filled."""


@dataclass(frozen=True, kw_only=True)
class Panel(RunSpec):
    """One message, sent to every agent at once; each answers on its own. No conversation."""

    kind: ClassVar[Literal["pairing", "panel"]] = "panel"
    prompt: str

    @property
    def max_turns(self) -> int:
        return len(self.agents)

    def system_prompt(self, name: str) -> str:
        return render_placeholders(self.agent(name).prompt, {"name": name})


@dataclass(frozen=True, kw_only=True)
class Pairing(RunSpec):
    """Two agents in conversation, taking turns."""

    kind: ClassVar[Literal["pairing", "panel"]] = "pairing"
    agents: tuple[AgentConfig, AgentConfig]
    dialogue: DialogueConfig
    detectors: DetectorConfig = field(default_factory=DetectorConfig)

    @property
    def agent_names(self) -> tuple[str, str]:
        return (self.agents[0].name, self.agents[1].name)

    @property
    def max_turns(self) -> int:
        return self.dialogue.max_turns

    def partner_of(self, name: str) -> str:
        first, second = self.agent_names
        return second if name == first else first

    def with_max_turns(self, max_turns: int) -> Pairing:
        """The same pairing with another turn budget (as if the file said so)."""
        resolved = {**self.resolved, "dialogue": {**self.resolved["dialogue"],
                                                  "max_turns": max_turns}}
        return replace(self, dialogue=replace(self.dialogue, max_turns=max_turns),
                       resolved=resolved)

    def system_prompt(self, name: str) -> str:
        return render_placeholders(
            self.agent(name).prompt,
            {"name": name, "partner": self.partner_of(name), "max_turns": self.dialogue.max_turns},
        )
