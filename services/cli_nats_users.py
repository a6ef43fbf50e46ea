"""``flagstream nats-users``: the NATS users of a deployment on your own nats-server (or cluster).

Writes into ``--dir`` (each file readable by its owner only):

- ``nats-users.json``: every password, as ``flagstream up`` keeps them (run again with more ``--env`` to add
  SDK users; existing passwords are kept);
- ``auth.conf``: the nats-server ``authorization`` block with each user's permissions, for an
  ``include auth.conf`` line in the server config (``deploy/nats-cluster.conf``);
- ``<user>.password``: one file per user, for ``--nats-password-file`` of ``flagstream admin``, ``projector`` and
  ``stream ensure``.

The users: ``operator`` (everything, for ``stream ensure``), ``admin``, ``projector``, and one
``sdk-<project>-<environment>`` per ``--env`` that can read that environment only (docs/security.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .nats_auth import Credentials, authorization_block, write_private

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
    creds = Credentials.load_or_create(args.dir, sdk=environments)
    write_private(args.dir / "auth.conf", authorization_block(creds))
    for user, password in creds.passwords.items():
        write_private(args.dir / f"{user}.password", password + "\n")
    print(f"{args.dir / 'auth.conf'}: users {', '.join(sorted(creds.passwords))}")
    return 0
