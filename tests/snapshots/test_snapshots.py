"""Environment snapshots through real processes: a real nats-server, the admin process that writes them (one replica
at a time, under a lease), the projector, SDK clients. A client starting from a snapshot holds the projector's state
and then gets every later change exactly once; a snapshot older than the latest events is caught up; a missing,
corrupt, newer, foreign or far-behind snapshot is not used and the client converges the long way; a writer killed
with SIGKILL is replaced by another replica; an SDK credential reads its own environment's snapshot only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from nats.js.errors import NotFoundError

from flagstream import AsyncFlagstreamClient, FlagstreamClient, sdk_connect_options
from flagstream.events import STREAM, Flag, FlagCreated, FlagUpdated, encode_event, subject
from flagstream.events.snapshot import (
    H_FORMAT,
    SNAPSHOT_BUCKET,
    SNAPSHOT_STREAM,
    Snapshot,
    encode_snapshot,
    snapshot_subject,
    stream_id,
)
from flagstream.services.projector.readmodel import ReadModel
from flagstream.services.runtime import Credentials, NatsServer, ensure_bucket, ensure_stream, write_server_config
from flagstream.services.snapshots import LEASE_KEY, SnapshotWriter, running
from flagstream.snapshots import fetch_snapshot
from tests.helpers import admin_processes, auth_headers, eventually, projecting, until

ENV = "/api/v1/projects/default/environments/production"


async def publish(js: Any, key: str, description: str = "", *, environment: str = "production") -> int:
    """A flag's new state, straight to the stream (as any writer appends it); its stream sequence."""
    event = FlagUpdated(
        project="default", environment=environment, actor="test", at=datetime.now(UTC),
        flag=Flag(key=key, on=True, description=description),
    )  # fmt: skip
    return int((await js.publish(subject("default", environment, "flag", key), encode_event(event))).seq)


async def snapshot_seq(js: Any, environment: str = "production") -> int:
    try:
        return (await fetch_snapshot(js, "default", environment)).seq
    except (NotFoundError, nats.errors.NoRespondersError):
        return 0


def recording(client: AsyncFlagstreamClient) -> list[int]:
    """The stream sequences of every event handed to the client's fold, in order (wraps its source's sink)."""
    seen: list[int] = []
    source: Any = client._source
    sink = source._sink

    def record(events: Sequence[tuple[int, Any]], fresh: bool) -> Any:
        seen.extend(seq for seq, _ in events)
        return sink(events, fresh)

    source._sink = record
    return seen


