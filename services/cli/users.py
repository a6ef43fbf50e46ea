"""``flagstream users create|list|password|roles|disable|enable|signout``: people through the admin API (needs
an admin: the operator token that ``flagstream up`` saved is found by itself, so the first admin is made with
``flagstream users create ada --name "Ada Lovelace" --admin`` and no token pasted anywhere).

A password is read from the terminal without echo (twice), or from standard input (one line) with
``--password-stdin`` or when standard input is not a terminal; it is never an argument (arguments are visible to
every user of the machine in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from .api import ApiClient, ApiError, add_client_arguments, add_connection_arguments, dispatch, output, table

ROLES = ["reader", "writer", "admin"]


def _grant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin", action="store_true", help="admin of every environment (same as --role admin)")
    parser.add_argument("--role", choices=ROLES, help="a role on the --env environments (default: every one)")
    parser.add_argument(
        "--env", dest="environments", action="append", default=None, help="an environment of --role (repeatable)"
    )
    parser.add_argument("--in-project", dest="grant_project", default="*", help="the project of --role (default: all)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a local user who signs in with a password")
    create.add_argument("login", help="the login name (lower case letters, digits, . _ @ + -)")
    create.add_argument("--name", help="the name the history shows (default: the login)")
    create.add_argument("--email", default="")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _grant_arguments(create)
    add_connection_arguments(create)  # the client options, except --env (here: where the role holds)
    listing = sub.add_parser("list", help="list people and their roles")
    add_client_arguments(listing, suppress=True)
    password = sub.add_parser("password", help="set a local user's password (their sessions end)")
    password.add_argument("user", help="the user's id or login")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_client_arguments(password, suppress=True)
    roles = sub.add_parser("roles", help="replace a person's roles")
    roles.add_argument("user", help="the user's id or login")
    _grant_arguments(roles)
    roles.add_argument("--none", action="store_true", help="take every role away")
    add_connection_arguments(roles)
    for name, text in (("disable", "stop a person signing in (their sessions end)"), ("enable", "let them again"),
                       ("signout", "end every session of a person, on every replica")):  # fmt: skip
        action = sub.add_parser(name, help=text)
        action.add_argument("user", help="the user's id or login")
        add_client_arguments(action, suppress=True)


def _grants(args: argparse.Namespace) -> list[dict[str, str]]:
    role = "admin" if args.admin else args.role
    if role is None:
        return []
    base = {"role": role, **({"project": args.grant_project} if args.grant_project != "*" else {})}
    return [{**base, "environment": env} for env in args.environments] if args.environments else [base]


def _line_of_stdin() -> str:
    """One line of standard input, read a byte at a time: the rest stays for the next command of a script."""
    data = bytearray()
    while (byte := os.read(0, 1)) not in (b"", b"\n"):
        data += byte
    return data.decode().rstrip("\r")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():  # a script pipes it in: one line
        return _line_of_stdin()
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ApiError("the two passwords differ")
    return first


def _find(client: ApiClient, user: str) -> dict[str, Any]:
    if user.startswith("u_"):
        return client.request("GET", f"/api/v1/users/{user}")
    items = client.request("GET", "/api/v1/users")["items"]
    found = [u for u in items if u["login"] == user.lower() or u["email"].lower() == user.lower()]
    if len(found) != 1:
        raise ApiError(f"no single person with the login or e-mail {user!r}" + (" (several)" if found else ""))
    return found[0]


def _describe(grants: list[dict[str, str]]) -> str:
    if not grants:
        return "no role"
    return ", ".join(
        f"{g['role']} on {g.get('environment', '*')}" + (f" of {g['project']}" if g.get("project") else "")
        for g in grants
    )


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    body = {"login": args.login, "name": args.name or args.login, "email": args.email, "password": _password(args),
            "grants": _grants(args)}  # fmt: skip
    rec = client.request("POST", "/api/v1/users", json=body)
    output(args, rec, f"created user {rec['id']} ({rec['login']}, {_describe(rec['grants'])}); they sign in at /ui/")


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    items = client.request("GET", "/api/v1/users")["items"]
    rows = [
        (u["id"], u["login"] if u["method"] == "password" else f"({u['issuer']})", u["name"], u["email"],
         _describe(u["grants"]) + (f"; groups {','.join(u['groups'])}" if u["groups"] else ""),
         "disabled" if u["disabled"] else "active")
        for u in items
    ]  # fmt: skip
    text = table(("ID", "LOGIN", "NAME", "E-MAIL", "ROLES", "STATE"), rows) if rows else "no users"
    output(args, {"items": items}, text)


def _set_password(client: ApiClient, args: argparse.Namespace) -> None:
    user = _find(client, args.user)
    rec = client.request("POST", f"/api/v1/users/{user['id']}/password", json={"password": _password(args)})
    output(args, rec, f"password of {rec['login']} set; their sessions ended")


def _roles(client: ApiClient, args: argparse.Namespace) -> None:
    user = _find(client, args.user)
    grants = [] if args.none else _grants(args)
    rec = client.request("PATCH", f"/api/v1/users/{user['id']}", json={"grants": grants})
    output(args, rec, f"{rec['name']}: {_describe(rec['grants'])}")


def _toggle(disabled: bool) -> Any:
    def run(client: ApiClient, args: argparse.Namespace) -> None:
        user = _find(client, args.user)
        rec = client.request("PATCH", f"/api/v1/users/{user['id']}", json={"disabled": disabled})
        output(args, rec, f"{rec['name']} {'disabled; their sessions ended' if disabled else 'may sign in again'}")

    return run


def _signout(client: ApiClient, args: argparse.Namespace) -> None:
    user = _find(client, args.user)
    rec = client.request("POST", f"/api/v1/users/{user['id']}/signout")
    output(args, rec, f"every session of {rec['name']} ended")


def run(args: argparse.Namespace) -> int:
    actions = {"create": _create, "list": _list, "password": _set_password, "roles": _roles,
               "disable": _toggle(True), "enable": _toggle(False), "signout": _signout}  # fmt: skip
    return dispatch(args, "users", actions)
