"""The snapshot format (``events/snapshot.py``): what is written reads back the same, in one part or many; a part
of another snapshot, a corrupt or missing part, a bad key inside, or a newer format is refused with a reason (never
another exception); a format-1 snapshot written today (committed under tests/upgrade/data) reads forever."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from flagstream.events import Flag, FlagCreated, FlagUpdated
from flagstream.events.snapshot import (
    H_FORMAT,
    H_ID,
    Snapshot,
    SnapshotError,
    UnknownFormat,
    decode_snapshot,
    encode_snapshot,
)
from flagstream.ruleset import Ruleset, apply_events

AT = datetime(2026, 12, 6, tzinfo=UTC)
FORMAT_1 = Path(__file__).parent.parent / "upgrade" / "data" / "snapshot-format-1.json"


def snapshot(flags: int = 50) -> Snapshot:
    events = [
        (i + 1, FlagCreated(project="default", environment="production", actor="t", at=AT, flag=Flag(key=f"f{i}")))
        for i in range(flags)
    ]
    return Snapshot(project="default", environment="production", seq=flags + 7, stream_created="x", events=events)


@pytest.mark.parametrize("part_size", [1 << 20, 100])
def test_what_is_written_reads_back_the_same(part_size: int) -> None:
    written = snapshot()
    parts = encode_snapshot(written, "id", part_size=part_size)
    assert (len(parts) == 1) == (part_size > 1000)
    assert decode_snapshot(parts) == written


def test_a_mixed_corrupt_short_or_bad_snapshot_is_refused_with_a_reason() -> None:
    parts = encode_snapshot(snapshot(), "one", part_size=100)
    other = encode_snapshot(snapshot(49), "two", part_size=100)
    cases = {
        "another snapshot": [parts[0], other[1], *parts[2:]],
        "parts of": parts[:-1],
        "checksum": [parts[0], (parts[1][0], b"\0" + parts[1][1][1:]), *parts[2:]],
        "no format": [({k: v for k, v in parts[0][0].items() if k != H_FORMAT}, parts[0][1]), *parts[1:]],
        "no parts": [],
    }
    for reason, bad in cases.items():
        with pytest.raises(SnapshotError, match=reason):
            decode_snapshot(bad)
    # A key that is no key, in a blob with a right checksum: the event types' checks still run.
    raw = msgspec.msgpack.encode(snapshot(1)).replace(b"f0", b"f!")
    blob = zlib.compress(raw)
    headers = {**parts[0][0], "Flagstream-Snapshot-Part": "0/1", "Flagstream-Snapshot-Crc32": str(zlib.crc32(blob))}
    with pytest.raises(SnapshotError, match="undecodable"):
        decode_snapshot([(headers, blob)])


def test_a_newer_format_is_ignored_not_misread() -> None:
    (headers, body), *_ = encode_snapshot(snapshot(), "id")
    with pytest.raises(UnknownFormat, match="format 2"):
        decode_snapshot([({**headers, H_FORMAT: "2"}, body)])


def test_a_format_1_snapshot_written_today_reads_forever() -> None:
    stored = json.loads(FORMAT_1.read_text())
    parts = [(p["headers"], base64.b64decode(p["body"])) for p in stored]
    assert len(parts) > 1
    assert {h[H_ID] for h, _ in parts} == {"0123456789abcdef"}
    read = decode_snapshot(parts)
    assert (read.project, read.environment, read.seq) == ("default", "production", 12)
    ruleset, _ = apply_events(Ruleset(project="default", environment="production"), read.events)
    assert ruleset.flags["checkout"].description == "format 1"
    assert ruleset.env is not None
    assert ruleset.env.key == "production"
    assert list(ruleset.segments["staff"].included) == ["ada"]
    assert ruleset.seq == 9
    # A later event on top of it folds as it would after any load.
    later = FlagUpdated(project="default", environment="production", actor="t", at=AT, flag=Flag(key="checkout"))
    ruleset, changed = apply_events(ruleset, [(13, later)])
    assert changed == {"checkout"}
    assert not ruleset.flags["checkout"].on
