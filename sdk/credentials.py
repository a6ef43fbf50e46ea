"""The NATS credential of an SDK client: one user per environment (``sdk-<project>-<environment>``), allowed to
read that environment's flags and nothing else (``docs/security.md``). ``flagstream up`` and ``flagstream
nats-users`` generate these users; an admin makes more of them, one per application if they like
(``sdk-<project>-<environment>.<id>``, revocable on its own: the API's ``sdk-credentials`` and the UI). An
application passes ``sdk_connect_options(...)`` as ``connect_options``.
"""

from __future__ import annotations

from typing import Any

from .events.subjects import sdk_inbox_prefix

#: Prefix of every SDK user's name.
SDK_PREFIX = "sdk-"


def sdk_user(project: str, environment: str) -> str:
    """The NATS user name of an environment's SDK credential."""
    return f"{SDK_PREFIX}{project}-{environment}"


def sdk_connect_options(project: str, environment: str, password: str, *, user: str | None = None) -> dict[str, Any]:
    """``connect_options`` for an SDK client of this environment (add ``tls`` for TLS): the user, its password, and
    the inbox prefix that user may receive on. ``user``: the user name of an SDK credential an admin made (the API
    or the UI shows it with its password); without it, the environment's own user ``sdk-<project>-<environment>``."""
    return {
        "user": user if user is not None else sdk_user(project, environment),
        "password": password,
        "inbox_prefix": sdk_inbox_prefix(project, environment),
    }


class CredentialError(Exception):
    """The NATS user the client connected with may not read its environment's flags (``client.last_error``): most
    often the SDK credential of another environment. The message says which, and which one to use."""


def denied(user: str | None, project: str, environment: str) -> CredentialError:
    """What to tell the application when NATS refuses its user the subjects of ``project``/``environment``."""
    wanted = sdk_user(project, environment)
    where = f"{project}/{environment}"
    use = f"use the SDK credential of {where}: user {wanted!r} (flagstream up keeps it in .flagstream/nats-users.json)"
    if user is None:
        return CredentialError(f"this NATS connection has no user that may read the flags of {where}: {use}")
    if user.startswith(SDK_PREFIX) and user.split(".")[0] != wanted:
        rest = user.split(".")[0].removeprefix(SDK_PREFIX)  # an admin's credential is <environment's user>.<id>
        other = (
            f"environment {project}/{rest.removeprefix(project + '-')}"
            if rest.startswith(project + "-")
            else ("another project's environment")
        )
        return CredentialError(f"the NATS user {user!r} is for {other}, not {where}: {use}")
    return CredentialError(f"the NATS user {user!r} may not read the flags of {where}: {use}")
