"""Admin feature module: release plans and experiment results (see ``docs/release.md``).

A plan rolls a variation of a flag out in steps in one environment; the plan runner (``services/release``), which this
module runs for the app's lifetime, writes each step exactly once and rolls back by itself when a guardrail is
breached. Here plans are created (every mistake a 4xx naming its field, a PromQL query the Prometheus server refuses
included), listed, read with what the guardian sees of the current step, paused, resumed, advanced and aborted.
``.../flags/{key}/results`` gives the experiment results of any flag with a percentage rollout, and ``.../metrics``
the metrics the environment's applications track.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec import UNSET, Struct
from nats.js.api import DeliverPolicy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...events import WEIGHT_TOTAL, decode_event, tag_of
from ...events.catalog import PlanAdvanceRequested, PlanCreated, PlanEvent, PlanPaused, PlanResumed
from ...events.release import ACTIVE, Evidence, Guardrail, Plan
from ..changes import (
    FLAG,
    Conflict,
    InvalidInput,
    MalformedRequest,
    NotFound,
    Stored,
    WrongLastSequence,
    check_key,
    check_lengths,
    convert,
    parse_json,
)
from ..release import (
    LEASE,
    POLL,
    ExperimentResults,
    PlanBody,
    PlanConflict,
    Prometheus,
    QueryRejected,
    Unreachable,
    Watch,
    check_metrics,
    experiment_results,
    held_for,
    next_due,
    plan_event,
    plan_subject,
    plans_filter,
    read_plan,
    read_watch,
    read_window,
    request_stop,
    running,
    shares,
    stop,
)
from .history import parse_time, where
from .routes import API, Endpoint, Query, json_response, read_body, resolve_actor, resolve_author, service_of

#: Seconds an abort's answer waits for the plan's holder to write the flag back.
ABORT_WAIT = 5.0


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The plan runner runs plans while the app runs (``app.state.plan_runner``)."""
    url = getattr(app.state, "prometheus_url", None)
    options: dict[str, Any] = {
        "poll": getattr(app.state, "plan_poll", POLL),
        "lease": getattr(app.state, "plan_lease", LEASE),
        "prometheus": Prometheus(url) if url else None,
    }
    if hasattr(app.state, "prometheus_every"):
        options["prometheus_every"] = app.state.prometheus_every
    async with running(app.state.service, app.state.nc, **options) as runner:
        app.state.plan_runner = runner
        yield


# -- bodies --------------------------------------------------------------------------------------------------------


class StepView(Struct, kw_only=True):
    percent: float
    #: Seconds the step is held; ``None``: until a person advances the plan.
    hold: float | None
    #: The step's share of the plan's error rate: each tracked guardrail's, and the sample ratio test's.
    guardrail_alpha: float = 0.0
    sample_ratio_alpha: float = 0.0
    #: Users at which the step's guardrail bounds are tightest.
    t_star: float = 0.0


class PlanRecord(Struct, kw_only=True):
    id: str
    version: int
    status: str
    flag: str
    rule: str
    variation: str
    control: str
    steps: list[StepView]
    #: The step written last (0-based; -1: none yet), its share, when it was written and how long it has been held.
    step: int
    percent: float
    step_at: datetime | None
    #: The stream sequence of the current step's write to the flag (0: none yet).
    step_seq: int
    held_for: float
    #: Seconds until the next step (0: now), ``None`` if a person must advance it or the plan is not running.
    next_step_in: float | None
    paused: bool
    guardrails: list[Guardrail]
    rollback: str
    error_rate: float
    #: How the error rate is shared among steps and checks: ``by_step`` or ``equal`` (plans made before it).
    split: str
    min_users: int
    holder: str
    result_seq: int
    evidence: Evidence | None
    error: str
    actor: str
    at: datetime
    comment: str
    #: What the guardian sees of the current step (its last look), if it has looked.
    watch: Watch | None = None


class PlanList(Struct, kw_only=True):
    items: list[PlanRecord]


class PlanActionBody(Struct, kw_only=True, forbid_unknown_fields=True):
    comment: str = ""


class TimelineEntry(Struct, kw_only=True):
    version: int
    type: str
    actor: str
    at: datetime
    comment: str
    status: str
    step: int
    evidence: Evidence | None = None


