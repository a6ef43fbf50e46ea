"""NATS authorization with a real nats-server running the config ``nats_auth`` generates: a leaked SDK credential
cannot change a flag, read another environment, read the tokens or delete the stream; the services still work.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from flagstream import AsyncFlagstreamClient, ClientStatus
from flagstream.credentials import sdk_connect_options, sdk_user
from flagstream.events import STREAM, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.model import Flag
from flagstream.services.admin.app import create_app
from flagstream.services.projector import Projector
from flagstream.services.runtime.nats_auth import (
    ADMIN,
    OPERATOR,
    PROJECTOR,
    Credentials,
    write_server_config,
)
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_stream
from flagstream.services.tokens.store import BUCKET
from tests.helpers import ADMIN_TOKEN, auth_headers, eventually

PROD = subject("default", "production", "flag", "checkout")
DEV = subject("default", "development", "flag", "secret-plan")
#: A request the server refuses on permissions is dropped (the error goes to error_cb): the caller times out.
DENIED = (NatsTimeout, APIError)


@dataclass
class Secured:
    server: NatsServer
    creds: Credentials

    async def connect(self, user: str, **options: Any) -> NATS:
        if user.startswith("sdk-"):
            project, env = self.creds.sdk[user]
            options = {**sdk_connect_options(project, env, self.creds.passwords[user]), **options}
        else:
            options = {"user": user, "password": self.creds.passwords[user], **options}
        return await nats.connect(self.server.url, max_reconnect_attempts=0, **options)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production"), ("default", "development")])
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf")
    assert config.stat().st_mode & 0o777 == 0o600
    assert creds.path.stat().st_mode & 0o777 == 0o600
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        yield Secured(server, creds)
    finally:
        server.stop()


@pytest.fixture
async def admin_nc(secured: Secured) -> AsyncIterator[NATS]:
    nc = await secured.connect(ADMIN)
    await ensure_stream(nc.jetstream())
    try:
        yield nc
    finally:
        await nc.close()


async def publish(nc: NATS, cls: type[Any], environment: str, key: str, on: bool = False) -> int:
    event = cls(
        project="default", environment=environment, actor="test", at=datetime.now(UTC), flag=Flag(key=key, on=on)
    )
    ack = await nc.jetstream().publish(subject("default", environment, "flag", key), encode_event(event))
    return int(ack.seq)


async def last_seq(nc: NATS) -> int:
    return int((await nc.jetstream().stream_info(STREAM)).state.last_seq)


async def test_nobody_gets_in_without_a_user(secured: Secured) -> None:
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(secured.server.url, max_reconnect_attempts=0, allow_reconnect=False)
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(secured.server.url, user=ADMIN, password="guess", allow_reconnect=False)


async def test_a_leaked_sdk_credential_cannot_change_read_elsewhere_or_delete(secured: Secured, admin_nc: NATS) -> None:
    await publish(admin_nc, FlagCreated, "production", "checkout")
    await publish(admin_nc, FlagCreated, "development", "secret-plan")
    before = await last_seq(admin_nc)

    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc))

    sdk = await secured.connect(sdk_user("default", "production"), error_cb=on_error)
    js = sdk.jetstream(timeout=1)
    received: list[str] = []

    async def record(msg: Any) -> None:
        received.append(msg.subject)

    try:
        # It cannot write a flag event, through JetStream or a plain publish.
        event = FlagToggled(project="default", environment="production", actor="attacker", at=datetime.now(UTC),
                            flag=Flag(key="checkout", on=True))  # fmt: skip
        with pytest.raises(DENIED):  # the server drops it: the publisher times out
            await js.publish(PROD, encode_event(event))
        await sdk.publish(PROD, encode_event(event))
        await sdk.flush()

        # It cannot create a consumer on another environment, nor listen to its subjects or to others' inboxes.
        with pytest.raises(DENIED):
            await js.subscribe(
                "flagstream.default.development.>", stream=STREAM, cb=record, ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, config=ConsumerConfig(name=secrets.token_hex(8)),
            )  # fmt: skip
        with pytest.raises(DENIED):  # the unnamed form carries no filter: refused too
            await js.subscribe("flagstream.default.development.>", stream=STREAM, cb=record, ordered_consumer=True)
        spies = ("flagstream.default.development.>", "flagstream.>", "_INBOX.>", f"$KV.{BUCKET}.>")
        for spy in (*spies, "flagstream-live.default.development.>", "flagstream-live.>"):
            await sdk.subscribe(spy, cb=record)
        await sdk.flush()

        # Nor read the token bucket or fetch a message directly.
        with pytest.raises(DENIED):
            await js.key_value(BUCKET)
        with pytest.raises(DENIED):
            await js.get_msg(STREAM, subject=DEV, direct=True)
        # Its gap check's request names its own environment in the API subject; another's, or the form that
        # carries the filter in the body (which could name any environment), is refused.
        with pytest.raises(DENIED):
            await js.get_msg(STREAM, subject="flagstream.default.development.>", direct=True)
        with pytest.raises(DENIED):
            await js.get_msg(STREAM, seq=1, next=True, subject="flagstream.default.production.>", direct=True)

        # Nor delete or purge the stream, or delete a message.
        for attempt in (js.delete_stream(STREAM), js.purge_stream(STREAM), js.delete_msg(STREAM, 1)):
            with pytest.raises(DENIED):
                await attempt

        # Meanwhile the admin writes in development: none of it reaches the SDK connection.
        await publish(admin_nc, FlagToggled, "development", "secret-plan", on=True)
        await admin_nc.jetstream().stream_info(STREAM)  # a request/reply of the admin on its own _INBOX
        await sdk.flush()
        await eventually(lambda: len(violations) >= 10, within=10, what="the server reporting every violation")
    finally:
        await sdk.close()

    assert received == [], "nothing of another environment, nobody's inbox, no token was received"
    assert await last_seq(admin_nc) == before + 1, "only the admin's write landed"
    assert (await admin_nc.jetstream().stream_info(STREAM)).config.name == STREAM, "the stream is still there"
    text = " ".join(violations).lower()
    assert "permissions violation" in text
    assert "$js.api.stream.delete.flagstream" in text


async def test_the_admin_cannot_delete_or_purge_the_stream_the_operator_can(secured: Secured, admin_nc: NATS) -> None:
    await publish(admin_nc, FlagCreated, "production", "checkout")
    js = admin_nc.jetstream(timeout=1)
    for attempt in (js.delete_stream(STREAM), js.purge_stream(STREAM), js.delete_msg(STREAM, 1)):
        with pytest.raises(DENIED):
            await attempt
    assert await last_seq(admin_nc) == 1
    operator = await secured.connect(OPERATOR)
    try:
        assert await operator.jetstream().delete_stream(STREAM) is True
    finally:
        await operator.close()


async def test_admin_api_and_projector_work_with_their_users(secured: Secured, tmp_path: Path) -> None:
    admin_login = {"user": ADMIN, "password": secured.creds.passwords[ADMIN]}
    app = create_app(nats_url=secured.server.url, operator_token=ADMIN_TOKEN, nats_options=admin_login)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            env = await http.post("/api/v1/environments", json={"key": "production"})
            assert env.status_code == 201, env.text
            flag = await http.post("/api/v1/environments/production/flags", json={"key": "checkout"})
            assert flag.status_code == 201, flag.text
            token = await http.post("/api/v1/tokens", json={"name": "ci", "role": "writer"})
            assert token.status_code == 201, token.text
            listed = await http.get("/api/v1/tokens")
            assert [t["name"] for t in listed.json()["items"]] == ["ci"]

    projector = Projector(nats_url=secured.creds.url(secured.server.url, PROJECTOR), db_path=tmp_path / "rm.sqlite")
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        assert await projector.wait_caught_up(30) == 2
    finally:
        stop.set()
        await task


async def test_the_sdk_client_follows_its_own_environment_with_its_credential(secured: Secured, admin_nc: NATS) -> None:
    await publish(admin_nc, FlagCreated, "production", "checkout")
    await publish(admin_nc, FlagCreated, "development", "secret-plan")
    password = secured.creds.passwords[sdk_user("default", "production")]
    client = AsyncFlagstreamClient(
        secured.server.url,
        environment="production",
        connect_options=sdk_connect_options("default", "production", password),
        gap_check_interval=0.1,
    )
    try:
        assert await client.start(wait=5), f"not ready: {client.last_error!r}"
        assert client.bool_variation("checkout", {"key": "u1"}, True) is False
        await eventually(lambda: client._source.following_live, what="following its live subjects")  # type: ignore[union-attr]
        await publish(admin_nc, FlagToggled, "production", "checkout", on=True)
        await eventually(lambda: client.bool_variation("checkout", {"key": "u1"}, False), what="the change")
        assert client.bool_variation("secret-plan", {"key": "u1"}, True) is True, "another environment: unknown"
        # Its gap check is allowed (a refused request would time out: False), finds nothing missing.
        assert await client._source._check_for_gap() is True  # type: ignore[union-attr]
        assert client.gaps_repaired == 0
        assert client.last_error is None
    finally:
        await client.close()


async def test_a_credential_made_before_the_live_subjects_keeps_following_with_its_consumer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK user written by an older ``flagstream nats-users`` may not subscribe to the live subjects: the
    server refuses the subscription, the client keeps its consumer and changes still arrive."""
    from flagstream.services.runtime import nats_auth

    real = nats_auth.sdk_permissions

    def without_live(project: str, environment: str) -> nats_auth.Permissions:
        perms = real(project, environment)
        return nats_auth.Permissions(perms.publish, tuple(s for s in perms.subscribe if "live" not in s))

    monkeypatch.setattr(nats_auth, "sdk_permissions", without_live)
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production")])
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf")
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    secured = Secured(server, creds)
    admin_nc = await secured.connect(ADMIN)
    await ensure_stream(admin_nc.jetstream())  # with the live republishing
    await publish(admin_nc, FlagCreated, "production", "checkout")
    user = sdk_user("default", "production")
    client = AsyncFlagstreamClient(
        server.url, environment="production", connect_options=sdk_connect_options("default", "production",
                                                                                   creds.passwords[user]),
    )  # fmt: skip
    try:
        assert await client.start(wait=5), f"not ready: {client.last_error!r}"
        await eventually(lambda: client._source._live_denied, what="the refused subscription noticed")  # type: ignore[union-attr]
        for on in (True, False, True):
            await publish(admin_nc, FlagToggled, "production", "checkout", on=on)
            await eventually(lambda on=on: client.bool_variation("checkout", {"key": "u1"}, not on) is on,
                             what="the change through the consumer")  # fmt: skip
        assert not client._source.following_live  # type: ignore[union-attr]
    finally:
        await client.close()
        await admin_nc.close()
        server.stop()


