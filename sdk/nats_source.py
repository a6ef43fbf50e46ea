"""The NATS edge of the SDK: connect (and keep trying), load the current state of one environment, follow it.

Loading starts from the environment's compacted snapshot when there is one (``snapshots.py``: the last event of
every subject as of stream sequence S, written by the services in a few big messages): its events are folded
with whatever the consumer then delivers from S + 1, in one batch, so nothing is missed or applied twice. No
snapshot, one written in a newer format, from another stream (recreated), corrupt (logged, counted in
``bad_snapshots``), refused by the credential, or more events behind than it holds: the long way below.

The long way uses an ordered push consumer with ``DeliverPolicy.LAST_PER_SUBJECT`` on the environment's subjects:
one message per flag/segment, O(flags) not O(history). Messages are buffered until ``num_pending == 0`` in
their metadata (the consumer is caught up, as the KV watcher of nats-py detects it) and folded in ONE batch;
consumer info right after subscribing tells an empty environment apart.

Following: when the stream republishes what it stores on ``flagstream-live.>`` (``events.subjects.LIVE_PREFIX``;
the services configure it) and is not a mirror, the client follows with a plain subscription to its
environment's live subjects, made *before* the loading consumer: every event is then either in what the
consumer loads or in what the subscription receives after it (or both; the stream sequence in the
``Nats-Sequence`` header drops the repeats). Once loaded, the live messages received meanwhile are applied and
the consumer is deleted: a following client costs nats-server one subscription instead of one consumer with
its heartbeats and flow control, which is what lets one server carry ten thousand clients (bench/README.md).
Otherwise (a mirror, an older stream, a credential without the live subjects) the ordered consumer keeps
following, as live messages come (in small batches when a backlog exists).

A live message is handled inside the connection's message processing (``_Connection``, on the nats-py version
pinned in pyproject.toml): its stream sequence read from the raw headers, the payload decoded and folded when
the read it came in is parsed, without nats-py's ``Msg`` object, queue and task switch per message. That is
what a following client spends per change, times the clients of a fleet (bench/README.md, ``live_path_cost.py``).

After a reconnect (the server may have restarted and lost the in-memory ordered consumer, and core messages
sent while disconnected are lost) a new ordered consumer is created starting right after the last stream
sequence folded, so nothing is missed or repeated; the same happens after a slow-consumer drop.

Live messages can also be lost without the client's connection noticing: a client on a leaf node keeps its
connection to the leaf while the leaf's link to the hub is down, and what the stream stored meanwhile is never
fanned out to it. So while following live, every ``gap_check_interval`` seconds (jittered), and at once after
an error the connection reports, the client asks JetStream for the last message on its environment's subjects
(one direct get, ``$JS.API.DIRECT.GET.FLAGSTREAM.<environment filter>``: the filter in the API subject, so the
SDK credential is allowed exactly its own environment). A stream sequence past the last one folded that does not
arrive live within ``GAP_GRACE`` is a gap: the client catches up with the same consumer as after a reconnect
(counted in ``gaps_repaired``, logged). A check that cannot reach JetStream (the leaf's link is down) is
retried sooner, so a gap is repaired soon after the link is back.
Undecodable messages are logged, counted in ``bad_events`` and skipped; they are never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.transport import TcpTransport
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError
from nats.protocol.parser import AWAITING_CONTROL_LINE

from .aio import CLOSE_WITHIN, cancel_and_wait, end_on_close
from .cache import ClientStatus
from .credentials import CredentialError, denied
from .events import STREAM, DecodeError, Event, decode_event, environment_filter
from .events.snapshot import SNAPSHOT_STREAM, Snapshot, UnknownFormat, stream_id
from .events.subjects import all_live_subjects, all_subjects, live_filter, sdk_inbox_prefix
from .snapshots import fetch_snapshot, gc_paused

log = logging.getLogger("flagstream.client")

#: ``sink(events, fresh)``: fold the events; ``fresh`` means they replace the whole state (stream recreated).
Sink = Callable[[Sequence[tuple[int, Event]], bool], Any]

#: Live messages folded together at most, when a backlog is being delivered (the initial load is one batch)...
LIVE_BATCH_MAX = 512
#: ...and the longest a live message waits in such a batch, in seconds.
LIVE_BATCH_DELAY = 0.02
#: A snapshot is used when the environment's events after it are at most this many, or as many as it holds.
SNAPSHOT_MAX_BEHIND = 1_000
#: Seconds between two checks, while following live, that no event of the environment was missed (``None`` or
#: ``0``: no check). Each wait is jittered by ±20% so that a fleet's clients do not ask together.
GAP_CHECK_INTERVAL = 30.0
#: Seconds an event the check found stored is given to arrive live before it counts as missed.
GAP_GRACE = 1.0


def ack_position(msg: Msg) -> tuple[int, int]:
    """``(stream sequence, messages pending)`` of a JetStream message, read from its reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`` (or the longer
    form with domain and account hash first). nats-py's ``msg.metadata`` parses the same subject into
    dataclasses and a datetime: about a third of a 10,000-flag cold start went there.
    """
    tokens = (msg.reply or "").split(".")
    n = len(tokens)
    try:
        if n == 9:
            return int(tokens[5]), int(tokens[8])
        if n >= 11:
            return int(tokens[7]), int(tokens[10])
    except ValueError:
        pass
    meta = msg.metadata  # anything else: nats-py's own parser (raises for a reply that is not an ack subject)
    return meta.sequence.stream, meta.num_pending


class NatsSource:
    """Feeds ``sink`` with batches of ``(stream sequence, event)`` for one environment, in stream order."""

    def __init__(
        self,
        servers: str | list[str],
        *,
        project: str,
        environment: str,
        sink: Sink,
        on_ready: Callable[[], None],
        name: str | None = None,
        reconnect_wait: float = 1.0,
        connect_timeout: float = 2.0,
        max_backoff: float = 10.0,
        connect_options: dict[str, Any] | None = None,
        jetstream_domain: str | None = None,
        on_status: Callable[[ClientStatus], None] | None = None,
        snapshots: bool = True,
        gap_check_interval: float | None = GAP_CHECK_INTERVAL,
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.filter = environment_filter(project, environment)
        self.live_filter = live_filter(project, environment)
        self._inbox_prefix = sdk_inbox_prefix(project, environment)
        self._status = ClientStatus.INITIALIZING
        self._on_status = on_status
        #: Messages skipped because they could not be decoded.
        self.bad_events = 0
        #: The last error met while connecting or subscribing (None once it recovers).
        self.last_error: BaseException | None = None
        self._sink = sink
        self._on_ready = on_ready
        self._name = name or f"flagstream-sdk:{project}/{environment}"
        self._reconnect_wait = reconnect_wait
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._connect_options = connect_options or {}
        self._domain = jetstream_domain
        self._nc: NATS | None = None
        self._sub: Any = None
        self._generation = 0
        self._caught_up = False  # of the current subscription
        self._loaded = False  # the initial state was folded once
        self._position = 0  # stream sequence of the last message folded (or skipped as bad)
        self._buffer: list[tuple[int, Event]] = []
        self._buffer_high = 0
        self._buffer_since = 0.0
        self._fresh = False  # the next flush replaces the state
        self._stream_created: Any = None
        self._task: asyncio.Task[None] | None = None
        self._resubscribe_task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned = False
        self._project, self._environment = project, environment
        #: Set when NATS refused this user the environment's subjects (a permissions violation): what to say.
        self._denied: CredentialError | None = None
        #: The plain subscription to the live subjects (``None``: following with the consumer), whether the
        #: consumer handed over to it, what it received before, and whether the server refused it.
        self._live_sub: Any = None
        self._following_live = False
        self._live_early: list[tuple[int, bytes, str]] = []
        self._live_denied = False
        self._flush_scheduled = False
        #: ``(consumer name, generation)`` of the loading consumer to delete once the live subscription follows.
        self._consumer_name = ""
        self._drop_task: asyncio.Task[None] | None = None
        #: Resubscribing tasks replaced by a newer one (cancelled, and cancelled again by ``close`` if they run on).
        self._replaced: list[asyncio.Task[None]] = []
        #: Start from the environment's snapshot when there is a usable one.
        self.snapshots = snapshots
        #: Snapshots that could not be used (corrupt, undecodable): logged, counted, and loaded the long way.
        self.bad_snapshots = 0
        #: The stream sequence of the snapshot the last full load started from (``None``: loaded the long way).
        self.snapshot_seq: int | None = None
        self._snapshot_denied: asyncio.Event | None = None
        #: Seconds between two gap checks (``None``/``0``: none), the checks made, and the gaps they found and
        #: repaired (events stored on the stream that the live subscription never delivered).
        self.gap_check_interval = gap_check_interval
        self.gap_checks = 0
        self.gaps_repaired = 0
        #: Set when the server refused the check (a NATS user made before it): no more checks.
        self.gap_check_denied = False
        self._gap_task: asyncio.Task[None] | None = None
        self._check_soon: asyncio.Event | None = None

    @property
    def following_live(self) -> bool:
        """True while following through the live subscription (no consumer on the server)."""
        return self._following_live

    @property
    def position(self) -> int:
        return self._position

    @property
    def status(self) -> ClientStatus:
        return self._status

    @status.setter
    def status(self, value: ClientStatus) -> None:
        if value is self._status:
            return
        self._status = value
        if self._on_status is not None:
            try:
                self._on_status(value)
            except Exception:
                log.exception("flagstream: status listener failed")

    @property
    def connection(self) -> NATS | None:
        """The NATS connection, once made (for the client's telemetry); ``None`` before and after."""
        return self._nc

    def replace_on_first_load(self) -> None:
        """The state held before the first load (a last-known-state file) is replaced by it, not added to."""
        if not self._loaded:
            self._fresh = True

    async def start(self) -> None:
        """Start connecting in the background; never raises because NATS is unreachable."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)
            if self.gap_check_interval:
                self._check_soon = asyncio.Event()
                self._gap_task = asyncio.create_task(self._watch_for_gaps(), name=f"{self._name} gap check")

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._task, self._resubscribe_task, self._drop_task, self._gap_task) if t is not None]
        tasks += self._replaced
        self._replaced = []
        # Cancelled again while they run on (one cancel can be lost: flagstream.aio); never waited for without end.
        await end_on_close("a NATS task", *tasks)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_WITHIN):  # flushing to a server that does not read waits on
                    await nc.close()
        self._sub = None
        self.status = ClientStatus.CLOSED

    # -- connection -----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._reconnect_wait
        while not self._closing:
            try:
                nc = _Connection()
                await nc.connect(
                    servers=self.servers,
                    name=self._name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=self._connect_timeout,  # type: ignore[arg-type]
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                    **{"inbox_prefix": self._inbox_prefix, **self._connect_options},
                )
                self._nc = nc
                if callable(getattr(type(nc), "_parse_header_lines", None)):
                    nc._parse_header_lines = _header_lines  # type: ignore[method-assign]
                break
            except Exception as exc:
                self.last_error = exc
                log.warning("flagstream: cannot connect to %s (%s); retrying in %.1fs", self.servers, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
        await self._subscribe_until_done()

    async def _disconnected(self) -> None:
        if not self._closing and self.status is not ClientStatus.CLOSED:
            log.warning("flagstream: disconnected from NATS; serving the last known flags")
            self.status = ClientStatus.STALE if self._loaded else ClientStatus.INITIALIZING

    async def _reconnected(self) -> None:
        if self._closing:
            return
        log.info("flagstream: reconnected to NATS; catching up from stream sequence %d", self._position + 1)
        if self._resubscribe_task is not None and not self._resubscribe_task.done():
            self._resubscribe_task.cancel()
            self._replaced = [t for t in self._replaced if not t.done()] + [self._resubscribe_task]  # for close()
        self._resubscribe_task = asyncio.create_task(self._subscribe_until_done())

    def _user(self) -> str | None:
        """The NATS user this client connects as (its connect options, else the first server URL's)."""
        user = self._connect_options.get("user")
        if user is None:
            with contextlib.suppress(ValueError):
                user = next((urlsplit(s).username for s in self.servers if urlsplit(s).username), None)
        return str(user) if user is not None else None

    async def _error(self, exc: Exception) -> None:
        # nats-py keeps retrying (initial connect included: max_reconnect_attempts=-1) and reports each failure
        # here: warn once per outage, not once per attempt.
        if f"direct.get.{STREAM}.".lower() in str(exc).lower() and "ermission" in str(exc):
            # A NATS user made before the gap check: follow without it (regenerating the users enables it).
            if not self.gap_check_denied:
                log.warning("flagstream: not allowed to check %s for missed live events (a NATS user made before "
                            "the check: regenerate the users); following without it", self.filter)  # fmt: skip
            self.gap_check_denied = True
            return
        if SNAPSHOT_STREAM.lower() in str(exc).lower() and "ermission" in str(exc):  # the server lowercases it
            # A server whose permissions predate snapshots: the long way, without waiting for the request to time out.
            log.info("flagstream: not allowed to read the environment's snapshot; loading it the long way")
            if self._snapshot_denied is not None:
                self._snapshot_denied.set()
            return
        if self._live_sub is not None and self.live_filter in str(exc) and "ermission" in str(exc):
            # A credential made before the live subjects existed: keep following with the consumer.
            self.last_error = exc
            log.warning("flagstream: not allowed to subscribe to %s; following with a consumer", self.live_filter)
            self._live_denied = True
            if self._following_live and not self._closing:
                self._resubscribe()
            return
        if "permissions violation" in str(exc).lower():
            # The user may not use this environment's subjects (or its inbox): say whose credential it is.
            first = self._denied is None
            self._denied = self.last_error = denied(self._user(), self._project, self._environment)
            if first:
                log.warning("flagstream: %s", self._denied)
            log.debug("flagstream: NATS refused: %r", exc)
            return
        self.last_error = exc
        if isinstance(exc, nats.errors.SlowConsumerError) and self._following_live:
            log.warning("flagstream: live messages were dropped (slow consumer); catching up from the stream")
            self._resubscribe()
            return
        if isinstance(exc, APIError) and self._sub is not None and self._nc is not None and self._nc.is_connected:
            # Most likely the ordered consumer's reset (after a gap or missed heartbeats) failing to re-create
            # the consumer: follow again from the last folded sequence with a new consumer.
            log.warning("flagstream: JetStream error while following (%r); subscribing again", exc)
            if not self._closing and (self._resubscribe_task is None or self._resubscribe_task.done()):
                self._resubscribe_task = asyncio.create_task(self._subscribe_until_done())
            return
        if self._check_soon is not None:
            self._check_soon.set()  # something unusual on the connection: check for missed events at once
        if self._warned:
            log.debug("flagstream: NATS error: %r", exc)
        else:
            self._warned = True
            log.warning("flagstream: NATS error (%r); the client keeps retrying", exc)

    def _resubscribe(self) -> None:
        if not self._closing and (self._resubscribe_task is None or self._resubscribe_task.done()):
            self._resubscribe_task = asyncio.create_task(self._subscribe_until_done())

    # -- gap check ------------------------------------------------------------------------------------------

    async def _watch_for_gaps(self) -> None:
        """Check for missed events every ``gap_check_interval`` seconds (jittered), at once when woken, and with
        a backoff from ``reconnect_wait`` while JetStream cannot be reached. Never raises."""
        interval, wake = self.gap_check_interval, self._check_soon
        if not interval or wake is None:
            return
        retry = 0.0  # while checks fail: the next wait (backoff), else 0
        while not self._closing and not self.gap_check_denied:
            wait = min(retry, interval) if retry else interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait * random.uniform(0.8, 1.2)):  # not wait_for: flagstream.aio
                    await wake.wait()
            wake.clear()
            try:
                reached = await self._check_for_gap()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("flagstream: the gap check failed", exc_info=True)
                reached = False
            retry = 0.0 if reached else min(max(retry * 2, self._reconnect_wait), self._max_backoff)

    async def _check_for_gap(self) -> bool:
        """One check; False when JetStream could not be asked (to be retried sooner)."""
        nc = self._nc
        if nc is None or not nc.is_connected or not self._following_live or self._closing or self.gap_check_denied:
            return True  # not following live: the consumer (or the coming resubscription) delivers everything
        self.gap_checks += 1
        api = f"$JS.{self._domain}.API" if self._domain else "$JS.API"
        try:
            reply = await nc.request(f"{api}.DIRECT.GET.{STREAM}.{self.filter}", b"", timeout=self._connect_timeout)
        except (TimeoutError, nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            log.debug("flagstream: cannot check %s for missed events (%r)", self.filter, exc)
            return False
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == "404":
            return True  # nothing stored for the environment
        try:
            last = int(headers["Nats-Sequence"]) if not status else 0
        except (KeyError, ValueError):
            last = 0
        if last <= 0:
            log.debug("flagstream: unexpected reply to the gap check of %s: %r", self.filter, headers)
            return False
        if last <= max(self._position, self._buffer_high):
            return True
        # Stored but not received: maybe on its way on the live subscription. Give it a moment.
        await asyncio.sleep(GAP_GRACE)
        if last <= max(self._position, self._buffer_high) or not self._following_live or self._closing:
            return True
        self.gaps_repaired += 1
        log.warning("flagstream: events of %s up to stream sequence %d were not received (last applied %d); "
                    "catching up from the stream", self.filter, last, self._position)  # fmt: skip
        self._resubscribe()
        return True

    # -- subscription ---------------------------------------------------------------------------------------

    async def _subscribe_until_done(self) -> None:
        delay = min(self._reconnect_wait, 0.25)
        while not self._closing and self._nc is not None and not self._nc.is_closed:
            if not self._nc.is_connected:
                return  # the reconnected callback will subscribe again
            try:
                await self._subscribe()
                self.last_error = self._denied = None
                self._warned = False
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A request refused for want of permission times out: the refusal (with whose credential) says why.
                self.last_error = self._denied or exc
                if self._nc.is_connected:
                    self.status = ClientStatus.ERROR
                if self._denied is None:
                    log.warning("flagstream: cannot follow %s (%r); retrying in %.1fs", self.filter, exc, delay)
                else:
                    log.debug("flagstream: cannot follow %s (%r): %s", self.filter, exc, self._denied)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _subscribe(self, snapshots: bool = True) -> None:
        assert self._nc is not None
        self._generation += 1
        generation = self._generation
        self._caught_up = False
        self._buffer = []
        self._buffer_high = 0
        self._following_live = False
        self._live_early = []
        old, self._sub = self._sub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        js = self._nc.jetstream(domain=self._domain)
        stream = await js.stream_info(STREAM)
        if self._live_sub is None and not self._live_denied and _republishes(stream.config):
            # Before the consumer: whatever it does not load, this receives.
            if isinstance(self._nc, _Connection) and self._nc.direct_delivery:
                self._live_sub = await self._nc.subscribe_direct(self.live_filter, self._on_live_raw)
            else:
                self._live_sub = await self._nc.subscribe(self.live_filter, cb=self._on_live)
        if self._position > 0 and (stream.created != self._stream_created or stream.state.last_seq < self._position):
            log.warning("flagstream: stream %s was recreated; reloading the whole state", STREAM)
            self._position = 0
            self._fresh = True
        self._stream_created = stream.created
        snapshot = None
        if self._position == 0:
            self.snapshot_seq = None
        if self._position == 0 and snapshots and self.snapshots:
            snapshot = await self._load_snapshot(js, stream)
            if generation != self._generation:
                return
        if snapshot is not None:
            # The state as of S, then the environment's events from S + 1: folded together once caught up.
            self._buffer = list(snapshot.events)
            self._buffer_high = snapshot.seq
            self.snapshot_seq = snapshot.seq
            config = ConsumerConfig(opt_start_seq=snapshot.seq + 1)
            policy = DeliverPolicy.BY_START_SEQUENCE
        elif self._position > 0:
            # Resume right after what was folded: only the gap is delivered.
            config = ConsumerConfig(opt_start_seq=self._position + 1)
            policy = DeliverPolicy.BY_START_SEQUENCE
        else:
            config = ConsumerConfig()
            policy = DeliverPolicy.LAST_PER_SUBJECT
        # A named consumer is created on $JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>: the filter is in the
        # subject, so a credential can be limited to its own environment (services/runtime/nats_auth.py). New name per
        # subscription; if nats-py's ordered-consumer reset cannot re-create it under that name, _error resubscribes.
        config.name = self._consumer_name = f"flagstream-sdk-{secrets.token_hex(8)}"

        async def on_message(msg: Msg) -> None:
            try:
                self._on_message(generation, msg)
            except Exception:
                self.bad_events += 1
                log.exception("flagstream: skipping message %s that could not be handled", msg.subject)

        sub = await js.subscribe(
            self.filter,
            stream=STREAM,
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
        )
        if generation != self._generation:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            return
        self._sub = sub
        try:
            info = await sub.consumer_info()
        except Exception:
            # The messages themselves still signal the catch-up; only an empty environment would wait for one.
            log.debug("flagstream: consumer info failed after subscribing", exc_info=True)
            return
        if snapshot is not None and generation == self._generation and not self._caught_up:
            behind = info.num_pending + (info.delivered.consumer_seq or 0)
            if behind > max(SNAPSHOT_MAX_BEHIND, len(snapshot.events)):
                log.info("flagstream: the snapshot is %d events behind; loading the environment the long way", behind)
                await self._subscribe(snapshots=False)
                return
        if generation == self._generation and info.num_pending == 0 and not info.delivered.consumer_seq:
            self._catch_up(generation)  # nothing to load: empty (or unchanged since the last position)

    async def _load_snapshot(self, js: Any, stream: Any) -> Snapshot | None:
        """The environment's snapshot if one can be used; else ``None`` (logged; counted when it is corrupt)."""
        denied = self._snapshot_denied = asyncio.Event()
        fetch = asyncio.ensure_future(fetch_snapshot(js, self._project, self._environment))
        refused = asyncio.ensure_future(denied.wait())
        try:
            await asyncio.wait({fetch, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._snapshot_denied = None
            # Not ``suppress(BaseException): await task``: that swallowed this task's own cancellation (a close).
            await cancel_and_wait(fetch, refused, within=CLOSE_WITHIN, again=CLOSE_WITHIN / 10)
        if not fetch.done() or fetch.cancelled():
            return None
        exc = fetch.exception()
        if exc is not None:
            if isinstance(exc, UnknownFormat):
                log.info("flagstream: ignoring the environment's snapshot: %s", exc)
            elif isinstance(exc, ValueError):  # SnapshotError: corrupt, truncated, undecodable
                self.bad_snapshots += 1
                log.warning("flagstream: the environment's snapshot cannot be used (%s); loading it the long way", exc)
            else:  # none yet (NotFoundError), no bucket (no responders), a timeout...
                log.debug("flagstream: no snapshot of %s (%r)", self.filter, exc)
            return None
        snapshot = fetch.result()
        if (snapshot.project, snapshot.environment) != (self._project, self._environment):
            self.bad_snapshots += 1
            log.warning("flagstream: the snapshot stored for %s is of %s/%s; loading it the long way", self.filter,
                        snapshot.project, snapshot.environment)  # fmt: skip
            return None
        if snapshot.stream_created != stream_id(stream.created) or snapshot.seq > stream.state.last_seq:
            log.info("flagstream: the environment's snapshot is of another stream; loading it the long way")
            return None
        return snapshot

    def _on_message(self, generation: int, msg: Msg) -> None:
        if generation != self._generation or self._following_live:
            return  # a message of a replaced subscription, or of the loading consumer after the hand-over
        seq, pending = ack_position(msg)
        if seq > max(self._position, self._buffer_high):  # else a redelivery (the ordered consumer reset itself)
            try:
                event = decode_event(msg.data)
            except DecodeError as exc:
                self.bad_events += 1
                log.error("flagstream: skipping undecodable message %s at sequence %d: %s", msg.subject, seq, exc)
            else:
                if not self._buffer:
                    self._buffer_since = time.monotonic()
                self._buffer.append((seq, event))
            self._buffer_high = seq
        if pending == 0:
            self._flush()
            self._catch_up(generation)
        elif self._caught_up and (
            len(self._buffer) >= LIVE_BATCH_MAX or time.monotonic() - self._buffer_since >= LIVE_BATCH_DELAY
        ):
            self._flush()

    def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        fresh, self._fresh = self._fresh, False
        try:
            self._sink(batch, fresh)
        except Exception:
            log.exception("flagstream: applying %d events failed", len(batch))
        self._position = max(self._position, self._buffer_high)

    def _catch_up(self, generation: int) -> None:
        if generation != self._generation or self._caught_up:
            return
        if self.snapshot_seq is not None and not self._loaded:
            with gc_paused():  # the snapshot's events: tens of thousands of objects that all stay
                self._flush()
        else:
            self._flush()
        self._caught_up = True
        if self._live_sub is not None and not self._live_denied:
            self._hand_over()
        self.status = ClientStatus.READY
        if not self._loaded:
            self._loaded = True
            self._on_ready()

    # -- following with the live subscription ---------------------------------------------------------------

    def _hand_over(self) -> None:
        """Loaded: apply what the live subscription received meanwhile, follow with it, delete the consumer."""
        early, self._live_early = self._live_early, []
        self._following_live = True
        for seq, data, subject in early:
            self._live_message(seq, data, subject)
        self._flush()
        sub, self._sub = self._sub, None
        if sub is not None:
            self._drop_task = asyncio.create_task(self._drop_consumer(sub, self._consumer_name))

    async def _drop_consumer(self, sub: Any, name: str) -> None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if self._nc is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):  # else the server removes it after its inactivity threshold
                await self._nc.jetstream(domain=self._domain).delete_consumer(STREAM, name)

    async def _on_live(self, msg: Msg) -> None:
        """A live message through nats-py's own delivery (a nats-py version the direct path was not checked on)."""
        try:
            seq = int((msg.headers or {})["Nats-Sequence"])
        except (KeyError, ValueError):
            self.bad_events += 1
            log.error("flagstream: skipping live message %s without a stream sequence", msg.subject)
            return
        if self._following_live:
            self._live_message(seq, msg.data, msg.subject)
        else:
            self._live_early.append((seq, msg.data, msg.subject))

    def _on_live_raw(self, subject: bytes, data: bytes, headers: bytes | None) -> None:
        """A live message straight from the connection's message processing (``_Connection``): the stream
        sequence read from the raw headers, no ``Msg``, no queue, no task switch. Never raises."""
        try:
            seq = stream_sequence(headers)
            if seq is None:
                self.bad_events += 1
                log.error("flagstream: skipping live message %r without a stream sequence", subject)
            elif not self._following_live:
                self._live_early.append((seq, data, subject))
            elif self._take_live(seq, data, subject):
                nc = self._nc
                if nc is not None and nc.read_pending():  # more of this read to parse: one fold for all of it
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        asyncio.get_running_loop().call_soon(self._flush_live)
                else:  # the last message of this read: fold now, without another turn of the loop
                    self._flush_scheduled = False
                    self._flush()
        except Exception:  # a fault of this client must not reach nats-py's read loop (it would drop the read)
            self.bad_events += 1
            log.exception("flagstream: skipping live message %r that could not be handled", subject)

    def _live_message(self, seq: int, data: bytes, subject: str | bytes) -> None:
        if self._take_live(seq, data, subject) and not self._flush_scheduled:
            self._flush_scheduled = True  # one fold for everything that arrived in the same read
            asyncio.get_running_loop().call_soon(self._flush_live)

    def _take_live(self, seq: int, data: bytes, subject: str | bytes) -> bool:
        """Decode a live message into the buffer (or count it as bad); False for one the consumer loaded."""
        if seq <= max(self._position, self._buffer_high):
            return False  # loaded by the consumer already
        try:
            event = decode_event(data)
        except DecodeError as exc:
            self.bad_events += 1
            if isinstance(subject, bytes):
                subject = subject.decode(errors="replace")
            log.error("flagstream: skipping undecodable message %s at sequence %d: %s", subject, seq, exc)
        else:
            self._buffer.append((seq, event))
        self._buffer_high = seq
        return True

    def _flush_live(self) -> None:
        if not self._flush_scheduled:
            return  # folded already (the direct path folds at the end of a read)
        self._flush_scheduled = False
        if self._buffer or self._buffer_high > self._position:
            self._flush()


#: The nats-py versions whose message processing ``_Connection`` was checked against (the parser's call of
#: ``_process_msg(sid, subject, reply, data, headers)`` with raw bytes, ``_ps.buf``, ``stats``, ``_subs``, ``_sid``);
#: pyproject.toml pins nats-py to them and tests/sdk/test_sdk_live_direct.py fails if the direct path is off.
CHECKED_NATS_PY = ("2.16.0",)

_SEQUENCE_HEADER = b"\r\nNats-Sequence:"


def stream_sequence(headers: bytes | None) -> int | None:
    """The ``Nats-Sequence`` header of a message's raw NATS headers (``NATS/1.0\\r\\n...``), as nats-py would read
    it (the last one wins); ``None`` if there is none or it is not a number."""
    if not headers:
        return None
    start = headers.rfind(_SEQUENCE_HEADER)
    if start < 0:
        return None
    start += len(_SEQUENCE_HEADER)
    end = headers.find(b"\r\n", start)
    try:
        value = int(headers[start:end] if end >= 0 else headers[start:])
    except ValueError:
        return None
    return value if value > 0 else None


class _Connection(NATS):
    """nats-py's client, with some subscriptions served straight from its message processing.

    nats-py hands every message to a subscription as a ``Msg`` object through an ``asyncio.Queue`` read by the
    subscription's own task: per message a dataclass, a header dict, a queue put and get and a task switch, most of
    a following client's work per live change. A subscription made with ``subscribe_direct`` is instead handled by
    a plain function called from ``_process_msg`` with the raw subject, payload and headers; it stays a nats-py
    subscription in every other way (re-sent after a reconnect, closed with the connection). Everything else,
    JetStream included, takes nats-py's path. Only on the nats-py versions listed in ``CHECKED_NATS_PY``
    (``direct_delivery``); elsewhere the SDK subscribes with a callback as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Callable[[bytes, bytes, bytes | None], None]] = {}
        self._more = False  # while reads are dispatched here: more messages of the same read follow

    @property
    def direct_delivery(self) -> bool:
        return nats_py_version() in CHECKED_NATS_PY

    async def subscribe_direct(self, subject: str, handler: Callable[[bytes, bytes, bytes | None], None]) -> Any:
        """Subscribe to ``subject`` with ``handler(subject, data, raw headers)`` called for each message, in order,
        from the connection's read loop; it must not raise. Returns the nats-py subscription."""
        sid = self._sid + 1  # the id ``subscribe`` takes before its first await: known before any message comes
        self._direct[sid] = handler
        try:
            sub = await self.subscribe(subject)  # no callback: no task, no queue in use
        except BaseException:
            self._direct.pop(sid, None)
            raise
        if sub._id != sid:  # a nats-py that numbers subscriptions otherwise: the version check should prevent it
            self._direct.pop(sid, None)
            await sub.unsubscribe()
            raise RuntimeError("nats-py numbered the subscription unexpectedly; direct delivery unavailable")
        return sub

    def read_pending(self) -> bool:
        """Whether bytes of the current read remain to be parsed (more messages follow in the same read)."""
        return self._more or bool(self._ps.buf)

    async def _process_connect_init(self) -> None:
        await super()._process_connect_init()
        if self.direct_delivery:
            self._read_directly()

    def _read_directly(self) -> None:
        """Let the socket's reads reach the direct subscriptions without waking nats-py's read loop.

        nats-py reads through an ``asyncio.StreamReader``: each read is buffered, wakes the read loop's task, which
        parses it with its regular expressions. Here the reader's ``feed_data`` (called by the transport with each
        read) first takes the whole messages of direct subscriptions at the start of the read, when the read loop
        is idle (waiting on an empty buffer, its parser holding no partial message): in order, since nothing came
        before them that is not parsed yet. Whatever else the read holds (PING, INFO, -ERR, other subscriptions'
        messages, a message cut by the read's end) goes to nats-py as before, from there on."""
        transport = self._transport
        reader = getattr(transport, "_io_reader", None)
        if type(transport) is not TcpTransport or type(reader) is not asyncio.StreamReader:
            return  # websocket (or anything else): nats-py's path
        if not (hasattr(reader, "_waiter") and hasattr(reader, "_buffer")):
            return  # a Python whose StreamReader keeps its state otherwise: nats-py's path
        feed = reader.feed_data
        parser = self._ps

        def feed_data(data: bytes) -> None:
            if (
                self._direct
                and reader._waiter is not None  # type: ignore[attr-defined]
                and not reader._buffer  # type: ignore[attr-defined]
                and not parser.buf
                and parser.state == AWAITING_CONTROL_LINE
            ):
                taken = self._dispatch(data)
                if taken:
                    if taken == len(data):
                        return
                    data = data[taken:]
            feed(data)

        reader.feed_data = feed_data  # type: ignore[method-assign]

    def _dispatch(self, data: bytes) -> int:
        """Hand the whole ``HMSG`` messages of direct subscriptions at the start of ``data`` to their handlers;
        return how many bytes were taken (what follows is left to nats-py's parser)."""
        pos, n = 0, len(data)
        direct, subs, stats = self._direct, self._subs, self.stats
        try:
            while data.startswith(b"HMSG ", pos):
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    break
                parts = data[pos + 5 : eol].split()
                if len(parts) != 4:  # subject sid header-size total-size: a reply subject is not ours
                    break
                sid, header_size, total = int(parts[1]), int(parts[2]), int(parts[3])
                handler = direct.get(sid)
                start, end = eol + 2, eol + 2 + total
                if handler is None or sid not in subs or not 0 < header_size <= total or data[end : end + 2] != b"\r\n":
                    break  # not ours, not whole, or not well formed: nats-py's parser decides
                pos = end + 2
                payload = data[start + header_size : end]
                stats["in_msgs"] += 1
                stats["in_bytes"] += len(payload)
                self._more = pos < n
                handler(parts[0], payload, data[start : start + header_size])
        except ValueError:
            pass  # a size that is not a number: nats-py's parser reports it
        finally:
            self._more = False
        return pos

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:  # type: ignore[override]
        handler = self._direct.get(sid)
        if handler is None or sid not in self._subs:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        stats = self.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        handler(subject, data, headers)

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._direct.pop(sid, None)
        super()._remove_sub(sid, max_msgs)


def nats_py_version() -> str:
    from nats.aio.client import __version__

    return str(__version__)


def _header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines``, same result, without a Python-level loop over the characters
    of each name: every live message carries five headers, and that loop was a quarter of the client's work per
    change (bench/propagation_fleet.py)."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if key and ((parts := key.split()) == [] or len(parts) > 1 or parts[0] != key):
            continue  # whitespace inside the name: not a header
        out[key] = value.strip().decode("utf-8", "replace")
    return out


def _republishes(config: Any) -> bool:
    """Whether a stream (not a mirror) republishes every event on the live subjects."""
    republish = getattr(config, "republish", None)
    if republish is None or getattr(config, "mirror", None) is not None:
        return False
    return republish.src in (None, ">", all_subjects()) and republish.dest == all_live_subjects()
