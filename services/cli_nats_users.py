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
  block (``deploy/nats-leaf.conf``; a hub with users refuses a leaf node without them).

The users: ``operator`` (everything, for ``stream ensure``), ``admin``, ``projector``, and one
``sdk-<project>-<environment>`` per ``--env`` that can read that environment only (docs/security.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .nats_auth import OPERATOR, Credentials, authorization_block, with_credentials, write_private

LEAF_URL = re.compile(r"^nats-leaf://[A-Za-z0-9_.-]+:\d+$")
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


def run(args: argparse.Namespace) -> int:
    environments = []
    for text in args.env:
        match = ENV.match(text)
        if match is None:
            print(
                f"flagstream nats-users: --env {text!r} is not PROJECT/ENVIRONMENT (e.g. default/production)",
                file=sys.stderr,
            )
            return 2
        environments.append((match[1], match[2]))
    for url in args.leaf_remote:
        if LEAF_URL.match(url) is None:
            print(f"flagstream nats-users: --leaf-remote {url!r} is not nats-leaf://HOST:PORT", file=sys.stderr)
            return 2
    creds = Credentials.load_or_create(args.dir, sdk=environments)
    write_private(args.dir / "auth.conf", authorization_block(creds))
    if args.leaf_remote:
        urls = [with_credentials(url, OPERATOR, creds.passwords[OPERATOR]) for url in args.leaf_remote]
        write_private(args.dir / "leaf-remote.conf", f"remotes: [ {{ urls: {json.dumps(urls)} }} ]\n")
    for user, password in creds.passwords.items():
        write_private(args.dir / f"{user}.password", password + "\n")
    print(f"{args.dir / 'auth.conf'}: users {', '.join(sorted(creds.passwords))}")
    return 0
