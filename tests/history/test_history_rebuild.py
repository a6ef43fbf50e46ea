"""``flagstream projector --rebuild`` (also ``flagstream rebuild``) folds the stream from sequence 1 into a fresh
read model and swaps it in: the state hash printed before and after is identical, every event (and every skipped
bad message) is there again, and the projector carries on from the rebuilt file. One process per read model: a
second projector or a rebuild on a file a running projector holds is refused, and a SIGKILL releases it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import nats

from flagstream.events import Environment, Flag, Segment
from flagstream.services.changes.decide import ENVIRONMENT, FLAG, SEGMENT
from flagstream.services.changes.service import AdminService, WriteRequest
from flagstream.services.changes.store import EventStore
from flagstream.services.projector.projector import Projector
from flagstream.services.projector.readmodel import ReadModel
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import db_position, eventually


async def project(nats_url: str, db: Path) -> int:
    projector = Projector(nats_url=nats_url, db_path=db, fetch_timeout=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        return await projector.wait_caught_up(30)
    finally:
        stop.set()
        await task


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flagstream.services.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_rebuild_gives_the_same_state_hash_and_history(nats_url: str, tmp_path: Path) -> None:
    nc = await nats.connect(nats_url)
    try:
        await ensure_stream(nc.jetstream())
        service = AdminService(EventStore(nc))
        req = WriteRequest(actor="ada", comment="setup")
        await service.create(ENVIRONMENT, "default", "production", Environment(key="production"), req)
        await service.create(SEGMENT, "default", "production", Segment(key="beta", included=("u1",)), req)
        for i in range(30):
            await service.create(FLAG, "default", "production", Flag(key=f"f{i}"), req)
        for i in range(0, 30, 2):
            await service.toggle("default", "production", f"f{i}", True, req)
        await service.archive(FLAG, "default", "production", "f3", True, req)
        await nc.jetstream().publish("flagstream.default.production.flag.junk", b"{not json")  # a bad message
    finally:
        await nc.close()
    db = tmp_path / "readmodel.sqlite"
    last = await project(nats_url, db)
    async with await ReadModel.open(db, readonly=True) as model:
        seqs, bad, state = await model.event_seqs(), await model.bad_event_count(), await model.state_hash_all()
    inode = os.stat(db).st_ino

    code, out, err = await run_cli("projector", "--rebuild", "--db", str(db), "--nats-url", nats_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"before:  sequence {last}, state hash {state}"
    assert lines[1] == f"after:   sequence {last}, state hash {state}"
    assert lines[2] == "identical"
    assert os.stat(db).st_ino != inode, "a new file was swapped in"
    assert (db.name + ".rebuild") not in os.listdir(tmp_path)
    async with await ReadModel.open(db, readonly=True) as model:
        assert await model.event_seqs() == seqs
        assert await model.bad_event_count() == bad == 1
        assert await model.state_hash_all() == state

    # The projector's durable was at the old file's position: it carries on from the rebuilt one.
    nc = await nats.connect(nats_url)
    try:
        service = AdminService(EventStore(nc))
        await service.toggle("default", "production", "f1", True, req)
    finally:
        await nc.close()
    assert await project(nats_url, db) == last + 1
    async with await ReadModel.open(db, readonly=True) as model:
        assert await model.event_seqs() == [*seqs, last + 1]
        flag = await model.get("default", "production", "flag", "f1")
        assert flag is not None
        assert flag.decoded().on is True  # type: ignore[union-attr]
    # A rebuild into a missing file just creates it (``flagstream rebuild`` is the same command).
    fresh = tmp_path / "new.sqlite"
    code, out, err = await run_cli("rebuild", "--db", str(fresh), "--nats-url", nats_url)
    assert code == 0, err
    assert out.splitlines()[-1] == f"created {fresh}"


async def test_one_projector_per_read_model_and_a_killed_one_leaves_no_lock(nats_url: str, tmp_path: Path) -> None:
    nc = await nats.connect(nats_url)
    try:
        await ensure_stream(nc.jetstream())
        req = WriteRequest(actor="ada", comment="setup")
        service = AdminService(EventStore(nc))
        await service.create(ENVIRONMENT, "default", "production", Environment(key="production"), req)
        await service.create(FLAG, "default", "production", Flag(key="f"), req)
    finally:
        await nc.close()
    db = tmp_path / "readmodel.sqlite"
    lock = tmp_path / "readmodel.sqlite.lock"
    cmd = [sys.executable, "-m", "flagstream.services.cli", "projector", "--nats-url", nats_url, "--db", str(db)]
    first = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.DEVNULL)
    try:
        await eventually(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), what="the lock taken")
        await eventually(lambda: db_position(db) >= 2, what="the flag projected")
        # A second projector, and a rebuild, on the file the first one holds: refused, naming the holder.
        for args in ([], ["--rebuild"]):
            code, _, err = await run_cli("projector", *args, "--nats-url", nats_url, "--db", str(db))
            assert code == 2, err
            assert f"in use by another projector (pid {first.pid})" in err
        assert not (tmp_path / "readmodel.sqlite.rebuild").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # The kernel released the lock with the process: the rebuild goes ahead.
    code, out, err = await run_cli("rebuild", "--db", str(db), "--nats-url", nats_url)
    assert code == 0, err
    assert out.splitlines()[-1] == "identical"
