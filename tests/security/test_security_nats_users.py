"""``flagstream nats-users`` for a nats-server of your own: the ``auth.conf`` it writes, included in a server
config, gives each role its rights and no more; its password files work with the services' options."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from flagstream import AsyncFlagstreamClient, sdk_connect_options
from flagstream.events import STREAM, FlagCreated, encode_event, subject
from flagstream.events.model import Flag
from flagstream.services.runtime.natsd import NatsServer
from tests.security.test_security_nats import DENIED

FLAGSTREAM = [sys.executable, "-m", "flagstream.services.cli"]


def nats_users(folder: Path, *envs: str) -> subprocess.CompletedProcess[str]:
    args = [*FLAGSTREAM, "nats-users", "--dir", str(folder)]
    for env in envs:
        args += ["--env", env]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def password(folder: Path, user: str) -> str:
    return (folder / f"{user}.password").read_text().strip()


async def test_the_generated_users_have_their_roles_rights(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    done = nats_users(secrets_dir, "default/production")
    assert done.returncode == 0, done.stderr
    again = nats_users(secrets_dir, "default/production", "default/staging")  # adds a user, keeps the others
    assert again.returncode == 0, again.stderr
    for name in ("auth.conf", "nats-users.json", "admin.password", "sdk-default-staging.password"):
        assert (secrets_dir / name).stat().st_mode & 0o777 == 0o600, name
    auth = (secrets_dir / "auth.conf").read_text()  # hashes only: the plain passwords are in the password files
    users = ("admin", "projector", "operator", "sdk-default-production", "sdk-default-staging")
    assert not any(password(secrets_dir, user) in auth for user in users)
    assert auth.count('password: "$2a$') == len(users)

    config = secrets_dir / "nats.conf"  # what a deployment's server config adds: one include line
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\ninclude auth.conf\n')
    server = NatsServer(store_dir=tmp_path / "js", config_file=config).start()
    try:
        ensure = await asyncio.to_thread(
            subprocess.run,
            [*FLAGSTREAM, "stream", "ensure", "--nats-url", server.url, "--nats-user", "operator",
             "--nats-password-file", str(secrets_dir / "operator.password")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert ensure.returncode == 0, ensure.stderr

        with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):  # nobody gets in without a user
            await nats.connect(server.url, max_reconnect_attempts=0, allow_reconnect=False)

        admin = await nats.connect(server.url, user="admin", password=password(secrets_dir, "admin"))
        event = FlagCreated(
            project="default", environment="production", actor="t", at=datetime.now(UTC), flag=Flag(key="checkout")
        )
        await admin.jetstream().publish(subject("default", "production", "flag", "checkout"), encode_event(event))

        options = sdk_connect_options("default", "production", password(secrets_dir, "sdk-default-production"))
        client = AsyncFlagstreamClient(server.url, environment="production", connect_options=options)
        await client.start()
        assert await client.wait_until_ready(20)
        assert "checkout" in client.ruleset.flags
        await client.close()

        sdk = await nats.connect(server.url, max_reconnect_attempts=0, **options)
        with pytest.raises(DENIED):  # it cannot write a flag event
            await sdk.jetstream().publish(subject("default", "production", "flag", "x"), encode_event(event), timeout=2)
        staging = await nats.connect(
            server.url, max_reconnect_attempts=0,
            **sdk_connect_options("default", "staging", password(secrets_dir, "sdk-default-staging")),
        )  # fmt: skip
        with pytest.raises(DENIED):  # nor can the staging user delete the stream
            await staging.jetstream(timeout=2).delete_stream(STREAM)
        for nc in (admin, sdk, staging):
            await nc.close()
        log = (tmp_path / "js" / "nats-server.log").read_text()
        assert "Plaintext passwords detected" not in log
    finally:
        server.stop()


def test_a_malformed_environment_leaf_or_route_url_is_refused_with_a_message(tmp_path: Path) -> None:
    for env in ("production", "default/production\n"):  # `$` matched before a final newline
        done = nats_users(tmp_path / "secrets", env)
        assert done.returncode == 2
        assert f"--env {env!r} is not PROJECT/ENVIRONMENT" in done.stderr
    for option, url, expected in (
        ("--leaf-remote", "nats://hub:4222", "nats-leaf://HOST:PORT"),
        ("--route", "nats-route://nats-1", "nats-route://HOST:PORT"),
        ("--leaf-remote", "nats-leaf://hub:7422\n", "nats-leaf://HOST:PORT"),
    ):
        args = [*FLAGSTREAM, "nats-users", "--dir", str(tmp_path / "secrets"), option, url]
        refused = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2
        assert f"{option} {url!r} is not {expected}" in refused.stderr
    assert not (tmp_path / "secrets").exists()  # nothing written


def test_the_route_password_is_kept_and_no_client_can_use_it(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    args = [*FLAGSTREAM, "nats-users", "--dir", str(secrets), "--route", "nats-route://nats-1:6222"]
    passwords = []
    for _ in range(2):  # a second run (e.g. to add an SDK user) keeps the routes' password: running nodes use it
        assert subprocess.run(args, capture_output=True, text=True, timeout=60, check=False).returncode == 0
        passwords.append(password := (secrets / "route.password").read_text().strip())
        assert f"nats-route://route:{password}@nats-1:6222" in (secrets / "cluster.conf").read_text()
    assert passwords[0] == passwords[1]
    assert oct((secrets / "cluster.conf").stat().st_mode & 0o777) == "0o600"
    assert password not in (secrets / "auth.conf").read_text()  # a cluster route's login, not a client's
