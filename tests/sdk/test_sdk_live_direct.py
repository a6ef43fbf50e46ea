"""The live subscription served straight from nats-py's message processing (``nats_source._Connection``): on the
pinned nats-py the SDK's live messages skip nats-py's ``Msg`` / queue / task per message; changes still arrive
in order, a bad live message is skipped and counted, and any other nats-py keeps the plain callback path."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client

from flagstream import AsyncFlagstreamClient, nats_source
from flagstream.events import Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.nats_source import CHECKED_NATS_PY, nats_py_version, stream_sequence
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

USER = {"key": "user-1"}


def test_the_pinned_nats_py_is_the_one_the_direct_path_was_checked_on() -> None:
    """Fails when nats-py changes under the SDK: re-check ``_Connection`` against it, then list its version."""
    assert nats_py_version() in CHECKED_NATS_PY


def test_the_stream_sequence_is_read_from_raw_headers_as_nats_py_reads_it() -> None:
    rnd = random.Random(25)
    names = ["Nats-Stream", "Nats-Subject", "Nats-Time-Stamp", "Nats-Last-Sequence", "Nats-Msg-Id", "X-Nats-Sequence"]
    values = ["1", "42", " 7 ", "0", "-3", "x", "12 34", "", "9" * 19]
    for _ in range(3000):
        lines = [f"{rnd.choice(names)}: {rnd.choice(values)}" for _ in range(rnd.randint(0, 5))]
        for _ in range(rnd.randint(0, 2)):  # none, one, or a repeat (the last one wins, as in nats-py's dict)
            lines.insert(rnd.randint(0, len(lines)), f"Nats-Sequence:{rnd.choice(values)}")
        raw = ("NATS/1.0\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()
        theirs = Client._parse_header_lines(raw[len(b"NATS/1.0\r\n") :]).get("Nats-Sequence")
        try:
            expected = int(theirs) if theirs is not None else None
        except ValueError:
            expected = None
        if expected is not None and expected <= 0:
            expected = None  # no stream sequence is 0 or negative
        assert stream_sequence(raw) == expected, raw
    assert stream_sequence(None) is None
    assert stream_sequence(b"") is None


async def _publish(js: object, cls: type[FlagEvent], flag: Flag) -> int:
    event = cls(project="default", environment="production", actor="t", at=datetime.now(UTC), flag=flag)
    return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq  # type: ignore[attr-defined]


async def test_live_changes_arrive_through_the_direct_path_and_a_bad_live_message_is_skipped(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await _publish(js, FlagCreated, Flag(key="checkout", on=False))
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    seen: list[int] = []  # the client's position at each notification: changes apply in stream order
    client.on_change("checkout", lambda key, old, new: seen.append(client.seq))
    try:
        assert await client.start(wait=15)
        source = client._source
        await eventually(lambda: source.following_live, what="following live")  # type: ignore[union-attr]
        conn = source.connection  # type: ignore[union-attr]
        sub = source._live_sub  # type: ignore[union-attr]
        assert sub._id in conn._direct, "the live subscription is served directly"  # type: ignore[union-attr]
        through_nats_py = []  # messages that went through nats-py's parser (a read the client did not take itself)
        parse = conn._process_msg  # type: ignore[union-attr]

        async def counting(sid: int, *args: object) -> None:
            through_nats_py.append(sid)
            await parse(sid, *args)

        conn._process_msg = counting  # type: ignore[union-attr]

        # A message on the live subjects without a stream sequence (not from the stream): skipped and counted.
        await nc.publish("flagstream-live.default.production.flag.checkout", b"{}")
        last = 0
        for i in range(20):
            last = await _publish(js, FlagToggled, Flag(key="checkout", on=i % 2 == 0))
        await eventually(lambda: client.seq == last, what="every change")
        assert seen == sorted(set(seen)), "in stream order, each once"
        assert seen[-1] == last
        assert client.bool_variation("checkout", USER, True) is False
        await eventually(lambda: source.bad_events == 1, what="the bad live message counted")  # type: ignore[union-attr]
        assert sub._pending_queue.qsize() == 0, "nothing went through nats-py's queue"
        assert through_nats_py.count(sub._id) < 10, "most reads are dispatched without nats-py's read loop"
    finally:
        await client.close()
        await nc.close()


async def test_another_nats_py_follows_through_its_own_callback_path(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nats_source, "CHECKED_NATS_PY", ())
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await _publish(js, FlagCreated, Flag(key="checkout", on=False))
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    try:
        assert await client.start(wait=15)
        source = client._source
        await eventually(lambda: source.following_live, what="following live")  # type: ignore[union-attr]
        assert source.connection._direct == {}  # type: ignore[union-attr]
        seq = await _publish(js, FlagToggled, Flag(key="checkout", on=True))
        await eventually(lambda: client.seq == seq, what="the change")
        assert client.bool_variation("checkout", USER, False) is True
    finally:
        await client.close()
        await nc.close()


def test_a_fold_copies_the_maps_and_leaves_the_previous_ruleset_as_it_was() -> None:
    """``apply_events`` copies a ruleset's maps with their own ``copy`` (fast); readers of the old snapshot keep it."""
    from flagstream.ruleset import Ruleset, apply_events

    def event(cls: type[FlagEvent], key: str, on: bool) -> FlagEvent:
        return cls(
            project="default", environment="production", actor="t", at=datetime.now(UTC), flag=Flag(key=key, on=on)
        )

    old, _ = apply_events(Ruleset(project="default", environment="production"), [(1, event(FlagCreated, "a", False))])
    new, changed = apply_events(old, [(2, event(FlagToggled, "a", True)), (3, event(FlagCreated, "b", True))])
    assert changed == {"a", "b"}
    assert dict(old.flags) == {"a": Flag(key="a", on=False)}
    assert dict(old.versions) == {"flag/a": 1}
    assert set(old.compiled) == {"a"}
    assert new.flags["a"].on is True
    assert dict(new.versions) == {"flag/a": 2, "flag/b": 3}
    assert set(new.compiled) == {"a", "b"}
