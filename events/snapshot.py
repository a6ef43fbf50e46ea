"""The compacted snapshot of one environment: its state as of a stream sequence, in one blob of a few big messages.

An SDK client that loads the last event of each of 10,000 subjects spends most of its start on 10,000 messages
(nats-py's per-message work) and 10,000 decodings. A snapshot carries the same events (the last one of every subject
of the environment, each with its stream sequence) as of stream sequence ``seq``, written by one service replica
(``services/snapshots``): the client decodes it in one call, folds it as it would fold those messages, and follows
from ``seq + 1``. Data only: no I/O here; the writer and the SDK move the bytes.

**Where.** The KV bucket ``flagstream_snapshots``, keys ``<project>.<environment>.<part>`` (part 0, 1, ...): an SDK
credential may read its own environment's keys and no other (``services/runtime/nats_auth.py``), with JetStream's
direct get of the last message of a subject.

**Format 1.** The blob is ``zlib(msgpack(Snapshot))``, cut in parts of at most ``PART_SIZE`` bytes. Every part
carries headers: ``Flagstream-Snapshot-Format`` (1), ``-Id`` (random, the same for the parts of one snapshot),
``-Part`` (``i/n``), and part 0 also ``-Crc32`` (of the whole blob) and ``-Seq``. The writer stores parts 1..n-1
first and part 0 last, so a part 0 names only parts already stored; a reader that meets a part of another id (a
snapshot written while it read) reads again or falls back. A reader that does not know the format (a newer writer)
ignores the snapshot and loads the environment the long way: ``UnknownFormat``.

**Checks.** Decoding is msgspec's with the types of the events, every check included (keys, sizes, union tags):
exactly what a client applies to an event it reads from the stream. The writer decoded every event with the same
types before writing it, so a snapshot that passes the CRC and decodes holds only events a client would have
accepted one by one. The checks are not skipped: with the key check's cache (``model.py``) they cost little next
to building the objects.

Evolution: a field added to ``Snapshot`` gets a default (an older reader ignores it, msgpack maps by name); a change
an older reader would misread is a new ``FORMAT``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import msgspec

from .catalog import AnyEvent

#: The KV bucket of the snapshots (one stream, ``KV_flagstream_snapshots``).
SNAPSHOT_BUCKET = "flagstream_snapshots"
#: Its stream's name, which JetStream's direct get names.
SNAPSHOT_STREAM = f"KV_{SNAPSHOT_BUCKET}"
#: The format this code writes and reads.
FORMAT = 1
#: The largest part, in bytes: well under nats-server's default maximum message (1 MiB), headers included.
PART_SIZE = 512 * 1024

H_FORMAT = "Flagstream-Snapshot-Format"
H_ID = "Flagstream-Snapshot-Id"
H_PART = "Flagstream-Snapshot-Part"
H_CRC = "Flagstream-Snapshot-Crc32"
H_SEQ = "Flagstream-Snapshot-Seq"


class Snapshot(msgspec.Struct, kw_only=True):
    """One environment's events as of stream sequence ``seq``: the last event of each subject, in stream order."""

    project: str
    environment: str
    #: The state is that of the stream up to and including this sequence; a reader follows from ``seq + 1``.
    seq: int
    #: The event stream's creation time (as its stream info gives it): a snapshot of another stream (recreated,
    #: restored elsewhere) is not used.
    stream_created: str
    #: ``(stream sequence, event)`` of every subject of the environment whose last event decodes.
    events: list[tuple[int, AnyEvent]]  # type: ignore[valid-type]


class SnapshotError(ValueError):
    """A snapshot that cannot be used (corrupt, mixed parts, incomplete): the reader falls back and says why."""


class UnknownFormat(SnapshotError):
    """A snapshot written in a format this reader does not know (by a newer writer): ignored."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def snapshot_key(project: str, environment: str, part: int) -> str:
    """The KV key of one part of an environment's snapshot."""
    return f"{project}.{environment}.{part}"