async def test_a_client_from_the_snapshot_has_the_projectors_state_then_every_change_once(
    nats_url: str, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    db = tmp_path / "readmodel.sqlite"
    try:
        async with projecting(nats_url, db) as projector:
            with admin_processes(nats_url, 1, "--snapshot-interval", "0.1") as (admin,):
                async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http:
                    assert (
                        await http.post("/api/v1/projects/default/environments", json={"key": "production"})
                    ).is_success
                    segment = {"key": "staff", "included": ["ada"]}
                    assert (await http.post(f"{ENV}/segments", json=segment)).is_success
                    rule = {"id": "staff", "clauses": [{"op": "in_segment", "values": ["staff"]}],
                            "serve": {"variation": "on"}}  # fmt: skip
                    for i in range(30):
                        body = {"key": f"f{i:02}", "rules": [rule] if i % 3 == 0 else []}
                        assert (await http.post(f"{ENV}/flags", json=body)).is_success
                    assert (await http.post(f"{ENV}/flags/f00/on", json={})).is_success
                written = int((await js.stream_info(STREAM)).state.last_seq)

                async def snapshot_written() -> bool:
                    return await snapshot_seq(js) == written

                await until(snapshot_written, "the snapshot as of the last write")
            # The writer is gone: later events are not in the snapshot, the client catches up on them.
            later = [await publish(js, f"f{i:02}", "later") for i in (2, 5, 7)]
            client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
            applied = recording(client)
            try:
                assert await client.start(wait=30)
                assert client.snapshot_seq == written
                assert client.bad_snapshots == 0
                assert client.seq == later[-1]
                assert client.ruleset.flags["f05"].description == "later"
                assert client.bool_variation("f00", {"key": "ada"}, False) is True  # the segment came along
                await projector.wait_caught_up(30)
                async with await ReadModel.open(db, readonly=True) as model:
                    assert client.ruleset.state_hash() == await model.state_hash("default", "production")

                after = [await publish(js, f"f{i:02}", f"after {n}") for n, i in enumerate((1, 2, 3, 2, 29))]
                assert await client.wait_for_sequence(after[-1], 30)
                await projector.wait_caught_up(30)
                async with await ReadModel.open(db, readonly=True) as model:
                    assert client.ruleset.state_hash() == await model.state_hash("default", "production")
            finally:
                await client.close()
    finally:
        await nc.close()
    # Every event after the snapshot reached the fold once, in order; nothing of the snapshot came again.
    assert len(applied) == len(set(applied))
    assert applied == sorted(applied)
    assert [s for s in applied if s > written] == [*later, *after]


async def test_the_sync_client_starts_from_the_snapshot_unless_told_not_to(nats_url: str) -> None:
    """``FlagstreamClient`` takes ``snapshots=`` as the async client does, with the same default."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        with admin_processes(nats_url, 1, "--snapshot-interval", "0.1") as (admin,):
            async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http:
                assert (await http.post("/api/v1/projects/default/environments", json={"key": "production"})).is_success
                assert (await http.post(f"{ENV}/segments", json={"key": "staff", "included": ["ada"]})).is_success
                rule = {"id": "staff", "clauses": [{"op": "in_segment", "values": ["staff"]}],
                        "serve": {"variation": "on"}}  # fmt: skip
                for i in range(5):
                    assert (await http.post(f"{ENV}/flags", json={"key": f"f{i}", "rules": [rule]})).is_success
                assert (await http.post(f"{ENV}/flags/f0/on", json={})).is_success
            written = int((await js.stream_info(STREAM)).state.last_seq)

            async def snapshot_written() -> bool:
                return await snapshot_seq(js) == written

            await until(snapshot_written, "the snapshot as of the last write")
        later = await publish(js, "f1", "later")  # the writer is gone: not in the snapshot

        async def started(**options: Any) -> FlagstreamClient:
            client = FlagstreamClient(nats_url, environment="production", telemetry=False, **options)
            assert await asyncio.to_thread(client.start, 30)
            return client

        clients = [await started(), await started(snapshots=True), await started(snapshots=False)]
        try:
            assert [c.snapshot_seq for c in clients] == [written, written, None]
            assert [c.bad_snapshots for c in clients] == [0, 0, 0]
            assert [c.seq for c in clients] == [later] * 3
            assert [c.ruleset.flags["f1"].description for c in clients] == ["later"] * 3
            assert [c.bool_variation("f0", {"key": "ada"}, False) for c in clients] == [True] * 3  # the segment too
            assert len({c.ruleset.state_hash() for c in clients}) == 1
            after = await publish(js, "f2", "after")
            assert all([await asyncio.to_thread(c.wait_for_sequence, after, 30) for c in clients])
            assert [c.ruleset.flags["f2"].description for c in clients] == ["after"] * 3
        finally:
            for client in clients:
                await asyncio.to_thread(client.close)

        # A corrupt snapshot: counted, and the sync client loads the long way all the same.
        snapshot = await fetch_snapshot(js, "default", "production")
        headers, body = encode_snapshot(snapshot, "corrupt")[0]
        await js.publish(snapshot_subject("default", "production", 0), body[:-3] + b"xyz", headers=headers)
        client = await started()
        try:
            assert (client.snapshot_seq, client.bad_snapshots, client.seq) == (None, 1, after)
        finally:
            await asyncio.to_thread(client.close)
    finally:
        await nc.close()


async def _client(nats_url: str) -> AsyncFlagstreamClient:
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    assert await client.start(wait=30)
    return client


async def test_a_missing_corrupt_newer_foreign_or_far_behind_snapshot_is_not_used(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await ensure_stream(js)
        seqs = [await publish(js, f"flag-{i}", "one") for i in range(5)]
        stream = await js.stream_info(STREAM)
        snapshot = Snapshot(
            project="default", environment="production", seq=seqs[-1], stream_created=stream_id(stream.created),
            events=[],  # written by the test, not the writer: an empty state, so using it would show
        )  # fmt: skip

        async def store(parts: list[tuple[dict[str, str], bytes]]) -> None:
            for i, (headers, body) in reversed(list(enumerate(parts))):
                await js.publish(snapshot_subject("default", "production", i), body, headers=headers)

        async def loads_the_long_way(bad: int) -> None:
            client = await _client(nats_url)
            try:
                assert client.snapshot_seq is None
                assert client.bad_snapshots == bad
                assert sorted(client.ruleset.flags) == [f"flag-{i}" for i in range(5)]
            finally:
                await client.close()

        await loads_the_long_way(0)  # no bucket at all
        await ensure_bucket(js, SNAPSHOT_BUCKET, direct=True)
        await loads_the_long_way(0)  # no snapshot of this environment
        headers, body = encode_snapshot(snapshot, "corrupt")[0]
        await store([(headers, body[:-3] + b"xyz")])
        await loads_the_long_way(1)  # checksum
        await store([({**headers, H_FORMAT: "2"}, b"written by a newer Flagstream")])
        await loads_the_long_way(0)  # a newer format: ignored, not counted
        foreign = msgspec.structs.replace(snapshot, stream_created="2001-01-01T00:00:00+00:00")
        await store(encode_snapshot(foreign, "foreign"))
        await loads_the_long_way(0)  # of another stream (this one recreated since)
        parts = encode_snapshot(snapshot, "split", part_size=20)
        assert len(parts) > 2
        await store([parts[0], (parts[1][0], parts[1][1][:-1] + b"\0"), *parts[2:]])
        await loads_the_long_way(1)  # a part corrupt

        await store(encode_snapshot(snapshot, "good", part_size=20))  # now a usable one: the empty state at seqs[-1]
        client = await _client(nats_url)
        try:
            assert client.snapshot_seq == seqs[-1]
            assert client.ruleset.flags == {}  # what it said, in several parts
        finally:
            await client.close()
        for i in range(1001):  # more events behind than the snapshot is worth
            await js.publish(subject("default", "production", "flag", f"flag-{i % 5}"), encode_event(
                FlagCreated(project="default", environment="production", actor="t", at=datetime.now(UTC),
                            flag=Flag(key=f"flag-{i % 5}", description="many"))))  # fmt: skip
        client = await _client(nats_url)
        try:
            assert client.snapshot_seq is None
            assert {f.description for f in client.ruleset.flags.values()} == {"many"}
        finally:
            await client.close()
    finally:
        await nc.close()


def _holder(value: bytes) -> str:
    return value.decode().split(":")[1]  # host:pid:token


async def test_the_writer_killed_is_replaced_by_another_replica(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        with admin_processes(nats_url, 2, "--snapshot-lease", "1", "--snapshot-interval", "0.1") as admins:
            async with httpx.AsyncClient(base_url=admins[0].url, headers=auth_headers(), timeout=60) as http:
                assert (await http.post("/api/v1/projects/default/environments", json={"key": "production"})).is_success
                assert (await http.post(f"{ENV}/flags", json={"key": "one"})).is_success
            first = int((await js.stream_info(STREAM)).state.last_seq)

            async def written(seq: int) -> bool:
                return await snapshot_seq(js) == seq

            await until(lambda: written(first), "the first snapshot")
            kv = await js.key_value(SNAPSHOT_BUCKET)
            holder = _holder((await kv.get(LEASE_KEY)).value or b"")
            victim = next(a for a in admins if a.proc is not None and str(a.proc.pid) == holder)
            survivor = next(a for a in admins if a is not victim)
            victim.kill()
            async with httpx.AsyncClient(base_url=survivor.url, headers=auth_headers(), timeout=60) as http:
                assert (await http.post(f"{ENV}/flags", json={"key": "two"})).is_success
            second = int((await js.stream_info(STREAM)).state.last_seq)
            await until(lambda: written(second), "the survivor writing the snapshot")
            assert survivor.proc is not None
            assert _holder((await kv.get(LEASE_KEY)).value or b"") == str(survivor.proc.pid)
        client = await _client(nats_url)
        try:
            assert client.snapshot_seq == second
            assert sorted(client.ruleset.flags) == ["one", "two"]
        finally:
            await client.close()
    finally:
        await nc.close()


async def test_an_sdk_credential_reads_its_own_environments_snapshot_only(tmp_path: Path) -> None:
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production"), ("default", "development")])
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf")
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        admin = await nats.connect(server.url, user="admin", password=creds.passwords["admin"])
        js = admin.jetstream()
        await ensure_stream(js)
        await publish(js, "checkout")
        last = await publish(js, "secret-plan", environment="development")
        async with running(admin, interval=0.05) as writer:  # the writer with the admin's own NATS user
            assert isinstance(writer, SnapshotWriter)
            await until(lambda: _both_written(js, last), "both environments' snapshots")
        options = sdk_connect_options("default", "production", creds.passwords["sdk-default-production"])
        client = AsyncFlagstreamClient(server.url, environment="production", telemetry=False, connect_options=options)
        try:
            assert await client.start(wait=30)
            assert client.snapshot_seq == last
            assert list(client.ruleset.flags) == ["checkout"]
        finally:
            await client.close()

        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        sdk = await nats.connect(server.url, max_reconnect_attempts=0, error_cb=on_error, **options)
        try:
            sdk_js = sdk.jetstream(timeout=1)
            assert (
                await sdk_js.get_last_msg(SNAPSHOT_STREAM, snapshot_subject("default", "production", 0), direct=True)
            ).data
            for request in (
                sdk_js.get_last_msg(SNAPSHOT_STREAM, snapshot_subject("default", "development", 0), direct=True),
                sdk_js.get_last_msg(SNAPSHOT_STREAM, snapshot_subject("default", "development", 0)),  # STREAM.MSG.GET
                sdk_js.get_msg(SNAPSHOT_STREAM, seq=1, direct=True),  # by sequence: any key
            ):
                with pytest.raises((nats.errors.TimeoutError, nats.js.errors.APIError)):
                    await request
            await eventually(lambda: len(errors) >= 3, what="three permission violations")
            assert all("ermission" in str(e) for e in errors)
        finally:
            await sdk.close()
        await admin.close()
    finally:
        server.stop()


async def _both_written(js: Any, last: int) -> bool:
    return await snapshot_seq(js, "production") == last and await snapshot_seq(js, "development") == last


async def test_a_credential_made_before_snapshots_loads_the_long_way_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An SDK user written by an older ``flagstream nats-users`` may not read the snapshot: the server refuses the
    direct get, the client notices the refusal (not a timeout) and loads the long way, ready and not in error."""
    from flagstream.services.runtime import nats_auth

    real = nats_auth.sdk_permissions

    def without_snapshots(project: str, environment: str) -> nats_auth.Permissions:
        perms = real(project, environment)
        return nats_auth.Permissions(tuple(s for s in perms.publish if SNAPSHOT_STREAM not in s), perms.subscribe)

    monkeypatch.setattr(nats_auth, "sdk_permissions", without_snapshots)
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production")])
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf")
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        admin = await nats.connect(server.url, user="admin", password=creds.passwords["admin"])
        js = admin.jetstream()
        await ensure_stream(js)
        last = await publish(js, "checkout")
        async with running(admin, interval=0.05):
            await until(lambda: _written(js, last), "the snapshot")
        await admin.close()
        options = sdk_connect_options("default", "production", creds.passwords["sdk-default-production"])
        client = AsyncFlagstreamClient(server.url, environment="production", telemetry=False, connect_options=options)
        try:
            with caplog.at_level("DEBUG", logger="flagstream.client"):
                assert await client.start(wait=30)
            assert client.snapshot_seq is None
            assert list(client.ruleset.flags) == ["checkout"]
            assert client.last_error is None
            assert "not allowed to read the environment's snapshot" in caplog.text
            assert "no snapshot" not in caplog.text  # the refusal was seen, not waited out
        finally:
            await client.close()
    finally:
        server.stop()


async def _written(js: Any, last: int) -> bool:
    return await snapshot_seq(js) == last
