"""Admin feature module: webhooks (see registry.py for the contract; ``services/webhooks/model.py`` for the body and
the signature). Admin role only: a webhook sends every change it covers to a URL of the creator's choosing.

``POST /api/v1/webhooks`` creates one (its secret is in that answer only); ``GET`` lists them or shows one with
its delivery status (delivered, failed, last error, events still to send); ``DELETE`` stops it at once. The
lifespan runs this replica's share of the deliveries (``services/webhooks/delivery.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ..changes import InvalidInput, NotFound, Unavailable, check_key, convert, parse_json
from ..runtime import end_within
from ..webhooks import (
    KINDS,
    AddressPolicy,
    DeliveryStatus,
    WebhookDelivery,
    WebhookRecord,
    WebhookStore,
    WebhookView,
    address_problem,
    url_problem,
    view,
)
from .auth import WEBHOOKS_TAG
from .routes import API, Endpoint, json_response, read_body, resolve_actor

log = logging.getLogger("flagstream.webhooks")

MAX_WEBHOOKS = 100
#: What an id can be (``webhooks.model.new_id``: wh and 16 hex digits; any ASCII letters and digits are looked up).
_ID = re.compile(r"[A-Za-z0-9]{1,64}")


class WebhookBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    description: str = ""
    #: ``project/environment`` (or an environment key of the default project); omitted: every environment.
    environments: list[str] | None = None
    #: Entity kinds: flag, segment, environment, schedule; omitted: all.
    kinds: list[str] | None = None


class WebhookList(msgspec.Struct, kw_only=True):
    items: list[WebhookView]


class WebhookDetail(msgspec.Struct, kw_only=True):
    webhook: WebhookView
    status: DeliveryStatus
    #: Changes this webhook has yet to send, and the one in flight (0 or 1).
    pending: int
    in_flight: int


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.webhooks = None
    try:
        store = await WebhookStore.open(app.state.nc)
    except Exception as exc:  # e.g. a NATS user without the bucket: the rest of the API still works
        log.warning("webhooks: unavailable (cannot open the KV bucket): %r", exc)
        yield
        return
    metrics = getattr(app.state, "metrics", None)
    log.info("webhooks send to public addresses; allowed besides: %s", _policy(app.state).describe())
    delivery = WebhookDelivery(
        store, policy=_policy(app.state), on_attempt=metrics.webhook_result if metrics is not None else None
    )
    app.state.webhooks, app.state.webhook_delivery = store, delivery
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop), name="webhook-delivery")
    try:
        yield
    finally:
        stop.set()
        await end_within(task, "webhooks: delivery", grace=5, log=log)  # not wait_for(task, 5): see there


def _policy(state: object) -> AddressPolicy:
    """Where webhooks may send (``create_app(webhook_allow=...)``: ``--webhook-allow``)."""
    return getattr(state, "webhook_policy", None) or AddressPolicy()


def _store(request: Request) -> WebhookStore:
    store = getattr(request.app.state, "webhooks", None)
    if store is None:
        raise Unavailable("webhooks are unavailable: the admin cannot use the KV bucket flagstream_webhooks")
    return store  # type: ignore[no-any-return]


def _environments(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if not values:
        raise InvalidInput("environments: give at least one, or omit it for every environment")
    out = []
    for i, value in enumerate(values):
        project, _, environment = value.rpartition("/")
        project = check_key(project or "default", f"environments[{i}] (project)")
        out.append(f"{project}/{check_key(environment, f'environments[{i}]')}")
    return sorted(set(out))


def _kinds(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for i, kind in enumerate(values):
        if kind not in KINDS:
            raise InvalidInput(f"kinds[{i}]: must be one of {', '.join(KINDS)}, got {kind!r}")
    if not values:
        raise InvalidInput("kinds: give at least one, or omit it for every kind")
    return sorted(set(values))


async def create_webhook(request: Request) -> Response:
    body = convert(parse_json(await read_body(request)), WebhookBody)
    problem = url_problem(body.url)
    if problem:
        raise InvalidInput(problem)
    if len(body.description) > 500:
        raise InvalidInput("description is longer than 500 characters")
    environments, kinds = _environments(body.environments), _kinds(body.kinds)
    problem = await address_problem(body.url, _policy(request.app.state))
    if problem:
        raise InvalidInput(f"url: {problem}")
    store = _store(request)
    if len(await store.ids()) >= MAX_WEBHOOKS:
        raise InvalidInput(f"at most {MAX_WEBHOOKS} webhooks; delete one first")
    record = await store.create(
        url=body.url, description=body.description, environments=environments, kinds=kinds,
        created_by=resolve_actor(request),
    )  # fmt: skip
    log.info("webhook %s -> %s created by %s", record.id, record.url, record.created_by)
    request.app.state.webhook_delivery.wake.set()
    return json_response(view(record, with_secret=True), 201, {"Location": f"{API}/webhooks/{record.id}"})


async def list_webhooks(request: Request) -> Response:
    return json_response(WebhookList(items=[view(r) for r in await _store(request).list()]))


async def _found(request: Request) -> tuple[WebhookStore, WebhookRecord]:
    store, webhook_id = _store(request), request.path_params["id"]
    if not _ID.fullmatch(webhook_id):  # not a key the store could hold (str.isalnum() takes "Ø")
        raise NotFound(f"webhook {webhook_id!r} not found: a webhook id is wh and 16 hex digits")
    record = await store.get(webhook_id)
    if record is None:
        raise NotFound(f"webhook {webhook_id!r} not found")
    return store, record


async def get_webhook(request: Request) -> Response:
    store, record = await _found(request)
    pending = await store.pending(record.id)
    if pending is None:  # deleted meanwhile
        raise NotFound(f"webhook {record.id!r} not found")
    status = await store.status(record.id)
    return json_response(WebhookDetail(webhook=view(record), status=status, pending=pending[0], in_flight=pending[1]))


class PingResult(msgspec.Struct, kw_only=True):
    """Whether a test delivery was taken (``ok``: a 2xx) and the endpoint's status; never what it answered."""

    ok: bool
    #: The endpoint's HTTP status; 0 if it gave none (refused address, unreachable, timed out).
    status: int
    #: Why it was not taken: the status, a redirect (not followed), or why nothing was sent.
    error: str


