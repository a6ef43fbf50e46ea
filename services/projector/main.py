"""``flagstream projector``: run the projector against a NATS server until SIGINT/SIGTERM.

With ``--print-hash`` it catches up with the stream, prints the state hash of the read model (of one
environment with ``--env``, else of every entity) and exits: a quick check that a rebuilt read model, or the
SDK, agrees with this one. With ``--rebuild`` (or as ``flagstream rebuild``) it rebuilds the read model from
sequence 1 and swaps it in (``rebuild.py``).

One process per read model: the projector holds ``<db>.lock`` while it runs (released by the kernel however it
ends), and a second one on the same file, a rebuild included, stops with exit code 2 naming the holder's pid.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import nats

from ..runtime import (
    add_log_arguments,
    add_nats_arguments,
    configure,
    dump_on_signal,
    end_within,
    hold_lock,
    lock_beside,
    nats_options,
    redact_logs,
)
from .projector import BATCH_SIZE, Projector
from .readmodel import ReadModel
from .rebuild import rebuild

log = logging.getLogger("flagstream.projector")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The projector's options; as ``flagstream rebuild``, only those a rebuild uses."""
    rebuild_command = parser.prog.split()[-1] == "rebuild"
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="NATS server (default: %(default)s)")
    parser.add_argument("--db", required=True, type=Path, help="SQLite file of the read model (created if missing)")
    if rebuild_command:
        parser.set_defaults(rebuild=True)
    else:
        parser.add_argument(
            "--durable",
            default=None,
            help="name of the durable consumer (default: projector; with --print-hash a throw-away one of its own)",
        )
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="events per fetch and transaction")
        parser.add_argument(
            "--print-hash", action="store_true", help="catch up, print the state hash and exit (see --env, --project)"
        )
        parser.add_argument("--project", default="default", help="project of --env (default: %(default)s)")
        parser.add_argument(
            "--env", default=None, help="with --print-hash: hash only this environment's flags and segments"
        )
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="fold the stream from sequence 1 into a fresh read model, print the state hash before and after, "
            "swap it in for --db (the command 'flagstream rebuild' does the same)",
        )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up after N seconds (default: 3600)"
        if rebuild_command
        else "with --print-hash or --rebuild: give up after N seconds (default: 300, --rebuild 3600)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_nats_arguments(parser)
    add_log_arguments(parser)
    if not rebuild_command:
        parser.add_argument(
            "--metrics-port", type=int, default=None, help="serve Prometheus metrics at http://HOST:PORT/metrics"
        )
        parser.add_argument(
            "--metrics-host", default="127.0.0.1", help="address of --metrics-port (default: %(default)s)"
        )


def run(args: argparse.Namespace) -> int:
    configure(args.log_level, args.log_format)
    redact_logs("flagstream.projector")  # a user may still give credentials inside --nats-url
    try:
        options = nats_options(args)
    except OSError as exc:
        print(f"flagstream projector: {exc}", file=sys.stderr)
        return 2
    db = Path(args.db).resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    lock, owner = hold_lock(lock_beside(db))  # held (open) until this process ends
    if lock is None:
        print(
            f"flagstream projector: {db} is in use by another projector (pid {owner or 'unknown'}); "
            "two projectors on one read model would skip each other's events. Stop that one, or give this one "
            "another --db",
            file=sys.stderr,
        )
        return 2
    if args.rebuild:
        timeout = 3600.0 if args.timeout is None else args.timeout
        return asyncio.run(rebuild(args.nats_url, db, timeout, options))
    if args.print_hash:
        # A durable of its own, removed by the server a minute after the run: a hash check must never take over
        # (and rewind) the durable of a projector running against another database.
        durable = args.durable or f"projector-hash-{os.getpid()}"
        projector = Projector(
            nats_url=args.nats_url,
            db_path=args.db,
            durable=durable,
            batch_size=args.batch_size,
            inactive_threshold=60,
            connect_options=options,
        )
        return asyncio.run(_print_hash(projector, args))
    projector = Projector(
        nats_url=args.nats_url,
        db_path=args.db,
        durable=args.durable or "projector",
        batch_size=args.batch_size,
        connect_options=options,
    )
    asyncio.run(_serve(projector, args.metrics_port, args.metrics_host))
    return 0


async def _serve(projector: Projector, metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dump_on_signal(signal.SIGUSR1)  # kill -USR1: every thread's stack and asyncio task's await chain to stderr
    log.info("projector %r: %s -> %s", projector.durable, _redacted(projector.nats_url), projector.db_path)
    if metrics_port is None:
        await projector.run(stop)
        return
    from ..runtime import ProjectorMetrics, serve  # prometheus-client only when asked for

    metrics = ProjectorMetrics()
    metrics.instrument(projector)
    server = serve(metrics.registry, metrics_port, metrics_host)
    log.info("metrics at http://%s:%d/metrics", metrics_host, server.server_port)
    follower = asyncio.create_task(
        metrics.follow_stream(lambda: nats.connect(projector.nats_url, **projector.connect_options), stop),
        name="projector-lag",
    )
    try:
        await projector.run(stop)
    finally:
        stop.set()
        await end_within(follower, "projector lag", grace=10, log=log)
        server.shutdown()


async def _print_hash(projector: Projector, args: argparse.Namespace) -> int:
    timeout = 300.0 if args.timeout is None else args.timeout
    if not await projector.catch_up(timeout):
        log.error("not caught up after %ss (at sequence %d)", timeout, projector.last_seq)
        return 1
    async with await ReadModel.open(args.db, readonly=True) as model:
        if args.env:
            print(await model.state_hash(args.project, args.env), flush=True)
        else:
            print(await model.state_hash_all(), flush=True)
    return 0


def _redacted(url: str) -> str:
    """``url`` without a password in it."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{userinfo.split(':')[0]}:***@{host}" if at else url
