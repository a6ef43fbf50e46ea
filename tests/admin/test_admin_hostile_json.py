"""Hostile JSON bodies get a clear 4xx, never a 500."""

from __future__ import annotations

from tests.helpers import auth_headers


async def test_deeply_nested_json_is_a_400_and_writes_nothing(admin) -> None:  # type: ignore[no-untyped-def]
    await admin.create_env()
    before = await admin.last_seq()
    body = b'{"key": "deep", "description": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await admin.http.post(
        "/api/v1/projects/default/environments/development/flags",
        content=body,
        headers={**auth_headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["error"]
    assert await admin.last_seq() == before
