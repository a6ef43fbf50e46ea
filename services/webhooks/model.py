"""Webhooks: each change of a flag, segment, environment, schedule or release plan POSTed to a URL of yours (Slack, a
CI job, a change log), signed, in stream order, retried until your endpoint takes it.

This module is the pure part: the stored record, the subjects a webhook reads, the body and its signature.
``store.py`` keeps the records in NATS, ``delivery.py`` delivers.

The body (JSON)::

    {"webhook": "wh...", "seq": 42, "type": "flag.toggled", "project": "default", "environment": "production",
     "kind": "flag", "key": "new-checkout", "actor": "ada", "at": "...", "comment": "launch", "revision": 3,
     "changes": ["on: false -> true"], "text": "ada: flag new-checkout in default/production (flag.toggled) ...",
     "event": {...the whole event, as on the stream...}}

``text`` is a one-line summary, so a Slack (or Mattermost, Teams) incoming-webhook URL shows it as it is.
``changes`` are the field-level differences from the entity's previous state (as in the audit log): ``[]`` for
a new entity, ``null`` for an event not written by the admin service (nothing records what it replaced).

Signature: ``X-Flagstream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the
webhook's secret>``, as Stripe signs: check it, and refuse a ``t`` too far from your clock (replays).
``X-Flagstream-Delivery`` is ``<webhook id>:<seq>``: the same for every attempt at one event (deduplicate on it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from msgspec import Struct

from ...events import Event, encode_event, entity_of, environment_filter, subject, tag_of, whole_number
from ..history import diff
from ..runtime import WEBHOOKS_BUCKET

#: KV bucket of the webhook records.
BUCKET = WEBHOOKS_BUCKET
#: What a webhook can ask for (the entity kinds of the event stream).
KINDS = ("flag", "segment", "environment", "schedule", "plan")
SIGNATURE_HEADER = "X-Flagstream-Signature"
DELIVERY_HEADER = "X-Flagstream-Delivery"


class WebhookRecord(Struct, kw_only=True):
    """One webhook as stored (the secret included: it signs every body)."""

    id: str
    url: str
    secret: str
    description: str = ""
    #: ``project/environment`` pairs to send changes of (``None``: every environment of every project).
    environments: list[str] | None = None
    #: Entity kinds to send (``None``: all of ``KINDS``).
    kinds: list[str] | None = None
    created_by: str
    created_at: datetime
    #: The first stream sequence it delivers: the stream's next one when it was created.
    start_seq: int


class WebhookView(Struct, kw_only=True, omit_defaults=True):
    """A webhook as the API shows it: the secret only in the answer to its creation."""

    id: str
    url: str
    description: str
    environments: list[str] | None
    kinds: list[str] | None
    created_by: str
    created_at: datetime
    start_seq: int
    secret: str | None = None


def view(record: WebhookRecord, *, with_secret: bool = False) -> WebhookView:
    return WebhookView(
        id=record.id, url=record.url, description=record.description, environments=record.environments,
        kinds=record.kinds, created_by=record.created_by, created_at=record.created_at, start_seq=record.start_seq,
        secret=record.secret if with_secret else None,
    )  # fmt: skip


def new_id() -> str:
    return "wh" + secrets.token_hex(8)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def consumer_name(webhook_id: str) -> str:
    """The durable JetStream consumer that holds the webhook's position (shared by every admin replica)."""
    return f"webhook-{webhook_id}"


def filter_subjects(environments: list[str] | None, kinds: list[str] | None) -> list[str]:
    """The stream subjects a webhook's consumer reads: the server skips the rest, so ``pending`` counts only the
    changes it will send, and every message delivered is one to send."""
    places = [e.split("/", 1) for e in environments] if environments is not None else [["*", "*"]]
    if kinds is None:
        return [environment_filter(project, env) for project, env in places]
    return [subject(project, env, kind, "*") for project, env in places for kind in kinds]


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook's target, or None (``address.problem`` says whether its address may be)."""
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port  # each raises ValueError for a malformed one
    except ValueError as exc:
        return f"url is not a valid URL ({exc}): {url[:200]!r}"
    if parts.scheme not in ("http", "https") or not hostname:
        return f"url must be an absolute http(s) URL, got {url!r}"
    if parts.username or parts.password:
        return "url must not hold credentials (the body is signed with the webhook's secret instead)"
    if len(url) > 2000:
        return "url is longer than 2,000 characters"
    try:
        httpx.URL(url)  # what delivers it must read it too (it refuses, e.g., the octal host 0177.0.0.1)
    except httpx.InvalidURL as exc:
        return f"url cannot be sent to: {exc}"
    return None


def body(record: WebhookRecord, seq: int, event: Event, previous: Any, *, known_previous: bool) -> bytes:
    """The JSON body of one delivery; ``previous``: the entity's state before ``event`` (None: it is new)."""
    kind, key, state = entity_of(event)
    changes: list[str] | None = None
    if known_previous:  # a new entity has no changes to list: its whole state is in "event"
        changes = [c.text for c in diff(previous, state)] if previous is not None else []
    where = f"{event.project}/{event.environment}"
    what = "; ".join(changes[:5]) + (f"; +{len(changes) - 5} more" if len(changes) > 5 else "") if changes else ""
    text = f"{event.actor}: {kind} {key} in {where} ({tag_of(event)})"
    if what:
        text += f": {what}"
    if event.comment:
        text += f' "{event.comment}"'
    return msgspec.json.encode(
        {
            "webhook": record.id, "seq": seq, "type": tag_of(event), "project": event.project,
            "environment": event.environment, "kind": kind, "key": key, "actor": event.actor,
            "author": event.author or None, "at": event.at,
            "comment": event.comment, "revision": event.version, "changes": changes, "text": text,
            "event": msgspec.Raw(encode_event(event)),
        }
    )  # fmt: skip


def ping_body(record: WebhookRecord, actor: str, at: datetime) -> bytes:
    """The body of a test delivery (``type: ping``, ``seq`` 0): no change, the same headers and signature."""
    text = f"{actor}: a test of the Flagstream webhook {record.id}"
    return msgspec.json.encode(
        {"webhook": record.id, "seq": 0, "type": "ping", "actor": actor, "at": at, "changes": None, "text": text}
    )


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, payload: bytes) -> int | None:
    """The signed timestamp if ``header`` is a valid signature of ``payload`` with ``secret``, else None (what a
    receiver does; here for the tests and the docs' example)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = whole_number(fields.get("t", ""))
    if timestamp is None or "v1" not in fields:
        return None
    expected = signature(secret, timestamp, payload).split("v1=", 1)[1]
    return timestamp if hmac.compare_digest(expected, fields["v1"]) else None
