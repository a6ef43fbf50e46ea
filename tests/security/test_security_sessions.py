"""Attacks on people's sessions, on the real admin app over a real nats-server: each its own test.

Forged writes (the cookie without the CSRF token, or with a wrong one), a reader's session on a writer route, a
signed-out or expired session, password guessing (lock-out, without saying whether a login exists), and nothing
of a password or a session's secrets in the logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from flagstream.services.people import MAX_FAILURES, REFUSED, PeopleConfig
from tests.helpers import until
from tests.people.conftest import API, PASSWORD, Site, site

DEV = f"{API}/environments/development/flags"


@pytest.fixture
async def people(nats_url: str) -> AsyncIterator[Site]:
    async with site(nats_url) as s:
        await s.env("development")
        yield s


async def flag_exists(people: Site, key: str) -> bool:
    return (await people.op.get(f"{DEV}/{key}")).status_code == 200


async def test_a_write_with_the_session_cookie_but_no_csrf_token_is_403(people: Site) -> None:
    await people.user("ada", [{"role": "writer"}])
    async with people.browser() as browser:
        assert (await browser.sign_in("ada")).status_code == 200
        forged = await browser.http.post(DEV, json={"key": "forged"})  # what a page elsewhere could make it send
        assert forged.status_code == 403
        assert "X-CSRF-Token" in forged.json()["error"]
        assert not await flag_exists(people, "forged"), "nothing was written"
        assert (await browser.write("POST", DEV, json={"key": "real"})).status_code == 201


async def test_a_write_with_a_wrong_csrf_token_is_403(people: Site) -> None:
    await people.user("ada", [{"role": "writer"}])
    await people.user("bob", [{"role": "writer"}])
    async with people.browser() as ada, people.browser() as bob:
        assert (await ada.sign_in("ada")).status_code == 200
        assert (await bob.sign_in("bob")).status_code == 200
        for wrong in ("", "x" * 43, bob.csrf):  # even another live session's token
            answer = await ada.http.post(DEV, json={"key": "forged"}, headers={"X-CSRF-Token": wrong})
            assert answer.status_code == 403, wrong
        assert not await flag_exists(people, "forged")


async def test_a_readers_session_on_a_writer_route_is_403(people: Site) -> None:
    await people.user("viewer", [{"role": "reader"}])
    async with people.browser() as browser:
        assert (await browser.sign_in("viewer")).status_code == 200
        assert (await browser.http.get(DEV)).status_code == 200
        for method, path, body in (("POST", DEV, {"key": "nope"}), ("POST", f"{API}/environments", {"key": "qa"}),
                                   ("POST", "/api/v1/users", {"login": "me2", "name": "Me", "password": PASSWORD}),
                                   ("POST", "/api/v1/tokens", {"name": "mine", "role": "admin"})):  # fmt: skip
            answer = await browser.write(method, path, json=body)
            assert answer.status_code == 403, (path, answer.text)
            assert "reader" in answer.json()["error"]
        assert not await flag_exists(people, "nope")


async def test_a_signed_out_session_is_401(people: Site) -> None:
    await people.user("ada", [{"role": "writer"}])
    async with people.browser() as browser:
        assert (await browser.sign_in("ada")).status_code == 200
        stolen = dict(browser.http.cookies)
        assert (await browser.http.post("/auth/signout")).status_code == 204
        assert not browser.http.cookies.get("flagstream_session"), "the cookie is cleared"
    async with people.browser() as thief:
        thief.http.cookies.update(stolen)  # the old cookie, kept by someone
        thief.csrf = browser.csrf
        answer = await thief.http.get("/api/v1/whoami")
        assert answer.status_code == 401
        assert "session has ended" in answer.json()["error"]
        assert (await thief.write("POST", DEV, json={"key": "late"})).status_code == 401


async def test_an_expired_session_is_401(nats_url: str) -> None:
    async with site(nats_url, PeopleConfig(session_hours=2 / 3600)) as people:  # a two-second session
        await people.env("development")
        await people.user("ada", [{"role": "writer"}])
        async with people.browser() as browser:
            assert (await browser.sign_in("ada")).status_code == 200
            assert (await browser.http.get("/api/v1/whoami")).status_code == 200

            async def expired() -> bool:
                return (await browser.http.get("/api/v1/whoami")).status_code == 401

            await until(expired, "the session expired")
            assert (await browser.write("POST", DEV, json={"key": "late"})).status_code == 401


async def test_wrong_passwords_lock_a_login_without_saying_whether_it_exists(people: Site, nats_url: str) -> None:
    await people.user("ada", [{"role": "writer"}])
    async with people.browser() as browser:
        answers = {}
        for login in ("ada", "nobody"):
            answers[login] = [await browser.sign_in(login, "wrong password!") for _ in range(MAX_FAILURES)]
            # Locked now: even the right password is refused, in the same words.
            answers[login].append(await browser.sign_in(login, PASSWORD))
        for login in ("ada", "nobody"):
            assert [(a.status_code, a.json()) for a in answers[login]] == [(401, {"error": REFUSED})] * (
                MAX_FAILURES + 1
            ), "a login that exists and one that does not get the same answers"
            assert all("set-cookie" not in a.headers for a in answers[login])
        assert "locked" in REFUSED, "the lock-out is documented in the answer itself"

    async with site(nats_url) as other, other.browser() as elsewhere:
        assert (await elsewhere.sign_in("ada")).status_code == 401, "the lock holds on every replica"

    ada = (await people.op.get("/api/v1/users")).json()["items"][0]
    reset = await people.op.post(f"/api/v1/users/{ada['id']}/password", json={"password": "a reset by an admin"})
    assert reset.status_code == 200
    async with people.browser() as browser:
        assert (await browser.sign_in("ada", "a reset by an admin")).status_code == 200, "a reset lifts the lock"


async def test_a_sign_in_from_another_site_or_as_a_form_is_refused(people: Site) -> None:
    await people.user("ada", [{"role": "writer"}])
    async with people.browser() as browser:
        form = await browser.http.post("/auth/password", data={"login": "ada", "password": PASSWORD})
        assert form.status_code == 400, "a cross-site HTML form cannot sign a browser in"
        cross = await browser.http.post(
            "/auth/password", json={"login": "ada", "password": PASSWORD}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 400
        assert "another site" in cross.json()["error"]


async def test_no_password_or_session_secret_in_the_logs(people: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_password = "my very secret passphrase 1"
    wrong_password = "an also secret wrong guess 2"
    new_password = "the third secret passphrase"
    user = await people.user("ada", [{"role": "writer"}], password=secret_password)
    async with people.browser() as browser:
        assert (await browser.sign_in("ada", wrong_password)).status_code == 401
        signed = await browser.sign_in("ada", secret_password)
        assert signed.status_code == 200
        cookie = browser.http.cookies["flagstream_session"]
        assert (await browser.write("POST", DEV, json={"key": "logged"})).status_code == 201
        reset = await people.op.post(f"/api/v1/users/{user['id']}/password", json={"password": new_password})
        assert reset.status_code == 200
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "signed in with a password" in text, "the logs do tell who signed in"
    assert "password sign-in refused" in text
    for secret in (secret_password, wrong_password, new_password, cookie, browser.csrf, "$argon2"):
        assert secret not in text, f"a secret is in the logs: {secret[:6]}..."
