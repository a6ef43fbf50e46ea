"""The event store: JetStream seen as an append-only log of whole-state events, one subject per entity.

* ``last(subject)``: the entity's latest event and its stream sequence (a direct get, no consumer).
* ``append(...)``: publish one event with ``Nats-Expected-Last-Subject-Sequence`` (optimistic concurrency) and
  optionally ``Nats-Msg-Id`` (idempotency within the stream's duplicate window).
* ``append_all(...)``: several events on several subjects as one JetStream atomic batch: all are stored, in
  order and next to each other, or none is (a stale expected sequence on any one refuses the whole batch).
* ``load_latest(js, filter)``: the latest event of every subject matching a filter, with one ephemeral
  ordered consumer delivering ``LAST_PER_SUBJECT``: O(entities), not O(history).

Two hooks serve change requests (``services/requests``): ``guard``, called with every batch before it is
appended (it may refuse it, or mark its events), and ``staging()``, a block in which appends are recorded instead
of stored (a dry run of any write, seen by the block's own reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from ...events import STREAM, AnyEvent, DecodeError, decode_event, encode_event
from ..runtime import stream_config

log = logging.getLogger("flagstream.admin.store")

#: JetStream API error: ``Nats-Expected-Last-Subject-Sequence`` did not match.
WRONG_LAST_SEQUENCE = 10071
#: JetStream API error: an atomic batch repeats a ``Nats-Msg-Id`` already stored (a retried batch).
BATCH_DUPLICATE = 10201
#: The most messages JetStream takes in one atomic batch.
MAX_BATCH = 1000
#: Seconds within which JetStream drops a repeated ``Nats-Msg-Id`` (the stream's duplicate window).
DUPLICATE_WINDOW = stream_config().duplicate_window


class WrongLastSequence(Exception):
    """The subject moved on since it was read: somebody else wrote first."""


class DuplicateBatch(Exception):
    """An atomic batch carrying message ids that are already stored: the same change was written before."""


class CorruptEvent(Exception):
    """A stored message that does not decode as an event."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as stored: its stream sequence (the entity's version, the ETag) and the event."""

    seq: int
    event: AnyEvent  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class Append:
    """One event of an atomic batch: where it goes, the subject's expected last sequence, its message id."""

    subject: str
    event: AnyEvent  # type: ignore[valid-type]
    expected_seq: int
    msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    duplicate: bool


#: Called with every batch about to be appended (outside ``staging``): returns the batch to append (its events
#: possibly marked), or raises an ``AdminError`` to refuse it whole.
Guard = Callable[[Sequence[Append]], Awaitable[Sequence[Append]]]


@dataclass
class Stage:
    """The writes of a ``staging()`` block: recorded in order instead of appended, and seen by the block's reads.

    A subject written in the block keeps reporting the version it had before (its ``base``), so ``If-Match`` and
    expected sequences are compared with what is stored, and a second write to it expects the same version.
    """

    #: Subject -> its stream sequence before the block's first write to it (0: nothing there yet).
    bases: dict[str, int] = field(default_factory=dict)
    #: Every event written in the block, in order, with its subject.
    writes: list[tuple[str, AnyEvent]] = field(default_factory=list)  # type: ignore[valid-type]
    #: Subject -> the last event written to it in the block.
    last: dict[str, AnyEvent] = field(default_factory=dict)  # type: ignore[valid-type]

    def stored(self, subject: str) -> Stored | None:
        if subject not in self.last:
            return None
        return Stored(self.bases[subject], self.last[subject])

    def record(self, items: Sequence[Append], current: dict[str, int]) -> list[int]:
        """Check each item's expected sequence against ``current`` (subject -> version now) and record them."""
        for item in items:
            if item.expected_seq != current[item.subject]:
                raise WrongLastSequence(f"{item.subject} is at {current[item.subject]}, not {item.expected_seq}")
        for item in items:
            self.bases.setdefault(item.subject, current[item.subject])
            self.writes.append((item.subject, item.event))
            self.last[item.subject] = item.event
        return [current[item.subject] for item in items]


_STAGE: ContextVar[Stage | None] = ContextVar("flagstream_stage", default=None)


