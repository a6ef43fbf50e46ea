"""Attacks on single sign-on, against a real OpenID provider (node-oidc-provider) and the real admin app: each
its own test. The test's proxy in front of the provider hands Flagstream's code exchange an ID token that is
forged, or genuine but meant for something else; Flagstream must refuse each, say why, and make no session.
Replayed or altered answers from the provider are refused as well."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt

from flagstream.services.runtime import free_port
from tests.helpers import FLAGSTREAM, eventually, read_url
from tests.oidc.provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT,
    Provider,
    log_in_at_provider,
    oidc_provider,
    signing_key,
    token_for,
)
from tests.people.conftest import CALLBACK, Browser, Site, site, sso_config

KEY = signing_key()


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with oidc_provider([CALLBACK], key=KEY) as p:
        yield p


@pytest.fixture
async def sso(nats_url: str, provider: Provider) -> AsyncIterator[Site]:
    roles = [{"group": "anyone", "role": "reader"}]
    async with site(nats_url, sso_config(provider.issuer, roles, leeway=0)) as s:
        yield s


async def start(browser: Browser) -> tuple[str, dict[str, str]]:
    """Flagstream's redirect to the provider: its URL and query (state, nonce...)."""
    answer = await browser.http.get("/auth/oidc/start")
    assert answer.status_code == 303, answer.text
    url = answer.headers["location"]
    return url, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def answer_from_provider(provider: Provider, url: str, login: str = "mallory") -> str:
    async with httpx.AsyncClient(base_url=provider.issuer, timeout=30) as at_provider:
        return await log_in_at_provider(at_provider, url, login)


async def refused_with(sso: Site, provider: Provider, swap: Callable[[str, dict[str, str]], Any], why: str,
                       login: str = "mallory") -> None:  # fmt: skip
    """A sign-in whose ID token the proxy replaces with ``swap(genuine, query)``: refused (401), naming ``why``,
    and no session."""
    async with sso.browser() as browser:
        url, query = await start(browser)
        provider.swap = lambda genuine: swap(genuine, query)
        try:
            back = await answer_from_provider(provider, url, login)
            answer = await browser.http.get(back)
        finally:
            provider.swap = None
        assert answer.status_code == 401, answer.text
        assert why in answer.text
        assert "flagstream_session" not in answer.headers.get("set-cookie", "")
        assert (await browser.http.get("/api/v1/whoami")).status_code == 401


async def test_a_genuine_sign_in_works_through_the_same_proxy(sso: Site, provider: Provider) -> None:
    async with sso.browser() as browser:
        url, _ = await start(browser)
        answer = await browser.http.get(await answer_from_provider(provider, url))
        assert answer.status_code == 303, answer.text
        assert (await browser.http.get("/api/v1/whoami")).json()["name"] == "Test mallory"


async def test_an_id_token_with_a_bad_signature_is_refused(sso: Site, provider: Provider) -> None:
    def forge(genuine: str, query: dict[str, str]) -> str:
        head, body, signature = genuine.split(".")
        flipped = ("A" if signature[10] != "A" else "B") + signature[11:]
        return f"{head}.{body}.{signature[:10]}{flipped}"

    await refused_with(sso, provider, forge, "signature is not the identity provider")


async def test_an_id_token_signed_by_another_key_is_refused(sso: Site, provider: Provider) -> None:
    def resign(genuine: str, query: dict[str, str]) -> str:
        from joserfc.jwk import RSAKey

        claims = jwt.decode(genuine, RSAKey.import_key(KEY)).claims
        mine = RSAKey.import_key(signing_key())
        return jwt.encode({"alg": "RS256", "kid": KEY["kid"]}, {**claims, "name": "Admin"}, mine)

    await refused_with(sso, provider, resign, "signature is not the identity provider")


async def test_an_unsigned_id_token_is_refused(sso: Site, provider: Provider) -> None:
    def unsigned(genuine: str, query: dict[str, str]) -> str:
        import base64

        head = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
        return f"{head}.{genuine.split('.')[1]}."

    await refused_with(sso, provider, unsigned, "Sign-in refused")


async def test_an_id_token_for_another_client_is_refused(sso: Site, provider: Provider) -> None:
    async def other_client(genuine: str, query: dict[str, str]) -> str:
        return await token_for(provider, client_id=OTHER_CLIENT, secret="another secret", nonce=query["nonce"],
                               login="mallory", redirect_uri=CALLBACK)  # fmt: skip

    await refused_with(sso, provider, other_client, "is for another client (audience)")


async def test_an_id_token_of_another_sign_in_is_refused(sso: Site, provider: Provider) -> None:
    async def other_nonce(genuine: str, query: dict[str, str]) -> str:
        return await token_for(provider, client_id=CLIENT_ID, secret=CLIENT_SECRET, nonce="n" * 43, login="mallory",
                               redirect_uri=CALLBACK)  # fmt: skip

    await refused_with(sso, provider, other_nonce, "answers another sign-in (nonce)")


async def test_an_expired_id_token_is_refused(sso: Site, provider: Provider) -> None:
    async def held_until_expired(genuine: str, query: dict[str, str]) -> str:
        expiry = jwt.decode(genuine, _key()).claims["exp"]
        await eventually(lambda: time.time() > expiry + 1, 30, "the ID token expired")
        return genuine

    # The provider gives the logins "late..." ID tokens that live one second; the proxy holds it past that.
    await refused_with(sso, provider, held_until_expired, "has expired", login="late-larry")


