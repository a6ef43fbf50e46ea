"""A small synchronous client of the admin API, used by the ``flagstream flags|envs`` commands.

Errors come back as ``ApiError`` with one readable line (the API's own message, or why it cannot be reached).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_API = "http://127.0.0.1:8080"
DEFAULT_ENV = "development"
#: Where ``flagstream up`` saves the operator token (with the default ``--data-dir``).
DEFAULT_TOKEN_FILE = ".flagstream/operator-token"


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Held(Exception):
    """The change was not made yet: its environment asks for approvals, and the API opened (or added it to) a
    change request (HTTP 202). ``request`` is the request's record."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__(request.get("id", ""))
        self.request = request

    def describe(self) -> str:
        return held_text(self.request)


def held_text(request: dict[str, Any]) -> str:
    """What a person reads when a change is held as a change request."""
    missing = request.get("missing") or {}
    needs = ", ".join(f"{n} approval{'s' if n != 1 else ''} in {env}" for env, n in sorted(missing.items()))
    changes = len(request.get("changes") or [])
    return (
        f"held for approval: change request {request['id']} ({changes} change{'s' if changes != 1 else ''}"
        f"{', needs ' + needs if needs else ''}); see flagstream requests show {request['id']}"
    )


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        project: str = "default",
        actor: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        headers = {"X-Flagstream-Actor": actor} if actor else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)
        #: With ``gather`` set, the first write held as a change request makes every later write of this client
        #: join that request (``Flagstream-Request``): one request for a whole ``apply`` or ``import``.
        self.gather = False
        self.held: dict[str, Any] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- environments ------------------------------------------------------------------------------------

    def list_environments(self) -> list[dict[str, Any]]:
        return self.request("GET", self.project_path("environments"))["items"]  # type: ignore[no-any-return]

    def create_environment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", self.project_path("environments"), json=body)

    # -- flags -------------------------------------------------------------------------------------------

    def list_flags(
        self, env: str, *, archived: str = "false", tag: str | None = None, q: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"archived": archived, **({"tag": tag} if tag else {}), **({"q": q} if q else {})}
        return self.request("GET", self._flags(env), params=params)["items"]  # type: ignore[no-any-return]

    def create_flag(self, env: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._flags(env), json=body)

    def get_flag(self, env: str, key: str) -> dict[str, Any]:
        return self.request("GET", f"{self._flags(env)}/{_segment(key)}")

    def flag_action(self, env: str, key: str, action: str, comment: str = "") -> dict[str, Any]:
        """``action``: on, off, archive or restore."""
        return self.request("POST", f"{self._flags(env)}/{_segment(key)}/{action}", json={"comment": comment})

    # -- API tokens --------------------------------------------------------------------------------------

    def list_tokens(self, *, revoked: bool = False) -> list[dict[str, Any]]:
        params = {"revoked": "all" if revoked else "false"}
        return self.request("GET", "/api/v1/tokens", params=params)["items"]  # type: ignore[no-any-return]

    def create_token(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/tokens", json=body)

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/v1/tokens/{_segment(token_id)}")

    # -- any route (the commands above are built on these) ------------------------------------------------

    def project_path(self, tail: str) -> str:
        """The URL path of ``tail`` under this client's project (``/api/v1/projects/<project>/<tail>``)."""
        return f"/api/v1/projects/{_segment(self.project)}/{tail}"

    def _flags(self, env: str) -> str:
        return self.project_path(f"environments/{_segment(env)}/flags")

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call: the JSON object answered, or ``ApiError`` with the API's message (and a hint on 401)."""
        if self.held is not None and method != "GET":
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Flagstream-Request": self.held["id"]}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the admin API at {self.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 202 and isinstance(body, dict) and "changes" in body:
            if self.gather:
                self.held = body
            raise Held(body)
        if response.is_error:
            line = _error_line(response, body)
            if response.status_code == 401:
                line += (
                    f"; give a token with --token or FLAGSTREAM_TOKEN (flagstream up saves one in {DEFAULT_TOKEN_FILE})"
                )
            raise ApiError(line, response.status_code)
        if not isinstance(body, dict):
            raise ApiError(f"unexpected answer from {self.base_url} (HTTP {response.status_code}): not a JSON object")
        return body


def _segment(value: str) -> str:
    """A URL path segment: keep it one segment, let the API judge its content. Every character but letters,
    digits and ``-._~`` is percent-encoded: a newline or a control character reaches the API (which refuses it with
    a 400) instead of failing in httpx, and ``#`` or ``%`` stay part of the value."""
    return quote(value, safe="")


def _error_line(response: httpx.Response, body: Any) -> str:
    message = body.get("error") if isinstance(body, dict) else None
    if not message:
        message = response.text.strip() or response.reason_phrase
    problems = body.get("problems", []) if isinstance(body, dict) else []
    extra = [f"{p['path']}: {p['message']}" for p in problems[1:]]
    if extra:
        message = f"{message} (also: {'; '.join(extra)})"
    return f"{' '.join(str(message).split())} (HTTP {response.status_code})"


# -- shared by the CLI commands ----------------------------------------------------------------------------


def add_client_arguments(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """The options every client command takes (``suppress``: on sub-commands, so either position works)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--api", default=default(os.environ.get("FLAGSTREAM_API", DEFAULT_API)), help="admin API URL")
    parser.add_argument("--env", default=default(os.environ.get("FLAGSTREAM_ENV", DEFAULT_ENV)), help="environment")
    parser.add_argument("--project", default=default("default"), help="project (default: default)")
    parser.add_argument("--comment", default=default(""), help="why: stored with the change")
    parser.add_argument(
        "--token",
        default=default(None),
        help=f"API token (default: $FLAGSTREAM_TOKEN, else the file {DEFAULT_TOKEN_FILE} if present)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api``, ``--token`` and ``--json`` on a sub-command whose ``--env`` means something else (a scope)."""
    parser.add_argument("--api", default=argparse.SUPPRESS, help="admin API URL")
    parser.add_argument("--token", default=argparse.SUPPRESS, help="an admin API token")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def output(args: argparse.Namespace, body: Any, text: str) -> None:
    """A command's answer: ``text`` for people, ``body`` as JSON with ``--json``."""
    print(json.dumps(body, indent=2) if args.json else text)


#: How a command that prints a secret ends its answer.
ONCE = "store it now: it is not shown again"

#: One action of a command group (``flagstream tokens create``): runs with the API client, prints its answer,
#: returns the exit code (``None``: 0).
Action = Callable[[ApiClient, argparse.Namespace], "int | None"]


def dispatch(args: argparse.Namespace, command: str, actions: Mapping[str, Action]) -> int:
    """Run the action the command line chose (``args.action``) with the API client its options name. A failed
    call is one line on stderr, ``flagstream <command> <action>: <why>``, and exit code 1."""
    try:
        with client_from(args) as client:
            return actions[args.action](client, args) or 0
    except Held as held:  # the change waits for approval: said, and not a failure
        output(args, held.request, held.describe())
        return 0
    except ApiError as exc:
        print(f"flagstream {command} {args.action}: {exc.message}", file=sys.stderr)
        return 1


def client_from(args: argparse.Namespace) -> ApiClient:
    actor = os.environ.get("FLAGSTREAM_ACTOR") or _login()
    return ApiClient(args.api, project=args.project, actor=actor, token=token_from(args))


def token_from(args: argparse.Namespace) -> str | None:
    """``--token``, else ``$FLAGSTREAM_TOKEN``, else the operator token ``flagstream up`` saved here."""
    token = getattr(args, "token", None) or os.environ.get("FLAGSTREAM_TOKEN")
    if token:
        return str(token).strip()
    path = Path(DEFAULT_TOKEN_FILE)
    try:
        return path.read_text().strip() or None if path.is_file() else None
    except OSError:
        return None


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
