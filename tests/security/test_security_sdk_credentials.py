"""SDK credentials made by an admin work for real, through `flagstream up` (its nats-server, its admin API): the
docs' blocks of docs/security.md run as written make one, an SDK connects with it and receives its environment's
flags and their changes, and once revoked nats-server closes its connection and refuses it, while another
credential of the same environment carries on, and still works after a restart of `flagstream up`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from flagstream import ClientStatus, FlagstreamClient, sdk_connect_options
from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import FLAGSTREAM, admin_processes, auth_headers, eventually
from tests.runtime.test_up import Up, processes_using
from tests.security.test_security_up import NATS_LINE, data_dir  # noqa: F401 (the fixture)

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
PRODUCTION = "/api/v1/environments/production"


def blocks(language: str) -> list[str]:
    found = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [b for b in found if "sdk-credentials" in b or ("sdk_connect_options" in b and "credential" in b)]


def run_block(text: str, up: Up, folder: Path, before: str = "") -> str:
    """Run ``text`` in bash from ``folder``, after the variable assignments of ``before`` (the blocks before it on
    the page, as a reader's shell keeps them)."""
    assignments = [line for line in before.splitlines() if re.match(r"^[A-Z_]+=", line)]
    text = "\n".join([*assignments, text])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
    env["PATH"] = f"{Path(FLAGSTREAM).parent}:{env.get('PATH', '')}"
    script = text.replace("127.0.0.1:8080", up.url.removeprefix("http://"))
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


async def refused(nats_url: str, user: str, password: str) -> bool:
    try:
        nc = await nats.connect(nats_url, user=user, password=password, allow_reconnect=False, connect_timeout=2)
    except Exception as exc:
        return "authorization" in repr(exc).lower()
    await nc.close()
    return False


async def test_the_docs_flow_connects_an_sdk_and_revoking_cuts_it_off(
    data_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = data_dir.parent
    create_block, revoke_block = blocks("sh")
    (python_block,) = blocks("python")
    up = Up(data_dir)
    client: Any = None
    other: Any = None
    try:
        await asyncio.to_thread(up.wait_ready)
        nats_url = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line)))
        token = (data_dir / "operator-token").read_text().strip()
        async with httpx.AsyncClient(base_url=up.url, headers=auth_headers(token), timeout=30) as http:
            made = await http.post(f"{PRODUCTION}/flags", json={"key": "checkout"})
            assert made.status_code == 201, made.text
            listed = await asyncio.to_thread(run_block, create_block, up, folder)
            credential = json.loads((folder / "checkout-credential.json").read_text())
            assert credential["accepted"] is True, credential
            assert credential["user"] in listed
            assert credential["password"] not in listed
            assert credential["password"] not in "".join(up.output), "never in the logs"
            assert credential["password"] not in (data_dir / "nats-server.conf").read_text()

            # The page's Python, as written (only the NATS address differs), from the folder it ran in.
            monkeypatch.chdir(folder)
            namespace: dict[str, Any] = {}
            exec(compile(python_block.replace("nats://127.0.0.1:4222", nats_url), "security.md", "exec"), namespace)
            client = namespace["client"]
            assert client.is_ready, f"not ready: {client.last_error!r}"
            assert client.bool_variation("checkout", {"key": "u1"}, True) is False
            assert (await http.post(f"{PRODUCTION}/flags/checkout/on")).status_code == 200
            await eventually(lambda: client.bool_variation("checkout", {"key": "u1"}, False), what="the change")

            # Another application's credential of the same environment, connected meanwhile.
            second = (await http.post(f"{PRODUCTION}/sdk-credentials", json={"name": "search"})).json()
            options = sdk_connect_options("default", "production", second["password"], user=second["user"])
            other = FlagstreamClient(nats_url, environment="production", connect_options=options)
            assert await asyncio.to_thread(other.start, 10), f"not ready: {other.last_error!r}"

            await asyncio.to_thread(run_block, revoke_block, up, folder, create_block)
            await eventually(lambda: client.status is ClientStatus.STALE, what="the revoked client cut off")
            await eventually(lambda: "authorization" in repr(client.last_error).lower(), what="refused at reconnect")
            assert await refused(nats_url, credential["user"], credential["password"])
            # nothing else was disturbed: the other credential's client still follows the changes
            assert other.status is ClientStatus.READY
            assert (await http.post(f"{PRODUCTION}/flags/checkout/off")).status_code == 200
            await eventually(lambda: other.bool_variation("checkout", {"key": "u1"}, True) is False, what="off")
            assert client.bool_variation("checkout", {"key": "u1"}, False) is True, "the cut-off one kept its last"
            assert client.status is ClientStatus.STALE, "and never got back in"
            gone = (await http.get(f"{PRODUCTION}/sdk-credentials?revoked=true")).json()["items"]
            assert [(c["name"], c.get("revoked_by")) for c in gone] == [("checkout-service", "operator"),
                                                                         ("search", None)]  # fmt: skip
    finally:
        for c in (client, other):
            if c is not None:
                await asyncio.to_thread(c.close)
        assert up.interrupt() == 0, "".join(up.output)

    # After a restart, the live credential logs in from nats-server's first moment, the revoked one never.
    up = Up(data_dir)
    try:
        nats_url = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line)))
        nc = await nats.connect(nats_url, user=second["user"], password=second["password"], allow_reconnect=False)
        await nc.close()
        assert await refused(nats_url, credential["user"], credential["password"])
    finally:
        assert up.interrupt() == 0, "".join(up.output)
    assert processes_using(data_dir) == []


