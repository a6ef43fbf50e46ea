"""The NATS credential of an SDK client: one user per environment (``sdk-<project>-<environment>``), allowed to
read that environment's flags and nothing else (``docs/security.md``). ``flagstream up`` and ``flagstream
nats-users`` generate these users; an application passes ``sdk_connect_options(...)`` as ``connect_options``.
"""

from __future__ import annotations

from typing import Any

from .events.subjects import sdk_inbox_prefix

#: Prefix of every SDK user's name.
SDK_PREFIX = "sdk-"


def sdk_user(project: str, environment: str) -> str:
    """The NATS user name of an environment's SDK credential."""
    return f"{SDK_PREFIX}{project}-{environment}"


def sdk_connect_options(project: str, environment: str, password: str) -> dict[str, Any]:
    """``connect_options`` for an SDK client of this environment (add ``tls`` for TLS): the user, its password, and
    the inbox prefix that user may receive on."""
    return {
        "user": sdk_user(project, environment),
        "password": password,
        "inbox_prefix": sdk_inbox_prefix(project, environment),
    }
