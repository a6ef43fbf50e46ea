"""Client-side keys, the pure part: the record, the key's shape, allowed origins, and what a browser may see.

A client-side key (``fsc_`` and 22 URL-safe characters: 128 random bits) names one environment of one project.
It is **public by design**: it ships inside a web page or a mobile app, so it proves nothing about the caller
and grants nothing but evaluating the flags marked ``client_side`` of its environment, through OFREP. It is
stored as is (there is no secret to hide) and shown in listings, like LaunchDarkly's client-side ID.

What a holder of a key may learn is decided here (:func:`visible`, :func:`depends_on`): the flags available to
client-side apps, nothing else. A flag that is not available answers exactly as a flag that does not exist.

Origins: the web pages allowed to call with the key, each an exact origin (``https://shop.example.com``,
``http://localhost:3000``) as a browser sends it in ``Origin``: a scheme, a host, a port when not the default;
no path, no wildcard.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ...events import Flag, Operator, Segment

PREFIX = "fsc_"
# Each pattern is matched whole (``fullmatch``): ``re.match`` with a final ``$`` also takes a trailing newline.
_SHAPE = re.compile(r"fsc_[A-Za-z0-9_-]{22}")
NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]*")
#: Origins one key may name.
ORIGINS_MAX = 50
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ClientKey(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A client-side key as stored (and shown: nothing of it is secret)."""

    key: str
    name: str
    project: str
    environment: str
    #: Exact origins of the web pages that may call with it; empty: no browser page (apps and servers only).
    origins: list[str] = []
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows_origin(self, origin: str) -> bool:
        return origin in self.origins


def new_key() -> str:
    """A fresh key: ``fsc_`` and 128 random bits (URL-safe base64, 22 characters)."""
    return PREFIX + secrets.token_urlsafe(16)[:22].ljust(22, "A")


def is_key(text: str) -> bool:
    """Whether ``text`` has the shape of a client-side key (says nothing about whether it exists)."""
    return bool(_SHAPE.fullmatch(text))


def check_name(name: str) -> str | None:
    """Why ``name`` is refused, or None."""
    if not (0 < len(name) <= NAME_MAX) or not _NAME.fullmatch(name):
        return (
            f"a key name is 1 to {NAME_MAX} characters: letters, digits, space, . _ @ : - (alphanumeric first), "
            f"got {name!r:.80}"
        )
    return None


def check_origin(text: str) -> str:
    """The origin as a browser sends it (lower case, no default port), or ``ValueError`` saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("an origin is a non-empty string such as https://shop.example.com")
    if "*" in text:
        raise ValueError(f"{text!r}: wildcards are not allowed; list each origin exactly")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin (scheme://host[:port])") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{text!r}: an origin starts with https:// or http://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r}: an origin has no user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith("/"):
        raise ValueError(f"{text!r}: an origin has no path, query or fragment (no trailing '/')")
    host = (parts.hostname or "").lower()
    if not host or not (_HOST.fullmatch(host) or _is_ip(host)):
        raise ValueError(f"{text!r}: the host is not a host name or IP address")
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_origins(origins: Iterable[Any]) -> list[str]:
    """Each origin checked (``ValueError`` naming the first bad one), duplicates removed, order kept."""
    checked: list[str] = []
    for index, origin in enumerate(origins):
        try:
            normal = check_origin(origin)
        except ValueError as exc:
            raise ValueError(f"origins[{index}]: {exc}") from None
        if normal not in checked:
            checked.append(normal)
    if len(checked) > ORIGINS_MAX:
        raise ValueError(f"origins: at most {ORIGINS_MAX} per key")
    return checked


# -- what a key's holder may see ---------------------------------------------------------------------------


def visible(flags: Mapping[str, Any]) -> list[str]:
    """Keys of the flags a client-side key may evaluate: marked ``client_side`` and not archived, sorted.

    ``flags``: key -> object with ``client_side`` and ``archived`` (a ``Flag`` or the SDK's lazy flag)."""
    return sorted(k for k, f in flags.items() if getattr(f, "client_side", False) and not f.archived)


def depends_on(keys: Iterable[str], flags: Mapping[str, Flag], segments: Mapping[str, Segment]) -> set[str]:
    """Subjects (``flag/<key>``, ``segment/<key>``) whose change can change the evaluation of the flags ``keys``:
    the flags, their prerequisites (transitively) and every segment any of them refers to (with the segments
    those refer to). A change to anything else changes nothing a client-side key can see."""
    found: set[str] = set()
    todo_flags = list(keys)
    todo_segments: list[str] = []
    while todo_flags or todo_segments:
        if todo_flags:
            key = todo_flags.pop()
            if f"flag/{key}" in found:
                continue
            found.add(f"flag/{key}")
            flag = flags.get(key)
            if flag is None:
                continue
            todo_flags.extend(p.flag for p in flag.prerequisites)
            clauses = [c for r in flag.rules for c in r.clauses]
        else:
            key = todo_segments.pop()
            if f"segment/{key}" in found:
                continue
            found.add(f"segment/{key}")
            segment = segments.get(key)
            if segment is None:
                continue
            clauses = [c for r in segment.rules for c in r.clauses]
        todo_segments.extend(str(v) for c in clauses if c.op is Operator.IN_SEGMENT for v in c.values)
    return found
