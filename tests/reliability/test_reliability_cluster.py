"""Fail-over: a three-node NATS cluster (stream with 3 replicas), its stream leader SIGKILLed under write load.

The admin API (connected to the leader node: its connection breaks too) keeps writing through the election with
the well-behaved client of the single-server kill test (same Idempotency-Key on every retry). Afterwards: no
acknowledged write lost, none stored twice, SDK clients given all three URLs converge, and the killed node,
restarted, rejoins and holds every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from test_reliability_nats_kill import API, ENV, FLAGS, Writer, check_log, fresh_hash, read_stream

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM
from flagstream.services.admin.app import create_app
from flagstream.services.runtime.natsd import NatsCluster
from flagstream.services.runtime.stream import ensure_stream, while_jetstream_settles
from tests.helpers import ADMIN_TOKEN, auth_headers, eventually


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", size=3).start()
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_writes_continue_through_a_stream_leader_crash(cluster: NatsCluster) -> None:
    nc = await nats.connect(cluster.urls)
    try:
        js = nc.jetstream()  # the stream before the admin, whose start-up would make an R1; JetStream may still settle
        await while_jetstream_settles("the stream", lambda: ensure_stream(js, replicas=3), 60)
    finally:
        await nc.close()
    leader = cluster.node_named(cluster.wait_leader_of(STREAM))

    flags = [f"flag-{i:02d}" for i in range(20)]
    app = create_app(nats_url=cluster.nodes[leader].url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://admin", timeout=30, headers=auth_headers()
        ) as http:
            assert (await http.post(f"{API}/environments", json={"key": ENV})).status_code == 201
            for flag in flags:
                assert (await http.post(FLAGS, json={"key": flag})).status_code == 201

            clients = [AsyncFlagstreamClient(cluster.urls, environment=ENV, reconnect_wait=0.1) for _ in range(2)]
            try:
                for client in clients:
                    assert await client.start(wait=30)
                writer = Writer(http, flags, rounds=8)
                writing = asyncio.create_task(writer.run())
                total = len(flags) * writer.rounds
                await eventually(lambda: writer.acknowledged >= total * 0.3, within=60, what="writes under way")
                acknowledged_before = writer.acknowledged
                cluster.kill(leader)
                new_leader = cluster.wait_leader_of(STREAM)
                assert cluster.node_named(new_leader) != leader
                await eventually(
                    lambda: writer.acknowledged > acknowledged_before + 20, within=60, what="writes after the election"
                )
                await asyncio.wait_for(writing, 120)

                stored = await read_stream(cluster.urls)
                figures = check_log(writer, stored)
                figures["faults"] = 1
                print(f"\ncluster fail-over figures (leader n{leader} killed, {new_leader} elected):", figures)

                last = stored[-1].seq
                await eventually(lambda: all(c.seq == last for c in clients), within=30, what="clients caught up")
                seq, expected = await fresh_hash(cluster.urls)
                assert seq == last
                assert [c.state_hash() for c in clients] == [expected, expected]
            finally:
                for client in clients:
                    await client.close()

    # The crashed node comes back, catches up from its peers and holds every message.
    cluster.restart(leader)

    def caught_up() -> bool:
        detail = cluster.stream_detail(leader, STREAM)
        return detail is not None and detail["state"]["last_seq"] == last and detail["state"]["messages"] == last

    await eventually(caught_up, within=60, what=f"n{leader} rejoined and caught up")
    nc = await nats.connect(cluster.urls)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        assert info.cluster is not None
        peers = {info.cluster.leader} | {p.name for p in info.cluster.replicas or []}
        assert peers == {"n0", "n1", "n2"}, "the restarted node is a replica again"
    finally:
        await nc.close()