class Timeline(Struct, kw_only=True):
    plan: str
    entries: list[TimelineEntry]


class MetricList(Struct, kw_only=True):
    project: str
    environment: str
    metrics: list[str]


def _record(stored: Stored, watch: Watch | None = None) -> PlanRecord:
    event: PlanEvent = stored.event  # type: ignore[assignment]
    plan = event.plan
    now = datetime.now(UTC)
    weight = plan.steps[plan.step].weight if plan.step >= 0 else 0
    return PlanRecord(
        id=plan.id, version=stored.seq, status=plan.status, flag=plan.flag, rule=plan.rule,
        variation=plan.variation, control=plan.control,
        steps=[StepView(percent=s.weight * 100 / WEIGHT_TOTAL, hold=s.hold, guardrail_alpha=a.guardrail,
                        sample_ratio_alpha=a.sample_ratio, t_star=a.t_star)
               for s, a in zip(plan.steps, shares(plan), strict=True)],
        step=plan.step, percent=weight * 100 / WEIGHT_TOTAL, step_at=plan.step_at, step_seq=plan.step_seq,
        held_for=held_for(plan, now),
        next_step_in=next_due(plan, now), paused=plan.status == "paused", guardrails=list(plan.guardrails),
        rollback=plan.rollback, error_rate=plan.error_rate, split=plan.split, min_users=plan.min_users,
        holder=plan.holder, result_seq=plan.result_seq, evidence=plan.evidence, error=plan.error, actor=event.actor,
        at=event.at, comment=event.comment, watch=watch,
    )  # fmt: skip


# -- handlers ----------------------------------------------------------------------------------------------------


def _runner(request: Request) -> Any:
    return getattr(request.app.state, "plan_runner", None)


async def _plans(request: Request, project: str, environment: str) -> list[Stored]:
    latest = await service_of(request).store.latest(plans_filter(project, environment))
    return [s for s in latest.values() if isinstance(s.event, PlanEvent)]


async def create_plan(request: Request) -> Response:
    project, environment = where(request)
    data = check_lengths(parse_json(await read_body(request)))
    body = convert(data, PlanBody)
    service = service_of(request)
    flag_key = check_key(body.flag, "flag")
    try:
        current = await service.get(FLAG, project, environment, flag_key)
    except NotFound:
        raise InvalidInput(
            f"$.flag: no flag {flag_key!r} in environment {environment!r}",
            [_problem("$.flag", f"no flag {flag_key!r} here")],
        ) from None
    existing = await _plans(request, project, environment)
    try:
        plan_id = check_key(body.id, "id") if body.id is not None else None
        plan = read_plan(body, current.event.flag, [s.event.plan for s in existing], plan_id)  # type: ignore[attr-defined]
    except PlanConflict as exc:
        raise Conflict(f"$.flag: {exc}") from None
    runner = _runner(request)
    if runner is not None and any(g.metric for g in plan.guardrails):
        check_metrics(plan, await runner.names.known(project, environment))
    await _check_queries(request, plan)
    event = PlanCreated(
        project=project, environment=environment, actor=resolve_actor(request), at=datetime.now(UTC),
        author=resolve_author(request) or UNSET, comment=body.comment, version=1, plan=plan,
    )  # fmt: skip
    try:
        appended = await service.store.append(
            plan_subject(project, environment, plan.id), event, expected_seq=0, msg_id=None
        )
    except WrongLastSequence:
        raise Conflict(f"$.id: release plan {plan.id!r} already exists") from None
    # A second plan created at the same moment on the same flag: the later one (by stream order) is withdrawn.
    for other in await _plans(request, project, environment):
        p = other.event.plan  # type: ignore[attr-defined]
        if p.id != plan.id and p.flag == plan.flag and p.status in ACTIVE and other.seq < appended.seq:
            stored = Stored(appended.seq, event)
            await stop(service, stored, "aborting", resolve_actor(request), f"withdrawn: {p.id} came first")
            raise Conflict(f"$.flag: flag {plan.flag!r} already has an active release plan here ({p.id})")
    if runner is not None:
        runner.wake.set()
    location = f"{request.url.path.rstrip('/')}/{plan.id}"
    return json_response(_record(Stored(appended.seq, event)), 201, {"Location": location})


