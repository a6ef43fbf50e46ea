"""``client.track(metric, context, value=None)``: what the application saw (an error, a conversion, a latency), sent
to the admin side in batches over NATS, attributed to what the flags in a percentage rollout served that context.

On the application's thread, ``track`` only names the context and appends a tuple to a bounded queue: no lock, no
I/O, nothing built, never an exception (a full queue drops the call and counts it in ``dropped``). From the first
``track`` call on, the client also notes each evaluation that a percentage rollout answered (``Reason.in_rollout``),
the same way (one tuple on the same queue): evaluations of a client that never tracks cost nothing more.

On the client's event loop, every ``interval`` seconds, the queue is read in the order things happened: an exposure
updates what that context was last served by that flag (the memory of ``max_contexts`` contexts, least recently
exposed forgotten first), a tracked call is attributed to what the context was served at that moment (``variation
_detail`` gave it) or, if nothing in a rollout ever served it here, counted as unexposed. The batch (``flagstream.
events.tracking.MetricsBatch``) is published over core NATS, fire and forget; while NATS is away its rows are kept
(at most ``max_rows``, the oldest dropped first and counted) and go once it is back.

Each message is published to JetStream and waits for its acknowledgement (on the client's loop, never the
application's): the admin side keeps these messages in a stream (``FLAGSTREAM_METRICS``), and a message that was not
acknowledged is sent again with the same ``Nats-Msg-Id``, which the stream stores once. Nothing is lost to a dropped
connection, nothing counted twice by a retry.

A metric name is letters, digits, ``-``, ``_``, ``.`` (at most 100); a value is a finite number or ``None``.
Anything else is refused when the batch is made (counted in ``invalid``, logged once), never on the application's
thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS

from .aio import CLOSE_WITHIN, end_on_close
from .evaluation import EvaluationDetail
from .events.tracking import (
    METRIC_MAX,
    METRIC_PATTERN,
    Exposed,
    MetricsBatch,
    Tracked,
    Unexposed,
    encode_metrics,
    metrics_subject,
)
from .exposures import context_identity

log = logging.getLogger("flagstream.client")

#: Rows per published message (a batch beyond is split: NATS refuses a message over its max payload, 1 MiB).
ROWS_PER_MESSAGE = 4_000

_EXPOSED = 0
_TRACKED = 1
_METRIC = re.compile(METRIC_PATTERN)


def identity(context: Any) -> str | None:
    """The context's identity as metrics name it (``Exposed.context``), or None if it has no usable key."""
    if type(context) is dict and "kind" not in context:  # the common case: a plain user dict
        key = context.get("key")
        if type(key) is str:
            return key
    kind, key = context_identity(context)
    if key is None:
        return None
    return key if kind == "user" else f"{kind}:{key}"