async def test_an_id_token_from_another_issuer_is_refused(sso: Site, provider: Provider) -> None:
    # Another provider signing with the very same key: only the issuer tells them apart.
    async with oidc_provider([CALLBACK], key=KEY) as elsewhere:

        async def other_issuer(genuine: str, query: dict[str, str]) -> str:
            return await token_for(elsewhere, client_id=CLIENT_ID, secret=CLIENT_SECRET, nonce=query["nonce"],
                                   login="mallory", redirect_uri=CALLBACK)  # fmt: skip

        await refused_with(sso, provider, other_issuer, "comes from another issuer")


async def test_a_replayed_authorization_response_is_refused(sso: Site, provider: Provider) -> None:
    async with sso.browser() as browser:
        url, _ = await start(browser)
        back = await answer_from_provider(provider, url)
        assert (await browser.http.get(back)).status_code == 303
        cookies = dict(browser.http.cookies)
        again = await browser.http.get(back)
        assert again.status_code == 401
        assert "used already" in again.text
    async with sso.browser() as attacker:
        attacker.http.cookies.update({k: v for k, v in cookies.items() if k != "flagstream_session"})
        stolen = await attacker.http.get(back)
        assert stolen.status_code == 401
        assert (await attacker.http.get("/api/v1/whoami")).status_code == 401


async def test_an_authorization_response_with_a_wrong_state_is_refused(sso: Site, provider: Provider) -> None:
    async with sso.browser() as browser:
        url, _ = await start(browser)
        back = urlsplit(await answer_from_provider(provider, url))
        query = {k: v[0] for k, v in parse_qs(back.query).items()}
        for state in ("x" * 43, query["state"][:-1] + ("A" if query["state"][-1] != "A" else "B"), ""):
            forged = urlunsplit(back._replace(query=urlencode({**query, "state": state})))
            answer = await browser.http.get(forged)
            assert answer.status_code in (400, 401), state
            assert "flagstream_session" not in answer.headers.get("set-cookie", "")
        assert (await browser.http.get("/api/v1/whoami")).status_code == 401


async def test_an_answer_started_in_another_browser_is_refused(sso: Site, provider: Provider) -> None:
    """Login CSRF: an attacker's own sign-in answer, sent to a victim's browser, must not sign the victim in."""
    async with sso.browser() as attacker, sso.browser() as victim:
        url, _ = await start(attacker)
        back = await answer_from_provider(provider, url, "mallory")
        answer = await victim.http.get(back)
        assert answer.status_code == 401
        assert "another browser" in answer.text
        assert (await victim.http.get("/api/v1/whoami")).status_code == 401


async def test_an_answer_naming_another_issuer_is_refused(sso: Site, provider: Provider) -> None:
    async with sso.browser() as browser:
        url, _ = await start(browser)
        back = urlsplit(await answer_from_provider(provider, url))
        query = {k: v[0] for k, v in parse_qs(back.query).items()}
        mixed = urlunsplit(back._replace(query=urlencode({**query, "iss": "https://evil.example"})))
        answer = await browser.http.get(mixed)
        assert answer.status_code == 401
        assert "another issuer" in answer.text


async def test_no_code_token_or_secret_in_the_logs(nats_url: str, tmp_path: Path) -> None:
    """``flagstream admin`` as a process, its log (access log included) read from its stderr after a sign-in."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/auth/oidc/callback"
    secret_file = tmp_path / "oidc-secret"
    secret_file.write_text(CLIENT_SECRET)
    async with oidc_provider([callback], key=KEY) as provider:
        config = tmp_path / "people.yaml"
        config.write_text(
            f"oidc:\n  issuer: {provider.issuer}\n  client_id: {CLIENT_ID}\n  client_secret_file: {secret_file}\n"
            "  roles:\n    - {group: anyone, role: reader}\n"
        )
        log = tmp_path / "admin.log"
        with log.open("w") as stderr:
            proc = await asyncio.to_thread(
                subprocess.Popen,
                [FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", str(port), "--log-level", "info",
                 "--people-config", str(config)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ""},
            )  # fmt: skip
            try:
                url = await asyncio.to_thread(read_url, proc)
                async with httpx.AsyncClient(base_url=url, timeout=30) as browser:
                    started = await browser.get("/auth/oidc/start")
                    back = await answer_from_provider(provider, started.headers["location"])
                    signed = await browser.get(back)
                    assert signed.status_code == 303, signed.text
                    cookie = browser.cookies["flagstream_session"]
                    issued = provider.issued[-1]
            finally:
                proc.terminate()
                await asyncio.to_thread(proc.wait, 30)
    text = log.read_text()
    code = parse_qs(urlsplit(back).query)["code"][0]
    assert "signed in via" in text, "the log does say who signed in"
    assert "/auth/oidc/callback?[redacted]" in text, "the access log keeps the line, not the query"
    for secret in (code, cookie, issued, issued.split(".")[2], CLIENT_SECRET):
        assert secret not in text, f"a secret is in the log: {secret[:8]}..."


def _key() -> Any:
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(KEY)
