"""The SDK clients against a real nats-server: load, follow, evaluate, survive bad input.

Events are published straight to JetStream (as the admin API does) with ``encode_event``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from flagstream import AsyncFlagstreamClient, ClientStatus, ErrorKind, FlagstreamClient, ReasonKind
from flagstream.events import (
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagKind,
    FlagToggled,
    FlagUpdated,
    Serve,
    Variation,
    encode_event,
    subject,
)
from flagstream.services.runtime.stream import ensure_stream

USER = {"key": "user-1", "country": "NO"}


async def eventually(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``within`` seconds (the sync client's state changes on
    another thread, so this polls the condition rather than awaiting an event)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await ensure_stream(context)
    try:
        yield context
    finally:
        await nc.close()


async def publish(js: JetStreamContext, cls: type[Event], flag: Flag, environment: str = "production") -> int:
    event = cls(project="default", environment=environment, actor="test", at=datetime.now(UTC), flag=flag)  # type: ignore[call-arg]
    ack = await js.publish(subject("default", environment, "flag", flag.key), encode_event(event))
    return ack.seq


def string_flag(key: str, on: bool = True) -> Flag:
    return Flag(
        key=key,
        kind=FlagKind.STRING,
        on=on,
        variations=(Variation(key="a", value="blue"), Variation(key="b", value="green")),
        off_variation="a",
        fallthrough=Serve(variation="b"),
    )


async def test_async_and_sync_clients_follow_create_toggle_archive(nats_url: str, js: JetStreamContext) -> None:
    aclient = AsyncFlagstreamClient(nats_url, environment="production")
    sclient = FlagstreamClient(nats_url, environment="production")
    try:
        assert await aclient.start(wait=15)
        assert await asyncio.to_thread(sclient.start, 15)
        assert aclient.status is ClientStatus.READY
        assert sclient.status is ClientStatus.READY
        clients: list[AsyncFlagstreamClient | FlagstreamClient] = [aclient, sclient]

        await publish(js, FlagCreated, Flag(key="checkout", on=False))
        await eventually(
            lambda: all(c.variation_detail("checkout", USER, 0).reason.kind is ReasonKind.OFF for c in clients)
        )
        assert [c.bool_variation("checkout", USER, True) for c in clients] == [False, False]

        seq = await publish(js, FlagToggled, Flag(key="checkout", on=True))
        await eventually(lambda: all(c.seq == seq for c in clients))
        assert [c.bool_variation("checkout", USER, False) for c in clients] == [True, True]

        # Another environment's events are not seen, even for the same flag key.
        await publish(js, FlagToggled, Flag(key="checkout", on=False), environment="staging")
        await publish(js, FlagCreated, Flag(key="staging-only", on=True), environment="staging")
        seq = await publish(js, FlagArchived, Flag(key="checkout", on=True, archived=True))
        await eventually(lambda: all(c.seq == seq for c in clients))
        for c in clients:
            detail = c.variation_detail("checkout", USER, "caller-default")
            assert detail.value == "caller-default"
            assert detail.reason.error_kind is ErrorKind.FLAG_NOT_FOUND
            assert c.variation_detail("staging-only", USER, False).reason.error_kind is ErrorKind.FLAG_NOT_FOUND
    finally:
        await aclient.close()
        await asyncio.to_thread(sclient.close)
    assert aclient.status is ClientStatus.CLOSED
    assert aclient.bool_variation("checkout", USER, True) is True  # still answers, from the last ruleset


async def test_cold_start_loads_only_the_latest_state_per_subject(nats_url: str, js: JetStreamContext) -> None:
    for revision in range(20):
        await publish(js, FlagUpdated, Flag(key="banner", on=True, description=f"revision {revision}"))
    last = await publish(js, FlagCreated, Flag(key="other", on=False))
    await publish(js, FlagCreated, Flag(key="other", on=True), environment="staging")  # later, other environment

    seen: list[str] = []
    client = AsyncFlagstreamClient(nats_url, environment="production")
    client.on_change(None, lambda key, old, new: seen.append(key))
    try:
        assert await client.start(wait=15)
        assert client.ruleset.flags["banner"].description == "revision 19"
        assert client.seq == last
        # One message per subject was delivered: each flag reported once, no intermediate revisions.
        assert sorted(seen) == ["banner", "other"]
        assert client.bool_variation("other", USER, True) is False
    finally:
        await client.close()


async def test_typed_accessors_never_raise_and_explain_the_default(nats_url: str, js: JetStreamContext) -> None:
    client = AsyncFlagstreamClient(nats_url, environment="production")
    assert client.variation_detail("colour", USER, "red").reason.error_kind is ErrorKind.CLIENT_NOT_READY
    await publish(js, FlagCreated, string_flag("colour"))
    numbers = (Variation(key="on", value=10), Variation(key="off", value=1.5))
    await publish(js, FlagCreated, Flag(key="limit", kind=FlagKind.NUMBER, on=True, variations=numbers))
    documents = (Variation(key="on", value={"a": [1]}), Variation(key="off", value=[]))
    await publish(js, FlagCreated, Flag(key="config", kind=FlagKind.JSON, on=True, variations=documents))
    await publish(js, FlagCreated, Flag(key="dark-mode", on=True))
    try:
        assert await client.start(wait=15)
        assert client.string_variation("colour", USER, "red") == "green"
        assert client.number_variation("limit", USER, 0) == 10
        assert client.json_variation("config", USER, {}) == {"a": [1]}
        assert client.bool_variation("dark-mode", USER, False) is True

        wrong = [
            client.bool_variation_detail("colour", USER, False),
            client.string_variation_detail("limit", USER, "x"),
            client.number_variation_detail("dark-mode", USER, 7),  # a bool is not a number
            client.json_variation_detail("colour", USER, None),
        ]
        assert [d.value for d in wrong] == [False, "x", 7, None]
        assert {d.reason.kind for d in wrong} == {ReasonKind.ERROR}
        assert {d.reason.error_kind for d in wrong} == {ErrorKind.WRONG_TYPE}

        missing = client.string_variation_detail("nope", USER, "fallback")
        assert (missing.value, missing.reason.error_kind) == ("fallback", ErrorKind.FLAG_NOT_FOUND)

        odd_contexts: list[Any] = [None, "user-1", 42, {}, {"country": "NO"}, {"key": None}, [1, 2]]
        for context in odd_contexts:
            detail = client.string_variation_detail("colour", context, "red")
            assert detail.value in {"green", "red"}
            assert client.variation("colour", context, "red") in {"green", "red"}
    finally:
        await client.close()


async def test_a_garbage_message_is_skipped_and_counted(nats_url: str, js: JetStreamContext) -> None:
    await js.publish(subject("default", "production", "flag", "broken"), b"{not json")
    await publish(js, FlagCreated, Flag(key="ok", on=False))
    client = AsyncFlagstreamClient(nats_url, environment="production")
    try:
        assert await client.start(wait=15)
        assert client.bad_events == 1
        assert client.bool_variation("ok", USER, True) is False

        await js.publish(subject("default", "production", "flag", "ok"), b'{"type": "flag.toggled", "nonsense": 1}')
        seq = await publish(js, FlagToggled, Flag(key="ok", on=True))
        await eventually(lambda: client.seq == seq)
        assert client.bad_events == 2
        assert client.bool_variation("ok", USER, False) is True
        assert client.status is ClientStatus.READY
    finally:
        await client.close()


async def test_on_change_is_called_with_old_and_new(nats_url: str, js: JetStreamContext) -> None:
    client = AsyncFlagstreamClient(nats_url, environment="production")
    one: list[tuple[str, Flag | None, Flag | None]] = []
    every: list[str] = []
    client.on_change("checkout", lambda key, old, new: one.append((key, old, new)))
    client.on_change(None, lambda key, old, new: every.append(key))

    def broken(key: str, old: Flag | None, new: Flag | None) -> None:
        raise RuntimeError("a listener bug")

    client.on_change(None, broken)
    try:
        assert await client.start(wait=15)
        # One change at a time: changes that reach the client together are reported once per flag (docs/sdk.md).
        created = Flag(key="checkout", on=False)
        seq = await publish(js, FlagCreated, created)
        await eventually(lambda: client.seq == seq)
        seq = await publish(js, FlagCreated, Flag(key="other", on=False))
        await eventually(lambda: client.seq == seq)
        toggled = Flag(key="checkout", on=True)
        seq = await publish(js, FlagToggled, toggled)
        await eventually(lambda: client.seq == seq)
        assert one == [("checkout", None, created), ("checkout", created, toggled)]
        assert every == ["checkout", "other", "checkout"]
    finally:
        await client.close()


def test_changes_that_arrive_together_are_reported_once_per_flag() -> None:
    """A batch (one read of the connection, a catch-up) is one swap: each flag's listeners hear once, from its
    value before the batch to its value after it, flags in key order (docs/sdk.md, change listeners)."""
    from flagstream.cache import RulesetCache
    from flagstream.ruleset import Ruleset

    def event(kind: type[FlagCreated] | type[FlagToggled], flag: Flag) -> FlagCreated | FlagToggled:
        return kind(
            project="default", environment="production", actor="t", at=datetime(2026, 1, 1, tzinfo=UTC), flag=flag
        )

    cache = RulesetCache(Ruleset(project="default", environment="production"))
    heard: list[tuple[str, Flag | None, Flag | None]] = []
    cache.on_change(None, lambda key, old, new: heard.append((key, old, new)))
    other, created, toggled = Flag(key="other", on=False), Flag(key="checkout", on=False), Flag(key="checkout", on=True)
    cache.apply([(1, event(FlagCreated, other)), (2, event(FlagCreated, created)), (3, event(FlagToggled, toggled))])
    assert heard == [("checkout", None, toggled), ("other", None, other)]
    heard.clear()
    cache.apply([(4, event(FlagToggled, created))])
    assert heard == [("checkout", toggled, created)]


def test_the_sync_client_takes_the_async_clients_options_with_the_same_defaults() -> None:
    """``FlagstreamClient`` says it has the same options as ``AsyncFlagstreamClient``: each one, named, typed and
    defaulted alike (an option added to one only, as ``snapshots`` once was, fails here)."""
    import inspect

    def options(cls: type) -> list[str]:
        return [str(p) for p in inspect.signature(cls.__init__).parameters.values()]

    assert options(FlagstreamClient) == options(AsyncFlagstreamClient)


async def test_sync_client_as_a_context_manager_in_a_plain_thread(nats_url: str, js: JetStreamContext) -> None:
    await publish(js, FlagCreated, string_flag("colour"))

    def wsgi_like_worker() -> tuple[str, ClientStatus]:
        with FlagstreamClient(nats_url, environment="production") as client:
            assert client.wait_until_ready(15)
            return client.string_variation("colour", USER, "red"), client.status

    assert await asyncio.to_thread(wsgi_like_worker) == ("green", ClientStatus.READY)


async def test_wait_for_sequence_reads_your_own_write(nats_url: str, js: JetStreamContext) -> None:
    async with AsyncFlagstreamClient(nats_url, environment="production") as client:
        assert await client.wait_until_ready(15)
        sync_client = FlagstreamClient(nats_url, environment="production")
        assert await asyncio.to_thread(sync_client.start, 15)
        try:
            # Nothing written yet at this sequence: both wait, and say they did not get there.
            ahead = client.seq + 1
            assert await client.wait_for_sequence(ahead, 0.05) is False
            assert await asyncio.to_thread(sync_client.wait_for_sequence, ahead, 0.05) is False

            # The write's sequence (what the admin API answers as the version): once reached, it is evaluated.
            waiting = asyncio.ensure_future(client.wait_for_sequence(ahead, 15))
            seq = await publish(js, FlagCreated, string_flag("colour"))
            assert seq >= ahead
            assert await client.wait_for_sequence(seq, 15)
            assert await waiting
            assert client.string_variation("colour", USER, "red") == "green"
            assert await asyncio.to_thread(sync_client.wait_for_sequence, seq, 15)
            assert sync_client.string_variation("colour", USER, "red") == "green"
            assert await client.wait_for_sequence(1, 0)  # an earlier sequence: at once
        finally:
            await asyncio.to_thread(sync_client.close)
