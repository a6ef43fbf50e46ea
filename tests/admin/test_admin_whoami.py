"""`GET /api/v1/whoami`: the identity behind a token, as the audit log will record it (the UI shows it)."""

from __future__ import annotations

from tests.helpers import auth_headers


async def test_whoami_names_the_token_its_role_and_environments(admin) -> None:  # type: ignore[no-untyped-def]
    me = await admin.http.get("/api/v1/whoami", headers=auth_headers())
    assert me.status_code == 200, me.text
    assert me.json() == {"name": "operator", "role": "admin", "environments": None}

    made = await admin.http.post(
        "/api/v1/tokens",
        json={"name": "ada", "role": "reader", "environments": ["production"]},
        headers=auth_headers(),
    )
    assert made.status_code == 201, made.text
    reader = await admin.http.get("/api/v1/whoami", headers=auth_headers(made.json()["token"]))
    assert reader.json() == {"name": "ada", "role": "reader", "environments": ["production"]}

    assert (await admin.http.get("/api/v1/whoami", headers=auth_headers("fs_not_a_token"))).status_code == 401
