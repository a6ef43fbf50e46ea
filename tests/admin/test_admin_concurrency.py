"""Optimistic concurrency (If-Match / ETag) and idempotent retries (Idempotency-Key)."""

from __future__ import annotations

import asyncio

from flagstream.events import STREAM
from flagstream.services.changes.store import EventStore, WrongLastSequence
from tests.admin.conftest import API, Admin

FLAGS = f"{API}/environments/development/flags"
SUBJECT = "flagstream.default.development.flag.checkout"


async def test_stale_if_match_is_409_with_the_current_version_and_writes_nothing(admin: Admin) -> None:
    await admin.create_env()
    first = await admin.http.post(FLAGS, json={"key": "checkout"})
    stale = first.headers["etag"]
    second = await admin.http.post(f"{FLAGS}/checkout/on", headers={"If-Match": stale})
    assert second.status_code == 200, second.text
    current = second.json()["version"]
    whole = {**second.json()["flag"], "name": "late"}

    before = await admin.last_seq()
    for method, path, body in [
        ("PATCH", f"{FLAGS}/checkout", {"name": "late"}),
        ("PUT", f"{FLAGS}/checkout", whole),
        ("POST", f"{FLAGS}/checkout/off", {}),
        ("POST", f"{FLAGS}/checkout/archive", {}),
    ]:
        response = await admin.http.request(method, path, json=body, headers={"If-Match": stale})
        assert response.status_code == 409, (method, path, response.text)
        assert response.json()["version"] == current
        assert response.json()["current"]["flag"]["on"] is True
        assert str(current) in response.json()["error"]
    assert await admin.last_seq() == before, "a refused write leaves the stream unchanged"

    fresh = await admin.http.patch(
        f"{FLAGS}/checkout", json={"name": "fresh"}, headers={"If-Match": second.headers["etag"]}
    )
    assert fresh.status_code == 200


async def test_if_match_must_be_a_version(admin: Admin) -> None:
    await admin.create_env()
    await admin.http.post(FLAGS, json={"key": "checkout"})
    response = await admin.http.post(f"{FLAGS}/checkout/on", headers={"If-Match": "yesterday"})
    assert response.status_code == 400
    assert "If-Match" in response.json()["error"]


async def test_a_retry_after_the_first_write_landed_lands_once(admin: Admin) -> None:
    await admin.create_env()
    headers = {"Idempotency-Key": "req-42"}
    first = await admin.http.post(FLAGS, json={"key": "checkout", "name": "A"}, headers=headers)
    assert first.status_code == 201
    retry = await admin.http.post(FLAGS, json={"key": "checkout", "name": "A"}, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert retry.headers["etag"] == first.headers["etag"]

    on = await admin.http.post(f"{FLAGS}/checkout/on", headers={"Idempotency-Key": "toggle-1"})
    # Someone else changes the flag in between; the retry must still answer the first toggle's result.
    await admin.http.patch(f"{FLAGS}/checkout", json={"name": "B"})
    on_again = await admin.http.post(f"{FLAGS}/checkout/on", headers={"Idempotency-Key": "toggle-1"})
    assert on_again.status_code == 200
    assert on_again.json()["version"] == on.json()["version"]

    events = await admin.events(SUBJECT)
    assert [type(e).__struct_config__.tag for e in events] == ["flag.created", "flag.toggled", "flag.updated"]


async def test_concurrent_retries_with_one_key_land_once(admin: Admin) -> None:
    await admin.create_env()
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(admin.http.post(FLAGS, json={"key": "checkout"}, headers=headers) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["version"] for a in answers}) == 1
    assert len(await admin.events(SUBJECT)) == 1


async def test_concurrent_toggles_without_if_match_all_succeed(admin: Admin) -> None:
    await admin.create_env()
    await admin.http.post(FLAGS, json={"key": "checkout"})
    answers = await asyncio.gather(*(admin.http.post(f"{FLAGS}/checkout/{a}") for a in ["on", "off"] * 3))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    events = await admin.events(SUBJECT)
    assert [e.version for e in events] == list(range(1, len(events) + 1)), "revisions stay gapless"


async def test_jetstream_refuses_an_append_on_a_moved_subject(admin: Admin) -> None:
    await admin.create_env()
    created = await admin.http.post(FLAGS, json={"key": "checkout"})
    store = EventStore(admin.nc, STREAM)
    current = await store.last(SUBJECT)
    assert current is not None
    assert current.seq == created.json()["version"]
    before = await admin.last_seq()
    try:
        await store.append(SUBJECT, current.event, expected_seq=current.seq - 1, msg_id=None)
    except WrongLastSequence:
        pass
    else:
        raise AssertionError("an append on a stale sequence was accepted")
    assert await admin.last_seq() == before


async def test_concurrent_updates_never_lose_one_silently(admin: Admin) -> None:
    """Updates without If-Match still append atomically: each one either lands (200) or is told (409)."""
    await admin.create_env()
    await admin.http.post(FLAGS, json={"key": "checkout"})
    answers = await asyncio.gather(
        *(admin.http.patch(f"{FLAGS}/checkout", json={"name": f"name {i}"}) for i in range(6))
    )
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    landed = [a.json() for a in answers if a.status_code == 200]
    assert landed
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert refused["version"] == refused["current"]["version"] > 0
    events = await admin.events(SUBJECT)
    assert len(events) == 1 + len(landed), "every 200 is exactly one stored update, every 409 none"
    final = (await admin.http.get(f"{FLAGS}/checkout")).json()
    assert final["flag"]["name"] == events[-1].flag.name
