"""Fleet telemetry, aggregated: which SDK instances are connected, how fast changes reached them, what they
evaluate. Pure (no I/O): messages in (``events/telemetry.py``), views out; the admin's ``fleet`` feature feeds it
from NATS and persists the last-evaluated times.

* **Instances**: connected while a heartbeat arrived within ``missed_intervals`` of its own reporting interval
  (estimated from the gap between its last two heartbeats; ``default_interval`` before a second one).
* **Convergence of a change** (an event at stream sequence S written at time T): an instance has applied it once
  its reported ``seq`` >= S. Its propagation time is ``applied.at - T`` for the first batch it applied with
  ``seq >= S``, counted only when the batch received before it was below S (so it is exactly the batch that
  brought S). An instance that loaded S at start, or whose earlier batches this process never saw (it started
  after the instance), counts as applied without a time. Times compare two wall clocks: skew adds to them.
* **Evaluation counts** per flag and variation: totals since ``counting_since`` (this process's start, or the
  totals it took over: ``resume``), and over a recent window (this process's).
* **Last evaluated** per flag: kept here, and handed to the caller (``take_dirty``) to persist.
* **Attribute names** per context kind (never values), as the instances report them (sampled contexts): the
  union over the environment's instances, each name forgotten ``forget_after`` seconds after it was last
  reported; bounded per environment (``max_kinds``, ``max_attribute_names`` per kind).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from msgspec import Struct

from ...events.telemetry import AppliedChange, EnvironmentTotals, EvaluationCounts, Heartbeat, VariationTotal

Where = tuple[str, str]

# -- views (the admin API's response bodies) ---------------------------------------------------------------


class InstanceView(Struct, kw_only=True):
    instance_id: str
    sdk_version: str
    status: str
    #: Stream sequence of the last event the instance applied.
    seq: int
    started_at: datetime
    last_heartbeat: datetime
    connected: bool


class Change(Struct, kw_only=True):
    """A change of the environment: the event at stream sequence ``seq``."""

    seq: int
    entity: str
    key: str
    #: The event type, as the admin API's records name it (``flag.toggled``...).
    type: str
    at: datetime
    actor: str = ""


class ChangeConvergence(Struct, kw_only=True):
    change: Change
    #: Connected instances that applied the change, and those that have not yet.
    applied: int
    pending: int
    #: Propagation times (milliseconds) of the instances whose applying batch was observed.
    measured: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class VariationCount(Struct, kw_only=True):
    #: ``None``: the caller's default was served (an error).
    variation: str | None
    total: int
    recent: int


class ContextKindAttributes(Struct, kw_only=True):
    """The attribute names the fleet has seen in contexts of one kind."""

    kind: str
    attributes: list[str]


class FlagEvaluations(Struct, kw_only=True):
    flag: str
    total: int
    recent: int
    variations: list[VariationCount]
    last_evaluated: datetime | None = None


# -- state -------------------------------------------------------------------------------------------------


@dataclass
class _Instance:
    heartbeat: Heartbeat
    received: datetime
    interval: float | None = None
    #: Applied batches received, oldest first (bounded).
    applied: collections.deque[AppliedChange] = field(default_factory=lambda: collections.deque(maxlen=2000))


#: Characters of a context kind or an attribute name at most (longer ones are not kept).
MAX_NAME_LENGTH = 100

#: Granularity of the recent-window counts, in seconds.
BUCKET = 10
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class _Window:
    """Counts received, in buckets of ``BUCKET`` seconds of arrival time (oldest first)."""

    buckets: collections.deque[tuple[datetime, collections.Counter[tuple[str, str | None]]]] = field(
        default_factory=collections.deque
    )

    def bucket(self, now: datetime) -> collections.Counter[tuple[str, str | None]]:
        """The counts of the bucket ``now`` falls in (a new one at a bucket's boundary)."""
        start = datetime.fromtimestamp(now.timestamp() // BUCKET * BUCKET, UTC)
        if not self.buckets or self.buckets[-1][0] < start:
            self.buckets.append((start, collections.Counter()))
        elif self.buckets[-1][0] > start:  # an older message read late (redelivered): its own bucket if kept
            for begun, counts in reversed(self.buckets):
                if begun <= start:
                    return counts
            return self.buckets[0][1]
        return self.buckets[-1][1]

    def add(self, now: datetime, flag: str, variation: str | None, count: int) -> None:
        self.bucket(now)[(flag, variation)] += count


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list (``q`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class FleetAggregator:
    """Telemetry of every environment, in memory."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        default_interval: float = 10.0,
        missed_intervals: float = 3.0,
        max_window: float = 3600.0,
        forget_after: float = 24 * 3600.0,
        max_instances: int = 100_000,
        max_counters: int = 10_000,
        max_kinds: int = 50,
        max_attribute_names: int = 500,
    ) -> None:
        self.clock = clock
        self.default_interval = default_interval
        self.missed_intervals = missed_intervals
        self.max_window = max_window
        self.forget_after = forget_after
        #: Bounds per environment (telemetry is input from every SDK host): instances tracked, and distinct
        #: (flag, variation) pairs counted. Past them, new ones are ignored and counted in ``dropped``.
        self.max_instances = max_instances
        self.max_counters = max_counters
        self.max_kinds = max_kinds
        self.max_attribute_names = max_attribute_names
        self.dropped = 0
        self.started_at = self._forgot_at = clock()
        #: Since when the totals count (``started_at``, or what the totals taken over say: ``resume``).
        self.counting_since = self.started_at
        self._instances: dict[Where, dict[str, _Instance]] = {}
        self._totals: dict[Where, collections.Counter[tuple[str, str | None]]] = {}
        self._windows: dict[Where, _Window] = {}
        self._last_evaluated: dict[Where, dict[str, datetime]] = {}
        self._dirty: dict[tuple[str, str, str], datetime] = {}
        #: (project, environment) -> context kind -> attribute name -> when last reported.
        self._attributes: dict[Where, dict[str, dict[str, datetime]]] = {}
        #: Messages that could not be decoded (counted by the feeder).
        self.bad_messages = 0

    def restart(self) -> None:
        """Forget instances and counts (this process starts aggregating afresh); keep last-evaluated times."""
        self.started_at = self._forgot_at = self.counting_since = self.clock()
        self._instances = {}
        self._totals = {}
        self._windows = {}

    def totals(self) -> tuple[EnvironmentTotals, ...]:
        """The totals and last-evaluated times of every environment, to be stored (``resume`` reads them back)."""
        out = []
        for where in sorted(set(self._totals) | set(self._last_evaluated)):
            counts = self._totals.get(where, collections.Counter())
            out.append(
                EnvironmentTotals(
                    project=where[0],
                    environment=where[1],
                    totals=tuple(VariationTotal(flag=f, variation=v, total=n) for (f, v), n in counts.items()),
                    last_evaluated=dict(self._last_evaluated.get(where, {})),
                )
            )
        return tuple(out)

    def resume(self, counting_since: datetime, environments: Iterable[EnvironmentTotals]) -> None:
        """Count on from stored totals (after ``restart``: what the previous aggregator counted)."""
        self.counting_since = counting_since
        for env in environments:
            where = (env.project, env.environment)
            totals = self._totals.setdefault(where, collections.Counter())
            for item in env.totals:
                key = (item.flag, item.variation)
                if item.total <= 0 or (key not in totals and len(totals) >= self.max_counters):
                    continue
                totals[key] += item.total
            for flag, at in env.last_evaluated.items():
                self.remember_evaluated(env.project, env.environment, flag, at)

    # -- input -----------------------------------------------------------------------------------------------

    def heartbeat(self, message: Heartbeat, at: datetime | None = None) -> None:
        """``at``: when the message reached NATS (its time in the telemetry stream), if not now: a backlog read
        late must not show an instance as connected that stopped while the aggregator was behind."""
        now = self.clock() if at is None else at
        where = (message.project, message.environment)
        instances = self._instances.setdefault(where, {})
        known = instances.get(message.instance_id)
        if known is None:
            if len(instances) >= self.max_instances:
                self.dropped += 1
                return
            known = instances[message.instance_id] = _Instance(message, now)
        else:
            gap = (message.sent_at - known.heartbeat.sent_at).total_seconds()
            if gap < 0:
                return  # an older heartbeat read late (redelivered after a newer one): old news
            if gap > 0:
                known.interval = gap
            known.heartbeat = message
            known.received = now
        last = known.applied[-1].seq if known.applied else -1
        known.applied.extend(a for a in message.applied if a.seq > last)
        if message.attributes:
            self._note_attributes(where, message.attributes, now)
        if (now - self._forgot_at).total_seconds() > 60:
            self._forget(now)

    def counts(self, message: EvaluationCounts, at: datetime | None = None) -> None:
        """``at``: when the message reached NATS, if not now (the recent window counts by that time)."""
        now = self.clock() if at is None else at
        where = (message.project, message.environment)
        totals = self._totals.setdefault(where, collections.Counter())
        window = self._windows.setdefault(where, _Window())
        last = self._last_evaluated.setdefault(where, {})
        bucket = window.bucket(now)  # once per message (10,000 instances: a thousand messages a second)
        when = min(message.until, now)
        for item in message.counts:
            if item.count <= 0:
                continue
            key = (item.flag, item.variation)
            if key not in totals and len(totals) >= self.max_counters:
                self.dropped += 1
                continue
            totals[key] += item.count
            bucket[key] += item.count
            if when > last.get(item.flag, _EPOCH):
                last[item.flag] = when
                self._dirty[(message.project, message.environment, item.flag)] = when
        self._prune(window, now)

    def _note_attributes(self, where: Where, reported: dict[str, list[str]], now: datetime) -> None:
        kinds = self._attributes.setdefault(where, {})
        for kind, names in reported.items():
            known = kinds.get(kind)
            if known is None:
                if len(kinds) >= self.max_kinds or not 0 < len(kind) <= MAX_NAME_LENGTH:
                    self.dropped += 1
                    continue
                known = kinds[kind] = {}
            for name in names:
                if name not in known and (
                    len(known) >= self.max_attribute_names or not 0 < len(name) <= MAX_NAME_LENGTH
                ):
                    self.dropped += 1
                    continue
                known[name] = now

    def remember_evaluated(self, project: str, environment: str, flag: str, at: datetime) -> None:
        """A last-evaluated time read back from storage (kept if newer than what is known)."""
        last = self._last_evaluated.setdefault((project, environment), {})
        if at > last.get(flag, datetime.min.replace(tzinfo=UTC)):
            last[flag] = at

    def take_dirty(self) -> dict[tuple[str, str, str], datetime]:
        """Last-evaluated times changed since the previous call, keyed (project, environment, flag)."""
        dirty, self._dirty = self._dirty, {}
        return dirty

    def requeue(self, dirty: dict[tuple[str, str, str], datetime]) -> None:
        """Hand back times from ``take_dirty`` that could not be stored (newer ones already queued win)."""
        for where, at in dirty.items():
            if where not in self._dirty or self._dirty[where] < at:
                self._dirty[where] = at

    # -- views -----------------------------------------------------------------------------------------------

    def _connected(self, instance: _Instance, now: datetime) -> bool:
        interval = instance.interval or self.default_interval
        return (now - instance.received).total_seconds() <= self.missed_intervals * interval

    def instances(self, project: str, environment: str, *, include_gone: bool = False) -> list[InstanceView]:
        now = self.clock()
        views = []
        for instance in self._instances.get((project, environment), {}).values():
            connected = self._connected(instance, now)
            if not connected and not include_gone:
                continue
            hb = instance.heartbeat
            views.append(
                InstanceView(
                    instance_id=hb.instance_id,
                    sdk_version=hb.sdk_version,
                    status=hb.status,
                    seq=hb.seq,
                    started_at=hb.started_at,
                    last_heartbeat=instance.received,
                    connected=connected,
                )
            )
        return sorted(views, key=lambda v: (v.started_at, v.instance_id))

    def connected_counts(self) -> dict[Where, int]:
        """Connected instances per (project, environment) this aggregator has heard from since it started
        aggregating: 0 once they all went quiet, or were forgotten (what ``flagstream_sdk_instances_connected``
        reports, so the series of an environment whose SDKs stopped reads 0 rather than vanishing)."""
        now = self.clock()
        return {
            where: sum(self._connected(i, now) for i in instances.values())
            for where, instances in self._instances.items()
        }

    def convergence(self, project: str, environment: str, changes: Iterable[Change]) -> list[ChangeConvergence]:
        now = self.clock()
        live = [i for i in self._instances.get((project, environment), {}).values() if self._connected(i, now)]
        out = []
        for change in changes:
            applied = [i for i in live if i.heartbeat.seq >= change.seq]
            times = [t for i in applied if (t := _propagation_ms(i, change)) is not None]
            result = ChangeConvergence(
                change=change, applied=len(applied), pending=len(live) - len(applied), measured=len(times)
            )
            if times:
                result.p50_ms = percentile(times, 50)
                result.p99_ms = percentile(times, 99)
                result.max_ms = max(times)
            out.append(result)
        return out

    def evaluations(self, project: str, environment: str, window: float) -> list[FlagEvaluations]:
        """Counts per flag and variation: since ``counting_since``, and over the last ``window`` seconds."""
        where = (project, environment)
        now = self.clock()
        since = now - timedelta(seconds=window)
        recent: collections.Counter[tuple[str, str | None]] = collections.Counter()
        for start, counts in self._windows.get(where, _Window()).buckets:
            if start + timedelta(seconds=BUCKET) > since:  # a bucket partly in the window counts whole
                recent.update(counts)
        totals = self._totals.get(where, collections.Counter())
        last = self._last_evaluated.get(where, {})
        by_flag: dict[str, list[VariationCount]] = {}
        for flag, variation in sorted(set(totals) | set(recent), key=lambda fv: (fv[0], fv[1] or "")):
            by_flag.setdefault(flag, []).append(
                VariationCount(variation=variation, total=totals[(flag, variation)], recent=recent[(flag, variation)])
            )
        return [
            FlagEvaluations(
                flag=flag,
                total=sum(v.total for v in variations),
                recent=sum(v.recent for v in variations),
                variations=variations,
                last_evaluated=last.get(flag),
            )
            for flag, variations in by_flag.items()
        ]

    def attributes(self, project: str, environment: str) -> list[ContextKindAttributes]:
        """The attribute names seen per context kind (sorted), as reported within ``forget_after`` seconds."""
        cutoff = self.clock() - timedelta(seconds=self.forget_after)
        out = []
        for kind, names in sorted(self._attributes.get((project, environment), {}).items()):
            seen = sorted(name for name, at in names.items() if at >= cutoff)
            if seen:
                out.append(ContextKindAttributes(kind=kind, attributes=seen))
        return out

    def last_evaluated(self, project: str, environment: str) -> dict[str, datetime]:
        return dict(self._last_evaluated.get((project, environment), {}))

    # -- upkeep ----------------------------------------------------------------------------------------------

    def _prune(self, window: _Window, now: datetime) -> None:
        oldest = now - timedelta(seconds=self.max_window)
        while window.buckets and window.buckets[0][0] < oldest:
            window.buckets.popleft()

    def _forget(self, now: datetime) -> None:
        """Drop instances silent for ``forget_after`` seconds (bounded memory over restarts of a fleet). Once a
        minute: it reads every instance (at 10,000 instances, at every heartbeat it took most of a core)."""
        self._forgot_at = now
        for instances in self._instances.values():
            gone = [k for k, i in instances.items() if (now - i.received).total_seconds() > self.forget_after]
            for key in gone:
                del instances[key]
        for kinds in self._attributes.values():
            for names in kinds.values():
                for name in [n for n, at in names.items() if (now - at).total_seconds() > self.forget_after]:
                    del names[name]


def _propagation_ms(instance: _Instance, change: Change) -> float | None:
    previous: AppliedChange | None = None
    for batch in instance.applied:
        if batch.seq >= change.seq:
            if previous is None or previous.seq >= change.seq:
                return None  # loaded at start, or the batches before it were not seen
            return (batch.at - change.at).total_seconds() * 1000
        previous = batch
    return None
