"""Telemetry the SDK clients publish over core NATS (never stored in the event stream), for the admin side.

Subjects: ``flagstream-telemetry.<project>.<environment>.heartbeat`` and ``...counts``. They are deliberately
NOT under ``flagstream.>``: the event stream captures every subject there, and telemetry must not enter the
append-only event log (nor be seen by the projector as bad events).

Evolution rules as for events: new fields get defaults, a field never changes type, unknown fields are ignored.
"""

from __future__ import annotations

import zlib
from datetime import datetime

import msgspec
from msgspec import Struct

TELEMETRY_PREFIX = "flagstream-telemetry"


class AppliedChange(Struct, frozen=True, kw_only=True):
    """One batch of events applied by an SDK instance: the stream sequence reached and when (wall time)."""

    seq: int
    at: datetime


class Heartbeat(Struct, frozen=True, kw_only=True):
    instance_id: str
    sdk_version: str
    project: str
    environment: str
    #: Stream sequence of the last event applied.
    seq: int
    #: Changes applied since the previous heartbeat (capped; the oldest are dropped first).
    applied: tuple[AppliedChange, ...] = ()
    started_at: datetime
    sent_at: datetime
    #: The client's status (READY, STALE...).
    status: str = ""
    #: Attribute NAMES (never values) of the contexts the instance evaluated, per context kind: sampled from a
    #: few evaluations per interval (``flagstream.telemetry.AttributeNames``). Sent when new ones were seen and
    #: every few reports; empty otherwise (nothing new: the receiver keeps what it knows). Absent from SDKs
    #: older than this field: read as empty.
    attributes: dict[str, list[str]] = msgspec.field(default_factory=dict)


class FlagCount(Struct, frozen=True, kw_only=True):
    flag: str
    #: The variation key served; ``None`` for evaluations that served the caller's default (errors).
    variation: str | None
    count: int


class EvaluationCounts(Struct, frozen=True, kw_only=True):
    """Evaluations per flag and variation by one instance between ``since`` and ``until``."""

    instance_id: str
    project: str
    environment: str
    since: datetime
    until: datetime
    counts: tuple[FlagCount, ...] = ()


def heartbeat_subject(project: str, environment: str) -> str:
    return f"{TELEMETRY_PREFIX}.{project}.{environment}.heartbeat"


def counts_subject(project: str, environment: str) -> str:
    return f"{TELEMETRY_PREFIX}.{project}.{environment}.counts"


def telemetry_filter(project: str = "*", environment: str = "*") -> str:
    """What an aggregator subscribes to (both kinds of message)."""
    return f"{TELEMETRY_PREFIX}.{project}.{environment}.*"


_encoder = msgspec.json.Encoder()
_heartbeat_decoder = msgspec.json.Decoder(Heartbeat)
_counts_decoder = msgspec.json.Decoder(EvaluationCounts)


def encode_telemetry(message: Heartbeat | EvaluationCounts) -> bytes:
    return _encoder.encode(message)


def decode_heartbeat(data: bytes) -> Heartbeat:
    return _heartbeat_decoder.decode(data)


def decode_counts(data: bytes) -> EvaluationCounts:
    return _counts_decoder.decode(data)


# -- the aggregator's running totals (stored by the admin, not sent by SDKs) -----------------------------------


class VariationTotal(Struct, frozen=True, kw_only=True):
    flag: str
    #: ``None``: evaluations that served the caller's default (errors).
    variation: str | None
    total: int


class EnvironmentTotals(Struct, frozen=True, kw_only=True):
    project: str
    environment: str
    totals: tuple[VariationTotal, ...] = ()
    #: When each flag was last evaluated, as far as these totals go.
    last_evaluated: dict[str, datetime] = msgspec.field(default_factory=dict)


class FleetTotals(Struct, frozen=True, kw_only=True):
    """The fleet aggregator's evaluation totals, with the telemetry messages they include: the record a replica
    that takes the aggregation over starts from (key ``_totals`` of the ``flagstream_fleet`` KV bucket, written by
    the aggregating admin replica; ``services/fleet/feed.py``). Evolution rules as for the messages above."""

    #: Since when the totals count (the first aggregator's start, carried from holder to holder).
    counting_since: datetime
    written_at: datetime
    #: The admin replica that wrote it.
    replica: str = ""
    #: Stream sequences of ``FLAGSTREAM_FLEET`` the totals include, as ``(first, last)`` ranges, oldest first.
    counted: tuple[tuple[int, int], ...] = ()
    environments: tuple[EnvironmentTotals, ...] = ()


_totals_decoder = msgspec.json.Decoder(FleetTotals)


def encode_totals(record: FleetTotals) -> bytes:
    """zlib-compressed JSON (10,000 counters of an environment are about 500 kB of JSON)."""
    return zlib.compress(_encoder.encode(record), 1)


def decode_totals(data: bytes) -> FleetTotals:
    return _totals_decoder.decode(zlib.decompress(data))
