"""The project's one exception tree.

    IntermodelError                    anything this tool reports to a user (one line, an exit code)
    ├── ConfigError                    a pairing file is wrong (file, key path, what was expected)
    │   └── MissingKeyError            an API key variable named by the pairing is not set
    ├── UsageError                     the command line is wrong
    │   └── UntrustedTranscript        a transcript would use keys or endpoints nobody vouched for
    ├── DependencyMissing              an optional extra is not installed (says how to install it)
    ├── TranscriptError                a transcript cannot be written or read
    │   ├── TranscriptInvalid          a transcript (or what was named as one) cannot be read:
    │   │                              not a regular file, not a transcript, a bad record
    │   └── InvalidRunId               a run id that is not 12 lowercase hex digits
    └── ProviderError                  a model call failed; raised only by providers
        ├── TransientError             worth retrying: the same request may succeed later
        │   ├── RateLimited            429 and friends; may carry Retry-After
        │   ├── ServerUnavailable      5xx, 529 overloaded, an error event inside a stream
        │   ├── ConnectionFailed       refused, reset, DNS, TLS
        │   ├── StreamInterrupted      the connection dropped or the stream broke after it began
        │   └── TimedOut               connect or read timeout
        └── FatalError                 retrying cannot help
            ├── AuthenticationFailed   401, 403
            ├── QuotaExhausted         402, or a 429 that says the account is out of credit
            ├── ModelNotFound          404 for the model or endpoint
            ├── BadRequest             400, 422 and other refusals of the request itself
            │   └── ContextTooLong     the conversation no longer fits the model's context window
            └── ProviderBroken         the provider answered with something we cannot understand

Providers translate every foreign exception (SDK, httpx2, llama.cpp) into a ProviderError at their
boundary, so the dialogue's retry policy never needs to know which library raised what.

Every command exits with one of four codes: EXIT_OK, EXIT_RUN_ERROR (a run ended in an error, or
an error of this tree other than those below), EXIT_USAGE (bad configuration or usage, an
unreadable transcript, a missing key variable) and EXIT_SIGNAL (stopped by a signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "EXIT_OK",
    "EXIT_RUN_ERROR",
    "EXIT_SIGNAL",
    "EXIT_USAGE",
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "ConfigIssue",
    "ConnectionFailed",
    "ContextTooLong",
    "DependencyMissing",
    "ErrorKind",
    "FatalError",
    "IntermodelError",
    "InvalidRunId",
    "MissingKeyError",
    "ModelNotFound",
    "ProviderBroken",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "ServerUnavailable",
    "StreamInterrupted",
    "TimedOut",
    "TranscriptError",
    "TranscriptInvalid",
    "TransientError",
    "UntrustedTranscript",
    "UsageError",
]


EXIT_OK, EXIT_RUN_ERROR, EXIT_USAGE, EXIT_SIGNAL = 0, 1, 2, 130


class IntermodelError(Exception):
    """Base of every error this tool reports; `exit_code` is what the CLI exits with."""

    exit_code = EXIT_RUN_ERROR


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a pairing file."""

    path: str  # dotted key path, e.g. "agents.ada.temperature"; "" for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(IntermodelError):
    """A pairing file is invalid. Carries every issue found, not only the first."""

    exit_code = EXIT_USAGE

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = issues
        super().__init__(self._render())

    def _render(self) -> str:
        return "\n".join(f"{self.file}: {issue}" for issue in self.issues)


class MissingKeyError(ConfigError):
    """An API key variable that a pairing needs is not set in the environment."""


class UsageError(IntermodelError):
    exit_code = EXIT_USAGE


class UntrustedTranscript(UsageError):
    """A transcript names endpoints, key variables or headers that no pairing file of yours
    vouches for, and nobody said to trust it (see `intermodel.lineage.trust`)."""


class DependencyMissing(IntermodelError):
    exit_code = EXIT_USAGE


class TranscriptError(IntermodelError):
    pass