async def test_with_a_nats_server_of_your_own_nats_users_adds_them_and_a_reload_applies_them(tmp_path: Path) -> None:
    """No `flagstream up`: the deployment's nats-server includes the `auth.conf` of `flagstream nats-users`, the
    admin runs as its own process. A new credential is not accepted until nats-users writes it and the server
    reloads (the answer says so); a revoked one is refused after the same two steps."""
    folder = tmp_path / "secrets"
    nats_users = [FLAGSTREAM, "nats-users", "--dir", str(folder), "--env", "default/production"]
    from_bucket = ["--nats-user", "operator", "--nats-password-file", str(folder / "operator.password")]
    done = await asyncio.to_thread(subprocess.run, nats_users, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = folder / "nats.conf"
    config.write_text(f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\ninclude auth.conf\n')
    server = NatsServer(store_dir=tmp_path / "js", config_file=config).start()
    assert server.process is not None

    def apply() -> None:
        args = [*nats_users, "--sdk-credentials-from", server.url, *from_bucket]
        written = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert written.returncode == 0, written.stderr
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)  # what `nats-server --signal reload` sends

    login = ["--nats-user", "admin", "--nats-password-file", str(folder / "admin.password")]
    try:
        with admin_processes(server.url, 1, *login) as (admin,):
            async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=30) as http:
                assert (await http.post("/api/v1/environments", json={"key": "production"})).status_code == 201
                assert (await http.post(f"{PRODUCTION}/flags", json={"key": "checkout"})).status_code == 201
                made = await http.post(f"{PRODUCTION}/sdk-credentials", json={"name": "checkout-service"})
                assert made.status_code == 201, made.text
                cred = made.json()
                assert cred["accepted"] is False, "this nats-server does not know it yet"
                assert await refused(server.url, cred["user"], cred["password"])

                await asyncio.to_thread(apply)
                assert cred["password"] not in (folder / "auth.conf").read_text()
                options = sdk_connect_options("default", "production", cred["password"], user=cred["user"])
                client = FlagstreamClient(server.url, environment="production", connect_options=options)
                try:
                    await eventually(lambda: client.start(1), what="the SDK ready with the credential")
                    assert client.bool_variation("checkout", {"key": "u1"}, True) is False
                    # its rights are the environment's SDK user's: no other environment, no KV bucket
                    assert await denied_publish(server.url, cred, "$KV.flagstream_sdkcredentials.x")
                finally:
                    await asyncio.to_thread(client.close)

                assert (await http.delete(f"{PRODUCTION}/sdk-credentials/{cred['id']}")).status_code == 200
                await asyncio.to_thread(apply)
                await until_refused(server.url, cred["user"], cred["password"])
    finally:
        server.stop()


async def denied_publish(nats_url: str, cred: dict[str, Any], subject: str) -> bool:
    """Whether nats-server refuses ``cred`` a publish on ``subject`` (a permissions violation)."""
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(nats_url, user=cred["user"], password=cred["password"], error_cb=on_error)
    try:
        await nc.publish(subject, b"x")
        await nc.flush()
        await eventually(lambda: errors, within=10, what="the permissions violation")
    finally:
        await nc.close()
    return "permissions violation" in repr(errors[0]).lower()


async def until_refused(nats_url: str, user: str, password: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not await refused(nats_url, user, password):
        assert asyncio.get_running_loop().time() < deadline, "still accepted"
        await asyncio.sleep(0.1)
