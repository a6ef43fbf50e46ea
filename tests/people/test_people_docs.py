"""The people docs as written: the configuration files of docs/sso-*.md load, the generic one signs people in
through a real OpenID provider with the roles it promises, the grants example of docs/security.md means what it
says, and every `flagstream users` command shown there is one the CLI accepts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from flagstream.services.admin.app import create_app
from flagstream.services.cli import users as users_cli
from flagstream.services.people import load_config
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers, serving
from tests.oidc.provider import CLIENT_ID, CLIENT_SECRET, oidc_provider
from tests.people.conftest import API, CALLBACK, sign_in_via, site

DOCS = Path(__file__).resolve().parents[2] / "docs"


def blocks(name: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / name).read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("page", ["sso-keycloak.md", "sso-oidc.md"])
def test_the_configuration_of_each_provider_page_loads(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGSTREAM_OIDC_CLIENT_SECRET", "from the environment")
    (block,) = blocks(page, "yaml")
    path = tmp_path / "people.yaml"
    path.write_text(block)
    config = load_config(path)
    assert config.oidc is not None
    assert config.oidc.secret() == "from the environment"
    assert config.oidc.roles, "the page shows groups mapped to roles"


async def test_the_generic_configuration_signs_people_in_with_the_roles_it_promises(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = {
        "eve": {"name": "Eve Engineer", "groups": ["engineering"]},
        "sam": {"name": "Sam Shop", "groups": ["shop-team"]},
        "rel": {"name": "Rel Manager", "groups": ["release-managers"]},
    }
    monkeypatch.setenv("FLAGSTREAM_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    async with oidc_provider([CALLBACK], accounts=accounts) as provider:
        data = yaml.safe_load(blocks("sso-oidc.md", "yaml")[0])
        # The page's file, pointed at this provider and this test's admin (and nothing else changed).
        data["oidc"].update(issuer=provider.issuer, client_id=CLIENT_ID, redirect_url=CALLBACK)
        path = tmp_path / "people.yaml"
        path.write_text(yaml.safe_dump(data))
        async with site(nats_url, load_config(path)) as s:
            for project, env in (("default", "development"), ("default", "production"), ("shop", "production")):
                made = await s.op.post(f"/api/v1/projects/{project}/environments", json={"key": env})
                assert made.status_code == 201, made.text
            can = {}
            for login in accounts:
                async with s.browser() as b:
                    assert (await sign_in_via(b, provider.issuer, login)).status_code == 303
                    for project, env in (("default", "development"), ("default", "production"),
                                         ("shop", "production")):  # fmt: skip
                        flags = f"/api/v1/projects/{project}/environments/{env}/flags"
                        wrote = await b.write("POST", flags, json={"key": f"{login}-flag"})
                        read = await b.http.get(flags)
                        can[login, project, env] = (
                            "write" if wrote.status_code == 201 else ("read" if read.status_code == 200 else "none")
                        )
    assert can == {
        ("eve", "default", "development"): "write", ("eve", "default", "production"): "read",
        ("eve", "shop", "production"): "read",
        ("sam", "default", "development"): "none", ("sam", "default", "production"): "none",
        ("sam", "shop", "production"): "write",
        ("rel", "default", "development"): "none", ("rel", "default", "production"): "write",
        ("rel", "shop", "production"): "write",
    }  # fmt: skip


async def test_the_grants_example_means_what_the_text_says(nats_url: str) -> None:
    example = next(b for b in blocks("security.md", "json") if '"grants"' in b)
    async with site(nats_url) as s:
        for project, env in (("default", "development"), ("default", "production"), ("shop", "production")):
            assert (await s.op.post(f"/api/v1/projects/{project}/environments", json={"key": env})).status_code == 201
        grants = json.loads(example)["grants"]
        await s.user("grace", grants)
        async with s.browser() as b:
            assert (await b.sign_in("grace")).status_code == 200

            async def writes(project: str, env: str) -> int:
                flags = f"/api/v1/projects/{project}/environments/{env}/flags"
                return (await b.write("POST", flags, json={"key": "x"})).status_code

            assert await writes("default", "development") == 201, "writer on development"
            assert await writes("default", "production") == 403, "reader elsewhere: not the production writer"
            assert await writes("shop", "production") == 201, "the production writer of shop"
            assert (await b.http.get(f"{API}/environments/production/flags")).status_code == 200, "reader everywhere"


async def test_the_users_commands_of_the_security_page_run_as_written(nats_url: str, tmp_path: Path) -> None:
    """From a folder where `flagstream up` left its operator token, as the page says; the passwords are piped in
    (standard input is not a terminal), one line per command that asks."""
    (tmp_path / ".flagstream").mkdir()
    (tmp_path / ".flagstream" / "operator-token").write_text(ADMIN_TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
    passwords = {0: "ada's first passphrase\n", 1: "grace's first passphrase\ngrace's second passphrase\n"}
    async with serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)) as url:
        env.update(PATH=f"{Path(FLAGSTREAM).parent}:{env.get('PATH', '')}", FLAGSTREAM_API=url)
        for index, block in enumerate(blocks("security.md", "sh")):
            if "flagstream users" not in block:
                continue
            done = await asyncio.to_thread(
                subprocess.run, ["bash", "-e", "-o", "pipefail", "-c", block], input=passwords[index], cwd=tmp_path,
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, f"security.md block {index + 1}: {done.stdout}\n{done.stderr}"
            assert "passphrase" not in done.stdout + done.stderr
        async with httpx.AsyncClient(base_url=url, headers=auth_headers()) as op:
            people = {u["login"]: u for u in (await op.get("/api/v1/users")).json()["items"]}
        async with httpx.AsyncClient(base_url=url) as browser:
            ada = await browser.post("/auth/password", json={"login": "ada", "password": "ada's first passphrase"})
            assert ada.status_code == 200, "the first admin signs in"
            grace = await browser.post("/auth/password",
                                       json={"login": "grace", "password": "grace's second passphrase"})  # fmt: skip
            assert grace.status_code == 401, "disabled, as the last command said"
    assert (people["ada"]["name"], people["ada"]["email"], people["ada"]["grants"]) == (
        "Ada Lovelace", "ada@example.com", [{"role": "admin"}])  # fmt: skip
    assert people["grace"]["grants"] == [{"role": "reader"}], "the roles command replaced her roles"
    assert people["grace"]["disabled"] is True
    assert people["grace"]["sessions_after"] is not None


def test_every_users_command_of_the_security_page_is_accepted_by_the_cli() -> None:
    parser = argparse.ArgumentParser(prog="flagstream users")
    users_cli.add_arguments(parser)
    lines = [line.split("  #")[0].strip() for block in blocks("security.md", "sh") for line in block.splitlines()]
    commands = [shlex.split(line)[2:] for line in lines if line.startswith("flagstream users ")]
    assert len(commands) >= 6
    for args in commands:
        parsed = parser.parse_args(args)
        assert parsed.action in ("create", "roles", "password", "signout", "disable", "enable", "list"), args
