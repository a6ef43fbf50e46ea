"""``flagstream nats-users``: the NATS users of a deployment on your own nats-server (or cluster).

Writes into ``--dir`` (each file readable by its owner only):

- ``nats-users.json``: every password, as ``flagstream up`` keeps them (run again with more ``--env`` to add
  SDK users; existing passwords are kept);
- ``auth.conf``: the nats-server ``authorization`` block with each user's permissions, for an
  ``include auth.conf`` line in the server config (``deploy/nats-cluster.conf``);
- ``<user>.password``: one file per user, for ``--nats-password-file`` of ``flagstream admin``, ``projector`` and
  ``stream ensure``;
- with ``--leaf-remote URL`` (repeatable, e.g. ``nats-leaf://nats-1:7422``): ``leaf-remote.conf``, the ``remotes``
  of an edge leaf node logging in to those hub nodes as ``operator``, for an ``include`` inside its ``leafnodes``
  block (``deploy/nats-leaf.conf``; a hub with users refuses a leaf node without them);
- with ``--route URL`` (repeatable, e.g. ``nats-route://nats-1:6222``): ``cluster.conf``, for an ``include``
  inside the ``cluster`` block of every node (``deploy/nats-cluster.conf``): the route user every node asks of a
  connecting route, and the routes to those nodes logging in as it (``route.password`` keeps its password; no
  client can log in with it). Without it, anything that reaches port 6222 could join the cluster.

The users: ``operator`` (everything, for ``stream ensure``), ``admin``, ``projector``, and one
``sdk-<project>-<environment>`` per ``--env`` that can read that environment only (docs/security.md).

With ``--sdk-credentials-from URL`` (and ``--nats-user``/``--nats-password-file`` of a user that may read the
bucket, e.g. ``operator``), ``auth.conf`` also holds the live SDK credentials admins made through the API or the UI
(their bcrypt hashes, read from the bucket ``flagstream_sdkcredentials``; ``services/sdkcredentials``). Run it
again after each creation or revocation and reload nats-server (``nats-server --signal reload``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
from pathlib import Path

from ..runtime import (
    OPERATOR,
    Credentials,
    HashedUser,
    add_nats_arguments,
    authorization_block,
    nats_options,
    with_credentials,
    write_private,
)

LEAF_URL = re.compile(r"^nats-leaf://[A-Za-z0-9_.-]+:\d+$")
ROUTE_URL = re.compile(r"^nats-route://[A-Za-z0-9_.-]+:\d+$")
ROUTE_USER = "route"
ENV = re.compile(r"^([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, help="folder for the users file, auth.conf, passwords")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="PROJECT/ENVIRONMENT",
        help="an environment whose SDK user to create (repeat the option for several)",
    )
    parser.add_argument(
        "--leaf-remote",
        action="append",
        default=[],
        metavar="URL",
        help="a hub node's leaf node URL (nats-leaf://HOST:PORT): write leaf-remote.conf for edge leaf nodes",
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="URL",
        help="a cluster node's route URL (nats-route://HOST:PORT): write cluster.conf (route user and routes)",
    )
    parser.add_argument(
        "--sdk-credentials-from",
        metavar="NATS_URL",
        default=None,
        help="a nats-server of the deployment: add the SDK credentials admins made (their bucket) to auth.conf",
    )
    add_nats_arguments(parser)


def run(args: argparse.Namespace) -> int:
    environments = []
    for text in args.env:
        match = ENV.fullmatch(text)
        if match is None:
            print(
                f"flagstream nats-users: --env {text!r} is not PROJECT/ENVIRONMENT (e.g. default/production)",
                file=sys.stderr,
            )
            return 2
        environments.append((match[1], match[2]))
    for option, urls, pattern, form in (
        ("--leaf-remote", args.leaf_remote, LEAF_URL, "nats-leaf://HOST:PORT"),
        ("--route", args.route, ROUTE_URL, "nats-route://HOST:PORT"),
    ):
        for url in urls:
            if pattern.fullmatch(url) is None:
                print(f"flagstream nats-users: {option} {url!r} is not {form}", file=sys.stderr)
                return 2
    extra: list[HashedUser] = []
    if args.sdk_credentials_from:
        try:
            extra = asyncio.run(_sdk_credentials(args.sdk_credentials_from, nats_options(args)))
        except Exception as exc:
            print(f"flagstream nats-users: cannot read the SDK credentials at {args.sdk_credentials_from}: {exc!r}",
                  file=sys.stderr)  # fmt: skip
            return 1
    creds = Credentials.load_or_create(args.dir, sdk=environments)
    write_private(args.dir / "auth.conf", authorization_block(creds, extra))
    if args.leaf_remote:
        urls = [with_credentials(url, OPERATOR, creds.passwords[OPERATOR]) for url in args.leaf_remote]
        write_private(args.dir / "leaf-remote.conf", f"remotes: [ {{ urls: {json.dumps(urls)} }} ]\n")
    if args.route:
        write_private(args.dir / "cluster.conf", cluster_block(args.dir / "route.password", args.route))
    for user, password in creds.passwords.items():
        write_private(args.dir / f"{user}.password", password + "\n")
    print(f"{args.dir / 'auth.conf'}: users {', '.join(sorted(creds.passwords))}")
    if args.sdk_credentials_from:
        print(f"and {len(extra)} SDK credentials made by admins: {', '.join(h.user for h in extra) or 'none'}")
    return 0


async def _sdk_credentials(url: str, options: dict[str, object]) -> list[HashedUser]:
    """The live SDK credentials of the bucket at ``url``, as nats-server users."""
    import nats

    from ..sdkcredentials import SdkCredentialStore

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5, **options)  # type: ignore[arg-type]
    try:
        live = await (await SdkCredentialStore.open(nc)).live()
    finally:
        await nc.close()
    return [HashedUser(r.user, r.password_hash, r.project, r.environment) for r in live]


def cluster_block(password_file: Path, routes: list[str]) -> str:
    """The inside of a ``cluster`` block: the route user (its password kept in ``password_file``, made once) and
    ``routes`` logging in as it."""
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_hex(24)
        write_private(password_file, password + "\n")
    urls = [with_credentials(url, ROUTE_USER, password) for url in routes]
    return (
        f"authorization {{ user: {json.dumps(ROUTE_USER)}, password: {json.dumps(password)} }}\n"
        f"routes: {json.dumps(urls)}\n"
    )
