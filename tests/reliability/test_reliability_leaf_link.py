"""An SDK client on a leaf node (no JetStream of its own, following the hub's stream with a plain subscription the
leaf serves) while the leaf's link to the hub breaks and comes back, the client's own connection to the leaf
staying up: the changes written meanwhile never reach the client live and nothing reconnects on its side. Its gap
check (``gap_check_interval``) must find them on the stream and catch up, each applied once.

Real processes: a hub nats-server (JetStream, domain ``hub``), a leaf nats-server linked to it through a TCP relay
in the test that is cut (its connections closed, new ones refused) and restored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats

from flagstream import AsyncFlagstreamClient
from flagstream.events import Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.services.runtime.natsd import NatsServer, free_port
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually, until

USER = {"key": "user-1"}


class Relay:
    """A TCP relay: forwards bytes between the leaf and the hub's leaf port until ``cut()`` closes every relayed
    connection (and refuses new ones); ``restore()`` lets the leaf connect again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.close()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def leaf_connections(server: NatsServer) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/leafz", timeout=2) as r:
        return int(json.loads(r.read()).get("leafnodes", 0))


async def linked(server: NatsServer) -> bool:
    try:
        return await asyncio.to_thread(leaf_connections, server) >= 1
    except OSError:
        return False


@contextlib.asynccontextmanager
async def hub_and_leaf(folder: Path) -> AsyncIterator[tuple[NatsServer, NatsServer, Relay]]:
    leaf_port = free_port()
    hub_conf = folder / "hub.conf"
    hub_conf.write_text(
        f'jetstream {{ store_dir: "{folder / "hub"}", domain: hub }}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n'
    )
    hub = NatsServer(store_dir=folder / "hub", config_file=hub_conf)
    await asyncio.to_thread(hub.start)
    relay = Relay(leaf_port)
    await relay.start()
    leaf_conf = folder / "leaf.conf"
    leaf_conf.write_text(f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{relay.port}" }} ] }}\n')
    leaf = NatsServer(store_dir=folder / "leaf", config_file=leaf_conf)
    try:
        leaf.launch()
        await until(lambda: linked(hub), "the leaf linked to the hub")
        yield hub, leaf, relay
    finally:
        await relay.close()
        await asyncio.to_thread(leaf.stop)
        await asyncio.to_thread(hub.stop)


async def _publish(js: object, cls: type[FlagEvent], flag: Flag) -> int:
    event = cls(project="default", environment="production", actor="t", at=datetime.now(UTC), flag=flag)
    return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq  # type: ignore[attr-defined]


async def test_changes_written_while_the_leaf_link_was_down_reach_the_client_once_it_is_back(tmp_path: Path) -> None:
    async with hub_and_leaf(tmp_path) as (hub, leaf, relay):
        nc = await nats.connect(hub.url)
        js = nc.jetstream()
        client = AsyncFlagstreamClient(
            leaf.url, environment="production", jetstream_domain="hub", telemetry=False, gap_check_interval=0.2
        )
        try:
            await ensure_stream(js)
            # Another environment's events share the stream: the check must look at this environment's only.
            other = FlagCreated(project="default", environment="staging", actor="t", at=datetime.now(UTC),
                                flag=Flag(key="other", on=True))  # fmt: skip
            await _publish(js, FlagCreated, Flag(key="checkout", on=False))
            await _publish(js, FlagCreated, Flag(key="search", on=False))
            await js.publish(subject("default", "staging", "flag", "other"), encode_event(other))
            changes: list[tuple[bool | None, bool | None]] = []  # checkout's (old on, new on) at each change
            client.on_change("checkout", lambda key, old, new: changes.append((old and old.on, new and new.on)))
            assert await client.start(wait=15)
            source = client._source
            await eventually(lambda: source.following_live, what="following live")  # type: ignore[union-attr]
            checks = source.gap_checks  # type: ignore[union-attr]
            await eventually(lambda: source.gap_checks >= checks + 3, what="gap checks")  # type: ignore[union-attr]
            live = await _publish(js, FlagToggled, Flag(key="search", on=True))
            await eventually(lambda: client.seq == live, what="a live change received")
            assert client.gaps_repaired == 0

            relay.cut()
            await until(lambda: _not(linked(hub)), "the leaf link down")
            missed = await _publish(js, FlagToggled, Flag(key="checkout", on=True))
            await js.publish(subject("default", "staging", "flag", "other"), encode_event(other))
            assert client.bool_variation("checkout", USER, False) is False  # not received: the link is down
            relay.restore()

            await eventually(lambda: client.bool_variation("checkout", USER, False) is True, within=20,
                             what="the change written while the leaf link was down applied")  # fmt: skip
            assert client.seq == missed
            assert client.gaps_repaired == 1
            assert changes == [(None, False), (False, True)]  # loaded, then the missed change, once

            # Following live again afterwards, each change applied once.
            await eventually(lambda: source.following_live, what="following live again")  # type: ignore[union-attr]
            after = await _publish(js, FlagToggled, Flag(key="checkout", on=False))
            await eventually(lambda: client.seq == after, what="the next change received")
            assert client.bool_variation("checkout", USER, True) is False
            assert changes == [(None, False), (False, True), (True, False)]
            assert client.gaps_repaired == 1
        finally:
            await client.close()
            await nc.close()


async def _not(check: object) -> bool:
    return not await check  # type: ignore[misc]