def _problem(path: str, message: str) -> Any:
    from ...validation import Problem

    return Problem(path, message)


async def _check_queries(request: Request, plan: Plan) -> None:
    """Each PromQL guardrail asked of the Prometheus server once, now: one it rejects is a 422 naming it."""
    queries = [(i, g) for i, g in enumerate(plan.guardrails) if g.promql]
    if not queries:
        return
    url = getattr(request.app.state, "prometheus_url", None)
    if not url:
        path = f"$.guardrails[{queries[0][0]}].promql"
        message = "this admin service has no Prometheus server to ask (start it with --prometheus-url)"
        raise InvalidInput(f"{path}: {message}", [_problem(path, message)])
    prometheus = Prometheus(url)
    for i, g in queries:
        path = f"$.guardrails[{i}].promql"
        try:
            await prometheus.query(g.promql, g.bad)
        except QueryRejected as exc:
            message = f"Prometheus rejects this query: {exc}"
            raise InvalidInput(f"{path}: {message}", [_problem(path, message)]) from None
        except Unreachable as exc:
            message = f"the query could not be checked: {exc}"
            raise InvalidInput(f"{path}: {message}", [_problem(path, message)]) from None


async def list_plans(request: Request) -> Response:
    project, environment = where(request)
    status = request.query_params.get("status", "all")
    if status not in ("all", "active", "ended"):
        raise MalformedRequest(f"status must be all, active or ended, got {status!r}")
    flag = request.query_params.get("flag")
    items = []
    for stored in await _plans(request, project, environment):
        plan = stored.event.plan  # type: ignore[attr-defined]
        if (status == "active" and plan.status not in ACTIVE) or (status == "ended" and plan.status in ACTIVE):
            continue
        if flag is not None and plan.flag != flag:
            continue
        items.append(_record(stored))
    items.sort(key=lambda r: r.version, reverse=True)
    return json_response(PlanList(items=items))


async def _plan(request: Request) -> tuple[str, str, Stored]:
    project, environment = where(request)
    plan_id = check_key(request.path_params["id"], "plan id")
    stored = await service_of(request).store.last(plan_subject(project, environment, plan_id))
    if stored is None or not isinstance(stored.event, PlanEvent):
        raise NotFound(f"release plan {plan_id!r} not found in environment {environment!r}")
    return project, environment, stored


async def _watch(request: Request, project: str, environment: str, plan_id: str) -> Watch | None:
    runner = _runner(request)
    return await read_watch(runner.kv if runner is not None else None, project, environment, plan_id)


async def get_plan(request: Request) -> Response:
    project, environment, stored = await _plan(request)
    watch = await _watch(request, project, environment, stored.event.plan.id)  # type: ignore[attr-defined]
    return json_response(_record(stored, watch))


async def plan_timeline(request: Request) -> Response:
    """Every event of the plan, oldest first."""
    project, environment, stored = await _plan(request)
    plan_id = stored.event.plan.id  # type: ignore[attr-defined]
    entries: list[TimelineEntry] = []
    for seq, event in await _subject_events(request, plan_subject(project, environment, plan_id)):
        p = event.plan
        entry = TimelineEntry(
            version=seq, type=tag_of(event), actor=event.actor, at=event.at, comment=event.comment, status=p.status,
            step=p.step, evidence=p.evidence,
        )  # fmt: skip
        entries.append(entry)
    return json_response(Timeline(plan=plan_id, entries=entries))


