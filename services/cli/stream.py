"""``flagstream stream ensure --replicas N``: create the event stream on a NATS cluster before the services start.

The admin service and the projector create the stream themselves if it is missing, but with one replica; on a
cluster run this first (``compose.yaml`` does, as a one-shot service). An existing stream is left as it is and
its replica count is printed, so a wrong one is noticed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import nats

from ...events import STREAM
from ..runtime import add_nats_arguments, ensure_metrics_stream, ensure_stream, nats_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ensure = sub.add_parser("ensure", help="create the stream if it does not exist")
    ensure.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="NATS server(s), comma-separated")
    ensure.add_argument("--replicas", type=int, default=1, choices=[1, 3, 5], help="copies of the stream (R3: HA)")
    ensure.add_argument("--connect-wait", type=float, default=60.0, help="seconds to wait for NATS")
    add_nats_arguments(ensure)


def run(args: argparse.Namespace) -> int:
    try:
        replicas = asyncio.run(_ensure(args))
    except Exception as exc:
        print(f"flagstream stream ensure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"stream {STREAM}: {replicas} replica(s)", flush=True)
    if replicas != args.replicas:
        print(f"flagstream stream ensure: the existing stream has {replicas}, not {args.replicas}", file=sys.stderr)
        return 1
    return 0


async def _ensure(args: argparse.Namespace) -> int:
    servers = [u.strip() for u in args.nats_url.split(",") if u.strip()]
    nc = await asyncio.wait_for(
        nats.connect(servers, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **nats_options(args)),
        args.connect_wait,
    )
    try:
        js = nc.jetstream()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.connect_wait
        while True:  # right after the cluster starts, JetStream may still be electing its meta leader
            try:
                await ensure_stream(js, replicas=args.replicas)
                await ensure_metrics_stream(js, replicas=args.replicas)
                break
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        info = await js.stream_info(STREAM)
        return int(info.config.num_replicas or 1)
    finally:
        await nc.close()
