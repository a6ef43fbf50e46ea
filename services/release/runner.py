"""The plan runner: every admin replica runs one; for each active plan, the one replica holding its lease writes its
steps and runs its guardian. Every step and every rollback is written exactly once.

**Who holds a plan.** A lease per plan in the release bucket (``lease.<p>.<env>.<id>``): the holder renews it (a
compare-and-set on the key's revision) every third of ``lease`` seconds. Another replica that sees the same revision
for ``lease`` seconds of its own clock takes it over (the same compare-and-set: one winner) and appends
``plan.claimed``. So a replica killed mid-plan is replaced within about ``lease`` seconds, and the new holder reads
the step's metrics again from the metrics stream (from the step's start).

**A step, exactly once.** The holder (1) reads the plan at sequence P and the flag at version V, (2) checks that the
plan is still at P, (3) writes the step's rollout through the write path (``AdminService.patch``: validation, the
audit, optimistic concurrency) with ``If-Match: V`` and the idempotency key ``plan:<id>:step:<n>``, (4) appends
``plan.advanced`` expecting P. Two holders (a lease taken over from a replica that was only slow) cannot both
write: the second's step write finds the first by its idempotency key (or, past JetStream's duplicate window, is
refused by ``If-Match``, the flag having moved), and its ``plan.advanced`` is refused (the plan moved). A holder that
died between (3) and (4) leaves the plan at P: the next holder's (3) finds the write already there and (4) records
it. A person's edit of the flag between (1) and (3) makes (3) a conflict: the step is tried again on the next pass.

**A rollback, exactly once.** ``plan.stopping`` (status ``rolling_back``, actor ``guardian``, with the evidence) is
appended expecting P; then the flag's write back (key ``plan:<id>:end``); then ``plan.rolled_back``. Any replica
that finds a plan stopping finishes it the same way (an abort by a person goes the same road, ``aborting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ...events import WEIGHT_TOTAL
from ...events.catalog import (
    PlanAborted,
    PlanAdvanced,
    PlanClaimed,
    PlanCompleted,
    PlanEvent,
    PlanFailed,
    PlanRolledBack,
    PlanStopping,
)
from ...events.release import ACTIVE, Evidence, Plan
from ..changes import FLAG, AdminError, AdminService, Conflict, Stored, WriteRequest, WrongLastSequence
from ..requests import release_plan
from ..runtime import RELEASE_BUCKET, ensure_bucket, in_background, run_passes
from .feed import MetricNames, WindowFollower
from .plans import changes_for, is_last, next_due, plan_subject, plans_filter, serve_of, shares, step_changes
from .prometheus import Prometheus, QueryRejected, Unreachable, breached
from .stats import srm_log_bayes_factor
from .views import GuardrailView, Watch, extend_series, judge_tracked
from .window import FlagWindow

log = logging.getLogger("flagstream.release")

#: Seconds without a renewal after which another replica takes a plan over.
LEASE = 10.0
#: Longest sleep between two passes over the plans.
POLL = 1.0
#: Seconds between two judgements of a step's guardrails, between two writes of its watch, between two PromQL runs.
GUARD_EVERY = 1.0
WATCH_EVERY = 2.0
PROMETHEUS_EVERY = 15.0
#: The actor of a rollback.
GUARDIAN = "guardian"


def percent(weight: int) -> str:
    return f"{weight * 100 / WEIGHT_TOTAL:g}%"


def describe_step(plan: Plan, index: int) -> str:
    step = plan.steps[index]
    return f"release plan {plan.id}, step {index + 1} of {len(plan.steps)}: {percent(step.weight)} get {plan.variation}"


def plan_event(
    cls: type[PlanEvent], base: PlanEvent, plan: Plan, actor: str, comment: str = "", **extra: Any
) -> PlanEvent:
    return cls(
        project=base.project, environment=base.environment, actor=actor, at=datetime.now(UTC),
        comment=comment, version=base.version + 1, plan=plan, **extra,
    )  # fmt: skip


# -- leases ---------------------------------------------------------------------------------------------------------


class Leases:
    """Per-plan leases in a KV bucket, renewed by compare-and-set; expiry judged on each replica's own clock."""

    def __init__(self, kv: KeyValue, name: str, lease: float = LEASE, clock: Callable[[], float] = time.monotonic):
        self.kv = kv
        self.name = name
        self.lease = lease
        self.clock = clock
        self._mine: dict[str, tuple[int, float]] = {}
        self._seen: dict[str, tuple[int, float]] = {}

    def holds(self, key: str) -> bool:
        return key in self._mine

    async def hold(self, key: str) -> bool:
        """Whether this replica holds ``key`` now: renews it when due, takes it when free or expired."""
        now = self.clock()
        value = self.name.encode()
        mine = self._mine.get(key)
        if mine is not None:
            revision, renewed = mine
            if now - renewed < self.lease / 3:
                return True
            try:
                self._mine[key] = (await self.kv.update(key, value, last=revision), now)
                return True
            except KeyWrongLastSequenceError:
                log.warning("release: lost the lease %s to another replica", key)
            except Exception as exc:
                log.warning("release: could not renew the lease %s: %r", key, exc)
                if now - renewed < self.lease * 2 / 3:
                    return True  # still ours for a while: try again next pass
            del self._mine[key]
            return False
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # never held, or released (deleted)
            entry = None
        if entry is None or entry.value is None or entry.operation is not None:
            try:
                revision = await self.kv.create(key, value)
            except KeyWrongLastSequenceError:
                return False
            self._mine[key] = (revision, now)
            return True
        seen = self._seen.get(key)
        if seen is None or seen[0] != entry.revision:
            self._seen[key] = (entry.revision, now)
            return False
        if now - seen[1] < self.lease:
            return False
        try:
            revision = await self.kv.update(key, value, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        log.warning("release: took over %s from %s (no renewal for %.0fs)", key, entry.value.decode(), now - seen[1])
        self._mine[key] = (revision, now)
        return True

    async def release_all(self) -> None:
        for key in list(self._mine):
            await self.release(key)

    async def release(self, key: str) -> None:
        mine = self._mine.pop(key, None)
        self._seen.pop(key, None)
        if mine is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(key, last=mine[0])


def lease_key(project: str, environment: str, plan_id: str) -> str:
    return f"lease.{project}.{environment}.{plan_id}"


def watch_key(project: str, environment: str, plan_id: str) -> str:
    return f"watch.{project}.{environment}.{plan_id}"


# -- ending a plan (shared with the admin API's abort) -------------------------------------------------------------


async def request_stop(
    service: AdminService,
    stored: Stored,
    status: str,
    actor: str,
    comment: str,
    evidence: Evidence | None = None,
    author: Any = None,
) -> Stored:
    """Append ``plan.stopping`` (``rolling_back`` or ``aborting``) expecting the plan's sequence: the plan's holder
    writes the flag back and ends it (``finish``). Raises ``WrongLastSequence`` if the plan moved meanwhile."""
    event: PlanEvent = stored.event  # type: ignore[assignment]
    plan = msgspec.structs.replace(event.plan, status=status, evidence=evidence, advance=False)
    extra = {"author": author} if author is not None else {}
    new = plan_event(PlanStopping, event, plan, actor, comment, **extra)
    subj = plan_subject(event.project, event.environment, plan.id)
    appended = await service.store.append(subj, new, expected_seq=stored.seq, msg_id=None)
    return Stored(appended.seq, new)


async def stop(
    service: AdminService,
    stored: Stored,
    status: str,
    actor: str,
    comment: str,
    evidence: Evidence | None = None,
    author: Any = None,
) -> Stored:
    """``request_stop``, then ``finish`` at once (the holder itself: nothing of the plan is in flight)."""
    return await finish(service, await request_stop(service, stored, status, actor, comment, evidence, author))


async def write_back(service: AdminService, project: str, environment: str, plan: Plan, req: WriteRequest) -> int:
    """Write the flag back as a stopped plan leaves it: off (a rollback with ``rollback="off"``), else the rule
    serving what it served before the plan. Returns the flag's version after it (nothing written if already so).
    In an environment that asks for approvals, it is the plan's write (``release_plan``): no request."""
    with release_plan(project, environment, plan.flag):
        if plan.status in ("rolling_back", "rolled_back") and plan.rollback == "off":
            return (await service.toggle(project, environment, plan.flag, False, req)).stored.seq
        current = await service.get(FLAG, project, environment, plan.flag)
        flag = current.event.flag  # type: ignore[attr-defined]
        if plan.before is None or serve_of(flag, plan.rule) == plan.before:
            return current.seq
        changes = changes_for(flag, plan.rule, plan.before)
        return (await service.patch(FLAG, project, environment, plan.flag, changes, req)).stored.seq


async def finish(service: AdminService, stored: Stored) -> Stored:
    """Write the flag back for a stopping plan (its key ``plan:<id>:end``: once), then ``plan.rolled_back`` or
    ``plan.aborted``. Returns the plan's last event (this one, or another replica's if it finished first)."""
    event: PlanEvent = stored.event  # type: ignore[assignment]
    plan = event.plan
    project, environment = event.project, event.environment
    rolling_back = plan.status == "rolling_back"
    req = WriteRequest(
        actor=event.actor, comment=event.comment or f"release plan {plan.id} stopped",
        idempotency_key=f"plan:{plan.id}:end",
    )  # fmt: skip
    result_seq = 0
    error = ""
    try:
        result_seq = await write_back(service, project, environment, plan, req)
    except Conflict:
        raise  # a person's write in between: try again
    except (AdminError, KeyError) as exc:
        error = f"the flag could not be written back: {getattr(exc, 'message', exc)!r}"
    final = PlanRolledBack if rolling_back else PlanAborted
    done = msgspec.structs.replace(
        plan, status="rolled_back" if rolling_back else "aborted", result_seq=result_seq, error=error
    )
    new = plan_event(final, event, done, event.actor, event.comment)
    subj = plan_subject(project, environment, plan.id)
    try:
        appended = await service.store.append(subj, new, expected_seq=stored.seq, msg_id=None)
    except WrongLastSequence:
        latest = await service.store.last(subj)
        assert latest is not None
        return latest
    return Stored(appended.seq, new)


# -- the runner -------------------------------------------------------------------------------------------------------


@dataclass
class Held:
    """What this replica keeps for a plan it holds."""

    step: int
    window: FlagWindow
    follower: WindowFollower
    watch: Watch
    last_guard: float = 0.0
    last_watch: float = 0.0
    last_prometheus: float = -1e9
    prometheus: dict[str, GuardrailView] = field(default_factory=dict)


class PlanRunner:
    """Runs the plans of every project and environment (see the module's text)."""

    def __init__(
        self,
        service: AdminService,
        nc: NATS,
        *,
        name: str | None = None,
        poll: float = POLL,
        lease: float = LEASE,
        guard_every: float = GUARD_EVERY,
        prometheus: Prometheus | None = None,
        prometheus_every: float = PROMETHEUS_EVERY,
    ) -> None:
        self.service = service
        self.store = service.store
        self.nc = nc
        self.js = nc.jetstream()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.lease = lease
        self.guard_every = guard_every
        self.prometheus = prometheus
        self.prometheus_every = prometheus_every
        self.wake = asyncio.Event()
        self.kv: KeyValue | None = None
        self.leases: Leases | None = None
        self.names = MetricNames(None)
        self._held: dict[str, Held] = {}
        #: Steps this runner wrote ("<plan>:<step>") and plans it rolled back, for logs and tests.
        self.steps_written: list[str] = []
        self.rolled_back: list[str] = []

    async def open(self) -> None:
        self.kv = await ensure_bucket(self.js, RELEASE_BUCKET, description="flagstream release plans")
        self.leases = Leases(self.kv, self.name, self.lease)
        self.names = MetricNames(self.kv)
        await self.names.start(self.nc)

    async def close(self) -> None:
        """Stop following, and give the leases up: another replica takes the plans over at its next pass."""
        await self.names.stop()
        for held in list(self._held.values()):
            await held.follower.stop()
        self._held.clear()
        if self.leases is not None:
            await self.leases.release_all()

    async def run(self, stop_event: asyncio.Event) -> None:
        await run_passes("release", self.pass_once, stop=stop_event, wake=self.wake, poll=self.poll, log=log)

    async def pass_once(self) -> None:
        assert self.leases is not None, "open() first"
        latest = await self.store.latest(plans_filter())
        active: set[str] = set()
        for stored in latest.values():
            event = stored.event
            if not isinstance(event, PlanEvent) or event.plan.status not in ACTIVE:
                continue
            plan = event.plan
            active.add(plan.id)
            key = lease_key(event.project, event.environment, plan.id)
            if not await self.leases.hold(key):
                await self._drop(plan.id)
                continue
            try:
                await self._act(stored)
            except Exception as exc:
                log.warning("release: plan %s: %s: %s", plan.id, type(exc).__name__, exc)
        for plan_id in [p for p in self._held if p not in active]:
            await self._drop(plan_id)

    async def _drop(self, plan_id: str) -> None:
        held = self._held.pop(plan_id, None)
        if held is not None:
            await held.follower.stop()

    async def _act(self, stored: Stored) -> None:
        event: PlanEvent = stored.event  # type: ignore[assignment]
        plan = event.plan
        if plan.holder != self.name:
            claimed = plan_event(
                PlanClaimed, event, msgspec.structs.replace(plan, holder=self.name), self.name,
                f"held by {self.name}" + (f" (taken over from {plan.holder})" if plan.holder else ""),
            )  # fmt: skip
            try:
                appended = await self.store.append(
                    plan_subject(event.project, event.environment, plan.id), claimed, expected_seq=stored.seq,
                    msg_id=None,
                )  # fmt: skip
            except WrongLastSequence:
                return  # it moved: next pass
            stored, event, plan = Stored(appended.seq, claimed), claimed, claimed.plan
        if plan.status in ("rolling_back", "aborting"):
            await self._finish(stored)
            return
        # running or paused: watch the current step, then move on if due
        if plan.step >= 0:
            stopped = await self._guard(stored)
            if stopped:
                return
        due = next_due(plan, datetime.now(UTC))
        if due is not None and due <= 0:
            await self._advance(stored)

    async def _finish(self, stored: Stored) -> None:
        plan = stored.event.plan  # type: ignore[attr-defined]
        with contextlib.suppress(Conflict):
            done = await finish(self.service, stored)
            if done.event.plan.status == "rolled_back":  # type: ignore[attr-defined]
                self.rolled_back.append(plan.id)
            await self._ended(done)

    async def _ended(self, stored: Stored) -> None:
        event: PlanEvent = stored.event  # type: ignore[assignment]
        await self._save_watch(event.project, event.environment, event.plan.id, final=True)
        await self._drop(event.plan.id)
        if self.leases is not None:
            await self.leases.release(lease_key(event.project, event.environment, event.plan.id))

    # -- steps ------------------------------------------------------------------------------------------------

    async def _advance(self, stored: Stored) -> None:
        event: PlanEvent = stored.event  # type: ignore[assignment]
        plan = event.plan
        project, environment = event.project, event.environment
        subj = plan_subject(project, environment, plan.id)
        if is_last(plan):
            done = plan_event(PlanCompleted, event, msgspec.structs.replace(plan, status="completed", advance=False),
                              self.name, f"release plan {plan.id} completed")  # fmt: skip
            with contextlib.suppress(WrongLastSequence):
                appended = await self.store.append(subj, done, expected_seq=stored.seq, msg_id=None)
                await self._ended(Stored(appended.seq, done))
            return
        index = plan.step + 1
        try:
            current = await self.service.get(FLAG, project, environment, plan.flag)
            flag = current.event.flag  # type: ignore[attr-defined]
            if flag.archived:
                raise KeyError(f"flag {plan.flag!r} was archived")
            changes = step_changes(plan, flag, index)
        except (AdminError, KeyError) as exc:
            await self._fail(stored, f"step {index + 1} cannot be written: {getattr(exc, 'message', exc)}")
            return
        latest = await self.store.last(subj)
        if latest is None or latest.seq != stored.seq:
            return  # the plan moved (a pause, an abort, another holder): next pass
        req = WriteRequest(
            actor=f"release plan {plan.id}", comment=describe_step(plan, index), if_match=current.seq,
            idempotency_key=f"plan:{plan.id}:step:{index}",
        )  # fmt: skip
        try:
            with release_plan(project, environment, plan.flag):  # the approved plan's step: no request
                outcome = await self.service.patch(FLAG, project, environment, plan.flag, changes, req)
        except Conflict:
            log.info("release: plan %s: the flag changed meanwhile; step %d next pass", plan.id, index + 1)
            return
        except AdminError as exc:
            await self._fail(stored, f"step {index + 1} was refused: {exc.message}")
            return
        now = datetime.now(UTC)
        moved = msgspec.structs.replace(
            plan, step=index, step_at=now, step_seq=outcome.stored.seq, paused_for=0.0,
            paused_at=now if plan.status == "paused" else None, advance=False,
        )  # fmt: skip
        advanced = plan_event(PlanAdvanced, event, moved, self.name, describe_step(plan, index))
        try:
            appended = await self.store.append(subj, advanced, expected_seq=stored.seq, msg_id=None)
        except WrongLastSequence:
            # Another holder recorded it, or the plan moved. If it was stopped (an abort, a rollback) after this
            # step was read but before its write landed, the write back may have found nothing to undo yet: undo
            # the step now, so the flag never keeps a step of a stopped plan.
            latest = await self.store.last(subj)
            stopped = latest.event.plan if latest is not None else None  # type: ignore[attr-defined]
            if stopped is not None and stopped.status in ("rolling_back", "aborting", "rolled_back", "aborted"):
                undo = WriteRequest(
                    actor=f"release plan {plan.id}", idempotency_key=f"plan:{plan.id}:undo:{index}",
                    comment=f"release plan {plan.id}: step {index + 1} undone, the plan was stopped meanwhile",
                )  # fmt: skip
                with contextlib.suppress(AdminError, KeyError):
                    await write_back(self.service, project, environment, stopped, undo)
            return
        self.steps_written.append(f"{plan.id}:{index}")
        log.info("release: %s", describe_step(plan, index))
        if moved.steps[index].weight >= WEIGHT_TOTAL:  # everyone has it: nothing left to compare, the plan is done
            await self._advance(Stored(appended.seq, advanced))

    async def _fail(self, stored: Stored, error: str) -> None:
        event: PlanEvent = stored.event  # type: ignore[assignment]
        failed = plan_event(PlanFailed, event, msgspec.structs.replace(event.plan, status="failed", error=error),
                            self.name, error)  # fmt: skip
        with contextlib.suppress(WrongLastSequence):
            appended = await self.store.append(
                plan_subject(event.project, event.environment, event.plan.id), failed, expected_seq=stored.seq,
                msg_id=None,
            )  # fmt: skip
            log.warning("release: plan %s failed: %s", event.plan.id, error)
            await self._ended(Stored(appended.seq, failed))

    # -- the guardian -----------------------------------------------------------------------------------------

    async def _guard(self, stored: Stored) -> bool:
        """Judge the current step; roll back on a breach. True if the plan was stopped."""
        event: PlanEvent = stored.event  # type: ignore[assignment]
        plan = event.plan
        project, environment = event.project, event.environment
        step = plan.steps[plan.step]
        held = self._held.get(plan.id)
        if held is None or held.step != plan.step:
            await self._drop(plan.id)
            since = plan.step_at or datetime.now(UTC)
            window = FlagWindow(flag=plan.flag, since=since, since_seq=plan.step_seq)
            follower = WindowFollower(window)
            await follower.start(self.js, project, environment, since)
            held = Held(step=plan.step, window=window, follower=follower,
                        watch=await self._load_watch(project, environment, plan, since))  # fmt: skip
            self._held[plan.id] = held
        if step.weight >= WEIGHT_TOTAL:
            return False
        now = time.monotonic()
        evidence: Evidence | None = None
        if held.follower.caught_up.is_set() and now - held.last_guard >= self.guard_every:
            held.last_guard = now
            evidence = self._judge(plan, held)
        if evidence is None and self.prometheus is not None and now - held.last_prometheus >= self.prometheus_every:
            held.last_prometheus = now
            evidence = await self._query(plan, held)
        if now - held.last_watch >= WATCH_EVERY or evidence is not None:
            held.last_watch = now
            await self._save_watch(project, environment, plan.id)
        if evidence is None:
            return False
        comment = f"rolled back: {evidence.text}"
        try:
            done = await stop(self.service, stored, "rolling_back", GUARDIAN, comment, evidence)
        except WrongLastSequence:
            return True  # the plan moved: next pass
        except Conflict:
            return True  # the write back met a person's write: the next pass finishes it
        self.rolled_back.append(plan.id)
        log.warning("release: plan %s on %s/%s: %s", plan.id, environment, plan.flag, comment)
        await self._ended(done)
        return True

    def _judge(self, plan: Plan, held: Held) -> Evidence | None:
        window = held.window
        weight = plan.steps[plan.step].weight
        expected = weight / WEIGHT_TOTAL
        share = shares(plan)[plan.step]
        alpha = share.guardrail
        users = window.users()
        n_t, n_c = users.get(plan.variation, 0), users.get(plan.control, 0)
        views = []
        evidence: Evidence | None = None
        for g in plan.guardrails:
            if not g.metric:
                continue
            j, view = judge_tracked(plan, g, window, alpha, share.t_star)
            views.append(view)
            if j.breached and evidence is None:
                rise = "rose" if g.bad == "increase" else "fell"
                what = {"count": "events per user", "proportion": "share of users", "mean": "mean per user"}[g.kind]
                evidence = Evidence(
                    reason="guardrail", metric=g.metric, kind=g.kind, step=plan.step, effect=j.interval.effect,
                    lower=j.interval.lower, upper=j.interval.upper, limit=j.limit, treatment_users=j.treatment.n,
                    control_users=j.control.n, treatment_value=j.treatment.mean, control_value=j.control.mean,
                    alpha=alpha,
                    text=(
                        f"{g.metric} ({what}) {rise} by {abs(j.interval.effect):.4g} "
                        f"[{j.interval.lower:.4g}, {j.interval.upper:.4g}] with {plan.variation} "
                        f"({j.treatment.mean:.4g} over {j.treatment.n} users, {plan.control} {j.control.mean:.4g} "
                        f"over {j.control.n}), past the {j.limit:.4g} it accepts, at step {plan.step + 1} "
                        f"({percent(weight)})"
                    ),
                )  # fmt: skip
        if evidence is None and n_t + n_c > 0:
            log_bf = srm_log_bayes_factor([n_t, n_c], [expected, 1 - expected])
            if log_bf >= -math.log(share.sample_ratio):
                observed = n_t / (n_t + n_c)
                evidence = Evidence(
                    reason="sample_ratio", step=plan.step, treatment_users=n_t, control_users=n_c,
                    alpha=share.sample_ratio,
                    expected_share=expected, observed_share=observed,
                    text=(
                        f"sample ratio mismatch at step {plan.step + 1}: {plan.variation} has {observed:.2%} of the "
                        f"users ({n_t} of {n_t + n_c}), the rollout gives it {expected:.2%}"
                    ),
                )  # fmt: skip
        watch = held.watch
        watch.at = datetime.now(UTC)
        watch.step = plan.step
        watch.holder = self.name
        watch.treatment_users, watch.control_users = n_t, n_c
        watch.expected_share, watch.alpha, watch.sample_ratio_alpha = expected, alpha, share.sample_ratio
        watch.guardrails = [*views, *held.prometheus.values()]
        extend_series(watch.series, views, watch.at, plan.step)
        return evidence

    async def _query(self, plan: Plan, held: Held) -> Evidence | None:
        assert self.prometheus is not None
        for g in plan.guardrails:
            if not g.promql:
                continue
            view = GuardrailView(name=g.promql, kind="promql", bad=g.bad, limit=g.threshold)
            try:
                value = await self.prometheus.query(g.promql, g.bad)
            except (QueryRejected, Unreachable) as exc:
                view.state, view.error = "error", str(exc)
                held.prometheus[g.promql] = view
                log.warning("release: plan %s: %s", plan.id, exc)
                continue
            view.value = value
            view.state = "waiting" if value is None else "ok"
            held.prometheus[g.promql] = view
            if breached(value, g.threshold, g.bad):
                view.state = "breached"
                side = "above" if g.bad == "increase" else "below"
                return Evidence(
                    reason="prometheus", metric=g.promql, step=plan.step, limit=g.threshold, value=float(value or 0),
                    text=f"Prometheus: {g.promql} = {value:.4g}, {side} its threshold {g.threshold:g}, at step "
                    f"{plan.step + 1} ({percent(plan.steps[plan.step].weight)})",
                )  # fmt: skip
        return None

    # -- watches ----------------------------------------------------------------------------------------------

    async def _load_watch(self, project: str, environment: str, plan: Plan, since: datetime) -> Watch:
        """The plan's watch as the last holder left it (its series go on), or a new one."""
        if self.kv is not None:
            with contextlib.suppress(Exception):
                entry = await self.kv.get(watch_key(project, environment, plan.id))
                if entry.value:
                    return msgspec.json.decode(entry.value, type=Watch)
        return Watch(plan=plan.id, step=plan.step, at=since, holder=self.name)

    async def _save_watch(self, project: str, environment: str, plan_id: str, *, final: bool = False) -> None:
        held = self._held.get(plan_id)
        if held is None or self.kv is None:
            return
        with contextlib.suppress(Exception):
            await self.kv.put(watch_key(project, environment, plan_id), msgspec.json.encode(held.watch))


async def read_watch(kv: KeyValue | None, project: str, environment: str, plan_id: str) -> Watch | None:
    if kv is None:
        return None
    try:
        entry = await kv.get(watch_key(project, environment, plan_id))
    except Exception:
        return None
    return msgspec.json.decode(entry.value, type=Watch) if entry.value else None


@contextlib.asynccontextmanager
async def running(service: AdminService, nc: NATS, **options: Any) -> AsyncIterator[PlanRunner]:
    """A runner running plans in the background for the duration of the block."""
    runner = PlanRunner(service, nc, **options)
    await runner.open()
    try:
        async with in_background(runner, "release-plans"):
            yield runner
    finally:
        await runner.close()
