"""SDK credentials, the pure part: the record, its NATS user name, a new password and its hash.

An SDK credential is a NATS user that may read one environment's flags and nothing else (the permissions of
``runtime.nats_auth.sdk_permissions``), made by an admin through the API or the UI, as many per environment as
there are applications to tell apart, each revocable on its own. Its user name is
``sdk-<project>-<environment>.<id>`` (``id``: 12 hex characters), so it never collides with the environment's
built-in user ``sdk-<project>-<environment>`` of ``nats-users.json``. Its password (192 random bits, hex) is shown
once, in the answer that creates it; only its bcrypt hash is stored, the ``$2a$`` form nats-server checks at each
login, so the record can go into nats-server's configuration as is.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import msgspec

from ...credentials import sdk_user
from ..runtime import hash_password

# Each pattern is matched whole (``fullmatch``): ``re.match`` with a final ``$`` also takes a trailing newline.
_ID = re.compile(r"[0-9a-f]{12}")
NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]*")


class SdkCredential(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An SDK credential as stored: its password's bcrypt hash, never the password."""

    id: str
    name: str
    project: str
    environment: str
    #: The NATS user name an SDK connects as.
    user: str
    password_hash: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class SdkCredentialView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An SDK credential as the API shows it: no hash. ``password`` only in the answer that creates it, with
    ``accepted`` (whether nats-server let the credential log in before the answer was sent)."""

    id: str
    name: str
    project: str
    environment: str
    user: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    password: str | None = None
    accepted: bool | None = None


def view(record: SdkCredential, password: str | None = None, accepted: bool | None = None) -> SdkCredentialView:
    return SdkCredentialView(
        id=record.id,
        name=record.name,
        project=record.project,
        environment=record.environment,
        user=record.user,
        created_at=record.created_at,
        created_by=record.created_by,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        password=password,
        accepted=accepted,
    )


def new_credential(
    *, name: str, project: str, environment: str, created_by: str, at: datetime
) -> tuple[SdkCredential, str]:
    """A fresh credential and its password (to show once)."""
    cred_id = secrets.token_hex(6)
    password = secrets.token_hex(24)
    record = SdkCredential(
        id=cred_id,
        name=name,
        project=project,
        environment=environment,
        user=credential_user(project, environment, cred_id),
        password_hash=hash_password(password),
        created_at=at,
        created_by=created_by,
    )
    return record, password


def credential_user(project: str, environment: str, cred_id: str) -> str:
    """The NATS user name of credential ``cred_id`` of ``project``/``environment``."""
    return f"{sdk_user(project, environment)}.{cred_id}"


def is_id(text: str) -> bool:
    return bool(_ID.fullmatch(text))


def check_name(name: str) -> str | None:
    """Why ``name`` is refused, or None."""
    if not (0 < len(name) <= NAME_MAX) or not _NAME.fullmatch(name):
        return (
            f"a credential name is 1 to {NAME_MAX} characters: letters, digits, space, . _ @ : - (alphanumeric "
            f"first), got {name!r:.80}"
        )
    return None
