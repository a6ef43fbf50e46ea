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
    """Decode one event; raises ``DecodeError`` (or its subclass ``ValidationError``) on bad input."""
    return _decoder.decode(data)
