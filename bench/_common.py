"""Helpers shared by the benchmarks: a throwaway nats-server, event builders, statistics, result files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flagstream.events import (
    Clause,
    Event,
    Flag,
    FlagCreated,
    FlagUpdated,
    Operator,
    Rule,
    Serve,
    Target,
    encode_event,
    subject,
)
from flagstream.services.runtime.natsd import NatsServer, free_port

RESULTS = Path(__file__).with_name("results")
PROJECT = "default"
ENVIRONMENT = "production"


@contextlib.contextmanager
def nats_server(leafnodes: bool = False) -> Iterator[NatsServer]:
    """A nats-server with JetStream in a temporary folder, stopped and removed afterwards; with ``leafnodes`` it
    also accepts leaf node connections (its ``leaf_port`` attribute) for ``leaf_server``, and its JetStream is
    in the domain ``hub`` (what clients on a leaf name as ``jetstream_domain``)."""
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-") as folder:
        config = None
        if leafnodes:
            leaf_port = free_port()
            config = Path(folder) / "hub.conf"
            config.write_text(
                f'jetstream {{ store_dir: "{Path(folder) / "nats"}", domain: hub }}\n'
                f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"
            )
        server = NatsServer(store_dir=Path(folder) / "nats", config_file=config).start()
        if leafnodes:
            server.leaf_port = leaf_port  # type: ignore[attr-defined]
        try:
            yield server
        finally:
            server.stop()


def leaf_server(hub: NatsServer, folder: Path) -> NatsServer:
    """A nats-server without JetStream, a leaf node of ``hub`` (same account): its clients use the hub's JetStream
    through it and receive plain messages fanned out by it. Returns once the leaf connection is up."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "leaf.conf"
    config.write_text(f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{hub.leaf_port}" }} ] }}\n')  # type: ignore[attr-defined]
    leaf = NatsServer(store_dir=folder, config_file=config)
    leaf.launch()
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{leaf.monitor_port}/leafz", timeout=1) as r:
                if json.loads(r.read()).get("leafnodes", 0) >= 1:
                    return leaf
        except OSError:
            pass
        if time.monotonic() > deadline:
            leaf.stop()
            raise TimeoutError("the leaf node did not connect to the hub")
        time.sleep(0.05)


def realistic_flag(key: str, revision: int = 0, on: bool = True) -> Flag:
    """A boolean flag with one individual target and one rule, like a typical production flag."""
    return Flag(
        key=key,
        description=f"revision {revision}",
        on=on,
        targets=(Target(variation="on", values=("qa-1", "qa-2")),),
        rules=(
            Rule(
                id="nordics",
                clauses=(Clause(attribute="country", op=Operator.IN, values=("NO", "SE", "DK", "FI")),),
                serve=Serve(variation="on"),
            ),
        ),
        fallthrough=Serve(variation="off"),
    )


def flag_event(flag: Flag, *, created: bool = False) -> tuple[str, bytes]:
    """(subject, payload) of a flag event in the benchmark environment."""
    cls: type[Event] = FlagCreated if created else FlagUpdated
    event = cls(project=PROJECT, environment=ENVIRONMENT, actor="bench", at=datetime.now(UTC), flag=flag)  # type: ignore[call-arg]
    return subject(PROJECT, ENVIRONMENT, "flag", flag.key), encode_event(event)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "min_ms": round(min(ms), 3),
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)))


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"{name}-{stamp}.json"
    payload = {"benchmark": name, "at": stamp, "python": platform.python_version(), "machine": platform.machine()}
    path.write_text(json.dumps({**payload, **data}, indent=2))
    print(f"\nresults written to {path}")
    return path


class AdminProcess:
    """``flagstream admin`` in a child process with an operator token, the benchmark environment and a flag
    ``key`` (off) made through it; ``toggle`` returns once the 2xx is read."""

    def __init__(self, nats_url: str, folder: Path, key: str) -> None:
        self.nats_url = nats_url
        self.key = key
        self.token = secrets.token_urlsafe(24)
        self.token_file = folder / "operator-token"
        self.token_file.write_text(self.token)

    async def start(self, setup: bool = True) -> None:
        """Start it and wait until ready; ``setup``: also create the environment and the flag (the first replica)."""
        import httpx

        from flagstream.services.runtime.natsd import free_port

        port = free_port()
        flagstream = Path(sys.executable).with_name("flagstream")
        self.process = await asyncio.create_subprocess_exec(
            str(flagstream),
            "admin",
            "--nats-url",
            self.nats_url,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--operator-token-file",
            str(self.token_file),
            "--webhook-allow",  # the webhook benchmark's receiver listens on 127.0.0.1 (refused by default)
            "127.0.0.1",
            stdout=asyncio.subprocess.DEVNULL,
        )
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/api/v1/projects/{PROJECT}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await self.http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.returncode is not None:
                await self.close()
                raise RuntimeError("the admin API did not become ready")
            await asyncio.sleep(0.05)
        if not setup:
            return
        response = await self.http.post("/environments", json={"key": ENVIRONMENT})
        assert response.status_code in (200, 201, 409), response.text
        response = await self.http.post(f"/environments/{ENVIRONMENT}/flags", json={"key": self.key, "on": False})
        assert response.status_code == 201, response.text

    async def toggle(self, on: bool) -> None:
        response = await self.http.post(f"/environments/{ENVIRONMENT}/flags/{self.key}/{'on' if on else 'off'}")
        assert response.is_success, response.text

    async def close(self) -> None:
        await self.http.aclose()
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 10)
