"""``flagstream admin``: serve the admin API with uvicorn against a NATS server."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import uvicorn

from .app import create_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="NATS server holding the event stream")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"flagstream admin: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, sock))
    finally:
        sock.close()


async def _serve(args: argparse.Namespace, sock: socket.socket) -> int:
    config = uvicorn.Config(create_app(nats_url=args.nats_url), log_level=args.log_level, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            print("flagstream admin: the API did not start (is NATS reachable?)", file=sys.stderr)
            return 1
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()[:2]
    print("Flagstream admin API:", flush=True)
    print(f"http://{host}:{port}", flush=True)
    await task
    return 0
