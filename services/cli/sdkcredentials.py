"""``flagstream sdk-credentials create|list|revoke``: SDK credentials of an environment (``--env``): NATS users an
application's SDK connects with, through the admin API (needs an admin token). The password is printed once, by
``create``; ``list`` never shows it."""

from __future__ import annotations

import argparse
from typing import Any

from .api import ApiClient, _segment, add_client_arguments, dispatch, output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create an SDK credential for the environment (--env); prints its password")
    create.add_argument("--name", required=True, help="what uses it (an application, a service)")
    add_client_arguments(create, suppress=True)
    listing = sub.add_parser("list", help="list the environment's SDK credentials (never their passwords)")
    listing.add_argument("--all", action="store_true", help="include revoked credentials")
    add_client_arguments(listing, suppress=True)
    revoke = sub.add_parser("revoke", help="revoke a credential (nats-server refuses it and closes its connections)")
    revoke.add_argument("id", help="the credential's id (12 hex characters)")
    add_client_arguments(revoke, suppress=True)


def _path(client: ApiClient, args: argparse.Namespace, tail: str = "") -> str:
    return client.project_path(f"environments/{_segment(args.env)}/sdk-credentials{tail}")


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("POST", _path(client, args), json={"name": args.name})
    pending = "" if rec.get("accepted") else (
        "\nnats-server has not taken it yet: with a nats-server of your own, run flagstream nats-users "
        "--sdk-credentials-from and reload it"
    )  # fmt: skip
    output(args, rec, f"created SDK credential {rec['id']} for {rec['environment']} ({rec['name']}); the password is "
                      f"shown only now\nuser: {rec['user']}\npassword: {rec['password']}{pending}")  # fmt: skip


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    params = {"revoked": "true" if args.all else "false"}
    items = client.request("GET", _path(client, args), params=params)["items"]
    output(args, {"items": items}, _table(items))


def _revoke(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("DELETE", _path(client, args, f"/{_segment(args.id)}"))
    output(args, rec, f"revoked SDK credential {rec['id']} ({rec['name']}, user {rec['user']})")


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "sdk-credentials", {"create": _create, "list": _list, "revoke": _revoke})


def _table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no SDK credentials"
    rows = [
        (
            i["id"],
            i["name"],
            i["user"],
            i["created_by"],
            i["created_at"][:19],
            f"revoked by {i['revoked_by']}" if i.get("revoked_at") else "active",
        )
        for i in items
    ]
    return table(("ID", "NAME", "USER", "CREATED BY", "CREATED", "STATE"), rows)
