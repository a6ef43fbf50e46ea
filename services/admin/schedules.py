"""Admin feature module: scheduled changes (see registry.py for the contract).

A change stored now to apply to one flag or segment at a future time: created, listed, read and cancelled here;
applied exactly once by the schedule runner (``services/history/schedules.py``), which this module runs for the app's
lifetime. Each schedule is a subject of its own on the event stream, so every step is an event with a version
and an optimistic-concurrency check like any write.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import UNSET, Struct
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...events.catalog import Schedule, ScheduleCancelled, ScheduleCreated, ScheduledChange, ScheduleEvent
from ..changes import (
    Conflict,
    FlagPatch,
    InvalidInput,
    MalformedRequest,
    NotFound,
    SegmentPatch,
    Stored,
    WrongLastSequence,
    check_key,
    check_lengths,
    convert,
    parse_json,
)
from ..history import POLL, describe, running, schedule_subject, schedules_filter
from .history import KINDS, parse_time, where
from .routes import API, Endpoint, Query, json_response, read_body, resolve_actor, resolve_author, service_of


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The schedule runner applies due changes while the app runs (``app.state.schedule_runner``)."""
    async with running(app.state.service, poll=getattr(app.state, "schedule_poll", POLL)) as runner:
        app.state.schedule_runner = runner
        yield


class ScheduleBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to make at ``due`` (RFC 3339, in the future) to one flag or one segment."""

    due: str
    flag: str | None = None
    segment: str | None = None
    #: patch (the top-level fields in ``changes``), on, off (flags), archive, restore.
    action: str
    changes: dict[str, Any] = {}
    comment: str = ""


class ScheduleRecord(Struct, kw_only=True):
    id: str
    version: int
    status: str
    due: datetime
    change: ScheduledChange
    description: str
    claimed_by: str
    result_seq: int
    error: str
    actor: str
    at: datetime
    comment: str


class ScheduleList(Struct, kw_only=True):
    items: list[ScheduleRecord]


ACTIONS = ("patch", "on", "off", "archive", "restore")


def _schedule_record(stored: Stored) -> ScheduleRecord:
    event = stored.event
    s: Schedule = event.schedule
    return ScheduleRecord(
        id=s.id, version=stored.seq, status=s.status, due=s.due, change=s.change, description=describe(s.change),
        claimed_by=s.claimed_by, result_seq=s.result_seq, error=s.error, actor=event.actor, at=event.at,
        comment=event.comment,
    )  # fmt: skip


def _change_of(body: ScheduleBody) -> ScheduledChange:
    if (body.flag is None) == (body.segment is None):
        raise MalformedRequest('give exactly one of "flag" or "segment" (the key of what to change)')
    kind = "flag" if body.flag is not None else "segment"
    key = check_key(body.flag or body.segment or "", kind)
    if body.action not in ACTIONS or (kind == "segment" and body.action in ("on", "off")):
        allowed = ACTIONS if kind == "flag" else ("patch", "archive", "restore")
        raise InvalidInput(f"action must be one of {', '.join(allowed)} for a {kind}, got {body.action!r}")
    if body.action == "patch":
        if not body.changes:
            raise InvalidInput('a patch needs "changes": the top-level fields to set')
        for name in ("key", "archived", "comment"):
            if name in body.changes:
                raise InvalidInput(f"changes cannot set {name!r}")
        convert(body.changes, FlagPatch if kind == "flag" else SegmentPatch)
    elif body.changes:
        raise InvalidInput(f'"changes" only goes with action patch, not {body.action!r}')
    return ScheduledChange(kind=kind, key=key, action=body.action, changes=body.changes)  # type: ignore[arg-type]


async def create_schedule(request: Request) -> Response:
    project, environment = where(request)
    body = convert(check_lengths(parse_json(await read_body(request))), ScheduleBody)
    change = _change_of(body)
    due = parse_time(body.due, "due")
    if due <= datetime.now(UTC):
        raise InvalidInput(f"due must be in the future, got {body.due!r}")
    service = service_of(request)
    await service.get(KINDS[change.kind], project, environment, change.key)  # 404 if it does not exist
    schedule = Schedule(id=f"s{uuid.uuid4().hex[:16]}", due=due, change=change)
    event = ScheduleCreated(
        project=project, environment=environment, actor=resolve_actor(request), at=datetime.now(UTC),
        author=resolve_author(request) or UNSET,
        comment=body.comment, version=1, schedule=schedule,
    )  # fmt: skip
    appended = await service.store.append(
        schedule_subject(project, environment, schedule.id), event, expected_seq=0, msg_id=None
    )
    runner = getattr(request.app.state, "schedule_runner", None)
    if runner is not None:
        runner.wake.set()
    record = _schedule_record(Stored(appended.seq, event))
    return json_response(record, 201, {"Location": f"{request.url.path.rstrip('/')}/{schedule.id}"})


async def list_schedules(request: Request) -> Response:
    project, environment = where(request)
    status = request.query_params.get("status")
    statuses = ("pending", "claimed", "applied", "failed", "cancelled")
    if status is not None and status not in statuses:
        raise MalformedRequest(f"status must be one of {', '.join(statuses)}, got {status!r}")
    latest = await service_of(request).store.latest(schedules_filter(project, environment))
    items = [_schedule_record(s) for s in latest.values() if isinstance(s.event, ScheduleEvent)]
    items = [i for i in items if status is None or i.status == status]
    return json_response(ScheduleList(items=sorted(items, key=lambda i: (i.due, i.id))))


async def _schedule(request: Request) -> tuple[str, str, Stored]:
    project, environment = where(request)
    sid = check_key(request.path_params["id"], "schedule id")
    stored = await service_of(request).store.last(schedule_subject(project, environment, sid))
    if stored is None or not isinstance(stored.event, ScheduleEvent):
        raise NotFound(f"schedule {sid!r} not found in environment {environment!r}")
    return project, environment, stored


async def get_schedule(request: Request) -> Response:
    return json_response(_schedule_record((await _schedule(request))[2]))


async def cancel_schedule(request: Request) -> Response:
    project, environment, stored = await _schedule(request)
    schedule: Schedule = stored.event.schedule
    if schedule.status != "pending":
        raise Conflict(f"schedule {schedule.id!r} is {schedule.status}: only a pending schedule can be cancelled")
    event = ScheduleCancelled(
        project=project, environment=environment, actor=resolve_actor(request), at=datetime.now(UTC),
        author=resolve_author(request) or UNSET,
        comment=stored.event.comment, version=stored.event.version + 1,
        schedule=msgspec.structs.replace(schedule, status="cancelled"),
    )  # fmt: skip
    try:
        appended = await service_of(request).store.append(
            schedule_subject(project, environment, schedule.id), event, expected_seq=stored.seq, msg_id=None
        )
    except WrongLastSequence:
        raise Conflict(f"schedule {schedule.id!r} was claimed or changed meanwhile: read it again") from None
    return json_response(_schedule_record(Stored(appended.seq, event)))


# -- the table ---------------------------------------------------------------------------------------------


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    sched = f"{base}/environments/{{environment}}/schedules"
    return [
        Endpoint("POST", sched, create_schedule, f"createSchedule{suffix}",
                 "Schedule a change of a flag or segment at a future time", "schedules", ScheduleBody, ScheduleRecord,
                 201, write=True),
        Endpoint("GET", sched, list_schedules, f"listSchedules{suffix}", "Scheduled changes of an environment",
                 "schedules", None, ScheduleList,
                 query=(Query("status", "only these", ("pending", "claimed", "applied", "failed", "cancelled")),)),
        Endpoint("GET", f"{sched}/{{id}}", get_schedule, f"getSchedule{suffix}", "One scheduled change",
                 "schedules", None, ScheduleRecord),
        Endpoint("POST", f"{sched}/{{id}}/cancel", cancel_schedule, f"cancelSchedule{suffix}",
                 "Cancel a pending scheduled change", "schedules", None, ScheduleRecord, write=True),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
