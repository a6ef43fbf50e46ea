"""The SDK side of telemetry: a heartbeat and evaluation counts, published every ``interval`` seconds over
core NATS (fire and forget, never JetStream) with the client's own connection. Messages: ``flagstream.events.
telemetry``.

Counting is done by the client's cache (``RulesetCache.evaluation_totals``: cumulative counts by (flag,
variation), one attribute increment per evaluation); the reporter publishes the difference between the totals
now and the totals it last sent. Counts are exact for one thread and very close (not guaranteed) for many
threads racing on one flag. Counts that could not be sent (NATS down) go out with the next report.

Attribute names (never values) of the contexts evaluated, per context kind, go with the heartbeat, so the admin
can offer them when someone writes a rule (``AttributeNames``). Evaluations are not slowed to learn them: after
each report the reporter lets the next ``samples`` evaluations (16 by default) through an evaluation observer
that reads their contexts' names, then removes it, so between samples the evaluation path is exactly what it is
without telemetry of names. The names are sent when new ones were seen, and all of them every ``RESEND_EVERY``
reports (an admin that restarted learns them again).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from nats.aio.client import Client as NATS

from .aio import CLOSE_WITHIN, end_on_close
from .context import normalize
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
#: Context kinds, attribute names per kind, and characters per name or kind remembered at most.
MAX_KINDS = 20
MAX_NAMES = 100
MAX_NAME_LENGTH = 100
#: Evaluations whose contexts are read after each report.
SAMPLES = 16
#: Every this many reports, every name known is sent again (otherwise only when a new one was seen).
RESEND_EVERY = 6


class AttributeNames:
    """The attribute names of the contexts an instance evaluated, per context kind: names only, never a value.

    A nested object's members are named as clauses name them: ``/address/city`` (one level down)."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}
        #: Incremented whenever a name is added (what was sent is compared with it).
        self.version = 0

    def add(self, context: object) -> None:
        """Remember the names of ``context`` (any shape the SDK takes; a malformed one is ignored)."""
        contexts = normalize(context)
        if not contexts:
            return
        for kind, attributes in contexts.items():
            names = self.kinds.get(kind)
            if names is None:
                if len(self.kinds) >= MAX_KINDS or not 0 < len(kind) <= MAX_NAME_LENGTH:
                    continue
                names = self.kinds[kind] = set()
            for name, value in attributes.items():
                if name == "kind" or not isinstance(name, str):
                    continue
                self._note(names, name)
                if isinstance(value, Mapping):
                    head = "/" + _pointer(name)
                    for inner in value:
                        if isinstance(inner, str):
                            self._note(names, f"{head}/{_pointer(inner)}")

    def _note(self, names: set[str], name: str) -> None:
        if name not in names and 0 < len(name) <= MAX_NAME_LENGTH and len(names) < MAX_NAMES:
            names.add(name)
            self.version += 1

    def snapshot(self) -> dict[str, list[str]]:
        return {kind: sorted(names) for kind, names in sorted(self.kinds.items()) if names}


def _pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class _Sampler:
    """Reads the contexts of the next ``samples`` evaluations of some client objects, then stops.

    Armed, it observes the general evaluation path (``_observe``, chained before any observer already there) and
    empties the objects' fast-path map (``_flags``), so the fast accessors fall through to the general path for
    those few evaluations: nothing of the accessors themselves is replaced, so a bound method an application
    keeps (``check = client.bool_variation``) samples and then runs fast again like any call. Disarmed (once it
    has its samples, on the client's loop, or at the next report), each object gets its own ``_observe`` back
    (``_set_observe``) and the current map."""

    def __init__(self, names: AttributeNames, samples: int) -> None:
        self.names = names
        self.samples = samples
        self.targets: list[Any] = []
        self._left = 0
        self._armed = False
        self._lock = threading.Lock()  # arming and disarming only, never an evaluation
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self) -> None:
        """(Re)start sampling: whatever the last round did not get is not waited for."""
        self.disarm()
        if self.samples <= 0:
            return
        with self._lock:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
            self._left = self.samples
            self._armed = True
            for target in self.targets:
                target._observe = self._chained(target._observe)
                if hasattr(target, "_flags"):
                    target._flags = _NO_FAST_PATH

    def swapped(self) -> None:
        """A new ruleset was swapped in (which gave the objects their fast-path map back): keep sampling."""
        if self._armed:
            for target in self.targets:
                if hasattr(target, "_flags"):
                    target._flags = _NO_FAST_PATH

    def _chained(self, existing: Callable[..., None] | None) -> Callable[..., None]:
        if existing is None:
            return self.observe

        def both(key: str, context: Any, detail: Any) -> None:
            self.observe(key, context, detail)
            existing(key, context, detail)

        return both

    def disarm(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            for target in self.targets:
                target._set_observe()
                if hasattr(target, "_flags"):
                    target._flags = target._cache.fast_flags()

    def observe(self, key: str, context: Any, detail: Any) -> None:
        if self._left <= 0:
            return
        self._left -= 1
        try:
            self.names.add(context)
        except Exception:  # a context that misbehaves when read: ignored, never raised
            pass
        if self._left <= 0:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self.disarm)
            else:
                self.disarm()


#: What the fast accessors find while sampling: no flag, so they take the general path (which observes).
_NO_FAST_PATH: Mapping[str, Any] = {}


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
        samples: int = SAMPLES,
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
        #: Attribute names of the contexts evaluated (sampled), and the version of them last sent.
        self.attribute_names = AttributeNames()
        self._names_sent = 0
        self._sampler = _Sampler(self.attribute_names, samples)

    def watch(self, evaluations: Any) -> None:
        """Sample the contexts of ``evaluations`` (a client object) for their attribute names."""
        self._sampler.targets.append(evaluations)

    # -- on the client's loop ------------------------------------------------------------------------------

    def baseline(self, seq: int) -> None:
        """The client starts from ``seq`` (a last-known-state file): not an applied change to report."""
        self._last_seq = seq

    def applied(self, changed: set[str], ruleset: Ruleset) -> None:
        self._sampler.swapped()
        if ruleset.seq != self._last_seq:
            self._last_seq = ruleset.seq
            self._applied.append(AppliedChange(seq=ruleset.seq, at=datetime.now(UTC)))

    def start(self) -> None:
        if self._task is None:
            self.started_at = self._since = datetime.now(UTC)
            self._task = asyncio.create_task(self._run(), name="flagstream-telemetry")
            self._sampler.arm()

    async def close(self) -> None:
        """Stop, sending a last report if connected; returns within about ``2 * CLOSE_WITHIN`` seconds whatever
        NATS does (a publish that fills nats-py's pending buffer waits for a flush, and drops a cancellation)."""
        if self._task is not None:
            task, self._task = self._task, None
            await end_on_close("the telemetry loop", task)
            self._sampler.disarm()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WITHIN):
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
        names = self.attribute_names
        version = names.version
        resend = bool(version) and (version != self._names_sent or self.reports % RESEND_EVERY == 0)
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
            attributes=names.snapshot() if resend else {},
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
        self._names_sent = version
        self.reports += 1
        if self._task is not None:
            self._sampler.arm()
        return True


def _order(item: tuple[tuple[str, str | None], int]) -> tuple[str, str]:
    (flag, variation), _ = item
    return flag, variation or ""
