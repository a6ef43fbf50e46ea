"""``flagstream admin``: serve the admin API with uvicorn against a NATS server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ..clientkeys import ClientLimits
from ..history import OPTION
from ..people import load_config
from ..runtime import (
    add_log_arguments,
    add_nats_arguments,
    configure,
    dump_on_signal,
    hold_lock,
    listening_socket,
    lock_beside,
    nats_options,
    redact_logs,
)
from ..webhooks import add_webhook_arguments, webhook_policy
from .app import create_app
from .streams import StreamingServer

log = logging.getLogger("flagstream.admin")


def operator_token(path: Path | None) -> str | None:
    """The operator token from ``path``, else ``$FLAGSTREAM_OPERATOR_TOKEN``, else None (only stored tokens)."""
    if path is not None:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"the operator token file {path} is empty")
        return token
    return os.environ.get("FLAGSTREAM_OPERATOR_TOKEN", "").strip() or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="NATS server holding the event stream")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free port)")
    parser.add_argument("--connect-wait", type=float, default=30.0, help="seconds to wait for NATS at start-up")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--operator-token-file",
        type=Path,
        default=None,
        help="file holding the bootstrap admin token (default: $FLAGSTREAM_OPERATOR_TOKEN)",
    )
    parser.add_argument(
        OPTION,
        dest="history_db",
        type=Path,
        default=None,
        help="fold the event log into this SQLite file (created if missing; rebuilt from the log if lost): history, "
        "time travel, diff and revert need it. Each replica its own file. Without it those routes answer 503",
    )
    parser.add_argument(
        "--client-address-rate",
        type=float,
        default=20.0,
        help="client door (client-side keys): requests per second per client address, bursts of 5 times it",
    )
    parser.add_argument(
        "--client-key-rate",
        type=float,
        default=2000.0,
        help="client door: requests per second per client-side key in this process, bursts of 2 times it",
    )
    parser.add_argument(
        "--people-config", type=Path, default=None, help="how people sign in: single sign-on, roles (docs/security.md)"
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("FLAGSTREAM_PROMETHEUS_URL"),
        help="Prometheus server that release plans' PromQL guardrails ask (default: $FLAGSTREAM_PROMETHEUS_URL)",
    )
    parser.add_argument(
        "--plan-lease",
        type=float,
        default=10.0,
        help="seconds without a renewal after which another replica takes over a release plan",
    )
    parser.add_argument(
        "--snapshot-lease",
        type=float,
        default=10.0,
        help="seconds without a renewal after which another replica takes over writing environment snapshots",
    )
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=2.0,
        help="least seconds between two snapshots of an environment (SDK clients load them at start)",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, help="private key of --tls-cert (PEM)")
    add_nats_arguments(parser)
    add_webhook_arguments(parser)
    add_log_arguments(parser)


def run(args: argparse.Namespace) -> int:
    configure(args.log_level, args.log_format)
    if (args.tls_cert is None) != (args.tls_key is None):
        print("flagstream admin: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        args.operator_token = operator_token(args.operator_token_file)
        args.nats_options = nats_options(args)
        args.webhook_policy = webhook_policy(args)
        args.people = load_config(args.people_config) if args.people_config is not None else None
    except (OSError, ValueError) as exc:
        print(f"flagstream admin: {exc}", file=sys.stderr)
        return 2
    if args.history_db is None:
        log.warning(
            "history is off: the history, state-as-of, evaluate-as-of, diff and revert routes answer 503. Start "
            "with %s PATH to fold the event log into a read model of this admin's own",
            OPTION,
        )
        args.history_lock = None
    else:
        args.history_db = args.history_db.resolve()
        args.history_db.parent.mkdir(parents=True, exist_ok=True)
        args.history_lock, owner = hold_lock(lock_beside(args.history_db))  # held (open) until this process ends
        if args.history_lock is None:
            print(
                f"flagstream admin: {args.history_db} is in use by another process (pid {owner or 'unknown'}); "
                f"give each admin replica its own {OPTION}",
                file=sys.stderr,
            )
            return 2
        redact_logs("flagstream.projector", "flagstream.history")  # the fold logs the URL, which may hold a password
        log.info("history: read model %s, folded from the event log by this admin", args.history_db)
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"flagstream admin: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, sock))
    except SystemExit:  # uvicorn exits this way when the app's start-up (connecting to NATS) fails
        print(f"flagstream admin: the API did not start (is NATS reachable at {args.nats_url}?)", file=sys.stderr)
        return 1
    finally:
        sock.close()


class _Server(StreamingServer):
    """uvicorn whose stop signals are handled here: Ctrl-C / SIGTERM stop it cleanly and exit with 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        self.should_exit = True


async def _serve(args: argparse.Namespace, sock: socket.socket) -> int:
    dump_on_signal(signal.SIGUSR1)  # kill -USR1: every thread's stack and asyncio task's await chain to stderr
    app = create_app(
        nats_url=args.nats_url,
        connect_wait=args.connect_wait,
        operator_token=args.operator_token,
        nats_options=args.nats_options,
        history_db=args.history_db,
        webhook_allow=args.webhook_policy,
        client_limits=ClientLimits(
            per_address=args.client_address_rate,
            address_burst=max(1, int(args.client_address_rate * 5)),
            per_key=args.client_key_rate,
            key_burst=max(1, int(args.client_key_rate * 2)),
        ),
        people=args.people,
        prometheus_url=args.prometheus_url,
        plan_lease=args.plan_lease,
        snapshot_lease=args.snapshot_lease,
        snapshot_interval=args.snapshot_interval,
    )
    tls = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)} if args.tls_cert else {}
    # log_config=None: uvicorn's loggers (start-up, access log) go through the root logger set up by configure(),
    # so --log-format json covers them too.
    config = uvicorn.Config(app, log_level=args.log_level, lifespan="on", log_config=None, **tls)  # type: ignore[arg-type]
    server = _Server(config)

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        print("Flagstream admin API:", flush=True)
        print(f"{'https' if args.tls_cert else 'http'}://{host}:{port}", flush=True)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])  # uvicorn raises SystemExit if the start-up fails
    finally:
        announcer.cancel()
    return 0
