"""The event store: JetStream seen as an append-only log of whole-state events, one subject per entity.

* ``last(subject)``: the entity's latest event and its stream sequence (a direct get, no consumer).
* ``append(...)``: publish one event with ``Nats-Expected-Last-Subject-Sequence`` (optimistic concurrency) and
  optionally ``Nats-Msg-Id`` (idempotency within the stream's duplicate window).
* ``load_latest(js, filter)``: the latest event of every subject matching a filter, with one ephemeral
  ordered consumer delivering ``LAST_PER_SUBJECT``: O(entities), not O(history).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
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
#: Seconds within which JetStream drops a repeated ``Nats-Msg-Id`` (the stream's duplicate window).
DUPLICATE_WINDOW = stream_config().duplicate_window


class WrongLastSequence(Exception):
    """The subject moved on since it was read: somebody else wrote first."""


class CorruptEvent(Exception):
    """A stored message that does not decode as an event."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as stored: its stream sequence (the entity's version, the ETag) and the event."""

    seq: int
    event: AnyEvent  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    duplicate: bool


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

    async def last(self, subject: str) -> Stored | None:
        """The latest event on ``subject``, or None if nothing was ever written there."""
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

    async def append(self, subject: str, event: AnyEvent, *, expected_seq: int, msg_id: str | None) -> Appended:  # type: ignore[valid-type]
        """Append ``event`` if ``subject``'s last sequence is still ``expected_seq`` (0: nothing yet).

        Raises ``WrongLastSequence`` otherwise. With ``msg_id``, a repeat within the duplicate window is not
        stored again: the answer is the original's sequence with ``duplicate=True``.
        """
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

    async def find_msg_id(self, subject: str, msg_id: str) -> int | None:
        """Stream sequence of the message stored on ``subject`` with ``msg_id`` in the last ``lookback`` seconds.

        Read-only: the subject's messages since then are walked with direct gets (``start_time`` then
        ``next_by_subj``); one entity gets few writes in a couple of minutes.
        """
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
        return await load_latest(self.js, filter_subject, stream=self.stream)

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
        await asyncio.wait_for(done.wait(), max_wait)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found
