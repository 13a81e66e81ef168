"""Coding a study with a model: every target a scheme codes, a bounded number at a time, resumable.

    judging = Judging(runs, scheme, judge, blind=True)
    judging.cost()            # an upper bound, before anything is sent
    report = await judging.run()

It shares the batch's machinery. Each request is one turn of `TurnProducer` (streamed, keys
redacted, stalls and slow replies timed out, transient failures retried with the judge's
`[retry]` policy and Retry-After honoured), through the same shared limit a batch uses
(`Limiters`: streams at once and requests per minute; a 429 holds back every request to that
endpoint). Workers take targets in study order, at most `concurrency` at a time.

For each target the judge gets the request `intermodel.coding.judge` builds. A reply that names
no label of the scheme is asked again with what was wrong (`correction`), up to `attempts`
requests; then the target is recorded as unlabelled with the last problem. Every coding is a
label record in the sidecar beside its transcript, with the hash of the last request sent.

A target already coded by this judge (spec and model) under this wording of the scheme (its hash)
is skipped, so Ctrl-C (`stop`) and running the command again carries on where it stopped: a
target under way when it stopped has no record yet and is coded again. A request the judge's
server refuses (a 400: content it will not take, a request too long for its context) is that
target's unlabelled record; any other failure (a bad key, no such model, a server that stays
unreachable through every retry) stops the judging, as it would fail every target the same way.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio

from intermodel.coding.judge import (
    Answer,
    correction,
    judge_request,
    material,
    parse_reply,
    targets,
)
from intermodel.coding.labels import Judge, LabelRecord, LabelWriter, Target
from intermodel.coding.scheme import Scheme
from intermodel.config.credentials import resolve_credentials
from intermodel.config.experiment import Limit
from intermodel.config.request import Request
from intermodel.engine.events import Event, Retrying, TurnStarted
from intermodel.engine.prepare import ProviderFactory
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.tokens import estimate_tokens
from intermodel.engine.turns import Fit, TurnFailed, TurnProducer
from intermodel.errors import BadRequest, ProviderError
from intermodel.experiment.judges import JudgeModel
from intermodel.experiment.limits import Limiters
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent
from intermodel.providers.registry import make_provider, reply_limits
from intermodel.records import EndReason
from intermodel.security.secrets import Redactor, redact
from intermodel.transcript.reader import Transcript

__all__ = ["Job", "JobStatus", "Judging", "JudgingReport"]

JobStatus = Literal["pending", "running", "retrying", "coded", "unlabelled", "failed",
                    "interrupted"]
Listener = Callable[["Job"], None]
_ESTIMATE_SLACK = 1.3  # as the batch's cost bound: token estimates are rough


@dataclass
class Job:
    """One target to code, and how far it got."""

    transcript: Transcript
    target: Target
    status: JobStatus = "pending"
    labels: tuple[str, ...] = ()
    attempts: int = 0  # requests asked (invalid replies are asked again)
    detail: str = ""  # why unlabelled, failed or retrying

    @property
    def name(self) -> str:
        return f"{self.transcript.path.name}: {self.target}"


@dataclass
class JudgingReport:
    total: int  # targets the scheme codes in the runs read
    skipped: int  # already coded by this judge under this scheme's hash
    jobs: list[Job]
    runs_without_targets: int
    seconds: float = 0.0

    def count(self, status: JobStatus) -> int:
        return sum(1 for job in self.jobs if job.status == status)


class Judging:
    def __init__(self, runs: Sequence[tuple[Transcript, Sequence[LabelRecord]]], scheme: Scheme,
                 judge: JudgeModel, *, blind: bool = False, thinking: bool = False,
                 attempts: int = 3, concurrency: int = 1,
                 requests_per_minute: float | None = None,
                 environ: Mapping[str, str] | None = None,
                 provider_factory: ProviderFactory = make_provider,
                 listener: Listener | None = None) -> None:
        """`runs`: each transcript with its label records in force."""
        self.scheme = scheme
        self.judge = judge
        self.blind = blind
        self.thinking = thinking
        self.attempts = attempts
        self.concurrency = concurrency
        self.coder = Judge(judge.spec, judge.agent.model)
        self._factory = provider_factory
        self._environ = environ
        self._listener = listener
        self._limiters = Limiters({judge.limit_key: Limit(concurrency, requests_per_minute)})
        self._stopping = False
        self._live: set[TurnProducer] = set()
        self._writers: dict[str, LabelWriter] = {}
        self._left: dict[str, int] = {}  # records each transcript's sidecar is still to get
        self.jobs: list[Job] = []  # the targets to code
        self._every: list[tuple[Transcript, Target]] = []
        self.skipped = 0
        self.total = 0
        self.runs_without_targets = 0
        self._began = time.monotonic()
        for transcript, records in runs:
            found = targets(transcript, scheme)
            if not found:
                self.runs_without_targets += 1
            done = {r.target for r in records if r.scheme == scheme.name
                    and r.scheme_hash == scheme.digest and r.coder.key == self.coder.key}
            self.total += len(found)
            self._every += [(transcript, target) for target in found]
            for target in found:
                if target in done:
                    self.skipped += 1
                else:
                    self.jobs.append(Job(transcript, target))
                    key = str(transcript.path)
                    self._left[key] = self._left.get(key, 0) + 1

    # -- before it starts -------------------------------------------------------------------------

    def every_target(self) -> Iterator[Job]:
        """Every target the scheme codes in the runs, coded before or not, in study order."""
        for transcript, target in self._every:
            yield Job(transcript, target)

    def request(self, job: Job) -> Request:
        """The first request for `job`'s target, exactly as it will be sent."""
        shown = material(job.transcript, job.target, blind=self.blind, thinking=self.thinking)
        return judge_request(self.judge.agent, self.scheme, shown)

    def cost(self) -> str:
        """An upper bound of what the judging can cost, as a line."""
        price = self.judge.agent.price
        if not self.jobs:
            return "nothing to code"
        if price is None:
            return ("unknown (the judge has no price: give its agent a [agents.NAME.price] "
                    "table in a file and use --judge FILE:NAME)")
        reply = self.judge.agent.sampling.max_tokens
        dollars = 0.0
        for job in self.jobs:
            prompt = int(estimate_tokens(self.request(job)) * _ESTIMATE_SLACK)
            for attempt in range(self.attempts):
                # Each retry carries the unusable reply and a correction (about 100 tokens).
                dollars += price.cost(prompt + attempt * (reply + 100), reply)
        return (f"at most ${dollars:,.2f} for {len(self.jobs)} targets (every reply of "
                f"max_tokens, every target asked {self.attempts} times)")

    # -- running -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every request under way (no record for its target) and start no more."""
        self._stopping = True
        for producer in list(self._live):
            producer.cancel()

    def report(self) -> JudgingReport:
        return JudgingReport(self.total, self.skipped, self.jobs, self.runs_without_targets,
                             time.monotonic() - self._began)

    async def run(self) -> JudgingReport:
        """Code every job; returns when all are done, or the judging was stopped."""
        self._began = time.monotonic()
        if not self.jobs:
            return self.report()
        spec = self.judge.run_spec
        credentials = resolve_credentials(spec, os.environ if self._environ is None
                                          else self._environ)
        self._redactor = Redactor.for_credentials(credentials)
        agent = self.judge.agent
        provider = self._limiters.wrap(agent, self._factory(agent, "", credentials[agent.name]))
        todo = iter(self.jobs)
        try:
            async with provider, anyio.create_task_group() as tg:  # leaving closes it, bounded
                for _ in range(min(self.concurrency, len(self.jobs))):
                    tg.start_soon(self._worker, todo, provider)
        finally:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()
        return self.report()

    async def _worker(self, todo: Iterator[Job], provider: Provider) -> None:
        for job in todo:
            if self._stopping:
                return
            await self._code(job, provider)

    async def _code(self, job: Job, provider: Provider) -> None:
        self._set(job, "running")
        request = self.request(job)
        problem = ""
        limits = reply_limits(self.judge.agent)
        for attempt in range(1, self.attempts + 1):
            job.attempts = attempt
            watched = _Watched(provider)
            producer = TurnProducer(
                emit=lambda event: self._event(job, event), publish=_ignore,
                retry=RetryPolicy(self.judge.run_spec.retry), redact=self._redactor,
                deadline=lambda: math.inf,
                stop_reason=lambda: EndReason.INTERRUPTED if self._stopping else None)
            self._live.add(producer)
            try:
                turn, request = await producer.produce(attempt, "judge", watched,
                                                       _fit(request), self.attempts, limits)
            except TurnFailed as failed:
                if self._stopping or failed.reason != "error":
                    self._set(job, "interrupted")
                elif isinstance(watched.error, BadRequest):
                    await self._record(job, request, (), "", "", attempt,
                                       unlabelled=_line("the judge's server refused the "
                                                        f"request: {watched.error.describe()}"))
                else:
                    job.detail = _line(failed.detail or "the request failed")
                    self._set(job, "failed")
                    self.stop()  # it would fail every target alike
                return
            finally:
                self._live.discard(producer)
            answer = parse_reply(turn.text, self.scheme)
            if isinstance(answer, Answer):
                await self._record(job, request, answer.labels, answer.rationale, turn.model,
                                   attempt)
                return
            problem = answer.problem
            if attempt < self.attempts:
                request = correction(request, turn.text, problem, self.scheme)
        tried = f"after {self.attempts} attempts" if self.attempts > 1 else "in its one attempt"
        await self._record(job, request, (), "", turn.model, self.attempts,
                           unlabelled=_line(f"no usable reply {tried}; the last: {problem}"))

    async def _record(self, job: Job, request: Request, labels: tuple[str, ...], rationale: str,
                      served: str, attempts: int, *, unlabelled: str | None = None) -> None:
        coder = Judge(self.judge.spec, self.judge.agent.model, served)
        record = LabelRecord(
            job.transcript.run_id, job.target, self.scheme.name, self.scheme.digest, labels,
            coder, rationale=rationale, unlabelled=unlabelled, request_hash=request.digest(),
            attempts=attempts, blind=self.blind)
        await self._write(job, record)
        job.labels = labels
        job.detail = unlabelled or ""
        self._set(job, "coded" if labels else "unlabelled")

    async def _write(self, job: Job, record: LabelRecord) -> None:
        """Append to the sidecar of the job's transcript: its writer is opened for the first
        record and closed after the last (workers take targets in order: few are open)."""
        key = str(job.transcript.path)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = LabelWriter.open(job.transcript.path,
                                                           redactor=self._redactor)
        with anyio.CancelScope(shield=True):  # a record decided on is written whole
            await writer.record(record)
        self._left[key] -= 1
        if self._left[key] == 0:
            writer.close()
            del self._writers[key]

    async def _event(self, job: Job, event: Event) -> None:
        if isinstance(event, Retrying):
            job.detail = redact(f"{event.retry.error}: {event.retry.message}")
            self._set(job, "retrying")
        elif isinstance(event, TurnStarted) and job.status == "retrying":
            self._set(job, "running")

    def _set(self, job: Job, status: JobStatus) -> None:
        job.status = status
        if self._listener is not None:
            self._listener(job)


class _Watched(ProviderWrapper):
    """A provider that remembers the error its last request failed with."""

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner)
        self.error: ProviderError | None = None

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in self.inner.stream(request):
                yield event
        except ProviderError as error:
            self.error = error
            raise


def _fit(request: Request) -> Fit:
    async def fit(refused: bool) -> Request:
        if refused:  # the server said it is too long: a judge's request cannot be trimmed
            raise TurnFailed(EndReason.ERROR, "the request is too long for the judge's context")
        return request

    return fit


def _ignore(_: object) -> None:
    return None


def _line(text: str) -> str:
    return redact(" ".join(text.split()))[:2000]

