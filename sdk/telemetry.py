"""The SDK side of telemetry: a heartbeat and evaluation counts, published every ``interval`` seconds over
core NATS (fire and forget, never JetStream) with the client's own connection. Messages: ``flagstream.events.
telemetry``.

Counting is done by the client's cache (``RulesetCache.evaluation_totals``: cumulative counts by (flag,
variation), one attribute increment per evaluation); the reporter publishes the difference between the totals
now and the totals it last sent. Counts are exact for one thread and very close (not guaranteed) for many
threads racing on one flag. Counts that could not be sent (NATS down) go out with the next report.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata

from nats.aio.client import Client as NATS

from .events.telemetry import (
    AppliedChange,
    EvaluationCounts,
    FlagCount,
    Heartbeat,
    counts_subject,
    encode_telemetry,
    heartbeat_subject,
)
from .ruleset import Ruleset

log = logging.getLogger("flagstream.client")

#: Applied changes remembered between two heartbeats at most (the oldest are dropped).
MAX_APPLIED = 1000


def sdk_version() -> str:
    try:
        return metadata.version("flagstream")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class TelemetryReporter:
    """Counts evaluations (``count``), remembers applied changes (``applied``), reports them periodically."""

    def __init__(
        self,
        *,
        project: str,
        environment: str,
        connection: Callable[[], NATS | None],
        status: Callable[[], str],
        seq: Callable[[], int],
        totals: Callable[[], dict[tuple[str, str | None], int]],
        interval: float = 10.0,
    ) -> None:
        self.project = project
        self.environment = environment
        self.interval = interval
        self.instance_id = uuid.uuid4().hex
        self.started_at = datetime.now(UTC)
        #: Reports published, and reports that could not be (kept for the next one).
        self.reports = 0
        self.failures = 0
        self._connection = connection
        self._status = status
        self._seq = seq
        #: Cumulative evaluation counts (the cache's), and the part of them already sent.
        self._totals = totals
        self._sent: dict[tuple[str, str | None], int] = {}
        self._since = self.started_at
        self._applied: collections.deque[AppliedChange] = collections.deque(maxlen=MAX_APPLIED)
        self._last_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_subject = heartbeat_subject(project, environment)
        self._counts_subject = counts_subject(project, environment)

    # -- on the client's loop ------------------------------------------------------------------------------

    def baseline(self, seq: int) -> None:
        """The client starts from ``seq`` (a last-known-state file): not an applied change to report."""
        self._last_seq = seq

    def applied(self, changed: set[str], ruleset: Ruleset) -> None:
        if ruleset.seq != self._last_seq:
            self._last_seq = ruleset.seq
            self._applied.append(AppliedChange(seq=ruleset.seq, at=datetime.now(UTC)))

    def start(self) -> None:
        if self._task is None:
            self.started_at = self._since = datetime.now(UTC)
            self._task = asyncio.create_task(self._run(), name="flagstream-telemetry")

    async def close(self) -> None:
        """Stop, sending a last report if connected."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
            await self.report()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.report()

    async def report(self) -> bool:
        """Publish a heartbeat and the counts since the last report; False if not connected (kept for later)."""
        totals = self._totals()
        sent = self._sent
        unsent = {k: n - sent.get(k, 0) for k, n in totals.items() if n > sent.get(k, 0)}
        nc = self._connection()
        if nc is None or not nc.is_connected:
            self.failures += 1
            return False
        now = datetime.now(UTC)
        applied = tuple(self._applied)
        heartbeat = Heartbeat(
            instance_id=self.instance_id,
            sdk_version=sdk_version(),
            project=self.project,
            environment=self.environment,
            seq=self._seq(),
            applied=applied,
            started_at=self.started_at,
            sent_at=now,
            status=self._status(),
        )
        message = EvaluationCounts(
            instance_id=self.instance_id,
            project=self.project,
            environment=self.environment,
            since=self._since,
            until=now,
            counts=tuple(FlagCount(flag=f, variation=v, count=n) for (f, v), n in sorted(unsent.items(), key=_order)),
        )
        try:
            await nc.publish(self._heartbeat_subject, encode_telemetry(heartbeat))
            if unsent:
                await nc.publish(self._counts_subject, encode_telemetry(message))
        except Exception as exc:
            self.failures += 1
            log.debug("flagstream: telemetry not sent: %r", exc)
            return False
        for _ in applied:
            self._applied.popleft()
        self._sent = totals
        self._since = now
        self.reports += 1
        return True


def _order(item: tuple[tuple[str, str | None], int]) -> tuple[str, str]:
    (flag, variation), _ = item
    return flag, variation or ""
