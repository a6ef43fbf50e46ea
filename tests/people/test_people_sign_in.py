"""People sign in with a password and work as themselves: a session cookie, a CSRF token for changes, roles per
environment judged exactly as tokens are, and every change names the person (stable id, name, e-mail, how they
signed in). Real admin app, real nats-server."""

from __future__ import annotations

import nats
import pytest

from flagstream.events import STREAM, Author, decode_event
from flagstream.services.people import PeopleConfig
from tests.helpers import ADMIN_TOKEN, auth_headers
from tests.people.conftest import API, PASSWORD, Site, site

DEV = f"{API}/environments/development/flags"
PROD = f"{API}/environments/production/flags"


async def last_event(nats_url: str, subject: str):  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_msg(STREAM, subject=subject, direct=True)
        return decode_event(msg.data or b"")
    finally:
        await nc.close()


async def test_a_person_signs_in_and_their_changes_name_them(people: Site, nats_url: str) -> None:
    ada = await people.user("ada", [{"role": "writer"}], name="Ada Lovelace", email="ada@example.com")
    async with people.browser() as browser:
        signed = await browser.sign_in("Ada")  # logins are not case-sensitive
        assert signed.status_code == 200, signed.text
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "flagstream_session=" in cookie
        me = (await browser.http.get("/api/v1/whoami")).json()
        assert (me["kind"], me["id"], me["name"], me["email"], me["via"]) == (
            "person",
            ada["id"],
            "Ada Lovelace",
            "ada@example.com",
            "password",
        )
        assert me["role"] == "writer"
        assert me["csrf"] == browser.csrf

        made = await browser.write("POST", DEV, json={"key": "checkout", "comment": "launch"})
        assert made.status_code == 201, made.text
        assert made.json()["actor"] == "Ada Lovelace"

    event = await last_event(nats_url, "flagstream.default.development.flag.checkout")
    assert event.actor == "Ada Lovelace"
    assert event.author == Author(kind="person", id=ada["id"], name="Ada Lovelace", email="ada@example.com",
                                  via="password")  # fmt: skip

    # A token still works for automation, and is named as a token.
    token = (await people.op.post("/api/v1/tokens", json={"name": "ci", "role": "writer"})).json()
    toggled = await people.op.post(f"{DEV}/checkout/on", headers=auth_headers(token["token"]))
    assert toggled.status_code == 200, toggled.text
    event = await last_event(nats_url, "flagstream.default.development.flag.checkout")
    assert (event.actor, event.author) == ("ci", Author(kind="token", id=token["id"], name="ci", via="token"))


async def test_roles_per_environment_with_the_production_writer_apart(people: Site) -> None:
    await people.user("dev", [{"role": "writer", "environment": "development"}, {"role": "reader"}])
    await people.user("rel", [{"role": "writer", "environment": "production"}])
    await people.user("boss", [{"role": "admin"}])
    async with people.browser() as dev, people.browser() as rel, people.browser() as boss:
        for browser, login in ((dev, "dev"), (rel, "rel"), (boss, "boss")):
            assert (await browser.sign_in(login)).status_code == 200

        assert (await dev.write("POST", DEV, json={"key": "a"})).status_code == 201
        refused = await dev.write("POST", PROD, json={"key": "a"})
        assert refused.status_code == 403
        assert "reader on environment 'production'" in refused.json()["error"]
        assert (await dev.http.get(PROD)).status_code == 200, "a reader of production reads it"

        # A flag exists in every environment: "a" is in production too, off; the production writer creates "b".
        assert (await rel.write("POST", f"{PROD}/a/on", json={})).status_code == 200, "the production writer"
        assert (await rel.write("POST", PROD, json={"key": "b"})).status_code == 201, "created everywhere, off"
        elsewhere = await rel.http.get(DEV)
        assert elsewhere.status_code == 403
        assert "may not act on environment 'development'" in elsewhere.json()["error"]
        new_env = await rel.write("POST", f"{API}/environments", json={"key": "qa"})
        assert new_env.status_code == 403, "creating an environment needs writer on every environment"

        for browser in (dev, rel):
            assert (await browser.http.get("/api/v1/users")).status_code == 403, "people are managed by admins"
            assert (await browser.http.get("/api/v1/tokens")).status_code == 403
        assert (await boss.http.get("/api/v1/users")).status_code == 200
        token = await boss.write("POST", "/api/v1/tokens", json={"name": "bot", "role": "reader"})
        assert token.status_code == 201, token.text
        assert token.json()["created_by"] == "Boss"


