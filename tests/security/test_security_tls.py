"""TLS with a self-signed certificate made here (openssl CLI): an SDK over TLS to nats-server, and the admin API
over HTTPS (itself talking TLS and a NATS user to nats-server). With the CA it works; without it, it does not."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.services.runtime.nats_auth import (
    ADMIN,
    PROJECTOR,
    Credentials,
    ServerTls,
    tls_block,
    write_server_config,
)
from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers, publish_flag

URL_LINE = re.compile(r"^https://127\.0\.0\.1:(\d+)$")


@pytest.fixture
def cert(tmp_path: Path) -> ServerTls:
    """A self-signed certificate for 127.0.0.1 and localhost (it is its own CA). `make test` installs openssl, so
    these tests run everywhere: without it they fail, they never skip."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (make test installs it: apt-get install openssl)")
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return ServerTls(cert=crt, key=key)


def trusting(tls: ServerTls) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.cert))


async def test_an_sdk_follows_flags_over_tls_and_needs_the_ca(tmp_path: Path, cert: ServerTls) -> None:
    config = tmp_path / "nats-server.conf"
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "nats"}" }}\n' + tls_block(cert))
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        await publish_flag(server.url, "checkout", tls=trusting(cert))

        client = AsyncFlagstreamClient(server.url, environment="production", connect_options={"tls": trusting(cert)})
        try:
            assert await client.start(wait=10), f"not ready: {client.last_error!r}"
            assert client.bool_variation("checkout", {"key": "u1"}, False) is True
        finally:
            await client.close()

        with pytest.raises(Exception, match=r"(?i)certificate"):
            await nats.connect(server.url, tls=ssl.create_default_context(), allow_reconnect=False)
        with pytest.raises(Exception):  # noqa: B017, PT011 (plain text to a TLS-only server: refused)
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=2)
    finally:
        server.stop()


@pytest.fixture
def tls_nats(tmp_path: Path, cert: ServerTls) -> Iterator[tuple[NatsServer, Credentials]]:
    creds = Credentials.load_or_create(tmp_path)
    config = write_server_config(creds, tmp_path / "nats", tmp_path / "nats-server.conf", tls=cert)
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        yield server, creds
    finally:
        server.stop()


def test_the_admin_api_over_https_with_tls_and_a_user_to_nats(
    tmp_path: Path, cert: ServerTls, tls_nats: tuple[NatsServer, Credentials]
) -> None:
    server, creds = tls_nats
    password_file = tmp_path / "admin-password"
    password_file.write_text(creds.passwords[ADMIN])
    command = [
        FLAGSTREAM, "admin", "--nats-url", server.url, "--port", "0", "--log-level", "warning",
        "--tls-cert", str(cert.cert), "--tls-key", str(cert.key),
        "--nats-user", ADMIN, "--nats-password-file", str(password_file), "--nats-ca", str(cert.cert),
    ]  # fmt: skip
    env = {**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None:
            assert time.monotonic() < deadline, f"no https URL from flagstream admin:\n{''.join(output)}"
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, f"flagstream admin exited:\n{''.join(output)}"
                continue
            if URL_LINE.match(line):
                url = line
        ca = trusting(cert)
        while httpx.get(f"{url}/readyz", verify=ca, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        envs = httpx.post(f"{url}/api/v1/environments", json={"key": "production"}, verify=ca,
                          headers=auth_headers(), timeout=10)  # fmt: skip
        assert envs.status_code == 201, envs.text
        with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
            httpx.get(f"{url}/readyz", timeout=5)  # the system CAs do not know this certificate
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/readyz", timeout=5)  # no plain HTTP
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, "".join(output)


async def test_the_projector_reads_over_tls_with_its_user_and_needs_the_ca(
    tmp_path: Path, cert: ServerTls, tls_nats: tuple[NatsServer, Credentials]
) -> None:
    server, creds = tls_nats
    await publish_flag(server.url, "checkout", user=ADMIN, password=creds.passwords[ADMIN], tls=trusting(cert))
    password_file = tmp_path / "projector-password"
    password_file.write_text(creds.passwords[PROJECTOR])

    def print_hash(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            FLAGSTREAM, "projector", "--nats-url", server.url, "--db", str(tmp_path / "rm.sqlite"), "--print-hash",
            "--timeout", "20", "--nats-user", PROJECTOR, "--nats-password-file", str(password_file), *extra,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    done = await asyncio.to_thread(print_hash, "--nats-ca", str(cert.cert))
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f]{64}", done.stdout.strip().split()[-1]), done.stdout
    assert creds.passwords[PROJECTOR] not in done.stdout + done.stderr

    refused = await asyncio.to_thread(print_hash)  # without the CA: the certificate is not trusted
    assert refused.returncode != 0
