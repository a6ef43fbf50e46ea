"""``flagstream up``: the embedded default. One command runs a local nats-server (JetStream, data in a local
folder), the admin API and the projector, prints the API's URL, and stops everything cleanly on Ctrl-C.

Data lives under ``--data-dir`` (``.flagstream/`` by default): ``nats/`` is the JetStream store (the event log,
the source of truth) and ``readmodel.sqlite`` is the projector's read model (rebuildable from the log).

Security (``docs/security.md``): the first start creates ``operator-token`` (the admin API's bootstrap token)
and ``nats-users.json`` (a NATS user per role: admin, projector, operator, and an SDK user per default
environment), both mode 0600, and runs nats-server with ``nats-server.conf`` generated from them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import uvicorn
from nats.js.errors import APIError

from ...events import STREAM, EnvironmentCreated, encode_event, subject
from ...events.model import Environment
from ..admin.streams import StreamingServer
from ..people import load_config
from ..webhooks import add_webhook_arguments, webhook_policy
from .aio import dump_on_signal, end_within
from .filelock import hold_lock, lock_beside
from .listen import listening_socket
from .logs import add_log_arguments, configure
from .nats_auth import (
    ADMIN,
    PROJECTOR,
    Credentials,
    HashedUser,
    redact_logs,
    write_private,
    write_server_config,
)
from .natsd import NatsServer, free_port
from .stream import ensure_stream

#: The projector's read model, in the data folder.
READ_MODEL = "readmodel.sqlite"

log = logging.getLogger("flagstream.up")

DEFAULT_ENVIRONMENTS = ("development", "production")
#: The admin API's port when ``--port`` is not given (taken: any free port, printed).
DEFAULT_PORT = 8080
OPERATOR_TOKEN_FILE = "operator-token"
#: The SDK credentials made by admins, as nats-server knows them (user, bcrypt hash, environment; 0600): the last
#: state of their bucket, so nats-server accepts them from its first moment at the next start.
SDK_CREDENTIALS_FILE = "sdk-credentials.json"
WRONG_LAST_SEQUENCE = 10071


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=".flagstream", help="folder for the event log and read model")
    parser.add_argument("--host", default="127.0.0.1", help="address of the admin API")
    parser.add_argument(
        "--port", type=int, default=None,
        help=f"port of the admin API (0: any free port; default {DEFAULT_PORT}, or any free port if it is taken)",
    )  # fmt: skip
    parser.add_argument("--nats-port", type=int, default=4222, help="client port of nats-server (0: any free port)")
    parser.add_argument("--project", default="default", help="project whose default environments are created")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_webhook_arguments(parser)
    parser.add_argument(
        "--people-config", type=Path, default=None, help="how people sign in: single sign-on, roles (docs/security.md)"
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("FLAGSTREAM_PROMETHEUS_URL"),
        help="Prometheus server that release plans' PromQL guardrails ask (default: $FLAGSTREAM_PROMETHEUS_URL)",
    )
    add_log_arguments(parser)


def run(args: argparse.Namespace) -> int:
    configure(args.log_level, args.log_format)
    try:
        args.people = load_config(args.people_config) if args.people_config is not None else None
    except ValueError as exc:
        print(f"flagstream up: {exc}", file=sys.stderr)
        return 2
    redact_logs("flagstream.projector")  # the projector is given its NATS user in its URL
    try:
        args.webhook_policy = webhook_policy(args)
    except ValueError as exc:
        print(f"flagstream up: {exc}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock, owner = hold_lock(data_dir / "up.lock")  # held (open) until this process ends
    if lock is None:
        print(
            f"flagstream up: {data_dir} is in use by another flagstream up (pid {owner or 'unknown'}); "
            "stop that one, or give this one another --data-dir",
            file=sys.stderr,
        )
        return 2
    # The read model's own lock, as a standalone projector takes it: no `flagstream projector --rebuild` meanwhile.
    read_model_lock, owner = hold_lock(lock_beside(data_dir / READ_MODEL))
    if read_model_lock is None:
        print(f"flagstream up: {data_dir / READ_MODEL} is in use by a projector (pid {owner})", file=sys.stderr)
        return 2
    try:
        api_socket = _api_socket(args.host, args.port)
    except OSError as exc:
        message = f"flagstream up: cannot listen on {args.host}:{args.port}: {exc.strerror} (try --port 0)"
        print(message, file=sys.stderr)
        return 2
    nats_port = args.nats_port or free_port()
    if not _port_free("127.0.0.1", nats_port):
        print(f"flagstream up: port {nats_port} is taken; pass --nats-port 0 for any free port", file=sys.stderr)
        return 2
    token_file, token = ensure_operator_token(data_dir)
    creds = Credentials.load_or_create(data_dir, sdk=[(args.project, env) for env in DEFAULT_ENVIRONMENTS])
    users = ServerUsers(data_dir, creds, load_hashed_users(data_dir / SDK_CREDENTIALS_FILE))
    server = NatsServer(store_dir=data_dir / "nats", port=nats_port, config_file=users.write())
    users.server = server
    try:
        server.start()
    except (RuntimeError, TimeoutError) as exc:
        print(f"flagstream up: nats-server did not start: {exc} (log: {data_dir / 'nats'})", file=sys.stderr)
        return 1
    try:
        asyncio.run(_serve(args, server, api_socket, data_dir, token_file, token, users))
    finally:
        server.stop()
        api_socket.close()
    print("flagstream stopped", flush=True)
    return 0


async def _serve(
    args: argparse.Namespace,
    server: NatsServer,
    api_socket: socket.socket,
    data_dir: Path,
    token_file: Path,
    token: str,
    users: ServerUsers,
) -> None:
    from ..admin.app import create_app
    from ..projector.projector import Projector
    from .metrics import ProjectorMetrics

    creds = users.creds
    nats_url = server.url
    admin_login = {"user": ADMIN, "password": creds.passwords[ADMIN]}
    await _seed_environments(nats_url, args.project, admin_login)
    users_nc = await nats.connect(nats_url, **admin_login)
    await _sdk_users_follow_environments(users_nc, users)
    await _sdk_users_follow_credentials(users_nc, users)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dump_on_signal(signal.SIGUSR1)  # kill -USR1: every thread's stack and asyncio task's await chain to stderr

    read_model = data_dir / READ_MODEL
    app = create_app(
        nats_url=nats_url,
        read_model=read_model,
        operator_token=token,
        nats_options=admin_login,
        webhook_allow=args.webhook_policy,
        people=args.people,
        prometheus_url=args.prometheus_url,
    )
    api = _QuietServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    projector = Projector(nats_url=creds.url(nats_url, PROJECTOR), db_path=read_model)
    # The projector's metrics go into the admin's registry: one /metrics for the whole embedded product.
    projector_metrics = ProjectorMetrics(registry=app.state.metrics.registry)
    projector_metrics.instrument(projector)
    lag_task = asyncio.create_task(
        projector_metrics.follow_stream(lambda: nats.connect(nats_url, **admin_login), stop), name="projector-lag"
    )
    api_task = asyncio.create_task(api.serve(sockets=[api_socket]), name="admin-api")
    projector_task = asyncio.create_task(projector.run(stop), name="projector")
    while not api.started:
        if api_task.done():
            await api_task  # raises what made it fail
            return
        await asyncio.sleep(0.01)
    host, port = api_socket.getsockname()[:2]
    print(f"Flagstream is running. Event log: nats-server at {nats_url}, data in {data_dir}", flush=True)
    print(f"Operator token (admin API, CLI): {token_file}", flush=True)
    print(f"NATS users and passwords (SDK: sdk-{args.project}-<environment>): {creds.path}", flush=True)
    print(
        f"People sign in at http://{host}:{port}/ui/; make the first admin with: "
        'flagstream users create LOGIN --name "YOUR NAME" --admin',
        flush=True,
    )
    print("Admin API (Ctrl-C to stop):", flush=True)
    print(f"http://{host}:{port}", flush=True)

    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({stop_wait, api_task, projector_task}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    api.should_exit = True
    for task in (api_task, projector_task, lag_task):
        await end_within(task, task.get_name(), grace=10, log=log)  # not wait_for(task, 10): see there
    stop_wait.cancel()
    await users_nc.close()


ENVIRONMENT_SUBJECTS = "flagstream.*.*.environment.*"


class ServerUsers:
    """The users of the embedded nats-server while ``up`` runs: those of ``nats-users.json`` (a role each, an SDK
    user per environment) and the SDK credentials admins make (``services/sdkcredentials``). A change rewrites
    ``nats-server.conf`` and makes nats-server reload it (SIGHUP): a new user may log in at once, a removed one is
    refused from then on and its connections are closed; other connections are not disturbed."""

    def __init__(self, data_dir: Path, creds: Credentials, extra: list[HashedUser]) -> None:
        self.data_dir = data_dir
        self.creds = creds
        self.extra = extra
        self.server: NatsServer | None = None

    def write(self) -> Path:
        """Write ``nats-server.conf`` (0600) and return its path."""
        return write_server_config(
            self.creds, self.data_dir / "nats", self.data_dir / "nats-server.conf", extra=self.extra
        )

    def reload(self) -> None:
        self.write()
        if self.server is not None and self.server.process is not None:
            self.server.process.send_signal(signal.SIGHUP)


def load_hashed_users(path: Path) -> list[HashedUser]:
    """The SDK credentials of ``sdk-credentials.json`` (none if there is no such file, or it cannot be read: the
    bucket is the source of truth, read again once nats-server runs)."""
    try:
        return [HashedUser(**item) for item in json.loads(path.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError) as exc:
        log.warning("%s cannot be read (%s); the SDK credentials are read from their bucket", path, exc)
        return []


async def _sdk_users_follow_environments(nc: nats.NATS, users: ServerUsers) -> None:
    """Give every environment an SDK user ``sdk-<project>-<env>``: the ones in the log now, and each one created
    later (watched on ``nc``). A new user is added to ``nats-users.json`` and the config, and nats-server reloads it
    (SIGHUP); existing connections are not disturbed."""
    creds = users.creds
    known = set(creds.sdk.values())

    def add(pairs: set[tuple[str, str]]) -> None:
        new = pairs - known
        if not new:
            return
        known.update(new)
        fresh = Credentials.load_or_create(users.data_dir, sdk=sorted(known))
        creds.passwords, creds.sdk = fresh.passwords, fresh.sdk
        users.reload()
        log.info("NATS users added for %s", ", ".join(f"{p}/{e}" for p, e in sorted(new)))

    async def on_environment(msg: Any) -> None:
        parts = msg.subject.split(".")
        add({(parts[1], parts[2])})

    await nc.subscribe(ENVIRONMENT_SUBJECTS, cb=on_environment)
    info = await nc.jetstream().stream_info(STREAM, subjects_filter=ENVIRONMENT_SUBJECTS)
    add({(s.split(".")[1], s.split(".")[2]) for s in (info.state.subjects or {})})


async def _sdk_users_follow_credentials(nc: nats.NATS, users: ServerUsers) -> None:
    """Make nats-server's users follow the SDK credentials' bucket: the live credentials now, and again at each
    change of the bucket (watched on ``nc``): a credential made is a user nats-server accepts, a revoked one a user
    it no longer knows (and whose connections it closes at the reload)."""
    from ..sdkcredentials import BUCKET, SdkCredentialStore

    store = await SdkCredentialStore.open(nc)
    lock = asyncio.Lock()

    async def sync() -> None:
        async with lock:
            live = await store.live()
            extra = [HashedUser(r.user, r.password_hash, r.project, r.environment) for r in live]
            if extra == users.extra:
                return
            added = {h.user for h in extra} - {h.user for h in users.extra}
            removed = {h.user for h in users.extra} - {h.user for h in extra}
            users.extra = extra
            body = [{"user": h.user, "password_hash": h.password_hash, "project": h.project,
                     "environment": h.environment} for h in extra]  # fmt: skip
            write_private(users.data_dir / SDK_CREDENTIALS_FILE, json.dumps(body, indent=2) + "\n")
            users.reload()
            log.info(
                "NATS users of SDK credentials: %d live (added %s; removed %s)",
                len(extra), ", ".join(sorted(added)) or "none", ", ".join(sorted(removed)) or "none",
            )  # fmt: skip

    async def on_change(msg: Any) -> None:
        try:
            await sync()
        except Exception:
            log.exception("the SDK credentials could not be read; nats-server's users are as they were")

    await nc.subscribe(f"$KV.{BUCKET}.>", cb=on_change)
    await sync()


def ensure_operator_token(data_dir: Path) -> tuple[Path, str]:
    """``<data_dir>/operator-token``, created (0600) with a new random token on the first start."""
    path = data_dir / OPERATOR_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return path, token
    token = "fs_operator_" + secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return path, token


async def _seed_environments(nats_url: str, project: str, login: dict[str, str]) -> None:
    """On the first start, create the default environments (a create on an existing subject is refused)."""
    nc = await nats.connect(nats_url, **login)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        for key in DEFAULT_ENVIRONMENTS:
            event = EnvironmentCreated(
                project=project,
                environment=key,
                actor="flagstream up",
                at=datetime.now(UTC),
                comment="default environment",
                env=Environment(key=key, name=key.capitalize(), production=key == "production"),
            )
            headers = {"Nats-Expected-Last-Subject-Sequence": "0"}
            try:
                await js.publish(subject(project, key, "environment", key), encode_event(event), headers=headers)
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
    finally:
        await nc.close()


class _QuietServer(StreamingServer):
    """uvicorn without its own signal handling: ``up`` owns SIGINT/SIGTERM and stops every part in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _api_socket(host: str, port: int | None) -> socket.socket:
    """The admin API's listening socket: on ``port``; without one, on ``DEFAULT_PORT`` or, if that is taken, on
    any free port (said on stdout; the URL line that follows has it)."""
    if port is not None:
        return listening_socket(host, port)
    try:
        return listening_socket(host, DEFAULT_PORT)
    except OSError as exc:
        chosen = listening_socket(host, 0)
        print(
            f"Port {DEFAULT_PORT} is taken ({exc.strerror}); the admin API is on port {chosen.getsockname()[1]} "
            "instead (--port chooses it)",
            flush=True,
        )
        return chosen


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``port`` now: bound as nats-server binds it, with ``SO_REUSEADDR``, so the
    server's side of connections closed by a previous run (TIME_WAIT, about a minute) does not count as taken;
    a socket that listens there does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
