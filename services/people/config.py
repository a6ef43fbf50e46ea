"""How people sign in, from a YAML file (``flagstream admin --people-config FILE``, ``flagstream up
--people-config FILE``); ``docs/security.md`` and the provider pages in ``docs/sso/`` show complete ones::

    session_hours: 12                   # how long a session lasts (at most 24)
    passwords: true                     # local users may sign in with a password
    secure_cookies: true                # behind a proxy that ends TLS (default: when served over HTTPS)
    oidc:
      issuer: https://sso.example.com/realms/acme
      client_id: flagstream
      client_secret_file: /run/secrets/flagstream-oidc   # or client_secret, or $FLAGSTREAM_OIDC_CLIENT_SECRET
      label: Acme SSO                   # the sign-in button says "Sign in with Acme SSO"
      groups_claim: groups              # the ID-token claim listing the person's groups
      roles:                            # groups -> roles, per project and environment
        - {group: flag-admins, role: admin}
        - {group: developers, role: writer, environments: [development, staging]}
        - {group: developers, role: reader}
        - {group: release-managers, role: writer, environments: [production]}
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import msgspec
import yaml

from ..tokens import ANY, Grant, Role

SECRET_ENV = "FLAGSTREAM_OIDC_CLIENT_SECRET"


class GroupRole(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """People in ``group`` get ``role`` on these environments (``*``: every one) of ``project`` (``*``: every)."""

    group: str
    role: Role
    project: str = ANY
    environments: list[str] = msgspec.field(default_factory=lambda: [ANY])


class OidcConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    issuer: str
    client_id: str
    client_secret: str = ""
    client_secret_file: str = ""
    label: str = "single sign-on"
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile", "email"])
    groups_claim: str = "groups"
    #: Where the provider sends the browser back; default: this server's ``/auth/oidc/callback`` as the browser
    #: reached it (set it behind a proxy that rewrites the host).
    redirect_url: str = ""
    #: Clock difference allowed between the provider and this server, in seconds, for expiry and issue times.
    leeway: float = 60.0
    roles: list[GroupRole] = []

    def secret(self) -> str:
        if self.client_secret:
            return self.client_secret
        if self.client_secret_file:
            return Path(self.client_secret_file).read_text().strip()
        return os.environ.get(SECRET_ENV, "")


class PeopleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    session_hours: float = 12.0
    passwords: bool = True
    #: Mark the cookies ``Secure``: None (default) when this server is reached over HTTPS; set it true behind a
    #: proxy that ends TLS and speaks plain HTTP to the admin.
    secure_cookies: bool | None = None
    oidc: OidcConfig | None = None

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.session_hours)


def load_config(path: Path) -> PeopleConfig:
    """The file read and checked; ``ValueError`` naming what is wrong."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        config = msgspec.convert(data, PeopleConfig)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not (0 < config.session_hours <= 24):
        raise ValueError(f"{path}: session_hours is between 0 and 24, got {config.session_hours}")
    if config.oidc is not None:
        if not config.oidc.issuer.startswith(("https://", "http://")):
            raise ValueError(f"{path}: oidc.issuer is the provider's URL (https://...)")
        if "openid" not in config.oidc.scopes:
            raise ValueError(f"{path}: oidc.scopes must include openid")
        try:
            config.oidc.secret()
        except OSError as exc:
            raise ValueError(f"{path}: oidc.client_secret_file: {exc}") from None
    return config


def group_grants(groups: list[str], rules: list[GroupRole]) -> list[Grant]:
    """The grants the ``rules`` give to someone in ``groups``."""
    member = set(groups)
    return [
        Grant(role=rule.role, project=rule.project, environment=env)
        for rule in rules
        if rule.group in member
        for env in rule.environments
    ]
