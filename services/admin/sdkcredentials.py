"""Admin feature module: SDK credentials (NATS users that read one environment's flags; ``docs/security.md``).

Management (admins only, like API tokens and client-side keys): ``GET``/``POST /api/v1/projects/{project}/
environments/{environment}/sdk-credentials`` lists and creates credentials, ``DELETE .../sdk-credentials/{id}``
revokes one. The password is in the creation's answer only; the store keeps its bcrypt hash, which is what
nats-server is given (``services/sdkcredentials``).

nats-server learns the users from their bucket: ``flagstream up`` follows it and reloads nats-server's
configuration at each change (``runtime/up.py``); with a nats-server of your own, ``flagstream nats-users
--sdk-credentials-from ...`` writes them into ``auth.conf`` and you reload it. So that the answer says whether the
credential works already, the creation tries to log in with it for up to ``ACCEPT_WAIT`` seconds: ``accepted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ..changes import ENVIRONMENT, InvalidInput, NotFound, Unavailable, convert, parse_json
from ..sdkcredentials import SdkCredentialStore, SdkCredentialView, check_name, view
from .auth import SDK_CREDENTIALS_TAG
from .routes import API, Endpoint, _where, json_response, read_body, resolve_actor, service_of

log = logging.getLogger("flagstream.admin.sdkcredentials")

#: Live credentials per environment at most.
MAX_CREDENTIALS = 100
#: Seconds a creation waits for nats-server to accept the new credential (``flagstream up`` takes well under one).
ACCEPT_WAIT = 5.0


class SdkCredentialBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: What uses it (an application, a service): shown in listings.
    name: str


class SdkCredentialList(msgspec.Struct, kw_only=True):
    items: list[SdkCredentialView]


def _store(request: Request) -> SdkCredentialStore:
    store: SdkCredentialStore | None = request.app.state.sdk_credentials
    if store is None:
        raise Unavailable("SDK credentials are unavailable (their KV bucket could not be opened)")
    return store


async def accepted(request: Request, user: str, password: str) -> bool:
    """Whether nats-server lets ``user`` log in, trying until it does or ``ACCEPT_WAIT`` has passed."""
    state = request.app.state
    options: dict[str, Any] = {k: v for k, v in (state.sdk_nats_options or {}).items() if k == "tls"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + getattr(state, "sdk_accept_wait", ACCEPT_WAIT)

    async def quiet(_: Exception) -> None:
        return None

    while True:
        try:
            nc = await nats.connect(
                state.sdk_nats_url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=1, error_cb=quiet, name="flagstream-admin-credential-check", **options,
            )  # fmt: skip
        except Exception:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)
            continue
        await nc.close()
        return True


async def create_credential(request: Request) -> Response:
    project, environment = _where(request)
    body = convert(parse_json(await read_body(request)), SdkCredentialBody)
    problem = check_name(body.name)
    if problem:
        raise InvalidInput(problem)
    await service_of(request).get(ENVIRONMENT, project, environment, environment)  # 404 if there is none
    store = _store(request)
    live = [c for c in await store.list(project, environment) if not c.revoked]
    if len(live) >= MAX_CREDENTIALS:
        limit = f"environment {environment!r} has {MAX_CREDENTIALS} SDK credentials already; revoke one first"
        raise InvalidInput(limit)
    actor = resolve_actor(request)
    record, password = await store.create(name=body.name, project=project, environment=environment, created_by=actor)
    log.info("SDK credential %s (%s, user %s) of %s/%s created by %s", record.id, record.name, record.user, project,
             environment, actor)  # fmt: skip
    ok = await accepted(request, record.user, password)
    if not ok:
        log.warning("SDK credential %s: nats-server does not accept it yet (a nats-server of your own needs "
                    "flagstream nats-users --sdk-credentials-from and a reload)", record.id)  # fmt: skip
    location = f"{request.url.path.rstrip('/')}/{record.id}"
    return json_response(view(record, password, ok), 201, {"Location": location})


async def list_credentials(request: Request) -> Response:
    project, environment = _where(request)
    show = request.query_params.get("revoked", "false")
    if show not in ("true", "false"):
        raise InvalidInput(f"revoked must be true or false, got {show!r}")
    records = await _store(request).list(project, environment)
    if show == "false":
        records = [r for r in records if not r.revoked]
    return json_response(SdkCredentialList(items=[view(r) for r in records]))


async def revoke_credential(request: Request) -> Response:
    project, environment = _where(request)
    cred_id = request.path_params["id"]
    store = _store(request)
    record = await store.get(cred_id)
    if record is None or (record.project, record.environment) != (project, environment):
        raise NotFound(f"SDK credential {cred_id!r} not found in environment {environment!r}")
    record = await store.revoke(cred_id, resolve_actor(request))
    assert record is not None
    log.info("SDK credential %s (%s, user %s) revoked by %s", record.id, record.name, record.user, record.revoked_by)
    return json_response(view(record))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.sdk_credentials = None
    try:
        app.state.sdk_credentials = await SdkCredentialStore.open(app.state.nc)
    except Exception as exc:  # e.g. an old NATS user without the bucket: the rest of the API still works
        log.warning("SDK credentials: unavailable (cannot open the KV bucket): %r", exc)
    yield


def _management(base: str, suffix: str) -> list[Endpoint]:
    coll = f"{base}/environments/{{environment}}/sdk-credentials"
    return [
        Endpoint("GET", coll, list_credentials, f"listSdkCredentials{suffix}",
                 "List the SDK credentials of an environment (never their passwords; revoked=true: the revoked too)",
                 SDK_CREDENTIALS_TAG, None, SdkCredentialList),
        Endpoint("POST", coll, create_credential, f"createSdkCredential{suffix}",
                 "Create an SDK credential: a NATS user that reads this environment's flags (its password is shown "
                 "once; accepted: whether nats-server took it)",
                 SDK_CREDENTIALS_TAG, SdkCredentialBody, SdkCredentialView, 201, write=True),
        Endpoint("DELETE", f"{coll}/{{id}}", revoke_credential, f"revokeSdkCredential{suffix}",
                 "Revoke an SDK credential (nats-server refuses it and closes its connections)",
                 SDK_CREDENTIALS_TAG, None, SdkCredentialView, write=True),
    ]  # fmt: skip


ENDPOINTS: list[Endpoint] = [
    *_management(f"{API}/projects/{{project}}", ""),
    *_management(API, "Default"),
]
