"""The event's ``author`` (who wrote it: a person signed in, or an API token) was added after the first release:
events written before it decode forever, encode exactly as they were, and an SDK that predates it reads the
events that carry it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec

from flagstream.events import UNSET_AUTHOR, Author, Flag, FlagToggled, decode_event, encode_event

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
#: A toggle as every release before people existed wrote it (bytes from the stream).
BEFORE = (
    b'{"type":"flag.toggled","project":"default","environment":"production","actor":"ci (for ada)",'
    b'"at":"2026-01-02T03:04:05Z","comment":"launch","version":3,"flag":{"key":"checkout","on":true}}'
)


def test_an_event_from_before_authors_decodes_and_has_none() -> None:
    event = decode_event(BEFORE)
    assert isinstance(event, FlagToggled)
    assert event.actor == "ci (for ada)"
    assert event.author is UNSET_AUTHOR
    assert event.flag.on is True


def test_an_event_without_an_author_encodes_as_before() -> None:
    event = FlagToggled(project="p", environment="e", actor="a", at=AT, flag=Flag(key="f"))
    assert "author" not in json.loads(encode_event(event)), "no new key in events written without a person"


def test_an_event_written_by_a_person_keeps_who_and_how() -> None:
    ada = Author(kind="person", id="u_0123456789abcdef", name="Ada Lovelace", email="ada@example.com", via="oidc",
                 issuer="https://sso.example.com/realms/acme")  # fmt: skip
    event = FlagToggled(project="p", environment="e", actor="Ada Lovelace", at=AT, flag=Flag(key="f"), author=ada)
    raw = encode_event(event)
    assert json.loads(raw)["author"] == {
        "kind": "person", "id": "u_0123456789abcdef", "name": "Ada Lovelace", "email": "ada@example.com",
        "via": "oidc", "issuer": "https://sso.example.com/realms/acme",
    }  # fmt: skip
    assert decode_event(raw) == event


def test_an_sdk_from_before_authors_reads_an_event_that_has_one() -> None:
    class OldToggled(msgspec.Struct, kw_only=True, tag_field="type", tag="flag.toggled"):  # the envelope as it was
        project: str
        environment: str
        actor: str
        at: datetime
        comment: str = ""
        version: int = 1
        flag: Flag

    token = Author(kind="token", id="0123456789ab", name="ci", via="token")
    raw = encode_event(FlagToggled(project="p", environment="e", actor="ci", at=AT, flag=Flag(key="f"), author=token))
    old = msgspec.json.decode(raw, type=OldToggled)
    assert (old.actor, old.flag.key) == ("ci", "f")