async def test_an_sdk_credential_follows_its_environment_with_a_named_ordered_consumer(
    secured: Secured, admin_nc: NATS
) -> None:
    """What the SDK needs, done with nats-py directly: an ordered consumer (named, so the filter is in the API
    subject) on its own environment, live changes, and telemetry out."""
    await publish(admin_nc, FlagCreated, "production", "checkout")
    await publish(admin_nc, FlagCreated, "development", "secret-plan")
    heard: list[bytes] = []

    async def on_telemetry(msg: Any) -> None:
        heard.append(msg.data)

    await admin_nc.subscribe("flagstream-telemetry.default.production.>", cb=on_telemetry)
    await admin_nc.flush()
    sdk = await secured.connect(sdk_user("default", "production"))
    received: list[str] = []

    async def record(msg: Any) -> None:
        received.append(msg.subject)

    try:
        js = sdk.jetstream(timeout=5)
        sub = await js.subscribe(
            "flagstream.default.production.>", stream=STREAM, cb=record, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, config=ConsumerConfig(name=secrets.token_hex(8)),
        )  # fmt: skip
        await eventually(lambda: received == [PROD], what="the current state of its environment")
        await publish(admin_nc, FlagToggled, "production", "checkout", on=True)
        await eventually(lambda: received == [PROD, PROD], what="a live change")
        assert (await sub.consumer_info()).num_pending == 0
        await sdk.publish("flagstream-telemetry.default.production.heartbeat", b"{}")
        await sdk.flush()
        await eventually(lambda: heard == [b"{}"], what="telemetry reaching the admin side")
    finally:
        await sdk.close()


