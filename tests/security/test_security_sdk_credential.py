"""An SDK given the NATS credential of another environment says so: which environment the credential is for,
and which one to use, instead of a raw permissions violation on an inbox subject."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flagstream import AsyncFlagstreamClient, ClientStatus, sdk_connect_options
from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import eventually

FLAGSTREAM = [sys.executable, "-m", "flagstream.services.cli"]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    """A nats-server with the users `flagstream nats-users` writes for development and production."""
    folder = tmp_path / "secrets"
    envs = ["--env", "default/development", "--env", "default/production"]
    args = [*FLAGSTREAM, "nats-users", "--dir", str(folder), *envs]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    config = folder / "nats.conf"
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\ninclude auth.conf\n')
    server = NatsServer(store_dir=tmp_path / "js", config_file=config).start()
    ensure = subprocess.run(
        [*FLAGSTREAM, "stream", "ensure", "--nats-url", server.url, "--nats-user", "operator",
         "--nats-password-file", str(folder / "operator.password")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ensure.returncode == 0, ensure.stderr
    try:
        yield server, folder
    finally:
        server.stop()


def _development_password(folder: Path) -> str:
    return (folder / "sdk-default-development.password").read_text().strip()


@pytest.mark.parametrize("how", ["connect_options", "url"])
async def test_the_credential_of_another_environment_is_named_as_such(
    secured: tuple[NatsServer, Path], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, folder = secured
    password = _development_password(folder)
    caplog.set_level(logging.WARNING, logger="flagstream")
    if how == "url":  # the README's way, with the environment changed
        url = server.url.replace("nats://", f"nats://sdk-default-development:{password}@")
        client = AsyncFlagstreamClient(url, environment="production", reconnect_wait=0.1)
    else:
        options = sdk_connect_options("default", "development", password)
        client = AsyncFlagstreamClient(
            server.url, environment="production", connect_options=options, reconnect_wait=0.1
        )
    try:
        await client.start()
        await eventually(lambda: client.status is ClientStatus.ERROR, what="the ERROR status")
        await eventually(lambda: "is for environment default/development" in str(client.last_error), what="why")
        message = str(client.last_error)
        assert "NATS user 'sdk-default-development'" in message, message
        assert "not default/production" in message, message
        assert "sdk-default-production" in message, "it names the credential to use"
        assert not client.is_ready
    finally:
        await client.close()
    said = [r.getMessage() for r in caplog.records if "is for environment default/development" in r.getMessage()]
    assert said, [r.getMessage() for r in caplog.records]
    assert not [r.getMessage() for r in caplog.records if "_inbox" in r.getMessage()], "no raw inbox subject"


async def test_the_right_credential_still_works(secured: tuple[NatsServer, Path]) -> None:
    server, folder = secured
    options = sdk_connect_options("default", "development", _development_password(folder))
    client = AsyncFlagstreamClient(server.url, environment="development", connect_options=options)
    try:
        await client.start()
        assert await client.wait_until_ready(20), repr(client.last_error)
        assert client.last_error is None
    finally:
        await client.close()
