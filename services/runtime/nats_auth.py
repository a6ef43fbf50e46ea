"""NATS authorization: one user per role, their permissions, and the nats-server configuration file.

Roles (see ``docs/security.md``):

* ``admin``: publishes events on ``flagstream.>``, uses the JetStream API for the event stream, the token
  bucket and consumers; may NOT delete or purge a stream, delete messages, or change the event stream.
* ``projector``: reads the event stream through its durable consumer.
* ``sdk-<project>-<environment>``: may only create consumers whose filter is its own environment's subjects
  (``$JS.API.CONSUMER.CREATE.FLAGSTREAM.<name>.flagstream.<p>.<env>.>``), receive on its own inbox prefix,
  read the stream's info, the last event of its own environment (a direct get whose subject carries the filter)
  and its own environment's snapshot (``events/snapshot.py``), and publish telemetry on
  ``flagstream-telemetry.<p>.<env>.>`` (its ``track()`` metrics too: the metrics stream stores and acknowledges
  them on its inbox). Nothing else.
* ``operator``: everything, including deleting and purging streams. For humans repairing things, not services.

Passwords are random (``secrets.token_hex``, URL-safe, so a user can ride in a ``nats://user:pw@host`` URL) and
kept in ``<data-dir>/nats-users.json`` (mode 0600), the file the clients read. The server's configuration holds
only their bcrypt hashes (``$2a$``, which nats-server checks at each login), written anew at each start: a data
folder from before, whose configuration held the plain passwords, is rewritten hashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import bcrypt

from ...credentials import sdk_user
from ...events import STREAM
from ...events.snapshot import SNAPSHOT_BUCKET, SNAPSHOT_STREAM, snapshot_filter
from ...events.subjects import LIVE_PREFIX, PREFIX, environment_filter, live_filter, sdk_inbox_prefix
from ...events.telemetry import TELEMETRY_PREFIX
from .stream import (
    CLIENT_KEYS_BUCKET,
    FLEET_BUCKET,
    RATE_BUCKET,
    RELEASE_BUCKET,
    SDK_CREDENTIALS_BUCKET,
    SESSIONS_BUCKET,
    TOKENS_BUCKET,
    USERS_BUCKET,
    WEBHOOKS_BUCKET,
)

ADMIN = "admin"
PROJECTOR = "projector"
OPERATOR = "operator"
USERS_FILE = "nats-users.json"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()


def admin_permissions() -> Permissions:
    return Permissions(
        publish=(
            f"{PREFIX}.>",
            "$JS.API.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            f"$KV.{TOKENS_BUCKET}.>",
            f"$KV.{FLEET_BUCKET}.>",  # last-evaluated times of the fleet view
            f"$KV.{RATE_BUCKET}.>",  # the write rate per API token, shared by the replicas
            f"$KV.{WEBHOOKS_BUCKET}.>",  # webhook records and their delivery status
            f"$KV.{CLIENT_KEYS_BUCKET}.>",  # client-side keys (browsers and mobile apps)
            f"$KV.{USERS_BUCKET}.>",  # people (services/people)
            f"$KV.{SESSIONS_BUCKET}.>",  # their sessions, shared by the replicas
            f"$KV.{RELEASE_BUCKET}.>",  # release plans' leases and watches, metric names (services/release)
            f"$KV.{SDK_CREDENTIALS_BUCKET}.>",  # SDK credentials made by admins (services/sdkcredentials)
            f"$KV.{SNAPSHOT_BUCKET}.>",  # environment snapshots and their writer's lease (services/snapshots)
            f"{TELEMETRY_PREFIX}.>",  # the OFREP evaluator's own SDK clients report like any SDK
        ),
        # The SDK credentials' subjects: `flagstream up` follows them to give nats-server their users at once.
        subscribe=(
            "_INBOX.>",
            f"{PREFIX}.>",
            f"{LIVE_PREFIX}.>",
            f"{TELEMETRY_PREFIX}.>",
            f"$KV.{SDK_CREDENTIALS_BUCKET}.>",
        ),
        deny_publish=(
            "$JS.API.STREAM.DELETE.>",
            "$JS.API.STREAM.PURGE.>",
            "$JS.API.STREAM.MSG.DELETE.>",
            f"$JS.API.STREAM.UPDATE.{STREAM}",
        ),
    )


def projector_permissions() -> Permissions:
    return Permissions(
        publish=(
            "$JS.API.INFO",
            f"$JS.API.STREAM.INFO.{STREAM}",
            f"$JS.API.STREAM.CREATE.{STREAM}",  # if it starts first: the append-only stream of stream.py
            f"$JS.API.CONSUMER.*.{STREAM}",
            f"$JS.API.CONSUMER.*.{STREAM}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>",
            f"$JS.API.DIRECT.GET.{STREAM}.>",
            f"$JS.ACK.{STREAM}.>",
        ),
        subscribe=("_INBOX.>",),
    )


def sdk_permissions(project: str, environment: str) -> Permissions:
    own = environment_filter(project, environment)
    inbox = sdk_inbox_prefix(project, environment)
    return Permissions(
        publish=(
            "$JS.API.INFO",
            f"$JS.API.STREAM.INFO.{STREAM}",
            # Only the named form carries the filter subject, so only a consumer of its own environment:
            f"$JS.API.CONSUMER.CREATE.{STREAM}.*.{own}",
            f"$JS.API.CONSUMER.INFO.{STREAM}.*",
            f"$JS.API.CONSUMER.DELETE.{STREAM}.*",
            f"$JS.FC.{STREAM}.>",
            # Its own environment's snapshot (events/snapshot.py): the subject is in the direct get's API subject.
            f"$JS.API.DIRECT.GET.{SNAPSHOT_STREAM}.{snapshot_filter(project, environment)}",
            # The last event of its own environment (the gap check of sdk/nats_source.py): the filter is in the
            # API subject (a get by sequence or next_by_subj, in the request body, would reach every environment).
            f"$JS.API.DIRECT.GET.{STREAM}.{own}",
            f"{TELEMETRY_PREFIX}.{project}.{environment}.>",
        ),
        subscribe=(f"{inbox}.>", live_filter(project, environment)),
    )


def operator_permissions() -> Permissions:
    return Permissions(publish=(">",), subscribe=(">",))


class Credentials:
    """User name -> password, created on first use and kept in ``<data_dir>/nats-users.json`` (0600), with the
    (project, environment) of each SDK user."""

    def __init__(self, path: Path, passwords: dict[str, str], sdk: dict[str, tuple[str, str]]) -> None:
        self.path = path
        self.passwords = passwords
        self.sdk = sdk

    @classmethod
    def load_or_create(cls, data_dir: Path, sdk: Iterable[tuple[str, str]] = ()) -> Credentials:
        path = data_dir / USERS_FILE
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        passwords: dict[str, str] = dict(stored.get("passwords", {}))
        environments = {user: (p, e) for user, (p, e) in stored.get("sdk", {}).items()}
        environments.update({sdk_user(p, e): (p, e) for p, e in sdk})
        changed = not path.exists()
        for user in [ADMIN, PROJECTOR, OPERATOR, *environments]:
            if user not in passwords:
                passwords[user] = secrets.token_hex(24)
                changed = True
        creds = cls(path, passwords, environments)
        if changed:
            body = {"passwords": passwords, "sdk": {u: list(pe) for u, pe in environments.items()}}
            write_private(path, json.dumps(body, indent=2, sort_keys=True) + "\n")
        return creds

    def url(self, base_url: str, user: str) -> str:
        """``base_url`` with ``user``'s credentials in it (for clients that take only a URL)."""
        return with_credentials(base_url, user, self.passwords[user])


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class RedactCredentials(logging.Filter):
    """Hide passwords of ``nats://user:password@host`` URLs in log records (clients that only take a URL log it)."""

    _URL = re.compile(r"(\w+://[^:/@\s]+):[^@\s]+@")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = self._URL.sub(r"\1:***@", message), None
        return True


def redact_logs(*loggers: str) -> None:
    """Install ``RedactCredentials`` on these loggers."""
    for name in loggers:
        logging.getLogger(name).addFilter(RedactCredentials())


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _quote(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


#: bcrypt's cost (2^6 rounds). The passwords are 192 random bits: no cost makes guessing one feasible or not, so
#: the hash is here to keep the usable secret out of the server's configuration, and the cost stays low because
#: nats-server pays it at every login (a fleet of SDKs reconnecting after a restart logs in all at once).
BCRYPT_COST = 6


def hash_password(password: str) -> str:
    """``password``'s bcrypt hash in the ``$2a$`` form nats-server reads (a new salt each time)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode()


@dataclass(frozen=True)
class HashedUser:
    """An SDK user known only by its password's bcrypt hash (an SDK credential made by an admin,
    ``services/sdkcredentials``): it reads ``project``/``environment`` as the environment's own SDK user does."""

    user: str
    password_hash: str
    project: str
    environment: str


def _user_block(user: str, password_hash: str, perms: Permissions) -> str:
    publish = f"allow: {_quote(perms.publish)}"
    if perms.deny_publish:
        publish += f", deny: {_quote(perms.deny_publish)}"
    return (
        f"    {{ user: {json.dumps(user)}, password: {json.dumps(password_hash)}, permissions: {{\n"
        f"        publish: {{ {publish} }}\n"
        f"        subscribe: {{ allow: {_quote(perms.subscribe)} }}\n"
        f"    }} }}"
    )


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path


def authorization_block(creds: Credentials, extra: Iterable[HashedUser] = ()) -> str:
    """The nats-server ``authorization`` block: the users of ``creds`` (bcrypt-hashed passwords), each with its
    role's permissions, and the SDK users of ``extra`` (already hashed)."""
    blocks = []
    for user, password in sorted(creds.passwords.items()):
        if user == ADMIN:
            perms = admin_permissions()
        elif user == PROJECTOR:
            perms = projector_permissions()
        elif user == OPERATOR:
            perms = operator_permissions()
        elif user in creds.sdk:
            perms = sdk_permissions(*creds.sdk[user])
        else:
            continue
        blocks.append(_user_block(user, hash_password(password), perms))
    for hashed in sorted(extra, key=lambda h: h.user):
        if hashed.user in creds.passwords:
            continue  # never a second user of the same name (nats-server would refuse the configuration)
        perms = sdk_permissions(hashed.project, hashed.environment)
        blocks.append(_user_block(hashed.user, hashed.password_hash, perms))
    return "authorization {\n  users = [\n" + ",\n".join(blocks) + "\n  ]\n}\n"


def server_config(
    creds: Credentials, store_dir: Path, tls: ServerTls | None = None, extra: Iterable[HashedUser] = ()
) -> str:
    """A nats-server config: JetStream in ``store_dir``, the users of ``creds`` with their role's permissions
    (and the SDK users of ``extra``), and TLS for clients if ``tls`` is given."""
    text = f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}\n" + authorization_block(creds, extra)
    if tls is not None:
        text += tls_block(tls)
    return text


def tls_block(tls: ServerTls) -> str:
    """The nats-server ``tls`` block: every client connection must then use TLS."""
    return f"tls {{\n  cert_file: {json.dumps(str(tls.cert))}\n  key_file: {json.dumps(str(tls.key))}\n}}\n"


def write_server_config(
    creds: Credentials,
    store_dir: Path,
    path: Path,
    tls: ServerTls | None = None,
    extra: Iterable[HashedUser] = (),
) -> Path:
    write_private(path, server_config(creds, store_dir, tls, extra))
    return path


# -- the client side: options of ``flagstream admin`` / ``projector`` ----------------------------------------


def add_nats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-user", default=os.environ.get("FLAGSTREAM_NATS_USER"), help="NATS user name")
    parser.add_argument(
        "--nats-password-file",
        type=Path,
        default=None,
        help="file holding the NATS password (default: $FLAGSTREAM_NATS_PASSWORD)",
    )
    parser.add_argument("--nats-ca", type=Path, default=None, help="CA (PEM) that signed nats-server's certificate")


def nats_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` from the NATS options."""
    options: dict[str, Any] = {}
    if args.nats_user:
        options["user"] = args.nats_user
        if args.nats_password_file is not None:
            options["password"] = args.nats_password_file.read_text().strip()
        else:
            options["password"] = os.environ.get("FLAGSTREAM_NATS_PASSWORD", "")
    if args.nats_ca is not None:
        options["tls"] = ssl.create_default_context(cafile=str(args.nats_ca))
    return options
