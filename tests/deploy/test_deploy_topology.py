"""The deployment of compose.yaml, run as local processes (no Docker here): three nats-servers in a cluster with
JetStream, the stream created with 3 replicas by the compose file's one-shot service, two `flagstream admin`
processes and one `flagstream projector`. Every command comes from compose.yaml; only hosts, ports and volume
paths are rewritten to loopback, free ports and the test's folder.

Then the end-to-end scenario: create and toggle a flag through admin #1, read it through admin #2, an SDK client
given the three NATS URLs sees the change, and the projector's read model has it. The "edge" profile's leaf node
(deploy/nats-leaf.conf) with its mirror (deploy/edge-mirror.json) serves the change to an SDK client in that region.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml

from flagstream import AsyncFlagstreamClient, sdk_connect_options
from flagstream.events import STREAM
from flagstream.services.projector.readmodel import ReadModel
from flagstream.services.runtime.natsd import NatsServer, free_port
from flagstream.services.runtime.stream import MAX_CONSUMERS
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers, eventually

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"(nats|nats-route|nats-leaf)://([A-Za-z0-9_.-]+):(\d+)")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


@dataclass
class Topology:
    """compose.yaml's services as local processes."""

    base: Path
    services: dict[str, Any]
    client_ports: dict[str, int] = field(default_factory=dict)
    cluster_ports: dict[str, int] = field(default_factory=dict)
    leaf_ports: dict[str, int] = field(default_factory=dict)
    http_ports: dict[str, int] = field(default_factory=dict)
    nats: dict[str, NatsServer] = field(default_factory=dict)
    secrets: Path = Path()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port(self) -> int:
        """A free port not handed out before in this topology (the OS may offer a just-closed one twice)."""
        taken = {*self.client_ports.values(), *self.cluster_ports.values(), *self.leaf_ports.values()}
        taken |= set(self.http_ports.values())
        while (port := free_port()) in taken:
            pass
        return port

    def names(self, image_prefix: str) -> list[str]:
        return [n for n, s in self.services.items() if str(s.get("image", "")).startswith(image_prefix)]

    def flagstream_services(self, first_arg: str) -> list[str]:
        return [n for n, s in self.services.items() if "build" in s and s["command"][0] == first_arg]

    def rewrite_url(self, match: re.Match[str]) -> str:
        scheme, host, port = match.groups()
        if scheme == "nats-route" or port == "6222":
            return f"{scheme}://127.0.0.1:{self.cluster_ports[host]}"
        if scheme == "nats-leaf" or port == "7422":
            return f"{scheme}://127.0.0.1:{self.leaf_ports[host]}"
        if host in self.client_ports:
            return f"{scheme}://127.0.0.1:{self.client_ports[host]}"
        return f"{scheme}://127.0.0.1:{port}"  # 0.0.0.0: the listen address, rewritten by the caller

    def volumes(self, name: str) -> dict[str, Path]:
        out = {}
        for volume in self.services[name].get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):  # a file of this repository, mounted: see nats_conf
                continue
            out[target] = self.base / source
            out[target].mkdir(parents=True, exist_ok=True)
        return out

    def local_args(self, name: str, args: list[str]) -> list[str]:
        mounts = self.volumes(name)
        out = []
        for arg in args:
            arg = URL.sub(self.rewrite_url, str(arg))
            for target, local in mounts.items():
                if arg.startswith(target + "/") or arg == target:
                    arg = str(local) + arg[len(target) :]
            out.append(arg)
        return out

    # -- starting -------------------------------------------------------------------------------------

    def nats_conf(self, name: str) -> str:
        """The service's nats-server config file (mounted from deploy/), made local: its server name, store,
        cluster and leaf ports and its peers' addresses on loopback (client and monitoring ports are set by
        ``NatsServer`` on the command line, which wins over the file)."""
        service = self.services[name]
        assert service["command"] == ["-c", "/etc/nats/nats.conf"], service["command"]
        (mount,) = [v for v in service["volumes"] if v.endswith(":/etc/nats/nats.conf:ro")]
        text = (ROOT / mount.split(":")[0]).read_text()
        text = text.replace("$NATS_SERVER_NAME", service["environment"]["NATS_SERVER_NAME"])
        text = text.replace('"/data"', f'"{self.volumes(name)["/data"] / "js"}"')
        # nats-server resolves an include relative to the config file (written to self.base): point it at the
        # secrets volume's local folder.
        secrets = self.volumes(name)["/etc/nats/secrets"].relative_to(self.base)
        text = text.replace('include "secrets/', f'include "{secrets}/')
        text = text.replace("0.0.0.0:6222", f"127.0.0.1:{self.cluster_ports.get(name, 0)}")
        text = text.replace("port: 7422", f"port: {self.leaf_ports.get(name, 0)}")
        for peer in self.cluster_ports:
            text = text.replace(f"{peer}:6222", f"127.0.0.1:{self.cluster_ports[peer]}")
            text = text.replace(f"{peer}:7422", f"127.0.0.1:{self.leaf_ports[peer]}")
        assert not re.search(r"nats-\d:|0\.0\.0\.0", text), text
        return text

    def launch_nats(self, name: str) -> NatsServer:
        self.client_ports.setdefault(name, self.port())
        config = self.base / f"{name}.conf"
        config.write_text(self.nats_conf(name))
        log = self.base / f"{name}.log"
        self.http_ports[f"{name}-monitor"] = monitor = self.port()
        server = NatsServer(
            self.base / name, port=self.client_ports[name], monitor_port=monitor, config_file=config, log_file=log
        )
        self.nats[name] = server
        server.launch()
        return server

    def start_nats(self) -> None:
        names = [n for n in self.names("nats:") if not self.services[n].get("profiles")]
        assert len(names) == 3, f"compose.yaml should have three nats services, has {names}"
        for name in names:
            self.cluster_ports[name] = self.port()
            self.leaf_ports[name] = self.port()
        (users,) = self.flagstream_services("nats-users")  # the nodes include the auth.conf it writes
        self.run_once(users)
        self.secrets = self.volumes(users)["/secrets"]
        for name in names:
            self.launch_nats(name)
        for name in names:
            self.nats[name]._wait_ready(60)

    def run_once(self, name: str) -> str:
        args = self.local_args(name, self.services[name]["command"])
        done = subprocess.run([FLAGSTREAM, *args], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str) -> None:
        args = self.local_args(name, self.services[name]["command"])
        for i, arg in enumerate(args):
            if arg == "--host":
                args[i + 1] = "127.0.0.1"
            if arg == "--metrics-host":
                args[i + 1] = "127.0.0.1"
            if arg in ("--port", "--metrics-port"):
                self.http_ports[name] = self.port()
                args[i + 1] = str(self.http_ports[name])
        env = {**os.environ, **{k: str(v) for k, v in (self.services[name].get("environment") or {}).items()}}
        env["FLAGSTREAM_OPERATOR_TOKEN"] = ADMIN_TOKEN  # compose takes it from .env
        log = (self.base / f"{name}.out").open("wb")
        self.procs[name] = subprocess.Popen(
            [FLAGSTREAM, *args, "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_ports[name]}"

    def password(self, user: str) -> str:
        return (self.secrets / f"{user}.password").read_text().strip()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in self.nats.values():
            server.stop()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(tmp_path, compose()["services"])
    try:
        topo.start_nats()
        yield topo
    finally:
        topo.stop()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"{url} exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never ready:\n{log.read_text()}"
        time.sleep(0.1)


async def route_login(port: int, credentials: dict[str, str]) -> str:
    """What a node's cluster port answers a route CONNECT (NATS route protocol) with these credentials."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(30):
            assert (await reader.readline()).startswith(b"INFO ")
            connect = {"verbose": False, "pedantic": False, "tls_required": False, "name": "intruder",
                       "cluster": "flagstream", **credentials}  # fmt: skip
            writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
            await writer.drain()
            return (await reader.readline()).decode().strip()
    finally:
        writer.close()


async def test_compose_topology_end_to_end(topology: Topology) -> None:
    (stream_service,) = topology.flagstream_services("stream")
    assert "stream FLAGSTREAM: 3 replica(s)" in topology.run_once(stream_service)
    admins = topology.flagstream_services("admin")
    (projector,) = topology.flagstream_services("projector")
    assert len(admins) == 2
    for name in [*admins, projector]:
        topology.start(name)
    for name in admins:
        wait_ready(topology.url(name), topology.procs[name], topology.base / f"{name}.out")

    urls = [s.url for s in topology.nats.values()]
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):  # the cluster runs with users
        await nats.connect(urls, allow_reconnect=False, max_reconnect_attempts=0)
    # ... and its routes too: a server that reaches port 6222 without the route user's password cannot join.
    route_port = next(iter(topology.cluster_ports.values()))
    for credentials in (
        {},
        {"user": "route", "pass": "guess"},
        {"user": "operator", "pass": topology.password("operator")},
    ):
        assert await route_login(route_port, credentials) == "-ERR 'Authorization Violation'"
    nc = await nats.connect(urls, user="operator", password=topology.password("operator"))
    try:
        info = await nc.jetstream().stream_info(STREAM)
        assert info.config.num_replicas == 3  # the admins did not replace it with a one-replica stream
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2  # a leader and two followers
    finally:
        await nc.close()

    # The edge region of compose's "edge" profile: a leaf node with a mirror of the stream, created from the file
    # the edge-mirror service gives `nats stream add --config` (the same JetStream API request).
    (edge,) = [n for n in topology.names("nats:") if "edge" in topology.services[n].get("profiles", [])]
    topology.launch_nats(edge)._wait_ready(60)
    (mirror_service,) = [n for n in topology.services if n.endswith("mirror")]
    command = " ".join(topology.services[mirror_service]["command"])
    (mirror_file,) = re.findall(r"--config (\S+)", command)
    assert "--user operator" in command
    assert mirror_file.startswith("/deploy/")
    mirror = json.loads((ROOT / "deploy" / mirror_file.removeprefix("/deploy/")).read_text())
    assert mirror["max_consumers"] == MAX_CONSUMERS  # the region's SDK instances, one consumer each
    edge_url = topology.nats[edge].url
    enc = await nats.connect(edge_url, user="operator", password=topology.password("operator"))
    try:
        reply = await enc.request(f"$JS.API.STREAM.CREATE.{mirror['name']}", json.dumps(mirror).encode(), timeout=10)
        assert "error" not in json.loads(reply.data), reply.data
    finally:
        await enc.close()

    one, two = (topology.url(n) for n in admins)
    api = "/api/v1/projects/default/environments"
    async with httpx.AsyncClient(headers=auth_headers(), timeout=30) as http:
        assert (await http.post(f"{one}{api}", json={"key": "production"})).status_code == 201
        login = sdk_connect_options("default", "production", topology.password("sdk-default-production"))
        sdk = AsyncFlagstreamClient(urls, environment="production", telemetry=False, connect_options=login)
        edge_sdk = AsyncFlagstreamClient(edge_url, environment="production", telemetry=False, connect_options=login)
        try:
            assert await sdk.start(wait=30)
            assert await edge_sdk.start(wait=30)
            r = await http.post(f"{one}{api}/production/flags", json={"key": "checkout", "name": "Checkout"})
            assert r.status_code == 201, r.text
            assert (await http.post(f"{one}{api}/production/flags/checkout/on", json={})).status_code == 200
            seen = await http.get(f"{two}{api}/production/flags/checkout")
            assert seen.status_code == 200
            assert seen.json()["flag"]["on"] is True
            await eventually(lambda: sdk.bool_variation("checkout", {"key": "u1"}, False), what="the SDK sees it on")
            await eventually(
                lambda: edge_sdk.bool_variation("checkout", {"key": "u1"}, False), what="the edge SDK sees it on"
            )
            assert edge_sdk.seq == sdk.seq  # a mirror keeps the stream's sequences: versions mean the same
        finally:
            await sdk.close()
            await edge_sdk.close()

    db = topology.local_args(projector, ["/data/readmodel.sqlite"])[0]

    async def projected() -> bool:
        if not await asyncio.to_thread(Path(db).exists):
            return False
        async with await ReadModel.open(db, readonly=True) as model:
            found = await model.get("default", "production", "flag", "checkout")
            return found is not None and bool(found.decoded().on)  # type: ignore[union-attr]

    ok = False
    for _ in range(600):
        ok = await projected()
        if ok:
            break
        assert topology.procs[projector].poll() is None, (topology.base / f"{projector}.out").read_text()
        await asyncio.sleep(0.05)
    assert ok, "the projector's read model never had the flag on"

    # Its metrics listener (compose's health check) shows it caught up with the replicated stream.
    wanted = {  # env, flag, toggle; the stream's last sequence is read with the projector's NATS user
        "flagstream_projector_events_applied_total 3.0",
        "flagstream_projector_stream_last_seq 3.0",
        "flagstream_projector_lag 0.0",
    }
    lines: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(30):
        while not wanted <= lines:
            lines = set((await http.get(f"{topology.url(projector)}/metrics")).text.splitlines())
            await asyncio.sleep(0.05)
