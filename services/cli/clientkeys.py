"""``flagstream client-keys create|list|revoke``: client-side keys of an environment (``--env``), for web pages and
mobile apps, through the admin API (needs an admin token). A key is public: it is printed whenever asked."""

from __future__ import annotations

import argparse
from typing import Any

from .api import ApiClient, _segment, add_client_arguments, dispatch, output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a client-side key for the environment (--env)")
    create.add_argument("--name", required=True, help="what uses it (a site, an app)")
    create.add_argument(
        "--origin",
        dest="origins",
        action="append",
        default=[],
        help="an exact origin of a web page that may use it, e.g. https://shop.example.com (repeat for several;"
        " none: apps and servers only, no browser page)",
    )
    add_client_arguments(create, suppress=True)
    listing = sub.add_parser("list", help="list the environment's client-side keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    add_client_arguments(listing, suppress=True)
    revoke = sub.add_parser("revoke", help="revoke a key (refused by every admin replica within a second)")
    revoke.add_argument("key", help="the key (fsc_...)")
    add_client_arguments(revoke, suppress=True)


def _path(client: ApiClient, args: argparse.Namespace, tail: str = "") -> str:
    return client.project_path(f"environments/{_segment(args.env)}/client-keys{tail}")


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("POST", _path(client, args), json={"name": args.name, "origins": args.origins})
    origins = ", ".join(rec["origins"]) or "no web page (apps and servers only)"
    output(args, rec, f"created client-side key for {rec['environment']} ({rec['name']}; origins: {origins})\n"
                      f"{rec['key']}")  # fmt: skip


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    params = {"revoked": "true" if args.all else "false"}
    items = client.request("GET", _path(client, args), params=params)["items"]
    output(args, {"items": items}, _table(items))


def _revoke(client: ApiClient, args: argparse.Namespace) -> None:
    rec = client.request("DELETE", _path(client, args, f"/{_segment(args.key)}"))
    output(args, rec, f"revoked client-side key {rec['key']} ({rec['name']})")


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "client-keys", {"create": _create, "list": _list, "revoke": _revoke})


def _table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no client-side keys"
    rows = [
        (
            i["key"],
            i["name"],
            ",".join(i.get("origins") or []) or "-",
            i["created_by"],
            i["created_at"][:19],
            f"revoked by {i['revoked_by']}" if i.get("revoked_at") else "active",
        )
        for i in items
    ]
    return table(("KEY", "NAME", "ORIGINS", "CREATED BY", "CREATED", "STATE"), rows)