async def _subject_events(request: Request, subject: str) -> list[tuple[int, PlanEvent]]:
    """Every event of one subject (a plan has a few dozen at most), with an ordered consumer."""
    js = request.app.state.nc.jetstream()
    store = service_of(request).store
    out: list[tuple[int, PlanEvent]] = []
    sub = await js.subscribe(subject, stream=store.stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    try:
        info = await sub.consumer_info()
        if info.num_pending or info.delivered.consumer_seq:  # else: nothing there
            while True:
                msg = await sub.next_msg(timeout=10)
                event = decode_event(msg.data)
                if isinstance(event, PlanEvent):
                    out.append((msg.metadata.sequence.stream, event))
                if msg.metadata.num_pending == 0:
                    break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out


async def _transition(request: Request, allowed: tuple[str, ...], action: str) -> tuple[str, str, Stored, Plan, Any]:
    project, environment, stored = await _plan(request)
    body = convert(check_lengths(parse_json(await read_body(request), allow_empty=True)), PlanActionBody)
    plan: Plan = stored.event.plan  # type: ignore[attr-defined]
    if plan.status not in allowed:
        raise Conflict(f"release plan {plan.id} is {plan.status}: it cannot be {action}")
    return project, environment, stored, plan, body


async def _append(request: Request, stored: Stored, cls: type[PlanEvent], plan: Plan, comment: str) -> Stored:
    event: PlanEvent = stored.event  # type: ignore[assignment]
    new = plan_event(cls, event, plan, resolve_actor(request), comment, author=resolve_author(request) or UNSET)
    try:
        appended = await service_of(request).store.append(
            plan_subject(event.project, event.environment, plan.id), new, expected_seq=stored.seq, msg_id=None
        )
    except WrongLastSequence:
        raise Conflict(f"release plan {plan.id} moved meanwhile (a step, the guardian): read it again") from None
    runner = _runner(request)
    if runner is not None:
        runner.wake.set()
    return Stored(appended.seq, new)


async def pause_plan(request: Request) -> Response:
    _, _, stored, plan, body = await _transition(request, ("running",), "paused")
    paused = msgspec.structs.replace(plan, status="paused", paused_at=datetime.now(UTC), advance=False)
    return json_response(_record(await _append(request, stored, PlanPaused, paused, body.comment)))


async def resume_plan(request: Request) -> Response:
    _, _, stored, plan, body = await _transition(request, ("paused",), "resumed")
    now = datetime.now(UTC)
    pause = (now - plan.paused_at).total_seconds() if plan.paused_at is not None else 0.0
    resumed = msgspec.structs.replace(plan, status="running", paused_at=None, paused_for=plan.paused_for + pause)
    return json_response(_record(await _append(request, stored, PlanResumed, resumed, body.comment)))


async def advance_plan(request: Request) -> Response:
    _, _, stored, plan, body = await _transition(request, ("running",), "advanced (resume it first)")
    advanced = msgspec.structs.replace(plan, advance=True)
    return json_response(_record(await _append(request, stored, PlanAdvanceRequested, advanced, body.comment)))


async def abort_plan(request: Request) -> Response:
    """Stop the plan: its holder writes the rule's serve from before it back (the actor is the caller) and ends
    it. The answer waits a few seconds for that (status ``aborted``); a holder that is away finishes it later
    (status ``aborting`` meanwhile)."""
    project, environment, stored, plan, body = await _transition(request, ("running", "paused"), "aborted")
    comment = body.comment or f"release plan {plan.id} aborted"
    author = resolve_author(request) or None
    try:
        stopping = await request_stop(service_of(request), stored, "aborting", resolve_actor(request), comment,
                                      author=author)  # fmt: skip
    except WrongLastSequence:
        raise Conflict(f"release plan {plan.id} moved meanwhile (a step, the guardian): read it again") from None
    runner = _runner(request)
    if runner is not None:
        runner.wake.set()
    store = service_of(request).store
    subject = plan_subject(project, environment, plan.id)
    latest = stopping
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ABORT_WAIT
    while loop.time() < deadline:
        found = await store.last(subject)
        if found is not None:
            latest = found
            if found.event.plan.status != "aborting":  # type: ignore[attr-defined]
                break
        await asyncio.sleep(0.05)
    return json_response(_record(latest))


async def list_metrics(request: Request) -> Response:
    project, environment = where(request)
    runner = _runner(request)
    names = sorted(await runner.names.known(project, environment)) if runner is not None else []
    return json_response(MetricList(project=project, environment=environment, metrics=names))


async def flag_results(request: Request) -> Response:
    """The experiment results of a flag with a percentage rollout (see ``services/release/results.py``)."""
    project, environment = where(request)
    key = check_key(request.path_params["key"], "key")
    service = service_of(request)
    current = await service.get(FLAG, project, environment, key)
    flag = current.event.flag  # type: ignore[attr-defined]
    q = request.query_params
    variations = [v.key for v in flag.variations]
    control = q.get("control") or flag.off_variation
    if control not in variations:
        listed = ", ".join(variations)
        raise MalformedRequest(f"control must be one of the flag's variations ({listed}), got {control!r}")
    now = datetime.now(UTC)
    if q.get("since"):
        since = parse_time(q["since"], "since")
    else:
        since = _since_default(await _plans(request, project, environment), key, now)
    if since >= now:
        raise MalformedRequest("since must be in the past")
    metrics = q.getlist("metric") or None
    js = request.app.state.nc.jetstream()
    window, bad = await read_window(js, project, environment, key, since)
    results: ExperimentResults = await asyncio.to_thread(
        experiment_results, window, environment=environment, control=control, variations=variations, since=since,
        until=now, metrics=metrics, bad=bad,
    )  # fmt: skip
    return json_response(results)


def _since_default(plans: list[Stored], key: str, now: datetime) -> datetime:
    """The current step of the flag's active plan, else the last hour."""
    for stored in plans:
        plan = stored.event.plan  # type: ignore[attr-defined]
        if plan.flag == key and plan.status in ACTIVE and plan.step_at is not None:
            return plan.step_at  # type: ignore[no-any-return]
    return now - timedelta(hours=1)


# -- the table -------------------------------------------------------------------------------------------------------


def _endpoints(base: str, suffix: str) -> list[Endpoint]:
    env = f"{base}/environments/{{environment}}"
    plans = f"{env}/plans"
    one = f"{plans}/{{id}}"
    return [
        Endpoint("POST", plans, create_plan, f"createPlan{suffix}",
                 "Create a release plan: roll a variation of a flag out in steps, watched by guardrails", "release",
                 PlanBody, PlanRecord, 201, write=True),
        Endpoint("GET", plans, list_plans, f"listPlans{suffix}", "Release plans of an environment, newest first",
                 "release", None, PlanList,
                 query=(Query("status", "all, active or ended", ("all", "active", "ended")),
                        Query("flag", "only the plans of this flag"))),
        Endpoint("GET", one, get_plan, f"getPlan{suffix}",
                 "One release plan, with what the guardian sees of its current step", "release", None, PlanRecord),
        Endpoint("GET", f"{one}/timeline", plan_timeline, f"getPlanTimeline{suffix}",
                 "Every event of a release plan, oldest first", "release", None, Timeline),
        Endpoint("POST", f"{one}/pause", pause_plan, f"pausePlan{suffix}",
                 "Pause a release plan (the guardian keeps watching)", "release", PlanActionBody, PlanRecord,
                 write=True),
        Endpoint("POST", f"{one}/resume", resume_plan, f"resumePlan{suffix}", "Resume a paused release plan",
                 "release", PlanActionBody, PlanRecord, write=True),
        Endpoint("POST", f"{one}/advance", advance_plan, f"advancePlan{suffix}",
                 "Write the next step of a release plan now", "release", PlanActionBody, PlanRecord, write=True),
        Endpoint("POST", f"{one}/abort", abort_plan, f"abortPlan{suffix}",
                 "Abort a release plan: the rule serves what it served before the plan", "release", PlanActionBody,
                 PlanRecord, write=True),
        Endpoint("GET", f"{env}/metrics", list_metrics, f"listTrackedMetrics{suffix}",
                 "The metrics the environment's applications track (client.track)", "release", None, MetricList),
        Endpoint("GET", f"{env}/flags/{{key}}/results", flag_results, f"getFlagResults{suffix}",
                 "Experiment results of a flag with a percentage rollout: per variation, each tracked metric with "
                 "its difference to the control and an always-valid 95% interval", "release", None,
                 ExperimentResults,
                 query=(Query("since", "from (RFC 3339; default: the current step of its plan, else an hour ago)"),
                        Query("control", "the variation compared against (default: the flag's off variation)"),
                        Query("metric", "only this metric (repeatable)"))),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [*_endpoints(f"{API}/projects/{{project}}", ""), *_endpoints(API, "Default")]