def test_flagstream_projector_runs_with_its_nats_user(secured: Secured, tmp_path: Path) -> None:
    password_file = tmp_path / "projector-password"
    password_file.write_text(secured.creds.passwords[PROJECTOR])
    flagstream = str(Path(sys.executable).with_name("flagstream"))
    command = [flagstream, "projector", "--nats-url", secured.server.url, "--db", str(tmp_path / "rm.sqlite"),
               "--print-hash", "--timeout", "30", "--nats-user", PROJECTOR]  # fmt: skip
    done = subprocess.run([*command, "--nats-password-file", str(password_file)], capture_output=True, text=True,
                          timeout=90)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) >= 16, done.stdout
    assert secured.creds.passwords[PROJECTOR] not in done.stdout + done.stderr, "the password is never printed"


async def test_a_credential_made_before_the_gap_check_follows_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK user written before the gap check may not direct-get its environment's last event: the client notices
    the refusal, stops checking, reports no error and keeps following live."""
    from flagstream.services.runtime import nats_auth

    real = nats_auth.sdk_permissions

    def without_gap_check(project: str, environment: str) -> nats_auth.Permissions:
        perms = real(project, environment)
        allowed = tuple(s for s in perms.publish if not s.startswith(f"$JS.API.DIRECT.GET.{STREAM}."))
        assert len(allowed) == len(perms.publish) - 1
        return nats_auth.Permissions(allowed, perms.subscribe)

    monkeypatch.setattr(nats_auth, "sdk_permissions", without_gap_check)
    creds = Credentials.load_or_create(tmp_path, sdk=[("default", "production")])
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf")
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    secured = Secured(server, creds)
    admin_nc = await secured.connect(ADMIN)
    await ensure_stream(admin_nc.jetstream())
    await publish(admin_nc, FlagCreated, "production", "checkout")
    user = sdk_user("default", "production")
    client = AsyncFlagstreamClient(
        server.url, environment="production", gap_check_interval=0.1,
        connect_options=sdk_connect_options("default", "production", creds.passwords[user]),
    )  # fmt: skip
    try:
        assert await client.start(wait=5), f"not ready: {client.last_error!r}"
        await eventually(lambda: client._source.gap_check_denied, what="the refused gap check noticed")  # type: ignore[union-attr]
        await publish(admin_nc, FlagToggled, "production", "checkout", on=True)
        await eventually(lambda: client.bool_variation("checkout", {"key": "u1"}, False), what="the change, live")
        assert client._source.following_live  # type: ignore[union-attr]
        assert client.last_error is None
        assert client.status is ClientStatus.READY
    finally:
        await client.close()
        await admin_nc.close()
        server.stop()