async def ping_webhook(request: Request) -> Response:
    _, record = await _found(request)
    code, error = await request.app.state.webhook_delivery.ping(record, resolve_actor(request))
    return json_response(PingResult(ok=200 <= code < 300, status=code, error=error))


async def delete_webhook(request: Request) -> Response:
    store, record = await _found(request)
    await store.delete(record.id)
    log.info("webhook %s deleted by %s", record.id, resolve_actor(request))
    return json_response(view(record))


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{API}/webhooks", list_webhooks, "listWebhooks", "List webhooks (never their secrets)",
             WEBHOOKS_TAG, None, WebhookList),
    Endpoint("POST", f"{API}/webhooks", create_webhook, "createWebhook",
             "Create a webhook: each change it covers is POSTed to its URL, signed (its secret is shown once)",
             WEBHOOKS_TAG, WebhookBody, WebhookView, 201, write=True),
    Endpoint("GET", f"{API}/webhooks/{{id}}", get_webhook, "getWebhook",
             "A webhook and the status of its deliveries", WEBHOOKS_TAG, None, WebhookDetail),
    Endpoint("POST", f"{API}/webhooks/{{id}}/ping", ping_webhook, "pingWebhook",
             "Send a test delivery (type ping) to the webhook's URL now, and say what it answered", WEBHOOKS_TAG,
             None, PingResult),
    Endpoint("DELETE", f"{API}/webhooks/{{id}}", delete_webhook, "deleteWebhook",
             "Delete a webhook: nothing more is sent", WEBHOOKS_TAG, None, WebhookView, write=True),
]  # fmt: skip
