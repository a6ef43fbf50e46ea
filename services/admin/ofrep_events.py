"""Admin feature module: OFREP event streams (ADR-0008 of the OFREP protocol, ``docs/ofrep.md``).

``GET /ofrep/v1/events`` is a Server-Sent Events stream that tells an OFREP provider to re-fetch its bulk
evaluation as soon as a flag of its environment changes, instead of polling. Every bulk answer names it in
``eventStreams`` (as an ``endpoint`` relative to the OFREP base URL's origin). Each event is
``data: {"type": "refetchEvaluation", "etag": "<sequence>"}`` with ``id: <sequence>``, the ruleset sequence of
the server's live evaluator *after* it applied the change: a re-fetch that follows can never see the old flags.

The re-fetch may reach another admin replica than the stream came from. It carries the event's etag as
``flagConfigEtag``; a replica whose ruleset is behind it waits (at most ``ofrep.CATCH_UP``) before it answers, so
the provider never re-fetches the old state from a slower replica (``ofrep.caught_up``).

A stream lasts ``STREAM_LIFETIME``, and ends at once when the server starts to stop (``streams.py``); the client
reconnects after ``retry`` and sends ``Last-Event-ID``: if the flags changed meanwhile, the first event comes at
once. A client that does not ask for ``text/event-stream`` gets the opening and the end (plain HTTP tools).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...events import whole_number
from .ofrep import EVENTS, Caller, OfrepFailure, _ruleset_client, views, where
from .routes import Endpoint, Query
from .streams import CLOSING, closing_of, next_or_closing

#: How long a stream stays open before the client is asked to reconnect (with Last-Event-ID).
STREAM_LIFETIME = 25.0
HEARTBEAT = 10.0

_encoder = msgspec.json.Encoder()


class RefetchEvaluation(msgspec.Struct, kw_only=True, tag_field="type", tag="refetchEvaluation"):
    """The one OFREP event type: the flags changed, re-fetch (with ``flagConfigEtag=etag``)."""

    etag: str


def _sse(seq: int) -> bytes:
    return f"id: {seq}\ndata: ".encode() + _encoder.encode(RefetchEvaluation(etag=str(seq))) + b"\n\n"


def _last_event_id(request: Request) -> int | None:
    raw = (request.headers.get("last-event-id") or "").strip()
    if not raw:
        return None
    seen = whole_number(raw)
    if seen is None:
        raise OfrepFailure(400, "GENERAL", f"Last-Event-ID must be an event id of this stream, got {raw!r}")
    return seen


async def event_stream(request: Request) -> Response:
    try:
        project, environment = where(request)
    except OfrepFailure as failure:
        return failure.response()
    return await stream_events(request, Caller(project, environment))


async def stream_events(request: Request, caller: Caller, headers: dict[str, str] | None = None) -> Response:
    """The event stream of ``caller``'s environment. For a client-side key, an event only when what it can see
    may have changed (``ClientViews``), with that change's sequence as the event's id and etag."""
    project, environment = caller.project, caller.environment
    try:
        seen = _last_event_id(request)
        client = await _ruleset_client(request, project, environment)
    except OfrepFailure as failure:
        return failure.response()
    closing = closing_of(request)
    lifetime = STREAM_LIFETIME if "text/event-stream" in request.headers.get("accept", "") else 0.0
    if caller.client is None:

        def position() -> int:
            return int(client.seq)
    else:
        seen_by = views(request)

        def position() -> int:
            return seen_by.of(client.ruleset).seq

    start = position() if seen is None else seen  # now: a change before the stream starts is sent first

    async def events() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime
        changed = asyncio.Event()
        remove = client.on_change(None, lambda *_: changed.set())
        pool = request.app.state.evaluator
        unpin = pool.pin(project, environment)  # its client stays loaded while followed
        sent = start
        try:
            yield b"retry: 1000\n: flagstream ofrep events\n\n"
            if pool.held(project, environment) is not client:  # closed before the pin: reconnect (Last-Event-ID)
                return
            while True:
                now = position()
                if now > sent:  # changed since the last event (or since the client's Last-Event-ID)
                    sent = now
                    yield _sse(sent)
                left = deadline - loop.time()
                if left <= 0:
                    return
                try:
                    if await next_or_closing(changed.wait(), closing, min(HEARTBEAT, left)) is CLOSING:
                        return
                except TimeoutError:
                    yield b": keep-alive\n\n"
                changed.clear()
        finally:
            remove()
            unpin()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", EVENTS, event_stream, "ofrepEventStream",
             "OFREP event stream (Server-Sent Events): refetchEvaluation whenever a flag of the environment changes",
             "ofrep", query=(Query("environment", "the environment (as X-Flagstream-Environment)"),
                             Query("project", "the project (as X-Flagstream-Project)")),
             extra_statuses=(400, 404, 503)),
]  # fmt: skip
