"""Keys ending in a newline: refused from now on, still read where an earlier version wrote them.

``KEY_PATTERN`` ends in ``$``, and Python's ``$`` also matches before a final newline, so earlier versions took
"on" followed by a newline as a variation key (or a rule id). A key in a subject could never carry one (nats-server
refuses such a subject), but a key inside an entity could, and was written. Today's API refuses a new one, while
such an event still decodes, is projected, served by the SDK, and its flag can still be changed (a merge patch
keeps the keys the flag has) and switched off.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats

from flagstream import AsyncFlagstreamClient
from flagstream.events import FlagCreated, decode_event, encode_event, subject
from flagstream.events.model import Flag, Rule, Serve, Variation
from flagstream.services.projector import ReadModel
from tests.helpers import auth_headers, served_with_history

ENV = "/api/v1/projects/default/environments/production"
ON = "on\n"


def written_before() -> bytes:
    """The ``flag.created`` an earlier version wrote for a flag whose "on" variation and rule id end in a newline
    (its API accepted them: each passed the key pattern)."""
    flag = Flag(
        key="checkout",
        on=True,
        variations=(Variation(key=ON, value=True), Variation(key="off", value=False)),
        off_variation="off",
        fallthrough=Serve(variation="off"),
        rules=(Rule(id="beta\n", clauses=(), serve=Serve(variation=ON)),),
    )
    event = FlagCreated(project="default", environment="production", actor="v1", at=datetime.now(UTC), flag=flag)
    return encode_event(event)


def test_the_event_decodes() -> None:
    event = decode_event(written_before())
    assert isinstance(event, FlagCreated)
    assert [v.key for v in event.flag.variations] == [ON, "off"]
    assert event.flag.rules[0].id == "beta\n"


async def test_written_before_it_is_read_served_and_changed_while_a_new_one_is_refused(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        served_with_history(nats_url, tmp_path) as (url, projector),
        httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as http,
    ):
        assert (await http.post("/api/v1/projects/default/environments", json={"key": "production"})).status_code == 201
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().publish(subject("default", "production", "flag", "checkout"), written_before())
        finally:
            await nc.close()

        shown = await http.get(f"{ENV}/flags/checkout")
        assert shown.status_code == 200, shown.text
        assert [v["key"] for v in shown.json()["flag"]["variations"]] == [ON, "off"]

        client = AsyncFlagstreamClient(nats_url, environment="production")
        await client.start(wait=30)
        try:
            detail = client.variation_detail("checkout", {"key": "u"}, None)
            assert (detail.variation, detail.value) == (ON, True), "the rule serves the old variation"

            # New keys ending in a newline are refused, naming where.
            new_flag = {"key": "other", "variations": [{"key": ON, "value": True}, {"key": "off", "value": False}]}
            refused = await http.post(f"{ENV}/flags", json={**new_flag, "fallthrough": {"variation": ON}})
            assert refused.status_code == 422, refused.text
            assert "ending in a newline - at `$.variations[0].key`" in refused.json()["error"]
            variations = [*shown.json()["flag"]["variations"], {"key": "beta\n", "value": True}]
            added = await http.patch(f"{ENV}/flags/checkout", json={"variations": variations})
            assert added.status_code == 422, added.text
            assert added.json()["problems"] == [
                {"path": "$.variations[2].key", "message": added.json()["error"].split(" - at ")[0]}
            ]

            # The flag keeps working: a patch of another field keeps its keys, the kill switch switches it off.
            patched = await http.patch(f"{ENV}/flags/checkout", json={"description": "from before"})
            assert patched.status_code == 200, patched.text
            assert [v["key"] for v in patched.json()["flag"]["variations"]] == [ON, "off"]
            off = await http.post(f"{ENV}/flags/checkout/off")
            assert off.status_code == 200, off.text
            await client.wait_for_sequence(int(off.headers["etag"].strip('"')), timeout=30)
            assert client.variation_detail("checkout", {"key": "u"}, None).variation == "off"

            # The read model projected every one of these events, and agrees with the SDK.
            await projector.wait_caught_up(30)
            async with await ReadModel.open(tmp_path / "readmodel.sqlite", readonly=True) as model:
                assert await model.bad_event_count() == 0
                assert await model.state_hash("default", "production") == client.ruleset.state_hash()
            history = await http.get(f"{ENV}/flags/checkout/history")
            assert history.status_code == 200, history.text
            kinds = [e["type"] for e in history.json()["items"]]
            assert kinds.count("flag.created") == 1
            assert len(kinds) == 3, kinds
        finally:
            await client.close()
