"""Where a resumed or branched run may send your keys: only where a pairing file of yours says.

A transcript's header holds the resolved config its run used: base URLs, the names of key
variables, header templates that expand variables. Whoever can edit the file can change them, so a
transcript from elsewhere is untrusted input: resumed as it stands, it could send
`$OPENAI_API_KEY`, or any variable a header template names, to any host.

So before `resume` or `branch` reads a key variable or makes a request (context probes included),
the run's *seats* — per agent: provider, endpoint, key variable, header names and templates — are
compared with the seats of pairing files you vouch for:

- the pairing file the transcript names as its `source` (for a branch, its parent's), if it is
  still there, is a regular file owned by you (or root) and cannot be changed by other users
  (not writable by all, nor by a group other than your own private one);
- for a seat filled by `branch --swap NAME=FILE:AGENT`, that file's agent (the file named on the
  command line, or for a branch of a branch, recorded in the header's `parent.swap`);
- for a batch resuming its own entry, the experiment's pairing for that entry.

The seats are compared, not the files' bytes: editing a prompt, a budget or a comment in your
pairing file changes nothing, while any change to an endpoint, key variable or header template
makes the transcript unvouched. Seats that use neither the network nor your environment (scripted
and local agents without headers) need no voucher. An unvouched transcript goes on only with
consent: asked on a terminal, `--trust` otherwise. Loopback hosts are no exception: the secret is
the key, not the host.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from intermodel.config import load_config
from intermodel.config.model import AgentConfig, RunSpec
from intermodel.errors import ConfigError, UntrustedTranscript
from intermodel.security.secrets import expand_env
from intermodel.security.text import terminal_safe

__all__ = [
    "Approval",
    "Assessment",
    "Seat",
    "Vouchers",
    "assess",
    "ensure_trusted",
    "refuse",
    "seats_of",
    "trust_all",
    "trust_exactly",
    "vouchers_of_file",
    "vouchers_of_transcript",
]

# Where a provider connects when its agent gives no base_url.
DEFAULT_ENDPOINT = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_DEFAULT_PORT = {"http": 80, "https": 443}
# A pairing file is a few kilobytes; anything much bigger is not one (and is not read).
_MAX_PAIRING_BYTES = 1 << 20


@dataclass(frozen=True)
class Seat:
    """What one agent of a run does with the network and your environment."""

    agent: str
    provider: str
    base_url: str | None
    key_env: str | None
    headers: tuple[tuple[str, str], ...]  # (name, template as written, `${VAR}` unexpanded)
    base_urls: tuple[str, ...] = ()  # an endpoint pool, given instead of base_url

    @classmethod
    def of(cls, agent: AgentConfig) -> Seat:
        return cls(agent.name, agent.provider, agent.base_url, agent.api_key_env,
                   tuple(sorted(agent.extra_headers.items())), agent.base_urls)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The URLs its requests go to (several for an endpoint pool); none for providers that
        make no request (scripted, local)."""
        if self.provider not in DEFAULT_ENDPOINT:
            return ()
        return self.base_urls or (self.base_url or DEFAULT_ENDPOINT[self.provider],)

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment variables it reads: its key variable, then those its headers name."""
        named: list[str] = []
        for _, template in self.headers:
            expand_env(template, {}, named)  # with nothing set, every reference is "missing"
        found = [self.key_env] if self.key_env else []
        return tuple(dict.fromkeys([*found, *named]))

    @property
    def sensitive(self) -> bool:
        """Whether it touches the network or your environment at all."""
        return bool(self.endpoints) or bool(self.variables) or bool(self.headers)

    def same_as(self, other: Seat) -> bool:
        """The same provider, endpoints (scheme, host, port, path; a pool's in any order), key
        variable and headers."""
        return (self.provider == other.provider and self.key_env == other.key_env
                and self.headers == other.headers
                and {_url_key(u) for u in self.endpoints}
                == {_url_key(u) for u in other.endpoints})

    def describe(self) -> str:
        """One line naming the endpoints, the key variable and the headers (never a value)."""
        parts = [f"{self.agent}: {self.provider}"]
        parts.append(f"-> {', '.join(self.endpoints)}" if self.endpoints else "(no network)")
        if self.key_env:
            parts.append(f"key ${self.key_env}")
        for name, template in self.headers:
            reads: list[str] = []
            expand_env(template, {}, reads)
            parts.append(f"header {name}" + (f" (from {', '.join('$' + v for v in reads)})"
                                             if reads else ""))
        return shown("  ".join(parts))


def shown(text: str) -> str:
    """Text from a transcript, on one line and inert on a terminal."""
    return terminal_safe(text).replace("\n", "\u240a").replace("\t", "\u2409")


def _url_key(url: str) -> tuple[Any, ...]:
    """What makes two endpoints the same: scheme, user, host and port, path (trailing / aside)."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORT.get(scheme)
        return (scheme, parts.username, parts.password, (parts.hostname or "").lower(), port,
                parts.path.rstrip("/"), parts.query)
    except ValueError:  # e.g. a port that is not a number: only the same string matches it
        return (url,)


def seats_of(config: RunSpec) -> dict[str, Seat]:
    return {agent.name: Seat.of(agent) for agent in config.agents}


@dataclass(frozen=True)
class Vouchers:
    """Seats you vouch for, by agent name, and (when some are missing) why."""

    seats: Mapping[str, Seat]
    by: str  # "its pairing file configs/x.toml", "the experiment's pairing", ...
    lacking: str = ""  # why the main voucher vouches for nothing, e.g. "it is not there"

    def merged(self, more: Mapping[str, Seat]) -> Vouchers:
        return Vouchers({**self.seats, **more}, self.by, self.lacking)


def vouchers_of_file(source: object, agent_map: Mapping[str, str] | None = None) -> Vouchers:
    """The seats of the pairing file `source` (relative paths from the current folder), if it is
    one you could have written: a regular file, owned by you or root, that other users cannot
    change (see `_unfit_pairing_file`). `agent_map` maps seat names to the file's agent names
    (default: the same names)."""
    if not isinstance(source, str) or not source:
        return Vouchers({}, "it", "it names no pairing file")
    by = f"its pairing file {shown(source)}"
    lacking = _unfit_pairing_file(Path(source))
    if lacking:
        return Vouchers({}, by, f"{by} {lacking}")
    try:
        config = load_config(source)
    except ConfigError:
        return Vouchers({}, by, f"{by} no longer loads")
    found = seats_of(config)
    names = agent_map if agent_map is not None else {name: name for name in found}
    return Vouchers({seat: _renamed(found[agent], seat) for seat, agent in names.items()
                     if agent in found}, by)


def _unfit_pairing_file(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "is not there"
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_PAIRING_BYTES:
        return "is not a pairing file"
    if info.st_uid not in (os.getuid(), 0):
        return "belongs to another user"
    if info.st_mode & stat.S_IWOTH:
        return "can be changed by any user"
    if info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid):
        return "can be changed by other users (its group may write it)"
    return ""


def _private_group(gid: int) -> bool:
    """A group of yours alone: named after you, with no other members (the usual default where
    files are created group-writable)."""
    try:
        group = grp.getgrgid(gid)
        return group.gr_name == pwd.getpwuid(os.getuid()).pw_name and \
            set(group.gr_mem) <= {group.gr_name}
    except KeyError:
        return False


def _renamed(seat: Seat, agent: str) -> Seat:
    return Seat(agent, seat.provider, seat.base_url, seat.key_env, seat.headers, seat.base_urls)


def vouchers_of_transcript(header: Mapping[str, Any]) -> Vouchers:
    """What vouches for a transcript's seats: its pairing file, and for seats a branch took from
    another file (`parent.swap`, "FILE:AGENT" by seat), those files' agents."""
    found = vouchers_of_file(header.get("source"))
    parent = header.get("parent")
    swaps = parent.get("swap") if isinstance(parent, dict) else None
    for seat, spec in (swaps.items() if isinstance(swaps, dict) else ()):
        if isinstance(seat, str) and isinstance(spec, str):
            file, _, agent = spec.rpartition(":")
            found = found.merged(vouchers_of_file(file, {seat: agent}).seats)
    return found


@dataclass(frozen=True)
class Assessment:
    """Whether a run rebuilt from a transcript would only use seats you vouch for."""

    path: Path
    action: str  # "resume", "branch": what the refusal says was not done
    seats: tuple[Seat, ...]  # every seat that uses the network or your environment
    unvouched: tuple[str, ...]  # the agents among them that nothing vouches for
    reason: str  # why not, for the one line ("" when trusted)

    @property
    def trusted(self) -> bool:
        return not self.unvouched

    def lines(self) -> list[str]:
        """What a person should see before consenting: each seat, marked when unvouched."""
        return [("! " if s.agent in self.unvouched else "  ") + s.describe() for s in self.seats]

    def refusal(self) -> str:
        what = "; ".join(s.describe() for s in self.seats if s.agent in self.unvouched)
        return (f"{self.path}: not {self.action}d: it names endpoints or key variables that no "
                f"pairing file of yours vouches for ({self.reason}): {what}. If you trust whoever "
                f"wrote it, {self.action} it on a terminal to be asked, or add --trust")


def assess(path: str | Path, config: RunSpec, vouchers: Vouchers, *,
           action: str = "resume", vouched_seats: Iterable[str] = ()) -> Assessment:
    """Compare the seats of `config` (what the run would use) with `vouchers`; seats named in
    `vouched_seats` count as vouched for (filled from a file named on the command line)."""
    given = set(vouched_seats)
    seats = tuple(s for s in seats_of(config).values() if s.sensitive)
    unvouched = tuple(
        s.agent for s in seats
        if s.agent not in given
        and not (s.agent in vouchers.seats and s.same_as(vouchers.seats[s.agent])))
    reason = ""
    if unvouched:
        reason = vouchers.lacking or (f"{vouchers.by} has other endpoints, key variables or "
                                      f"headers for {', '.join(unvouched)}")
    return Assessment(Path(path), action, seats, unvouched, reason)


Approval = Callable[[Assessment], bool]


def refuse(assessment: Assessment) -> bool:
    """Consent to nothing unvouched: the default for every caller that did not ask a person."""
    return False


def trust_all(assessment: Assessment) -> bool:
    """`--trust`: whatever the transcript names."""
    return True


def trust_exactly(seats: tuple[Seat, ...]) -> Approval:
    """Consent to the seats a person was shown, and to nothing else (should the transcript
    change between the question and the run)."""
    return lambda assessment: assessment.seats == seats


def ensure_trusted(assessment: Assessment, approve: Approval) -> None:
    if not assessment.trusted and not approve(assessment):
        raise UntrustedTranscript(assessment.refusal())
