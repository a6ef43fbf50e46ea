"""``flagstream tokens create|list|revoke``: API tokens through the admin API (needs an admin token)."""

from __future__ import annotations

import argparse
from typing import Any

from .api import ONCE, ApiClient, add_client_arguments, add_connection_arguments, dispatch, output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a token; its secret is printed once")
    create.add_argument("--name", required=True, help="who or what uses it (recorded as the actor of its changes)")
    create.add_argument("--role", required=True, choices=["reader", "writer", "admin"])
    create.add_argument(
        "--env",
        dest="environments",
        action="append",
        default=None,
        help="an environment it may act on (repeat for several; default: every environment)",
    )
    add_connection_arguments(create)  # the client options, except --env (here: the scope)
    listing = sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    add_client_arguments(listing, suppress=True)
    revoke = sub.add_parser("revoke", help="revoke a token at once, on every admin replica")
    revoke.add_argument("id", help="the token's id (see tokens list)")
    add_client_arguments(revoke, suppress=True)


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.environments:
        body["environments"] = args.environments
    rec = client.create_token(body)
    text = f"created token {rec['id']} ({rec['name']}, {rec['role']}, {_envs(rec)})\n{rec['token']}\n" + ONCE
    output(args, rec, text)


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    items = client.list_tokens(revoked=args.all)
    output(args, {"items": items}, _token_table(items))


def _revoke(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.revoke_token(args.id)
    output(args, rec, f"revoked token {rec['id']} ({rec['name']})")


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "tokens", {"create": _create, "list": _list, "revoke": _revoke})


def _envs(rec: dict[str, Any]) -> str:
    envs = rec.get("environments")
    return "all environments" if envs is None else ",".join(envs)


def _token_table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no tokens"
    rows = [
        (
            i["id"],
            i["name"],
            i["role"],
            _envs(i),
            i["created_by"],
            i["created_at"][:19],
            f"revoked by {i['revoked_by']}" if i.get("revoked_at") else "active",
        )
        for i in items
    ]
    return table(("ID", "NAME", "ROLE", "ENVIRONMENTS", "CREATED BY", "CREATED", "STATE"), rows)