class Tracker:
    """The queue the application's threads fill, and the batches made from it on the client's loop."""

    def __init__(
        self,
        *,
        project: str,
        environment: str,
        connection: Callable[[], NATS | None],
        interval: float = 1.0,
        max_queue: int = 100_000,
        max_contexts: int = 100_000,
        max_rows: int = 200_000,
        instance_id: str | None = None,
        jetstream_domain: str | None = None,
    ) -> None:
        self.project = project
        self.environment = environment
        self.interval = interval
        self.max_queue = max_queue
        self.max_contexts = max_contexts
        self.max_rows = max_rows
        self.instance_id = instance_id or uuid.uuid4().hex
        self._connection = connection
        self._domain = jetstream_domain
        self._subject = metrics_subject(project, environment)
        self._queue: collections.deque[tuple[int, str, str | None, Any]] = collections.deque()
        #: Whether the client's evaluations are observed (from the first ``track`` on).
        self.observing = False
        self._observe_lock = threading.Lock()
        #: context -> ((flag, variation, seq), ...) sorted by flag: what rollouts last served it here, and the stream
        #: sequence of the ruleset that evaluation used.
        self._served: dict[str, tuple[tuple[str, str, int], ...]] = {}
        # The rows of the next batch: exposures [count, highest seq]; tracked [count, total, valued].
        self._exposed: dict[tuple[str, str, str], list[int]] = {}
        self._tracked: dict[tuple[str, str, tuple[tuple[str, str, int], ...]], list[float]] = {}
        self._unexposed: dict[str, int] = {}
        self._since = datetime.now(UTC)
        #: Messages made and not yet acknowledged, oldest first: (message id, payload, rows).
        self._outbox: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self._outbox_rows = 0
        self._messages = 0
        self._task: asyncio.Task[None] | None = None
        self._warned_invalid = False
        #: Counters (approximate under many application threads: plain increments).
        self.tracked = 0  # track calls attributed
        self.unexposed = 0  # track calls of a context no rollout had served here
        self.invalid = 0  # refused: a metric name or value that is none
        self.dropped = 0  # queue full, unusable context, or rows over max_rows while NATS was away
        self.batches = 0  # messages published and acknowledged
        self.failures = 0  # flushes that could not publish (kept for the next)
        #: Seconds to wait for the stream's acknowledgement of one message.
        self.ack_timeout = 5.0
        self._reported_dropped = 0
        self._reported_invalid = 0

    # -- the application's threads -------------------------------------------------------------------------

    def track(self, metric: str, context: Any, value: Any = None) -> None:
        """Queue one tracked call (never raises, never blocks)."""
        try:
            queue = self._queue
            if len(queue) >= self.max_queue:
                self.dropped += 1
                return
            queue.append((_TRACKED, metric, identity(context), value))
        except Exception:
            self.dropped += 1

    def observe(self, key: str, context: Any, detail: EvaluationDetail) -> None:
        """An evaluation observer (``FlagEvaluations._add_observer``): notes what a rollout served."""
        if detail.reason.in_rollout and detail.variation is not None:
            queue = self._queue
            if len(queue) < self.max_queue:
                queue.append((_EXPOSED, key, identity(context), (detail.variation, detail.seq)))
            else:
                self.dropped += 1

    def start_observing(self, add_observer: Callable[[Callable[..., None]], Callable[[], None]]) -> None:
        """Observe the evaluations of a client object (once, whichever thread calls first)."""
        with self._observe_lock:
            if not self.observing:
                add_observer(self.observe)
                self.observing = True

    # -- the client's loop ---------------------------------------------------------------------------------

    def drain(self) -> None:
        """Read the queue in order into the next batch's rows."""
        queue = self._queue
        served = self._served
        while queue:
            what, name, context, extra = queue.popleft()
            if context is None:
                self.dropped += 1  # no usable key: nothing to attribute or count it to
                continue
            if what == _EXPOSED:
                self._expose(served, name, context, extra)
            else:
                self._track(served, name, context, extra)

    def _expose(self, served: dict[str, tuple[tuple[str, str, int], ...]], flag: str, context: str,
                served_now: tuple[str, int]) -> None:  # fmt: skip
        variation, seq = served_now
        key = (flag, variation, context)
        row = self._exposed.get(key)
        if row is None:
            self._exposed[key] = [1, seq]
        else:
            row[0] += 1
            row[1] = max(row[1], seq)
        triples = served.pop(context, None)  # re-inserted last: the least recently exposed are forgotten first
        if triples is None:
            if len(served) >= self.max_contexts:
                del served[next(iter(served))]
            triples = ((flag, variation, seq),)
        elif (flag, variation, seq) not in triples:
            triples = tuple(sorted({**{f: (v, q) for f, v, q in triples}, flag: (variation, seq)}.items()))
            triples = tuple((f, v, q) for f, (v, q) in triples)
        served[context] = triples

    def _track(
        self, served: dict[str, tuple[tuple[str, str, int], ...]], metric: Any, context: str, value: Any
    ) -> None:
        if type(metric) is not str or len(metric) > METRIC_MAX or not _METRIC.fullmatch(metric):
            self._refuse(f"metric name {metric!r:.120} (letters, digits, -, _, . and at most {METRIC_MAX})")
            return
        if value is not None and (
            type(value) not in (int, float) or not math.isfinite(value)  # a bool is not a number here
        ):
            self._refuse(f"value {value!r:.60} of metric {metric!r} (a finite number, or None)")
            return
        triples = served.get(context)
        if not triples:
            self.unexposed += 1
            self._unexposed[metric] = self._unexposed.get(metric, 0) + 1
            return
        self.tracked += 1
        row = self._tracked.get((metric, context, triples))
        if row is None:
            row = self._tracked[(metric, context, triples)] = [0, 0.0, 0]
        row[0] += 1
        if value is not None:
            row[1] += value
            row[2] += 1

    def _refuse(self, what: str) -> None:
        self.invalid += 1
        if not self._warned_invalid:
            self._warned_invalid = True
            log.warning("flagstream: track() refused the %s; such calls are counted, not sent (logged once)", what)

    def batch(self, until: datetime) -> MetricsBatch | None:
        """The rows so far as one batch (None if there is nothing to say)."""
        dropped = self.dropped - self._reported_dropped
        invalid = self.invalid - self._reported_invalid
        if not (self._exposed or self._tracked or self._unexposed or dropped or invalid):
            return None
        return MetricsBatch(
            instance_id=self.instance_id,
            project=self.project,
            environment=self.environment,
            since=self._since,
            until=until,
            exposed=tuple(Exposed(f, v, c, n, seq) for (f, v, c), (n, seq) in self._exposed.items()),
            tracked=tuple(
                Tracked(m, c, int(r[0]), r[1], int(r[2]), tuple((f, v) for f, v, _ in t), tuple(q for _, _, q in t))
                for (m, c, t), r in self._tracked.items()
            ),
            unexposed=tuple(Unexposed(m, n) for m, n in self._unexposed.items()),
            dropped=dropped,
            invalid=invalid,
        )

    def sent(self, batch: MetricsBatch) -> None:
        """``batch`` is in the outbox: start the next one."""
        self._exposed, self._tracked, self._unexposed = {}, {}, {}
        self._reported_dropped += batch.dropped
        self._reported_invalid += batch.invalid
        self._since = batch.until

    @property
    def pending(self) -> int:
        """Calls queued plus rows not yet acknowledged by the stream (0: everything told so far was sent)."""
        return len(self._queue) + len(self._exposed) + len(self._tracked) + len(self._unexposed) + len(self._outbox)

    def _to_outbox(self, batch: MetricsBatch) -> None:
        for message in split(batch):
            self._messages += 1
            rows = len(message.exposed) + len(message.tracked)
            self._outbox.append((f"{self.instance_id}:{self._messages}", encode_metrics(message), rows))
            self._outbox_rows += rows
        self.sent(batch)
        while self._outbox_rows > self.max_rows and len(self._outbox) > 1:  # NATS away for long: oldest go first
            _, _, rows = self._outbox.popleft()
            self._outbox_rows -= rows
            self.dropped += rows

    async def flush(self) -> bool:
        """Drain, make the batch (split in messages of ``ROWS_PER_MESSAGE`` rows), publish what is unsent, each
        message acknowledged by the stream; False if something is left for the next time."""
        self.drain()
        batch = self.batch(datetime.now(UTC))
        if batch is not None:
            self._to_outbox(batch)
        if not self._outbox:
            return True
        nc = self._connection()
        if nc is None or not nc.is_connected:
            self.failures += 1
            return False
        js = nc.jetstream(domain=self._domain)
        while self._outbox:
            msg_id, payload, rows = self._outbox[0]
            try:
                await js.publish(self._subject, payload, timeout=self.ack_timeout, headers={"Nats-Msg-Id": msg_id})
            except Exception as exc:  # no stream (no admin side yet), NATS away, a timeout: the next time
                self.failures += 1
                log.debug("flagstream: metrics not sent: %r", exc)
                return False
            self._outbox.popleft()
            self._outbox_rows -= rows
            self.batches += 1
        return True

    def start(self) -> None:
        if self._task is None:
            self._since = datetime.now(UTC)
            self._task = asyncio.create_task(self._run(), name="flagstream-tracking")

    async def close(self) -> None:
        """Stop (the loop cancelled and waited for, within a bound), sending what is left if connected."""
        if self._task is not None:
            task, self._task = self._task, None
            # Waited for (a loop that ran on would flush beside this one), cancelled again if it loses a cancel
            # (a publish waiting on nats-py's flush drops it: flagstream.aio), within a bound.
            await end_on_close("the metrics loop", task)
        if self._queue or self._exposed or self._tracked or self._unexposed or self._outbox:
            with contextlib.suppress(Exception):  # TimeoutError among them
                async with asyncio.timeout(CLOSE_WITHIN):
                    await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("flagstream: making a metrics batch failed")


def split(batch: MetricsBatch, rows: int = ROWS_PER_MESSAGE) -> list[MetricsBatch]:
    """``batch`` as messages of at most ``rows`` exposed + tracked rows each (the counts go with the first)."""
    if len(batch.exposed) + len(batch.tracked) <= rows:
        return [batch]
    items: list[Exposed | Tracked] = [*batch.exposed, *batch.tracked]
    out = []
    for start in range(0, len(items), rows):
        chunk = items[start : start + rows]
        first = start == 0
        out.append(
            MetricsBatch(
                instance_id=batch.instance_id,
                project=batch.project,
                environment=batch.environment,
                since=batch.since,
                until=batch.until,
                exposed=tuple(r for r in chunk if isinstance(r, Exposed)),
                tracked=tuple(r for r in chunk if isinstance(r, Tracked)),
                unexposed=batch.unexposed if first else (),
                dropped=batch.dropped if first else 0,
                invalid=batch.invalid if first else 0,
            )
        )
    return out