async def test_sessions_are_shared_by_replicas_and_outlive_a_restart(people: Site, nats_url: str) -> None:
    await people.user("ada", [{"role": "writer"}])
    async with people.browser() as browser:
        assert (await browser.sign_in("ada")).status_code == 200
        cookies = dict(browser.http.cookies)
    # Another replica, started without the operator token, and started after the sign-in.
    async with site(nats_url) as other, other.browser() as same:
        same.http.cookies.update(cookies)
        same.csrf = browser.csrf
        assert (await same.http.get("/api/v1/whoami")).json()["name"] == "Ada"
        assert (await same.write("POST", DEV, json={"key": "b"})).status_code == 201
        assert (await same.http.post("/auth/signout")).status_code == 204
    async with people.browser() as again:
        again.http.cookies.update(cookies)
        assert (await again.http.get("/api/v1/whoami")).status_code == 401, "signed out on every replica"


async def test_an_admin_manages_people_and_it_takes_effect_at_once(people: Site) -> None:
    ada = await people.user("ada", [{"role": "writer"}])
    listed = (await people.op.get("/api/v1/users")).json()["items"]
    assert [u["login"] for u in listed] == ["ada"]
    assert not {"password", "digest", "salt"} & set(listed[0]), "never the password hash"
    async with people.browser() as browser:
        assert (await browser.sign_in("ada")).status_code == 200
        assert (await browser.write("POST", DEV, json={"key": "c"})).status_code == 201

        lowered = await people.op.patch(f"/api/v1/users/{ada['id']}", json={"grants": [{"role": "reader"}]})
        assert lowered.status_code == 200, lowered.text
        assert (await browser.write("POST", f"{DEV}/c/on")).status_code == 403, "the new role holds at once"

        ended = await people.op.post(f"/api/v1/users/{ada['id']}/signout")
        assert ended.status_code == 200
        assert (await browser.http.get("/api/v1/whoami")).status_code == 401

        new = "a brand new passphrase"
        reset = await people.op.post(f"/api/v1/users/{ada['id']}/password", json={"password": new})
        assert reset.status_code == 200, reset.text
        assert (await browser.sign_in("ada")).status_code == 401, "the old password is gone"
        assert (await browser.sign_in("ada", new)).status_code == 200

        disabled = await people.op.patch(f"/api/v1/users/{ada['id']}", json={"disabled": True})
        assert disabled.json()["disabled"] is True
        assert (await browser.http.get("/api/v1/whoami")).status_code == 401, "disabling ends the sessions"
        assert (await browser.sign_in("ada", new)).status_code == 401


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"login": "x", "name": "X", "password": "short"}, "at least 12 characters"),
        ({"login": "Not Valid", "name": "X", "password": PASSWORD}, "a login is"),
        ({"login": "x", "name": "X", "password": PASSWORD, "email": "nope"}, "e-mail"),
        ({"login": "x", "name": "X", "password": PASSWORD, "grants": [{"role": "god"}]}, "role"),
        ({"login": "x", "name": "X", "password": PASSWORD, "grants": [{"role": "reader", "environment": "a.b"}]},
         "environment"),
    ],
)  # fmt: skip
async def test_a_bad_new_user_is_refused_naming_what_is_wrong(people: Site, body: dict, problem: str) -> None:
    answer = await people.op.post("/api/v1/users", json=body)
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["error"]
    assert PASSWORD not in answer.text


async def test_a_login_is_taken_once(people: Site) -> None:
    await people.user("ada", [])
    again = await people.op.post("/api/v1/users", json={"login": "ADA", "name": "Other", "password": PASSWORD})
    assert again.status_code == 409
    assert "exists already" in again.json()["error"]


async def test_a_person_without_a_role_signs_in_but_may_do_nothing(people: Site) -> None:
    await people.user("newbie", [])
    async with people.browser() as browser:
        assert (await browser.sign_in("newbie")).status_code == 200
        me = (await browser.http.get("/api/v1/whoami")).json()
        assert (me["role"], me["grants"]) == (None, [])
        assert (await browser.http.get(DEV)).status_code == 403


async def test_the_operator_token_stays_an_admin(people: Site) -> None:
    assert (await people.op.get("/api/v1/users", headers=auth_headers(ADMIN_TOKEN))).status_code == 200


async def test_behind_a_proxy_that_ends_tls_the_cookie_can_be_marked_secure(nats_url: str) -> None:
    async with site(nats_url) as plain:
        await plain.user("ada", [{"role": "reader"}])
        async with plain.browser() as browser:
            cookie = (await browser.sign_in("ada")).headers["set-cookie"].lower()
            assert "secure" not in cookie, "over plain HTTP a Secure cookie would never come back"
    async with site(nats_url, PeopleConfig(secure_cookies=True)) as proxied, proxied.browser() as browser:
        cookie = (await browser.sign_in("ada")).headers["set-cookie"].lower()
        assert "; secure" in cookie
        assert "httponly" in cookie