class TranscriptInvalid(TranscriptError):
    """A transcript that cannot be read: `path`, the `line` at fault (when one is), and why.
    Exit code 2, like a bad pairing file: the input is wrong, not the run."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")

class InvalidRunId(TranscriptError):
    """A run id names files and sockets, so anything but 12 lowercase hex digits is refused."""

    exit_code = EXIT_USAGE


class ErrorKind(StrEnum):
    """The kind of a failed model call, one per class of the ProviderError branch: what a `retry`
    record's `error` holds ("rate_limited").

    `UNKNOWN` is never written: it is what a kind this version does not know reads as, so a
    transcript from a later version (or an edited one) still reads, and shows this version's own
    wording."""

    PROVIDER_ERROR = "provider_error"
    TRANSIENT_ERROR = "transient_error"
    RATE_LIMITED = "rate_limited"
    SERVER_UNAVAILABLE = "server_unavailable"
    CONNECTION_FAILED = "connection_failed"
    STREAM_INTERRUPTED = "stream_interrupted"
    TIMED_OUT = "timed_out"
    FATAL_ERROR = "fatal_error"
    AUTHENTICATION_FAILED = "authentication_failed"
    QUOTA_EXHAUSTED = "quota_exhausted"
    MODEL_NOT_FOUND = "model_not_found"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    PROVIDER_BROKEN = "provider_broken"
    UNKNOWN = "unknown"

    @classmethod
    def read(cls, text: str) -> ErrorKind:
        """The kind `text` names; UNKNOWN for one this version does not know."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def words(self) -> str:
        """The kind for people: "rate limited"."""
        return "unknown error" if self is ErrorKind.UNKNOWN else self.value.replace("_", " ")


class ProviderError(IntermodelError):
    """A model call failed. `status` is the HTTP status when there was one."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        # Seconds the server asked us to wait; only meaningful for transient errors.
        self.retry_after = retry_after
        # Set by an endpoint pool (`providers.pool`): the server that failed (its public URL),
        # and whether another server of the pool is ready, so the turn is retried there at once.
        self.endpoint = ""
        self.elsewhere = False

    @property
    def kind(self) -> ErrorKind:
        """A short stable name for transcripts and status lines, e.g. "rate_limited"."""
        for cls in type(self).__mro__:
            if cls in _KIND_NAMES:
                return _KIND_NAMES[cls]
        return ErrorKind.UNKNOWN  # unreachable: every ProviderError has ProviderError's kind

    def describe(self) -> str:
        """One line for people: what failed, with the status code when known."""
        where = f"{self.provider} " if self.provider else ""
        if self.endpoint:
            where += f"at {self.endpoint} "
        status = f"{self.status} " if self.status else ""
        return f"{where}{status}{self.kind.words}: {self.message}"


class TransientError(ProviderError):
    transient = True


class RateLimited(TransientError):
    pass


class ServerUnavailable(TransientError):
    pass


class ConnectionFailed(TransientError):
    pass


class StreamInterrupted(TransientError):
    pass


class TimedOut(TransientError):
    pass


class FatalError(ProviderError):
    pass


class AuthenticationFailed(FatalError):
    pass


class QuotaExhausted(FatalError):
    pass


class ModelNotFound(FatalError):
    pass


class BadRequest(FatalError):
    pass


class ContextTooLong(BadRequest):
    pass


class ProviderBroken(FatalError):
    pass


_KIND_NAMES: dict[type[ProviderError], ErrorKind] = {
    ProviderError: ErrorKind.PROVIDER_ERROR,
    TransientError: ErrorKind.TRANSIENT_ERROR,
    RateLimited: ErrorKind.RATE_LIMITED,
    ServerUnavailable: ErrorKind.SERVER_UNAVAILABLE,
    ConnectionFailed: ErrorKind.CONNECTION_FAILED,
    StreamInterrupted: ErrorKind.STREAM_INTERRUPTED,
    TimedOut: ErrorKind.TIMED_OUT,
    FatalError: ErrorKind.FATAL_ERROR,
    AuthenticationFailed: ErrorKind.AUTHENTICATION_FAILED,
    QuotaExhausted: ErrorKind.QUOTA_EXHAUSTED,
    ModelNotFound: ErrorKind.MODEL_NOT_FOUND,
    BadRequest: ErrorKind.BAD_REQUEST,
    ContextTooLong: ErrorKind.CONTEXT_TOO_LONG,
    ProviderBroken: ErrorKind.PROVIDER_BROKEN,
}
