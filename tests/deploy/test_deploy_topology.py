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
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, admin_with_history, auth_headers, copy_stream, eventually, until

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


def start_services(topology: Topology) -> tuple[list[str], str]:
    """compose's stream one-shot, then the admins and the projector; the admins' names (ready) and the projector's."""
    (stream_service,) = topology.flagstream_services("stream")
    assert "stream FLAGSTREAM: 3 replica(s)" in topology.run_once(stream_service)
    admins = topology.flagstream_services("admin")
    (projector,) = topology.flagstream_services("projector")
    assert len(admins) == 2
    for name in [*admins, projector]:
        topology.start(name)
    for name in admins:
        wait_ready(topology.url(name), topology.procs[name], topology.base / f"{name}.out")
    return admins, projector


async def test_compose_topology_end_to_end(topology: Topology) -> None:
    admins, projector = start_services(topology)

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


# -- history in the production topology ------------------------------------------------------------------------

API = "/api/v1/projects/default/environments"
ENV = f"{API}/production"


def questions(seqs: dict[str, int], times: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every history route, at instants given as sequences and as times."""
    mid, late = seqs["mid"], seqs["late"]
    context = {"key": "u1", "country": "NO"}
    return [
        ("GET", f"{ENV}/history", {}),
        ("GET", f"{ENV}/history", {"params": {"kind": "flag", "key": "checkout", "limit": "2"}}),
        ("GET", f"{ENV}/history", {"params": {"actor": "operator", "since": times["mid"]}}),
        ("GET", f"{ENV}/flags/checkout/history", {}),
        ("GET", f"{ENV}/segments/beta/history", {}),
        ("GET", f"{ENV}/state", {}),
        ("GET", f"{ENV}/state", {"params": {"seq": str(mid)}}),
        ("GET", f"{ENV}/state", {"params": {"at": times["mid"]}}),
        ("GET", f"{ENV}/flags/checkout/state", {"params": {"as_of": times["late"]}}),
        ("GET", f"{ENV}/flags/checkout/state", {"params": {"seq": "1"}}),  # before it existed: record null
        ("GET", f"{ENV}/segments/beta/state", {"params": {"seq": str(late)}}),
        ("GET", f"{ENV}/diff", {"params": {"from": str(mid)}}),
        ("GET", f"{ENV}/diff", {"params": {"from": times["mid"], "to": times["late"]}}),
        ("POST", f"{ENV}/evaluate", {"json": {"context": context, "seq": mid}}),
        ("POST", f"{ENV}/evaluate", {"json": {"context": context, "as_of": times["late"]}}),
        ("POST", f"{ENV}/evaluate", {"json": {"context": context, "flags": ["checkout"]}}),
    ]


async def answers(http: httpx.AsyncClient, base: str, asked: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    out = []
    for method, path, kwargs in asked:
        response = await http.request(method, f"{base}{path}", **kwargs)
        assert response.status_code == 200, (base, path, kwargs, response.text)
        out.append(response.json())
    return out


async def last_seq(url: str, **options: Any) -> int:
    nc = await nats.connect(url, **options)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.last_seq)
    finally:
        await nc.close()


def states_of(environment_state: dict[str, Any]) -> dict[str, Any]:
    """Key -> state of the flags and segments in a ``GET .../state`` answer."""
    return {r["key"]: r["state"] for r in environment_state["flags"] + environment_state["segments"]}


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_every_admin_replica_answers_history_with_the_projector_killed(
    topology: Topology, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Changes through admin-1; every history route through admin-2 (asked at once, no waiting) answers what
    admin-1 and the embedded default (admin and projector in one process, over a copy of the same events) answer.
    Then the projector is SIGKILLed and its read model deleted: more changes, the same answers. Reverts write
    once through either replica; admin-2 killed and its read model deleted refolds; the projector, back, has every
    event once."""
    admins, projector = start_services(topology)
    one, two = (topology.url(n) for n in admins)
    urls = [s.url for s in topology.nats.values()]
    login = {"user": "operator", "password": topology.password("operator")}
    seqs: dict[str, int] = {}
    times: dict[str, str] = {}
    embedded = tmp_path / "embedded"
    embedded.mkdir()
    copied = 0

    async with (
        httpx.AsyncClient(headers=auth_headers(), timeout=30) as http,
        admin_with_history(nats_server.url, embedded) as default,
    ):

        async def write(method: str, path: str, body: dict[str, Any]) -> int:
            response = await http.request(method, f"{one}{ENV}{path}", json=body)
            assert response.status_code in (200, 201), response.text
            return int(response.headers["ETag"].strip('"'))

        async def compare() -> list[Any]:
            nonlocal copied
            asked = questions(seqs, times)
            through_two = await answers(http, two, asked)  # right after admin-1's writes: no wait here
            assert through_two == await answers(http, one, asked)
            copied = await copy_stream(urls[0], nats_server.url, after=copied, source_options=login)
            assert through_two == await answers(default.http, "", asked)
            return through_two

        assert (await http.post(f"{one}{API}", json={"key": "production"})).status_code == 201
        await write("POST", "/segments", {"key": "beta", "included": ["u1"]})
        await write("POST", "/flags", {"key": "checkout", "name": "Checkout"})
        seqs["mid"] = await write("POST", "/flags/checkout/on", {"comment": "launch"})
        times["mid"] = now()
        rule = {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "off"}}
        await write("PATCH", "/flags/checkout", {"rules": [rule]})
        await write("POST", "/flags", {"key": "banner"})
        seqs["late"] = await write("PATCH", "/segments/beta", {"included": ["u1", "u2"]})
        times["late"] = now()
        await write("POST", "/flags/banner/archive", {})
        first = await compare()
        assert first[0]["items"][0]["type"] == "flag.archived"  # history through admin-2 has admin-1's last write
        assert first[6]["hash"] != first[5]["hash"]  # the state at "mid" is not today's

        # The projector SIGKILLed and its read model deleted: the admins never needed it.
        os.kill(topology.procs[projector].pid, signal.SIGKILL)
        topology.procs[projector].wait(30)
        db = Path(topology.local_args(projector, ["/data/readmodel.sqlite"])[0])
        for leftover in db.parent.glob(db.name + "*"):
            leftover.unlink()
        await write("POST", "/flags/checkout/off", {"comment": "incident"})
        seqs["late"] = await write("PATCH", "/segments/beta", {"excluded": ["u3"]})
        times["late"] = now()
        second = await compare()
        assert second[0]["items"][0]["lines"] == ['excluded: added "u3"']

        # A revert writes once, through either replica: admin-1 writes it, the same revert through admin-2
        # finds nothing to do (its read model has admin-1's writes, and the current state is the stream's).
        before = await last_seq(urls[1], **login)
        reverted = await http.post(f"{one}{ENV}/revert", json={"seq": seqs["mid"], "comment": "back"})
        assert reverted.status_code == 200, reverted.text
        written = reverted.json()["written"]
        # (banner, created after "mid", is archived already: nothing to write for it)
        assert {(w["kind"], w["key"]) for w in written} == {("flag", "checkout"), ("segment", "beta")}
        again = await http.post(f"{two}{ENV}/revert", json={"seq": seqs["mid"], "comment": "back"})
        assert again.status_code == 200, again.text
        assert again.json()["written"] == []
        assert await last_seq(urls[2], **login) == before + len(written)
        state_now = (await http.get(f"{two}{ENV}/state")).json()
        assert states_of(state_now) == states_of(first[6]) | {"banner": {**states_of(state_now)["banner"]}}
        assert states_of(state_now)["banner"]["archived"] is True  # the environment as it stood at "mid"

        # Both replicas revert one flag at the same moment: one write lands, never two.
        before = await last_seq(urls[0], **login)
        body = {"seq": seqs["late"], "comment": "race"}
        races = await asyncio.gather(*(http.post(f"{u}{ENV}/flags/checkout/revert", json=body) for u in (one, two)))
        assert sorted(r.status_code for r in races) in ([200, 200], [200, 409]), [r.text for r in races]
        writes = [w for r in races if r.status_code == 200 for w in r.json()["written"]]
        assert len(writes) == 1
        assert await last_seq(urls[0], **login) == before + 1

        # admin-2 SIGKILLed and its read model deleted: restarted, it refolds from the log and answers the same.
        name = admins[1]
        os.kill(topology.procs[name].pid, signal.SIGKILL)
        topology.procs[name].wait(30)
        history_db = Path(topology.local_args(name, ["/data/history.sqlite"])[0])
        assert await asyncio.to_thread(history_db.exists)
        for leftover in history_db.parent.glob(history_db.name + "*"):
            leftover.unlink(missing_ok=True)
        topology.start(name)
        two = topology.url(name)
        wait_ready(two, topology.procs[name], topology.base / f"{name}.out")
        await compare()

        # The projector returns: its refolded read model has every event once, and the embedded default's state.
        topology.start(projector)
        last = await last_seq(urls[0], **login)

        async def refolded() -> bool:
            if not await asyncio.to_thread(db.exists):
                return False
            try:
                async with await ReadModel.open(db, readonly=True) as model:
                    return await model.last_seq() >= last
            except Exception:  # created, its schema not yet
                return False

        await until(refolded, "the projector refolded the log")
        async with (
            await ReadModel.open(db, readonly=True) as model,
            await ReadModel.open(default.db, readonly=True) as reference,
        ):
            assert await model.event_seqs() == list(range(1, last + 1))  # nothing lost, nothing doubled
            assert await model.state_hash_all() == await reference.state_hash_all()
        async with await ReadModel.open(history_db, readonly=True) as model:
            assert await model.event_seqs() == list(range(1, last + 1))
