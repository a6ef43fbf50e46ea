"""Flags refer to segments and to other flags: the API checks those references against the environment."""

from __future__ import annotations

from tests.admin.conftest import API, Admin

ENV = f"{API}/environments/development"
BETA_RULE = {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}


async def test_a_rule_may_only_use_an_existing_segment(admin: Admin) -> None:
    await admin.create_env()
    before = await admin.last_seq()
    refused = await admin.http.post(f"{ENV}/flags", json={"key": "checkout", "rules": [BETA_RULE]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"][0]["path"].startswith("$.rules[0].clauses[0]")
    assert "beta" in refused.json()["problems"][0]["message"]
    assert await admin.last_seq() == before

    assert (await admin.http.post(f"{ENV}/segments", json={"key": "beta"})).status_code == 201
    accepted = await admin.http.post(f"{ENV}/flags", json={"key": "checkout", "rules": [BETA_RULE]})
    assert accepted.status_code == 201, accepted.text


async def test_prerequisites_must_exist_and_not_loop(admin: Admin) -> None:
    await admin.create_env()
    assert (await admin.http.post(f"{ENV}/flags", json={"key": "base"})).status_code == 201
    missing = await admin.http.post(
        f"{ENV}/flags", json={"key": "child", "prerequisites": [{"flag": "nope", "variation": "on"}]}
    )
    assert missing.status_code == 422
    assert missing.json()["problems"][0]["path"] == "$.prerequisites[0].flag"
    child = await admin.http.post(
        f"{ENV}/flags", json={"key": "child", "prerequisites": [{"flag": "base", "variation": "on"}]}
    )
    assert child.status_code == 201, child.text
    before = await admin.last_seq()
    loop = await admin.http.patch(f"{ENV}/flags/base", json={"prerequisites": [{"flag": "child", "variation": "on"}]})
    assert loop.status_code == 422, loop.text
    assert "cycle" in loop.json()["error"]
    assert await admin.last_seq() == before


async def test_what_active_flags_use_cannot_be_archived(admin: Admin) -> None:
    await admin.create_env()
    await admin.http.post(f"{ENV}/segments", json={"key": "beta"})
    await admin.http.post(f"{ENV}/flags", json={"key": "base"})
    await admin.http.post(
        f"{ENV}/flags",
        json={"key": "child", "rules": [BETA_RULE], "prerequisites": [{"flag": "base", "variation": "on"}]},
    )
    before = await admin.last_seq()
    flag = await admin.http.post(f"{ENV}/flags/base/archive")
    assert flag.status_code == 409
    assert flag.json()["error"] == "flag 'base' is a prerequisite of 'child': change those flags first"
    segment = await admin.http.post(f"{ENV}/segments/beta/archive")
    assert segment.status_code == 409
    assert "'child'" in segment.json()["error"]
    assert await admin.last_seq() == before

    assert (await admin.http.post(f"{ENV}/flags/child/archive")).status_code == 200
    assert (await admin.http.post(f"{ENV}/flags/base/archive")).status_code == 200
    assert (await admin.http.post(f"{ENV}/segments/beta/archive")).status_code == 200


async def test_segments_may_name_existing_segments_but_not_loop(admin: Admin) -> None:
    await admin.create_env()
    assert (await admin.http.post(f"{ENV}/segments", json={"key": "staff", "included": ["ada"]})).status_code == 201
    names_staff = {"id": "r", "clauses": [{"op": "in_segment", "values": ["staff"]}]}
    unknown = await admin.http.post(
        f"{ENV}/segments",
        json={"key": "beta", "rules": [{"id": "r", "clauses": [{"op": "in_segment", "values": ["x"]}]}]},
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["problems"][0]["path"] == "$.rules[0].clauses[0].values[0]"
    beta = await admin.http.post(f"{ENV}/segments", json={"key": "beta", "rules": [names_staff]})
    assert beta.status_code == 201, beta.text
    before = await admin.last_seq()
    names_beta = {"id": "r", "clauses": [{"op": "in_segment", "values": ["beta"]}]}
    loop = await admin.http.patch(f"{ENV}/segments/staff", json={"rules": [names_beta]})
    assert loop.status_code == 422, loop.text
    assert "segment cycle: staff -> beta -> staff" in loop.json()["error"]
    assert await admin.last_seq() == before