@contextlib.contextmanager
def staging() -> Iterator[Stage]:
    """A block whose appends (through any ``EventStore``) are recorded in a ``Stage`` instead of stored: what a
    write would do, without doing it. Reads in the block see the staged writes; nothing else does."""
    stage = Stage()
    token = _STAGE.set(stage)
    try:
        yield stage
    finally:
        _STAGE.reset(token)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject matches a filter (``*``: one token, ``>``: the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _decode(subject: str, seq: int, data: bytes | None) -> AnyEvent:  # type: ignore[valid-type]
    try:
        return decode_event(data or b"")
    except DecodeError as exc:
        raise CorruptEvent(f"stored message {seq} on {subject} is not an event: {exc}") from exc


class EventStore:
    """Reads and appends events of one JetStream stream."""

    def __init__(
        self, nc: NATS, stream: str = STREAM, *, lookback: float = DUPLICATE_WINDOW + 30, timeout: float = 5.0
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.stream = stream
        #: How far back an Idempotency-Key is looked for (at least the stream's duplicate window).
        self.lookback = lookback
        self.timeout = timeout
        self.api_prefix = "$JS.API"
        #: Checks every batch before it is appended (None: none); see ``Guard``.
        self.guard: Guard | None = None

    async def last(self, subject: str) -> Stored | None:
        """The latest event on ``subject``, or None if nothing was ever written there."""
        stage = _STAGE.get()
        if stage is not None and (staged := stage.stored(subject)) is not None:
            return staged
        return await self._last(subject)

    async def _last(self, subject: str) -> Stored | None:
        try:
            msg = await self.js.get_last_msg(self.stream, subject, direct=True)
        except NotFoundError:
            return None
        assert msg.seq is not None
        return Stored(msg.seq, _decode(subject, msg.seq, msg.data))

    async def at(self, seq: int) -> Stored:
        """The event stored at stream sequence ``seq``."""
        msg = await self.js.get_msg(self.stream, seq=seq, direct=True)
        return Stored(seq, _decode(msg.subject or "?", seq, msg.data))

    async def append(  # type: ignore[valid-type]
        self, subject: str, event: AnyEvent, *, expected_seq: int, msg_id: str | None, _guarded: bool = False
    ) -> Appended:
        """Append ``event`` if ``subject``'s last sequence is still ``expected_seq`` (0: nothing yet).

        Raises ``WrongLastSequence`` otherwise. With ``msg_id``, a repeat within the duplicate window is not
        stored again: the answer is the original's sequence with ``duplicate=True``.
        """
        if _STAGE.get() is not None:
            (seq,) = await self._stage([Append(subject, event, expected_seq, msg_id)])
            return Appended(seq, False)
        if self.guard is not None and not _guarded:  # (``append_all`` of one event guarded it already)
            (item,) = await self.guard([Append(subject, event, expected_seq, msg_id)])
            subject, event = item.subject, item.event
        return await self._append(subject, event, expected_seq=expected_seq, msg_id=msg_id)

    async def _stage(self, items: Sequence[Append]) -> list[int]:
        stage = _STAGE.get()
        assert stage is not None
        current = {}
        for item in items:
            if item.subject not in current:
                found = stage.stored(item.subject) or await self._last(item.subject)
                current[item.subject] = found.seq if found is not None else 0
        return stage.record(items, current)

    async def _append(self, subject: str, event: AnyEvent, *, expected_seq: int, msg_id: str | None) -> Appended:  # type: ignore[valid-type]
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expected_seq)}
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        try:
            ack = await self.js.publish(subject, encode_event(event), stream=self.stream, headers=headers)
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise WrongLastSequence(str(exc)) from exc
            raise
        return Appended(ack.seq, bool(ack.duplicate))

    async def append_all(
        self, items: Sequence[Append], *, before_commit: Callable[[], Awaitable[None]] | None = None
    ) -> list[int]:
        """Append every item or none, as one atomic batch (JetStream 2.12+, the stream's ``allow_atomic``); the
        stream sequences, in order. ``WrongLastSequence`` if any item's subject moved on; ``DuplicateBatch`` if
        the batch carries message ids already stored. One item is a plain ``append``.

        Several items may go to one subject: the first carries the expected sequence, the next ones follow it.
        ``before_commit`` is awaited once every message but the committing one is sent (a fault-injection point
        for tests of a process killed in the middle of a batch)."""
        if _STAGE.get() is not None:
            return await self._stage(items)
        if self.guard is not None:
            items = await self.guard(items)
        if len(items) == 1 and before_commit is None:
            (one,) = items
            # Through ``append`` (what the admin's metrics count), not guarded a second time.
            appended = await self.append(
                one.subject, one.event, expected_seq=one.expected_seq, msg_id=one.msg_id, _guarded=True
            )
            if appended.duplicate:
                raise DuplicateBatch(f"message id {one.msg_id} is already stored")
            return [appended.seq]
        if not 0 < len(items) <= MAX_BATCH:
            raise ValueError(f"an atomic batch holds 1 to {MAX_BATCH} events, not {len(items)}")
        batch = uuid.uuid4().hex
        reply = None
        expected: set[str] = set()
        for n, item in enumerate(items, 1):
            headers = {"Nats-Batch-Id": batch, "Nats-Batch-Sequence": str(n)}
            if item.subject not in expected:  # JetStream checks it against the stream before the batch
                headers["Nats-Expected-Last-Subject-Sequence"] = str(item.expected_seq)
                expected.add(item.subject)
            if item.msg_id:
                headers["Nats-Msg-Id"] = item.msg_id
            data = encode_event(item.event)
            if n < len(items):
                await self.nc.publish(item.subject, data, headers=headers)
            else:
                if before_commit is not None:
                    await self.nc.flush()
                    await before_commit()
                headers["Nats-Batch-Commit"] = "1"
                reply = await self.nc.request(item.subject, data, headers=headers, timeout=self.timeout)
        assert reply is not None
        answer = json.loads(reply.data or b"{}")
        error = answer.get("error")
        if error:
            code = error.get("err_code")
            if code == WRONG_LAST_SEQUENCE:
                raise WrongLastSequence(error.get("description", ""))
            if code == BATCH_DUPLICATE:
                raise DuplicateBatch(error.get("description", ""))
            raise APIError(code=error.get("code"), err_code=code, description=error.get("description"))
        last = int(answer["seq"])
        return list(range(last - len(items) + 1, last + 1))

    async def find_msg_id(self, subject: str, msg_id: str) -> int | None:
        """Stream sequence of the message stored on ``subject`` with ``msg_id`` in the last ``lookback`` seconds.

        Read-only: the subject's messages since then are walked with direct gets (``start_time`` then
        ``next_by_subj``); one entity gets few writes in a couple of minutes. None while staging: a dry run
        never answers with an earlier write.
        """
        if _STAGE.get() is not None:
            return None
        request: dict[str, Any] = {
            "start_time": (datetime.now(UTC) - timedelta(seconds=self.lookback)).isoformat(),
            "next_by_subj": subject,
        }
        api = f"{self.api_prefix}.DIRECT.GET.{self.stream}"
        while True:
            reply = await self.nc.request(api, json.dumps(request).encode(), timeout=self.timeout)
            headers = reply.headers or {}
            if not reply.data and headers.get("Status"):
                if headers["Status"] == "404":
                    return None
                raise APIError.from_msg(reply)
            seq = int(headers["Nats-Sequence"])
            if headers.get("Nats-Msg-Id") == msg_id:
                return seq
            request = {"seq": seq + 1, "next_by_subj": subject}

    async def latest(self, filter_subject: str) -> dict[str, Stored]:
        found = await load_latest(self.js, filter_subject, stream=self.stream)
        stage = _STAGE.get()
        if stage is not None:
            for subject in stage.last:
                if subject_matches(filter_subject, subject):
                    found[subject] = stage.stored(subject)  # type: ignore[assignment]
        return found

    async def last_seq(self) -> int:
        """The stream's last sequence now (0: empty): how far a read model must have folded to be current."""
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def reachable(self) -> bool:
        try:
            await self.js.stream_info(self.stream)
        except Exception:
            return False
        return True


async def load_latest(
    js: JetStreamContext, filter_subject: str, *, stream: str = STREAM, max_wait: float = 30.0
) -> dict[str, Stored]:
    """The latest event of every subject matching ``filter_subject``: ``{subject: Stored}``.

    Stateless: an ephemeral ordered push consumer with ``DeliverPolicy.LAST_PER_SUBJECT``, read until a
    message says ``num_pending == 0``; consumer info right after subscribing tells the empty case apart.
    Undecodable messages are logged and skipped.
    """
    found: dict[str, Stored] = {}
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        try:
            found[msg.subject] = Stored(seq, decode_event(msg.data))
        except DecodeError:
            log.warning("skipping undecodable message %s on %s", seq, msg.subject)
        if meta.num_pending == 0:
            done.set()

    sub = await js.subscribe(
        filter_subject,
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    try:
        info = await sub.consumer_info()
        if info.num_pending == 0 and not info.delivered.consumer_seq:
            done.set()
        async with asyncio.timeout(max_wait):  # not wait_for, which can drop the caller's cancellation
            await done.wait()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found
