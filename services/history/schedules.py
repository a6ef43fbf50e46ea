"""Scheduled changes: the pure rules (what a due change does to a state) and the runner that applies them.

A schedule is an entity on the event stream (``flagstream.<p>.<env>.schedule.<id>``) whose events carry its
whole state: ``schedule.created`` (pending, with the due time and the change), ``schedule.cancelled``,
``schedule.claimed``, ``schedule.applied`` (with the sequence of the change) or ``schedule.failed``.

Applied exactly once with any number of admin processes, each running a ``ScheduleRunner``:

1. **Claim.** When a pending schedule is due, a runner appends ``schedule.claimed`` with
   ``Nats-Expected-Last-Subject-Sequence`` = the schedule's current sequence. JetStream accepts exactly one
   such append: the other runners get "wrong last sequence" and leave it alone. A cancel races the same way.
2. **Apply.** The winner writes the change through ``AdminService`` (validation, optimistic concurrency) with
   the idempotency key ``schedule:<id>``: the event gets ``Nats-Msg-Id`` ``<subject>:schedule:<id>``, so a
   second attempt within the duplicate window finds the first instead of writing again.
3. **Record.** It appends ``schedule.applied`` (or ``schedule.failed``) expecting the claim's sequence.

A crash between 1 and 3 leaves the schedule ``claimed``. Every runner checks for claims older than ``LEASE``
and takes them over with a new claim (again one winner), then does 2 and 3. If the dead process had written
the change, step 2 finds it by its message id (within the duplicate window) -- and past that window the write
is still harmless: scheduled changes set values (fields, on/off, archived), so applying one to a state that
already has them decides "nothing to change" and appends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ...events import subject
from ...events.catalog import (
    Schedule,
    ScheduleApplied,
    ScheduleClaimed,
    ScheduledChange,
    ScheduleEvent,
    ScheduleFailed,
)
from ...events.subjects import PREFIX
from ..changes import FLAG, SEGMENT, AdminError, AdminService, WriteRequest, WrongLastSequence
from ..runtime import in_background, run_passes

log = logging.getLogger("flagstream.schedules")

#: Seconds after which a claim that was never completed is taken over by another runner.
LEASE = 10.0
#: Longest sleep between two looks at the schedules (others' new schedules are seen within this).
POLL = 1.0

# -- pure ---------------------------------------------------------------------------------------------------


def schedule_subject(project: str, environment: str, schedule_id: str) -> str:
    return subject(project, environment, "schedule", schedule_id)


def schedules_filter(project: str = "*", environment: str = "*") -> str:
    return f"{PREFIX}.{project}.{environment}.schedule.*"


def apply_change(state: Any, change: ScheduledChange) -> Any:
    """The state after a scheduled change (as the admin API would make it), without validation."""
    if change.action == "on":
        return msgspec.structs.replace(state, on=True)
    if change.action == "off":
        return msgspec.structs.replace(state, on=False)
    if change.action in ("archive", "restore"):
        return msgspec.structs.replace(state, archived=change.action == "archive")
    merged = {**msgspec.to_builtins(state), **change.changes}
    return msgspec.convert(merged, type(state))


def due(schedules: Iterable[tuple[int, Schedule]], now: datetime) -> list[tuple[int, Schedule]]:
    """Pending schedules due at ``now``, earliest first."""
    return sorted(((seq, s) for seq, s in schedules if s.status == "pending" and s.due <= now), key=_order)


def stale_claims(
    schedules: Iterable[tuple[int, Schedule, datetime]], now: datetime, lease: float = LEASE
) -> list[tuple[int, Schedule]]:
    """Claimed schedules whose claim (made at the given time) is older than ``lease`` seconds."""
    limit = now - timedelta(seconds=lease)
    return sorted(((seq, s) for seq, s, at in schedules if s.status == "claimed" and at <= limit), key=_order)


def pending_until(schedules: Iterable[Schedule], until: datetime) -> list[Schedule]:
    """Pending (or claimed, not yet recorded) schedules due at or before ``until``, in the order they apply."""
    found = [s for s in schedules if s.status in ("pending", "claimed") and s.due <= until]
    return sorted(found, key=lambda s: (s.due, s.id))


def project_states(
    states: Mapping[tuple[str, str], Any], schedules: Iterable[Schedule], until: datetime
) -> dict[tuple[str, str], Any]:
    """Entity states ``{(kind, key): state}`` as they will be at ``until`` once pending schedules apply."""
    out = dict(states)
    for s in pending_until(schedules, until):
        ident = (s.change.kind, s.change.key)
        if ident in out:
            with contextlib.suppress(msgspec.ValidationError, TypeError):
                out[ident] = apply_change(out[ident], s.change)
    return out


def _order(item: tuple[int, Schedule]) -> tuple[datetime, int]:
    return item[1].due, item[0]


def describe(change: ScheduledChange) -> str:
    if change.action == "patch":
        return f"set {', '.join(sorted(change.changes))} of {change.kind} {change.key}"
    return f"{change.action} {change.kind} {change.key}"


# -- the runner (I/O) --------------------------------------------------------------------------------------


class ScheduleRunner:
    """Applies due schedules of every project and environment through ``service`` (an ``AdminService``)."""

    def __init__(
        self, service: AdminService, *, name: str | None = None, poll: float = POLL, lease: float = LEASE
    ) -> None:
        self.service = service
        self.store = service.store
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.lease = lease
        self.wake = asyncio.Event()
        #: Schedules this runner applied (ids), for logs and tests.
        self.applied: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes("schedules", self.pass_once, stop=stop, wake=self.wake, poll=self.poll, log=log)

    async def pass_once(self) -> float:
        """Apply what is due and recover stale claims; return the seconds until the next look."""
        latest = await self.store.latest(schedules_filter())
        now = datetime.now(UTC)
        entries: list[tuple[int, Schedule, datetime]] = []
        for stored in latest.values():
            event = stored.event
            if isinstance(event, ScheduleEvent):
                entries.append((stored.seq, event.schedule, event.at))
        by_id = {s.id: e for e in entries for s in (e[1],)}
        for seq, schedule in due(((seq, s) for seq, s, _ in entries), now):
            await self._claim_and_apply(seq, schedule, by_id[schedule.id][2])
        for seq, schedule in stale_claims(entries, now, self.lease):
            log.warning("schedules: taking over %s claimed by %s", schedule.id, schedule.claimed_by)
            await self._claim_and_apply(seq, schedule, by_id[schedule.id][2])
        upcoming = [s.due for _, s, _ in entries if s.status == "pending" and s.due > now]
        if not upcoming:
            return self.poll
        return min(self.poll, (min(upcoming) - datetime.now(UTC)).total_seconds())

    async def _claim_and_apply(self, seq: int, schedule: Schedule, _: datetime) -> None:
        latest = await self.store.at(seq)
        event: ScheduleEvent = latest.event
        project, environment = event.project, event.environment
        subj = schedule_subject(project, environment, schedule.id)
        claim = self._event(ScheduleClaimed, event, msgspec.structs.replace(schedule, status="claimed",
                                                                            claimed_by=self.name))  # fmt: skip
        try:
            claimed = await self.store.append(subj, claim, expected_seq=seq, msg_id=None)
        except WrongLastSequence:
            return  # another runner claimed it (or it was cancelled) first
        result_seq, error = await self._apply(project, environment, schedule)
        done_state = msgspec.structs.replace(
            claim.schedule, status="failed" if error else "applied", result_seq=result_seq, error=error
        )
        done = self._event(ScheduleFailed if error else ScheduleApplied, event, done_state)
        try:
            await self.store.append(subj, done, expected_seq=claimed.seq, msg_id=None)
        except WrongLastSequence:
            log.warning("schedules: %s was taken over while being applied", schedule.id)
            return
        self.applied.append(schedule.id)
        log.info("schedules: %s %s", schedule.id, f"failed: {error}" if error else f"applied at {result_seq}")

    async def _apply(self, project: str, environment: str, schedule: Schedule) -> tuple[int, str]:
        change = schedule.change
        kind = FLAG if change.kind == "flag" else SEGMENT
        req = WriteRequest(
            actor=f"schedule {schedule.id}",
            comment=f"scheduled change {schedule.id}: {describe(change)}",
            idempotency_key=f"schedule:{schedule.id}",
        )
        service = self.service
        try:
            if change.action in ("on", "off"):
                outcome = await service.toggle(project, environment, change.key, change.action == "on", req)
            elif change.action in ("archive", "restore"):
                outcome = await service.archive(kind, project, environment, change.key, change.action == "archive", req)
            else:
                current = await service.get(kind, project, environment, change.key)
                state = apply_change(getattr(current.event, kind.attr), change)
                changes = {name: getattr(state, name) for name in change.changes}
                outcome = await service.patch(kind, project, environment, change.key, changes, req)
        except AdminError as exc:
            return 0, exc.message
        except (msgspec.ValidationError, TypeError) as exc:
            return 0, f"the change no longer applies: {exc}"
        return int(outcome.stored.seq), ""

    def _event(self, cls: type[ScheduleEvent], base: ScheduleEvent, schedule: Schedule) -> ScheduleEvent:
        return cls(
            project=base.project,
            environment=base.environment,
            actor=self.name,
            at=datetime.now(UTC),
            comment=base.comment,
            version=base.version + 1,
            schedule=schedule,
        )


@contextlib.asynccontextmanager
async def running(service: AdminService, **options: Any) -> AsyncIterator[ScheduleRunner]:
    """A runner applying schedules in the background for the duration of the block."""
    runner = ScheduleRunner(service, **options)
    async with in_background(runner, "schedules"):
        yield runner
