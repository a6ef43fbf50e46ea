"""Malformed numbers and ids are a 4xx naming what is wrong, never a 500 (found by a deeper fuzz, issue 18).

``str.isdigit()`` accepts Unicode digits such as ``¹`` (which ``int`` refuses), and a number beyond 64 bits cannot
reach SQLite or JetStream: every number a client names is ASCII digits from 0 to 2^63 - 1
(``flagstream.events.whole_number``), and a sequence in a JSON body is bounded the same way (``events.Seq``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WithHistory, admin_with_history, db_position, eventually

ENV = "/api/v1/projects/default/environments/production"
FLAG = f"{ENV}/flags/checkout"
TOO_BIG = str(2**63)  # one past SQLite's largest integer


@pytest.fixture
async def admin(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    async with admin_with_history(nats_url, tmp_path) as admin:
        assert (
            await admin.http.post("/api/v1/projects/default/environments", json={"key": "production"})
        ).status_code == 201
        assert (await admin.http.post(f"{ENV}/flags", json={"key": "checkout"})).status_code == 201
        await eventually(lambda: db_position(admin.db) >= 2, what="the read model has both events")
        yield admin


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (f"{ENV}/diff?from=%C2%B9", "from"),  # from=¹
        (f"{ENV}/diff?from=0&to=%D9%A3", "to"),  # to=٣ (an Arabic-Indic three, which int() would read as 3)
        (f"{FLAG}/state?seq=%C2%B9", "seq"),
        (f"{FLAG}/state?seq={TOO_BIG}", "seq"),
        (f"{FLAG}/state?seq=-1", "seq"),
        (f"{FLAG}/state?as_of=%C2%B9", "as_of"),
        (f"{FLAG}/state?at=9999-12-31T23:59:59-23:59", "at"),  # past year 9999 in UTC
        (f"{ENV}/state?at=0001-01-01T00:00:00%2B01:00", "at"),  # before year 1 in UTC
        (f"{ENV}/history?before=%C2%B9", "before"),
        (f"{ENV}/history?before={TOO_BIG}", "before"),
        (f"{ENV}/history?limit=%C2%B2", "limit"),
        (f"{ENV}/history?limit=0", "limit"),
        (f"{FLAG}/history?limit=1001", "limit"),
        (f"{ENV}/changes/stream?after=%C2%B9", "after"),
        (f"{ENV}/history?kind=", "kind"),  # an empty value is no kind either
    ],
)
async def test_a_malformed_number_in_the_query_is_a_400_naming_it(admin: WithHistory, path: str, named: str) -> None:
    response = await admin.http.get(path)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("evaluate", {"context": {"key": "u"}, "seq": -2855984276170342924288}, "$.seq"),
        ("evaluate", {"context": {"key": "u"}, "seq": 2**63}, "$.seq"),
        ("evaluate", {"context": {"key": "u"}, "seq": -1}, "$.seq"),
        ("revert", {"seq": 2**64 + 5}, "$.seq"),
        ("flags/checkout/revert", {"seq": -7}, "$.seq"),
    ],
)
async def test_a_sequence_out_of_range_in_a_body_is_a_422_naming_it(
    admin: WithHistory, route: str, body: dict[str, Any], field: str
) -> None:
    response = await admin.http.post(f"{ENV}/{route}", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]


async def test_the_largest_sequence_is_read_and_answered_as_beyond_the_log(admin: WithHistory) -> None:
    response = await admin.http.post(f"{ENV}/evaluate", json={"context": {"key": "u"}, "seq": 2**63 - 1})
    assert response.status_code == 422, response.text
    assert "beyond the last one" in response.json()["error"]


def latin1(text: str) -> bytes:
    """A header value as its bytes: HTTP servers read header bytes as Latin-1, so b"\\xb9" arrives as "¹"."""
    return text.encode("latin-1")


@pytest.mark.parametrize("value", ["¹", "²", TOO_BIG, "-1"])
async def test_an_if_match_that_is_no_version_is_a_400(admin: WithHistory, value: str) -> None:
    response = await admin.http.post(f"{FLAG}/on", json={}, headers={"If-Match": latin1(value)})
    assert response.status_code == 400, response.text
    assert "If-Match" in response.json()["error"]
    assert (await admin.http.get(FLAG)).json()["flag"]["on"] is False  # nothing written


async def test_an_ofrep_last_event_id_that_is_no_number_is_a_400(admin: WithHistory) -> None:
    response = await admin.http.get("/ofrep/v1/events", headers={"Last-Event-ID": latin1("¹")})
    assert response.status_code == 400, response.text
    assert "Last-Event-ID" in response.json()["errorDetails"]


async def test_an_ofrep_etag_hint_that_is_no_number_is_ignored(admin: WithHistory) -> None:
    response = await admin.http.post("/ofrep/v1/evaluate/flags?flagConfigEtag=%C2%B9", json={"context": {}})
    assert response.status_code == 200, response.text
    assert [f["key"] for f in response.json()["flags"]] == ["checkout"]


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
async def test_a_webhook_id_that_is_no_key_is_a_404_naming_it(admin: WithHistory, method: str) -> None:
    path = "/api/v1/webhooks/%C3%98" + ("/ping" if method == "POST" else "")  # Ø: str.isalnum() says yes
    response = await admin.http.request(method, path)
    assert response.status_code == 404, response.text
    assert "webhook 'Ø' not found" in response.json()["error"]
