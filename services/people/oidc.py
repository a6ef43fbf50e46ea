"""OpenID Connect sign-in: the authorization code flow with PKCE against any standard provider (Keycloak, Okta,
Entra ID, Google, Dex, GitLab...), configured by its issuer URL, a client id and secret.

The OAuth parts are Authlib's (the authorization request with its S256 code challenge, RFC 6749 and 7636); the
code is exchanged with the client's secret (HTTP Basic) and the PKCE verifier over httpx; the ID token is
checked with joserfc against the
provider's published keys: signature (an asymmetric algorithm the provider announces; never ``none`` nor a
shared-secret one), issuer, audience (and ``azp`` when there are several), expiry, issue time, and the nonce this
sign-in sent. Nothing of it is parsed by hand. Discovery and the keys are fetched once and cached; an unknown key
id re-fetches the keys once (the provider rotated them).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from ..changes import AdminError
from .config import OidcConfig

log = logging.getLogger("flagstream.people.oidc")

#: Signature algorithms accepted for ID tokens: asymmetric only (a token signed with a shared secret or ``none``
#: is refused whatever its header says).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class SignInFailed(AdminError):
    """The provider's answer is not accepted (the reason is safe to show; it holds no secret)."""


@dataclass(frozen=True)
class Begun:
    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from a verified ID token."""

    issuer: str
    subject: str
    name: str
    email: str
    groups: list[str]


class OidcClient:
    """One provider. ``http``: the HTTP client for discovery, keys and the token endpoint (tests pass their own)."""

    def __init__(self, config: OidcConfig, *, timeout: float = 10.0, verify: Any = True) -> None:
        self.config = config
        self._timeout = timeout
        self._verify = verify
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (``<issuer>/.well-known/openid-configuration``), checked to be the
        configured issuer's."""
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify) as http:
                try:
                    answer = await http.get(url)
                    answer.raise_for_status()
                    doc = answer.json()
                except (httpx.HTTPError, ValueError) as exc:
                    problem = f"the identity provider's discovery document ({url}) is unavailable: {exc}"
                    raise SignInFailed(problem) from None
            if doc.get("issuer") != self.config.issuer:
                raise SignInFailed(
                    f"the provider at {url} says its issuer is {doc.get('issuer')!r}, not {self.config.issuer!r}"
                )
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(field), str):
                    raise SignInFailed(f"the provider's discovery document has no {field}")
            self._metadata = doc
        return self._metadata

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            uri = (await self.metadata())["jwks_uri"]
            async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify) as http:
                try:
                    answer = await http.get(uri)
                    answer.raise_for_status()
                    self._keys = KeySet.import_key_set(answer.json())
                except (httpx.HTTPError, ValueError, JoseError) as exc:
                    raise SignInFailed(f"the identity provider's keys ({uri}) are unavailable: {exc}") from None
        return self._keys

    async def begin(self, redirect_uri: str) -> Begun:
        """Where to send the browser: the provider's authorization URL with a new state, nonce and PKCE challenge."""
        endpoint = (await self.metadata())["authorization_endpoint"]
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        url = prepare_grant_uri(
            endpoint, self.config.client_id, "code", redirect_uri=redirect_uri, scope=" ".join(self.config.scopes),
            state=state, nonce=nonce, code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        )  # fmt: skip
        return Begun(url=url, state=state, nonce=nonce, verifier=verifier)

    async def finish(self, *, code: str, verifier: str, nonce: str, redirect_uri: str) -> Identity:
        """Exchange the authorization code (with the PKCE verifier) and verify the ID token it brings."""
        endpoint = (await self.metadata())["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}  # fmt: skip
        # client_secret_basic: both form-encoded first (RFC 6749, 2.3.1).
        auth = httpx.BasicAuth(quote(self.config.client_id, safe=""), quote(self.config.secret(), safe=""))
        async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify) as http:
            try:
                answer = await http.post(endpoint, data=form, auth=auth, headers={"Accept": "application/json"})
                token = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise SignInFailed(f"the identity provider's token endpoint failed: {type(exc).__name__}") from None
        if answer.status_code != 200 or not isinstance(token, dict):
            error = token.get("error_description") or token.get("error") if isinstance(token, dict) else None
            raise SignInFailed(f"the identity provider refused the authorization code: {error or answer.status_code}")
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the identity provider's answer has no ID token")
        return await self.verify(id_token, nonce)

    async def verify(self, id_token: str, nonce: str) -> Identity:
        """The identity in ``id_token``, or ``SignInFailed`` saying which check it failed."""
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=list(ALGORITHMS))
            except InvalidKeyIdError:  # a key published since we fetched them (the provider rotated its keys)
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=list(ALGORITHMS))
        except (BadSignatureError, InvalidKeyIdError):
            raise SignInFailed("the ID token's signature is not the identity provider's") from None
        except (ValueError, JoseError) as exc:
            raise SignInFailed(f"the ID token cannot be read or verified ({type(exc).__name__})") from None
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=int(self.config.leeway),
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise SignInFailed("the ID token has expired") from None
        except InvalidClaimError as exc:
            what = {
                "iss": "comes from another issuer",
                "aud": "is for another client (audience)",
                "nonce": "answers another sign-in (nonce)",
            }.get(exc.claim, f"has a wrong {exc.claim!r}")
            raise SignInFailed(f"the ID token {what}") from None
        except MissingClaimError as exc:
            raise SignInFailed(f"the ID token lacks {exc.claim}") from None
        except ClaimError as exc:
            raise SignInFailed(f"the ID token is refused ({exc.claim})") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise SignInFailed("the ID token is for several clients and was not issued to this one (azp)")
        if claims["iat"] > time.time() + self.config.leeway:
            raise SignInFailed("the ID token was issued in the future")
        return Identity(
            issuer=self.config.issuer,
            subject=str(claims["sub"]),
            name=_name(claims),
            email=str(claims.get("email") or ""),
            groups=_groups(claims.get(self.config.groups_claim)),
        )


def _name(claims: dict[str, Any]) -> str:
    for claim in ("name", "preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return str(claims["sub"])[:100]


def _groups(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []
