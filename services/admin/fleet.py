"""Admin feature module: fleet telemetry (see ``docs/fleet.md``).

The lifespan subscribes (core NATS) to what SDK clients publish (``events/telemetry.py``) and feeds the pure
``services/fleet.py`` aggregator. Last-evaluated times per flag survive restarts in the JetStream KV bucket
``flagstream_fleet`` (one key ``<project>.<environment>.<flag>`` per flag, written at most once a minute per
flag, and watched, so several admin processes share them). Instances and counts are this process's memory.

Routes (``.../environments/{environment}/fleet``): the connected instances and the convergence of the latest
changes; ``/evaluations``: counts per flag and variation; ``/stale?days=N``: active flags not evaluated for N days.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec import Struct
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...events import environment_filter, tag_of
from ...events.subjects import EntityKind, parse_subject
from ...events.telemetry import decode_counts, decode_heartbeat, telemetry_filter
from ..fleet import Change, ChangeConvergence, FlagEvaluations, FleetAggregator, InstanceView
from ..stream import ensure_bucket
from .decide import ENVIRONMENT
from .errors import MalformedRequest, Unavailable
from .routes import API, Endpoint, Query, _where, json_response, service_of

log = logging.getLogger("flagstream.admin.fleet")

BUCKET = "flagstream_fleet"
#: Seconds between two writes of the dirty last-evaluated times, and the least time between two of one flag.
FLUSH_INTERVAL = 1.0
PERSIST_EVERY = timedelta(seconds=60)
_KV_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


# -- response bodies ---------------------------------------------------------------------------------------


class FleetStatus(Struct, kw_only=True):
    project: str
    environment: str
    #: Connected SDK instances of the environment (a heartbeat within 3 of their reporting intervals).
    instances: list[InstanceView]
    #: The latest changes of the environment (newest first) and how far they reached.
    changes: list[ChangeConvergence]


class EvaluationReport(Struct, kw_only=True):
    project: str
    environment: str
    #: ``recent`` counts cover the last ``window_seconds``; totals everything since ``counting_since``.
    window_seconds: float
    counting_since: datetime
    flags: list[FlagEvaluations]


class StaleFlag(Struct, kw_only=True):
    key: str
    #: ``None``: never evaluated since ``observed_since``.
    last_evaluated: datetime | None
    last_changed: datetime


class StaleReport(Struct, kw_only=True):
    project: str
    environment: str
    days: float
    #: Evaluations are known from this time on (older ones were never reported).
    observed_since: datetime
    #: False when the last-evaluated times could not be stored (they are then lost on restart).
    persistent: bool
    flags: list[StaleFlag]


# -- the feed ----------------------------------------------------------------------------------------------


class Fleet:
    """The aggregator with its NATS feed and its KV persistence."""

    def __init__(self, aggregator: FleetAggregator) -> None:
        self.aggregator = aggregator
        self.kv: KeyValue | None = None
        self.observed_since = aggregator.started_at
        self._persisted: dict[tuple[str, str, str], datetime] = {}
        self._warned = False
        self._put_failed = False
        self._retry_at = aggregator.started_at

    async def on_message(self, msg: Msg) -> None:
        try:
            if msg.subject.endswith(".heartbeat"):
                self.aggregator.heartbeat(decode_heartbeat(msg.data))
            elif msg.subject.endswith(".counts"):
                self.aggregator.counts(decode_counts(msg.data))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.aggregator.bad_messages += 1
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "fleet: skipping an undecodable telemetry message on %s: %s", msg.subject, exc)

    async def open_kv(self, js: Any) -> None:
        try:
            self.kv = await ensure_bucket(js, BUCKET, description="flagstream fleet")
            status = await self.kv.status()
            created = status.stream_info.created
            if created is not None:
                self.observed_since = created if created.tzinfo else created.replace(tzinfo=UTC)
        except Exception as exc:
            self.kv = None
            log.warning("fleet: last-evaluated times will not survive a restart (no KV bucket: %r)", exc)

    async def follow(self, js: Any) -> Any:
        """Feed the aggregator with the stored last-evaluated times, then with every later write (other admin
        processes' too): an ordered consumer on the bucket, last value per key. Returns the subscription."""
        prefix = f"$KV.{BUCKET}."

        async def on_entry(msg: Msg) -> None:
            if msg.headers and msg.headers.get("KV-Operation"):
                return  # a delete or purge marker
            with contextlib.suppress(ValueError, msgspec.DecodeError, msgspec.ValidationError):
                project, environment, flag = msg.subject.removeprefix(prefix).split(".")
                at = msgspec.json.decode(msg.data, type=datetime)
                self.aggregator.remember_evaluated(project, environment, flag, at)
                self._persisted[(project, environment, flag)] = at

        return await js.subscribe(
            f"{prefix}>",
            stream=f"KV_{BUCKET}",
            cb=on_entry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def flush(self) -> None:
        """Store the last-evaluated times that changed (each flag at most every ``PERSIST_EVERY``)."""
        if self.kv is None or self.aggregator.clock() < self._retry_at:
            return
        dirty = self.aggregator.take_dirty()
        for where, at in list(dirty.items()):
            del dirty[where]
            before = self._persisted.get(where)
            if before is not None and at - before < PERSIST_EVERY:
                continue
            if not all(_KV_TOKEN.match(part) for part in where):
                continue  # a flag name no flag can have (an app evaluated a key that cannot exist)
            try:
                await self.kv.put(".".join(where), msgspec.json.encode(at))
            except Exception as exc:
                # NATS down, or no permission: keep them for the next round (once a minute).
                level = logging.DEBUG if self._put_failed else logging.WARNING
                self._put_failed = True
                log.log(level, "fleet: could not store last-evaluated times in %s: %r", BUCKET, exc)
                self.aggregator.requeue({**dirty, where: at})
                self._retry_at = self.aggregator.clock() + PERSIST_EVERY
                return
            self._persisted[where] = at
            self._put_failed = False

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("fleet: flushing last-evaluated times failed")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    nc = app.state.nc
    fleet = Fleet(FleetAggregator())
    app.state.fleet = fleet
    sub = await nc.subscribe(telemetry_filter(), cb=fleet.on_message)
    js = nc.jetstream()
    await fleet.open_kv(js)
    stored = None
    if fleet.kv is not None:
        try:
            stored = await fleet.follow(js)
        except Exception as exc:
            log.warning("fleet: cannot read the stored last-evaluated times: %r", exc)
    flusher = asyncio.create_task(fleet.flush_forever(), name="fleet-flush")
    try:
        yield
    finally:
        flusher.cancel()
        with contextlib.suppress(BaseException):
            await flusher
        for subscription in (sub, stored):
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await fleet.flush()


# -- handlers ----------------------------------------------------------------------------------------------


def _fleet(request: Request) -> Fleet:
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None:
        raise Unavailable("fleet telemetry is not running")
    return fleet  # type: ignore[no-any-return]


def _number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MalformedRequest(f"{name} must be a number, got {raw!r}") from None
    if not (low <= value <= high):
        raise MalformedRequest(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


async def _environment(request: Request) -> tuple[str, str]:
    project, environment = _where(request)
    await service_of(request).get(ENVIRONMENT, project, environment, environment)  # 404 if unknown
    return project, environment


async def _latest(request: Request, project: str, environment: str) -> dict[str, Any]:
    return await service_of(request).store.latest(environment_filter(project, environment))


async def fleet_status(request: Request) -> Response:
    fleet = _fleet(request)
    limit = int(_number(request, "changes", 10, 0, 100))
    project, environment = await _environment(request)
    changes = []
    for subject, stored in (await _latest(request, project, environment)).items():
        address = parse_subject(subject)
        if address.kind is EntityKind.ENVIRONMENT:
            continue
        event = stored.event
        changes.append(
            Change(seq=stored.seq, entity=address.kind.value, key=address.key, type=tag_of(event),
                   at=event.at, actor=event.actor)
        )  # fmt: skip
    changes.sort(key=lambda c: c.seq, reverse=True)
    aggregator = fleet.aggregator
    return json_response(
        FleetStatus(
            project=project,
            environment=environment,
            instances=aggregator.instances(project, environment),
            changes=aggregator.convergence(project, environment, changes[:limit]),
        )
    )


async def fleet_evaluations(request: Request) -> Response:
    fleet = _fleet(request)
    window = _number(request, "window", 300, 1, fleet.aggregator.max_window)
    project, environment = await _environment(request)
    flags = fleet.aggregator.evaluations(project, environment, window)
    return json_response(
        EvaluationReport(
            project=project,
            environment=environment,
            window_seconds=window,
            counting_since=fleet.aggregator.started_at,
            flags=flags,
        )
    )


async def fleet_stale(request: Request) -> Response:
    fleet = _fleet(request)
    days = _number(request, "days", 30, 0, 36500)
    project, environment = await _environment(request)
    last = fleet.aggregator.last_evaluated(project, environment)
    cutoff = fleet.aggregator.clock() - timedelta(days=days)
    stale = []
    for subject, stored in (await _latest(request, project, environment)).items():
        address = parse_subject(subject)
        if address.kind is not EntityKind.FLAG or stored.event.flag.archived:
            continue
        evaluated = last.get(address.key)
        if evaluated is None or evaluated < cutoff:
            stale.append(StaleFlag(key=address.key, last_evaluated=evaluated, last_changed=stored.event.at))
    stale.sort(key=lambda f: f.key)
    return json_response(
        StaleReport(
            project=project,
            environment=environment,
            days=days,
            observed_since=fleet.observed_since,
            persistent=fleet.kv is not None,
            flags=stale,
        )
    )


CHANGES = Query("changes", "how many of the latest changes to show (0-100, default 10)")
WINDOW = Query("window", "seconds of the recent window (1-3600, default 300)")
DAYS = Query("days", "flags not evaluated for this many days (default 30; fractions allowed)")


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    fleet = f"{base}/environments/{{environment}}/fleet"
    return [
        Endpoint("GET", fleet, fleet_status, f"getFleet{suffix}",
                 "Connected SDK instances and how far the latest changes reached them", "fleet", None, FleetStatus,
                 query=(CHANGES,)),
        Endpoint("GET", f"{fleet}/evaluations", fleet_evaluations, f"getFleetEvaluations{suffix}",
                 "Evaluation counts per flag and variation (total and recent)", "fleet", None, EvaluationReport,
                 query=(WINDOW,)),
        Endpoint("GET", f"{fleet}/stale", fleet_stale, f"getStaleFlags{suffix}",
                 "Active flags not evaluated for N days", "fleet", None, StaleReport, query=(DAYS,)),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
