"""Admin feature module: the web UI (see registry.py for the contract).

Serves the single-page UI (plain HTML, CSS and ES modules from ``static/``, no build step, nothing fetched from
the internet) at ``/ui/``, redirects ``/`` there, and adds the live-update stream the UI listens to:
``GET .../environments/{environment}/changes/stream``, Server-Sent Events of every change in one environment,
each event's ``id`` being its stream sequence (the entity's new version), and ``GET .../changes/stream`` the
same for every environment of a project (those the caller's token may read: what the UI's pages across
environments follow). A client that reconnects with ``Last-Event-ID`` (or ``?after=``) resumes right after it,
so nothing is missed between two connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ...events import DEFAULT_PROJECT, STREAM, DecodeError, decode_event, entity_of, environment_filter, tag_of
from ...events.subjects import PREFIX
from ..changes import NotFound, Stored, check_key, whole
from .responses import record
from .routes import API, Endpoint, Query, _where
from .streams import CLOSING, closing_of, next_or_closing

log = logging.getLogger("flagstream.admin.ui")

STATIC = Path(__file__).parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}

#: The UI's own files must never be framed, sniffed or allowed to load anything from elsewhere.
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

#: A stream ends after this long (and at once when the server starts to stop: streams.py); the client reconnects
#: with Last-Event-ID at once and misses nothing. A dead connection is found within this time.
STREAM_LIFETIME = 25.0
HEARTBEAT = 10.0

_encoder = msgspec.json.Encoder()


def _file(name: str) -> Response:
    path = STATIC / name
    suffix = path.suffix.lower()
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not path.is_file():
        raise NotFound(f"no such UI file: {name!r}")
    return Response(path.read_bytes(), media_type=_TYPES[suffix], headers=_SECURITY)


async def root(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


async def index(request: Request) -> Response:
    return _file("index.html")


async def favicon(request: Request) -> Response:
    return _file("favicon.svg")


async def asset(request: Request) -> Response:
    return _file(request.path_params["asset"])


def _start(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    return whole(raw, "Last-Event-ID / after")


def _sse(event: str, data: bytes, ident: int | None = None) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


def _change(seq: int, event: Any, environment: str) -> bytes:
    """One change as the UI gets it: the entity's record, or for other events (schedules...) their fields; with
    the environment it happened in."""
    tag = tag_of(event)
    try:
        kind = entity_of(event)[0]
    except TypeError:
        kind = tag.split(".")[0]
    if kind in ("flag", "segment", "environment"):
        body = {"kind": kind, "event": tag, "environment": environment, "record": record(Stored(seq=seq, event=event))}
        return _encoder.encode(body)
    return _encoder.encode({"kind": kind, "event": tag, "environment": environment, "version": seq, "data": event})


async def changes_stream(request: Request) -> Response:
    """Server-Sent Events (for ``Accept: text/event-stream``): ``ready`` (data: ``{"after": <sequence>}``), then
    ``change`` per event (data: ``{"kind": ..., "event": <tag>, "environment": ..., "record": <the entity's
    record>}``)."""
    project, environment = _where(request)
    return await _stream(request, environment_filter(project, environment), None)


async def project_changes_stream(request: Request) -> Response:
    """The same for every environment of a project the caller may read."""
    project = check_key(request.path_params.get("project", DEFAULT_PROJECT), "project")
    principal = getattr(request.state, "principal", None)
    visible = principal.environments if principal is not None else None
    return await _stream(request, f"{PREFIX}.{project}.>", visible)


async def _stream(request: Request, subjects: str, visible: tuple[str, ...] | None) -> Response:
    after = _start(request)
    js = request.app.state.nc.jetstream()
    if after is None:
        after = int((await js.stream_info(STREAM)).state.last_seq)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=10_000)

    async def on_message(msg: object) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg)

    sub = await js.subscribe(subjects, stream=STREAM, cb=on_message, ordered_consumer=True, config=config)

    # A client that does not ask for an event stream (a plain HTTP tool) gets the ready event and the end.
    closing = closing_of(request)
    lifetime = STREAM_LIFETIME if "text/event-stream" in request.headers.get("accept", "") else 0.0

    async def events() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime
        try:
            yield b"retry: 1000\n\n" + _sse("ready", _encoder.encode({"after": after}))
            while (left := deadline - loop.time()) > 0:
                try:
                    msg = await next_or_closing(queue.get(), closing, min(HEARTBEAT, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if msg is CLOSING:
                    return
                seq = msg.metadata.sequence.stream  # type: ignore[attr-defined]
                environment = msg.subject.split(".")[2]  # type: ignore[attr-defined]
                if visible is not None and environment not in visible:
                    continue
                try:
                    body = _change(seq, decode_event(msg.data), environment)  # type: ignore[attr-defined]
                except DecodeError:
                    log.warning("skipping an undecodable event at sequence %s", seq)
                    continue
                except Exception:
                    log.exception("cannot render the event at sequence %s for the UI; skipped", seq)
                    continue
                yield _sse("change", body, seq)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


_STREAM_PATH = "/environments/{environment}/changes/stream"
_PROJECT_STREAM_PATH = "/changes/stream"
AFTER = Query("after", "resume right after this stream sequence (as the Last-Event-ID header does)")


def _public(endpoint: Endpoint) -> Endpoint:
    """The UI's own files hold no data: open to everyone (the page then signs in with an API token)."""
    if "public" in {f.name for f in dataclasses.fields(endpoint)}:
        return dataclasses.replace(endpoint, public=True)  # type: ignore[call-arg]
    return endpoint


ENDPOINTS: list[Endpoint] = [
    _public(Endpoint("GET", "/", root, "uiRoot", "Redirect to the web UI", "ui")),
    _public(Endpoint("GET", "/favicon.ico", favicon, "uiFavicon", "The web UI's icon", "ui")),
    _public(Endpoint("GET", "/ui/", index, "uiIndex", "The web UI (a single page)", "ui")),
    _public(Endpoint("GET", "/ui/{asset}", asset, "uiAsset", "A file of the web UI (HTML, CSS, JavaScript)", "ui",
                     extra_statuses=(404,))),
    Endpoint("GET", f"{API}/projects/{{project}}{_STREAM_PATH}", changes_stream, "streamChanges",
             "Live changes of one environment (Server-Sent Events; resume with Last-Event-ID)", "ui",
             query=(AFTER,)),
    Endpoint("GET", f"{API}{_STREAM_PATH}", changes_stream, "streamChangesDefault",
             "Live changes of one environment of the default project (Server-Sent Events)", "ui",
             query=(AFTER,)),
    Endpoint("GET", f"{API}/projects/{{project}}{_PROJECT_STREAM_PATH}", project_changes_stream,
             "streamProjectChanges",
             "Live changes of every environment of a project the token may read (Server-Sent Events)", "ui",
             query=(AFTER,)),
    Endpoint("GET", f"{API}{_PROJECT_STREAM_PATH}", project_changes_stream, "streamProjectChangesDefault",
             "Live changes of every environment of the default project (Server-Sent Events)", "ui",
             query=(AFTER,)),
]  # fmt: skip
