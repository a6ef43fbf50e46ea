"""`GET /api/v1/whoami`: the identity behind a token, as the audit log will record it (the UI shows it)."""

from __future__ import annotations

from tests.helpers import auth_headers


async def test_whoami_names_the_token_its_role_and_environments(admin) -> None:  # type: ignore[no-untyped-def]
    me = await admin.http.get("/api/v1/whoami", headers=auth_headers())
    assert me.status_code == 200, me.text
    assert me.json() == {
        "name": "operator", "role": "admin", "environments": None, "kind": "token", "id": "operator", "email": "",
        "via": "token", "grants": [{"role": "admin"}], "csrf": None,
    }  # fmt: skip

    made = await admin.http.post(
        "/api/v1/tokens",
        json={"name": "ada", "role": "reader", "environments": ["production"]},
        headers=auth_headers(),
    )
    assert made.status_code == 201, made.text
    reader = (await admin.http.get("/api/v1/whoami", headers=auth_headers(made.json()["token"]))).json()
    assert (reader["name"], reader["role"], reader["environments"]) == ("ada", "reader", ["production"])
    assert (reader["kind"], reader["id"]) == ("token", made.json()["id"]), "a token is named as a token"
    assert reader["grants"] == [{"role": "reader", "environment": "production"}]
    assert reader["csrf"] is None, "a token needs no CSRF token"

    assert (await admin.http.get("/api/v1/whoami", headers=auth_headers("fs_not_a_token"))).status_code == 401