def snapshot_subject(project: str, environment: str, part: int) -> str:
    """The subject that part is stored on (what a direct get of its last message names)."""
    return f"$KV.{SNAPSHOT_BUCKET}.{snapshot_key(project, environment, part)}"


def snapshot_filter(project: str, environment: str) -> str:
    """Every part of one environment's snapshot: what an SDK credential of that environment may read."""
    return f"$KV.{SNAPSHOT_BUCKET}.{project}.{environment}.>"


def stream_id(created: object) -> str:
    """How a snapshot names the event stream it was taken from: the stream's creation time, as its info gives it."""
    iso = getattr(created, "isoformat", None)
    return str(iso() if callable(iso) else created)


def encode_snapshot(
    snapshot: Snapshot, snapshot_id: str, part_size: int = PART_SIZE
) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a snapshot, ``(headers, body)``, part 0 first (the writer stores it last)."""
    blob = zlib.compress(_encoder.encode(snapshot), 1)
    bodies = [blob[i : i + part_size] for i in range(0, len(blob), part_size)] or [b""]
    parts = []
    for i, body in enumerate(bodies):
        headers = {H_FORMAT: str(FORMAT), H_ID: snapshot_id, H_PART: f"{i}/{len(bodies)}"}
        if i == 0:
            headers[H_CRC] = str(zlib.crc32(blob))
            headers[H_SEQ] = str(snapshot.seq)
        parts.append((headers, body))
    return parts


def read_head(headers: Mapping[str, str] | None) -> tuple[str, int]:
    """``(id, number of parts)`` of a snapshot from its part 0's headers; ``UnknownFormat`` or ``SnapshotError``."""
    headers = headers or {}
    try:
        fmt = int(headers[H_FORMAT])
    except (KeyError, ValueError):
        raise SnapshotError("not a snapshot (no format header)") from None
    if fmt != FORMAT:
        raise UnknownFormat(f"snapshot format {fmt} (this client reads format {FORMAT})")
    index, count = _part(headers)
    if index != 0:
        raise SnapshotError(f"part {index} stored as part 0")
    return headers.get(H_ID, ""), count


def decode_snapshot(parts: Sequence[tuple[Mapping[str, str] | None, bytes]]) -> Snapshot:
    """The snapshot from its parts (part 0 first); ``SnapshotError`` (never anything else) if it cannot be used."""
    if not parts:
        raise SnapshotError("no parts")
    snapshot_id, count = read_head(parts[0][0])
    if len(parts) != count:
        raise SnapshotError(f"{len(parts)} parts of {count}")
    for i, (headers, _) in enumerate(parts):
        if (headers or {}).get(H_ID) != snapshot_id or _part(headers or {}) != (i, count):
            raise SnapshotError(f"part {i} belongs to another snapshot (written while it was read)")
    blob = b"".join(body for _, body in parts)
    try:
        crc = int((parts[0][0] or {})[H_CRC])
    except (KeyError, ValueError):
        raise SnapshotError("no checksum") from None
    if zlib.crc32(blob) != crc:
        raise SnapshotError("checksum mismatch")
    try:
        return _decoder.decode(zlib.decompress(blob))
    except (zlib.error, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"undecodable: {exc}") from None


def _part(headers: Mapping[str, str]) -> tuple[int, int]:
    try:
        index, count = (int(n) for n in headers[H_PART].split("/"))
    except (KeyError, ValueError):
        raise SnapshotError("no part header") from None
    if not 0 <= index < count:
        raise SnapshotError(f"part {index} of {count}")
    return index, count


__all__ = [
    "FORMAT",
    "PART_SIZE",
    "SNAPSHOT_BUCKET",
    "SNAPSHOT_STREAM",
    "Snapshot",
    "SnapshotError",
    "UnknownFormat",
    "decode_snapshot",
    "encode_snapshot",
    "read_head",
    "snapshot_filter",
    "snapshot_key",
    "snapshot_subject",
    "stream_id",
]
