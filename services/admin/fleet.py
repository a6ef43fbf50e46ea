"""Admin feature module: fleet telemetry (see ``docs/fleet.md``).

The lifespan runs the fleet's feed (``services/fleet``): one replica at a time, the holder of a lease in the fleet's
KV bucket, subscribes (core NATS) to what SDK clients publish (``events/telemetry.py``) and aggregates it; the other
replicas ask it (``services/fleet/lead.py``). The last-evaluated times are kept in the bucket, read by every replica,
and the aggregator's evaluation totals too, so the next aggregator counts on from them.

Routes (``.../environments/{environment}/fleet``): the connected instances and the convergence of the latest
changes; ``/evaluations``: counts per flag and variation; ``/stale?days=N``: active flags not evaluated for N days;
``/attributes``: the attribute names (never values) the instances saw in their contexts, per context kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from msgspec import Struct
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...events import environment_filter, tag_of
from ...events.subjects import EntityKind, parse_subject
from ..changes import ENVIRONMENT, MalformedRequest, Unavailable
from ..fleet import (
    Change,
    ChangeConvergence,
    ContextKindAttributes,
    FlagEvaluations,
    Fleet,
    FleetAggregator,
    FleetCollector,
    InstanceView,
    NoAggregator,
)
from ..fleet import Query as FleetQuery
from ..runtime import cancel_and_wait
from .routes import API, Endpoint, Query, _where, json_response, service_of

log = logging.getLogger("flagstream.admin.fleet")


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


class AttributeReport(Struct, kw_only=True):
    project: str
    environment: str
    #: Names are known from this time on (this process's memory: SDKs report them again every minute or so).
    observed_since: datetime
    #: Per context kind, the attribute names the environment's SDK instances saw (sampled contexts).
    kinds: list[ContextKindAttributes]


# -- the feed's lifespan -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    nc = app.state.nc
    fleet = Fleet(FleetAggregator())
    app.state.fleet = fleet
    js = nc.jetstream()
    await fleet.open_kv(js)
    await fleet.open_stream(js)
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        collector = FleetCollector(fleet, nc)
        collector.count_slow_consumers()
        if getattr(app.state, "fleet_collector", None) is not None:  # a restarted lifespan: the new feed instead
            metrics.registry.unregister(app.state.fleet_collector)
        metrics.registry.register(collector)
        app.state.fleet_collector = collector
    stored = None
    if fleet.kv is not None:
        try:
            stored = await fleet.follow(js)
        except Exception as exc:
            log.warning("fleet: cannot read the stored last-evaluated times: %r", exc)
    try:
        await fleet.step(nc)  # the first replica up aggregates from the start
    except Exception as exc:
        log.warning("fleet: taking the aggregator's lease failed (trying again): %r", exc)
    tasks = [
        asyncio.create_task(fleet.flush_forever(), name="fleet-flush"),
        asyncio.create_task(fleet.lead_forever(nc), name="fleet-lead"),
        asyncio.create_task(fleet.checkpoint_forever(), name="fleet-checkpoint"),
    ]
    try:
        yield
    finally:
        await cancel_and_wait(*tasks)  # loops stopped by cancelling them: once may not be enough (Python 3.11)
        if stored is not None:
            with contextlib.suppress(Exception):
                await stored.unsubscribe()
        with contextlib.suppress(Exception):
            await fleet.flush()
        with contextlib.suppress(Exception):
            await fleet.stop_leading(release=True)  # another replica takes over at its next renewal


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
    query = FleetQuery(op="status", project=project, environment=environment, changes=changes[:limit])
    answer = await _ask(fleet, query)
    return json_response(
        FleetStatus(project=project, environment=environment, instances=answer.instances, changes=answer.changes)
    )


async def _ask(fleet: Fleet, query: FleetQuery) -> Any:
    try:
        return await fleet.ask(query)
    except NoAggregator as exc:
        raise Unavailable(f"{exc}; another replica takes over within seconds") from None


async def fleet_evaluations(request: Request) -> Response:
    fleet = _fleet(request)
    window = _number(request, "window", 300, 1, fleet.aggregator.max_window)
    project, environment = await _environment(request)
    answer = await _ask(fleet, FleetQuery(op="evaluations", project=project, environment=environment, window=window))
    return json_response(
        EvaluationReport(
            project=project,
            environment=environment,
            window_seconds=window,
            counting_since=answer.counting_since,
            flags=answer.flags,
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


async def fleet_attributes(request: Request) -> Response:
    fleet = _fleet(request)
    project, environment = await _environment(request)
    answer = await _ask(fleet, FleetQuery(op="attributes", project=project, environment=environment))
    return json_response(
        AttributeReport(
            project=project, environment=environment, observed_since=answer.counting_since, kinds=answer.kinds
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
        Endpoint("GET", f"{fleet}/attributes", fleet_attributes, f"getFleetAttributes{suffix}",
                 "Attribute names (never values) the SDK instances saw in contexts, per context kind", "fleet",
                 None, AttributeReport),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
