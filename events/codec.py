"""JSON on the wire: one module-level encoder and decoder for the event union."""

from __future__ import annotations

import msgspec

from .catalog import AnyEvent, Event

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)  # type: ignore[valid-type]

#: What a bad message raises: callers skip, log and count it, never crash.
DecodeError = msgspec.DecodeError  # ValidationError is a subclass


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:  # type: ignore[valid-type]
    """Decode one event; raises ``DecodeError`` (or its subclass ``ValidationError``) on any bad input."""
    try:
        return _decoder.decode(data)
    except UnicodeDecodeError as exc:  # invalid UTF-8 inside a JSON string: msgspec lets it through as is
        raise DecodeError(f"invalid UTF-8 in the event: {exc.reason} at byte {exc.start}") from exc
