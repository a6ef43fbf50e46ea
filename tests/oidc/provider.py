"""A real OpenID provider for the tests: node-oidc-provider (``provider.mjs``, installed in ``node_modules`` by the
Makefile from the npm registry), run as a process on loopback, behind a small reverse proxy that the tests
control (``Provider.swap``): it forwards everything unchanged, and can replace the ID token in one answer of
the token endpoint, which is how the attack tests hand Flagstream a token that is validly signed but for another
client, another sign-in, another issuer, or expired. Nothing here checks a token: Flagstream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagstream.services.runtime import free_port
from tests.helpers import eventually, serving

HERE = Path(__file__).parent
SCRIPT = HERE / "provider.mjs"
INSTALLED = HERE / "node_modules" / "oidc-provider" / "package.json"
CLIENT_ID = "flagstream"
CLIENT_SECRET = "a client secret only the tests know"
OTHER_CLIENT = "another-app"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def signing_key() -> dict[str, Any]:
    """A fresh RSA signing key (private JWK); two providers given the same one sign alike."""
    key = RSAKey.generate_key(2048, parameters={"kid": f"k{free_port()}", "use": "sig", "alg": "RS256"})
    return key.as_dict(private=True)


@dataclass
class Provider:
    issuer: str
    upstream: str
    process: subprocess.Popen[str]
    #: Applied once to the ``id_token`` of the token endpoint's next answer (the attack tests); may be async.
    swap: Callable[[str], Any] | None = None
    #: Every ID token the token endpoint issued (before any swap).
    issued: list[str] = field(default_factory=list)

    async def discovery(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            return (await http.get(f"{self.issuer}/.well-known/openid-configuration")).json()  # type: ignore[no-any-return]


def _proxy(provider: Callable[[], Provider]) -> Starlette:
    async def forward(request: Request) -> Response:
        p = provider()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        async with httpx.AsyncClient(base_url=p.upstream, timeout=30) as http:
            answer = await http.request(
                request.method, request.url.path, params=request.query_params.multi_items(), headers=headers,
                content=await request.body(),
            )  # fmt: skip
        body = answer.content
        if request.url.path == "/token" and answer.status_code == 200:
            token = answer.json()
            p.issued.append(token.get("id_token", ""))
            swap, p.swap = p.swap, None  # once: the swap itself may get tokens from this provider
            if swap is not None and "id_token" in token:
                swapped = swap(token["id_token"])
                token["id_token"] = await swapped if inspect.isawaitable(swapped) else swapped
                body = json.dumps(token).encode()
        response = Response(body, status_code=answer.status_code)
        response.raw_headers = [
            (k.lower().encode(), v.encode()) for k, v in answer.headers.multi_items() if k.lower() not in _HOP
        ] + [(b"content-length", str(len(body)).encode())]
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


@contextlib.asynccontextmanager
async def oidc_provider(
    redirect_uris: list[str], *, accounts: dict[str, Any] | None = None, key: dict[str, Any] | None = None
) -> AsyncIterator[Provider]:
    """node-oidc-provider with the clients ``flagstream`` and ``another-app`` (both may redirect to
    ``redirect_uris``), reached through the test's proxy, whose URL is the issuer."""
    node = shutil.which("node")
    if node is None or not INSTALLED.is_file():
        pytest.fail("the test OpenID provider is not installed: run `make test` (it runs npm ci in tests/oidc)")
    holder: list[Provider] = []
    async with serving(_proxy(lambda: holder[0])) as issuer:
        port = free_port()
        options = {
            "port": port, "issuer": issuer, "accounts": accounts or {},
            "jwks": {"keys": [key or signing_key()]},
            "clients": [
                {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris},
                {"client_id": OTHER_CLIENT, "client_secret": "another secret", "redirect_uris": redirect_uris},
            ],
        }  # fmt: skip
        process = await asyncio.to_thread(
            subprocess.Popen, [node, str(SCRIPT), json.dumps(options)], cwd=HERE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        output: list[str] = []
        ready = threading.Event()
        threading.Thread(target=_pump, args=(process, output, ready), daemon=True).start()
        try:
            await eventually(lambda: ready.is_set() or process.poll() is not None, 60, "the OpenID provider started")
            assert ready.is_set(), f"the OpenID provider did not start (exit {process.poll()}): {''.join(output)}"
            holder.append(Provider(issuer=issuer, upstream=f"http://127.0.0.1:{port}", process=process))
            yield holder[0]
        finally:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()


def _pump(process: subprocess.Popen[str], output: list[str], ready: threading.Event) -> None:
    """Read the provider's output to its end (so it never blocks on a full pipe); say when it is ready."""
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if line.startswith("ready "):
            ready.set()


async def log_in_at_provider(http: httpx.AsyncClient, authorize_url: str, login: str) -> str:
    """A person at the provider's own login page (plain HTTP, as a browser without JavaScript would): from the
    authorization URL to the redirect back to the client; returns that redirect's URL (code and state)."""
    answer = await http.get(authorize_url)
    while answer.status_code in (302, 303) and not _is_callback(answer.headers["location"]):
        answer = await http.get(answer.headers["location"])
    if answer.status_code == 200:  # the login page
        form = re.search(r'<form[^>]*action="([^"]+)"', answer.text)
        assert form is not None, answer.text[:500]
        answer = await http.post(form.group(1), data={"prompt": "login", "login": login, "password": "any"})
        while answer.status_code in (302, 303) and not _is_callback(answer.headers["location"]):
            answer = await http.get(answer.headers["location"])
    assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
    return answer.headers["location"]  # type: ignore[no-any-return]


def _is_callback(location: str) -> bool:
    return "/auth/oidc/callback" in location


async def token_for(provider: Provider, *, client_id: str, secret: str, nonce: str, login: str,
                    redirect_uri: str) -> str:  # fmt: skip
    """An ID token the provider issues to ``client_id`` for ``login`` with ``nonce`` (its own sign-in, PKCE)."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    meta = await provider.discovery()
    verifier = "v" * 64
    url = prepare_grant_uri(
        meta["authorization_endpoint"], client_id, "code", redirect_uri=redirect_uri, scope="openid profile email",
        state="s" * 32, nonce=nonce, code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=provider.issuer, timeout=30) as http:
        back = await log_in_at_provider(http, url, login)
        code = parse_qs(urlsplit(back).query)["code"][0]
        answer = await http.post(
            meta["token_endpoint"], auth=(client_id, secret),
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                  "code_verifier": verifier},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()["id_token"]  # type: ignore[no-any-return]
