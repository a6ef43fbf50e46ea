"""Telemetry the SDK clients publish over core NATS (never stored in the event stream), for the admin side.

Subjects: ``flagstream-telemetry.<project>.<environment>.heartbeat`` and ``...counts``. They are deliberately
NOT under ``flagstream.>``: the event stream captures every subject there, and telemetry must not enter the
append-only event log (nor be seen by the projector as bad events).

Evolution rules as for events: new fields get defaults, a field never changes type, unknown fields are ignored.
"""

from __future__ import annotations

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
