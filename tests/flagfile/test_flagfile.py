"""Flags as code: export -> apply round trips, plan shows exactly the differences, apply is guarded per flag."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from flagstream.events import Flag, Segment
from flagstream.events.model import Serve
from flagstream.services import flagfile
from flagstream.services.cli import main
from flagstream.services.cli.api import ApiClient
from flagstream.services.cli.flagfile import FlagsApi, execute
from flagstream.services.flagfile.planning import Action, FlagFile, FlagFileError
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers

API = "/api/v1/projects/default/environments"

SEGMENT = {
    "key": "beta",
    "name": "Beta testers",
    "included": ["alice", "bob"],
    "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}],
}
FLAGS: list[dict[str, Any]] = [
    {"key": "base", "name": "Base", "on": True},
    {
        "key": "checkout",
        "name": "New checkout",
        "description": "the one-page checkout",
        "tags": ["web", "payments"],
        "on": True,
        "targets": [{"variation": "on", "values": ["carol"]}],
        "rules": [
            {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}},
            {
                "id": "half",
                "clauses": [{"attribute": "country", "op": "in", "values": ["NO", "yes", "on"]}],
                "serve": {"rollout": {"variations": [{"variation": "on", "weight": 50000},
                                                     {"variation": "off", "weight": 50000}]}},
            },
        ],
        "prerequisites": [{"flag": "base", "variation": "on"}],
        "fallthrough": {"variation": "off"},
    },
    {
        "key": "theme",
        "kind": "string",
        "variations": [{"key": "on", "value": "yes"}, {"key": "off", "value": "2024-01-01"},
                       {"key": "dark", "value": "null"}],
        "fallthrough": {"variation": "dark"},
        "salt": "theme-v1",
    },
    {"key": "limits", "kind": "json", "variations": [{"key": "on", "value": {"max": 3, "nested": [1, None]}},
                                                      {"key": "off", "value": None}]},
]  # fmt: skip


def cli(*argv: str) -> list[str]:
    return [*argv, "--token", ADMIN_TOKEN]


async def seed(http: httpx.AsyncClient, env: str, *, flags: list[dict[str, Any]] = FLAGS) -> None:
    r = await http.post(API, json={"key": env})
    assert r.status_code == 201, r.text
    r = await http.post(f"{API}/{env}/segments", json=SEGMENT)
    assert r.status_code == 201, r.text
    for body in flags:
        r = await http.post(f"{API}/{env}/flags", json=body)
        assert r.status_code == 201, r.text


async def states(http: httpx.AsyncClient, env: str) -> tuple[dict[str, Flag], dict[str, Segment]]:
    flags = (await http.get(f"{API}/{env}/flags", params={"archived": "all"})).json()["items"]
    segments = (await http.get(f"{API}/{env}/segments", params={"archived": "all"})).json()["items"]
    return (
        {i["key"]: msgspec.convert(i["flag"], Flag) for i in flags},
        {i["key"]: msgspec.convert(i["segment"], Segment) for i in segments},
    )


@pytest.fixture
async def http(admin_url: str) -> Any:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as client:
        yield client


# -- the file, pure ----------------------------------------------------------------------------------------


def test_file_round_trips_in_both_formats_with_defaults_left_out() -> None:
    original = FlagFile(
        flags={f["key"]: msgspec.convert(f, Flag) for f in FLAGS},
        segments={"beta": msgspec.convert(SEGMENT, Segment)},
        project="default",
        environment="staging",
    )
    for fmt in flagfile.FORMATS:
        text = flagfile.dump(original, fmt)
        assert flagfile.load(text) == original
        assert flagfile.dump(flagfile.load(text), fmt) == text  # stable: the same text again
    yaml_text = flagfile.dump(original, "yaml")
    assert "base:\n    kind: boolean\n    name: Base\n    'on': true\n" in yaml_text  # kind and on always shown
    assert "archived" not in yaml_text
    assert "context_kind" not in yaml_text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flags: [1, 2]", "flags: expected a mapping of key -> flag"),
        ("flags:\n  x:\n    colour: red\n", "flags.x: unknown field: colour"),
        ("flags:\n  'bad key': {}\n", "flags.bad key: Expected a key"),
        ("flags:\n  x: {on: maybe}\n", "flags.x: Expected `bool`, got `str` - at `on`"),
        ("flags:\n  x: {on: yes}\n", "flags.x: Expected `bool`, got `str` - at `on`"),  # YAML 1.2: yes is a string
        ("flagz: {}", "unknown top-level field(s): flagz"),
        ("flagstream: 2", "file format 2 is not supported"),
        ("flags: {x: [}", "not valid YAML or JSON"),
    ],
)
def test_bad_files_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(FlagFileError) as caught:
        flagfile.load(text)
    assert message in str(caught.value)


# -- against the admin API ---------------------------------------------------------------------------------


async def test_export_then_apply_into_a_fresh_environment_gives_the_same_state(
    http: httpx.AsyncClient, admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(http, "staging")
    r = await http.post(f"{API}/staging/flags", json={"key": "gone"})
    assert (await http.post(f"{API}/staging/flags/gone/archive", json={})).status_code == 200, r.text
    exported = tmp_path / "staging.yaml"
    code = await asyncio.to_thread(main, cli("export", "--api", admin_url, "--env", "staging", "-o", str(exported)))
    assert code == 0
    assert "gone:" not in exported.read_text()  # archived flags stay out unless --all

    # A new environment has every flag of the project, off: applying the file sets the segment and the
    # configurations that differ (base and checkout are on, with targets and rules); theme and limits are as new.
    assert (await http.post(API, json={"key": "fresh"})).status_code == 201
    capsys.readouterr()
    code = await asyncio.to_thread(main, cli("apply", "--api", admin_url, "--env", "fresh", "-f", str(exported)))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Applied 3 change(s), 0 failed." in out

    assert await states(http, "fresh") == await states(http, "staging")  # "gone" is archived in both
    # Prerequisites first: base was written before checkout, which needs it.
    assert out.index("~ flag base") < out.index("~ flag checkout")
    # The audit comment names the file.
    rec = (await http.get(f"{API}/fresh/flags/checkout")).json()
    assert rec["comment"] == f"flagstream apply {exported}"
    # Applying again changes nothing.
    code = await asyncio.to_thread(main, cli("apply", "--api", admin_url, "--env", "fresh", "-f", str(exported)))
    assert code == 0
    assert capsys.readouterr().out.startswith("No changes: default/fresh matches the file (5 unchanged).")


async def test_promotion_through_a_pipe(http: httpx.AsyncClient, admin_url: str) -> None:
    await seed(http, "staging")
    assert (await http.post(API, json={"key": "production"})).status_code == 201
    env = f"--api {admin_url} --token {ADMIN_TOKEN}"
    proc = await asyncio.create_subprocess_shell(
        f"{FLAGSTREAM} export --env staging --format json {env} | "
        f"{FLAGSTREAM} apply -f - --env production --comment 'release 42' {env}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert await states(http, "production") == await states(http, "staging")
    assert (await http.get(f"{API}/production/flags/checkout")).json()["comment"] == "release 42"


async def staging_and_production(http: httpx.AsyncClient) -> None:
    """staging seeded; production made from it (copy_from: the same configurations and segments)."""
    await seed(http, "staging")
    r = await http.post(API, json={"key": "production", "copy_from": "staging"})
    assert r.status_code == 201, r.text
    assert await states(http, "production") == await states(http, "staging")


async def test_plan_shows_exactly_the_differences(
    http: httpx.AsyncClient, admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await staging_and_production(http)
    assert (await http.post(f"{API}/staging/flags", json={"key": "unmanaged"})).status_code == 201
    exported = tmp_path / "staging.json"
    assert await asyncio.to_thread(main, cli("export", "--api", admin_url, "--env", "staging", "-o", str(exported)))\
        == 0  # fmt: skip
    document = json.loads(exported.read_text())
    assert document["environment"] == "staging"
    del document["flags"]["unmanaged"]  # a flag the file does not manage
    exported.write_text(json.dumps(document))
    # production drifts: one flag toggled, one serving something else by default, the segment grows.
    await http.post(f"{API}/production/flags/base/off", json={})
    await http.patch(f"{API}/production/flags/theme", json={"fallthrough": {"variation": "on"}})
    await http.patch(f"{API}/production/segments/beta", json={"included": ["alice", "bob", "dave"]})
    versions = dict((await states(http, "production"))[0].items())
    assert versions

    capsys.readouterr()
    args = cli("plan", "--api", admin_url, "--env", "production", "-f", str(exported))
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr().out.splitlines()
    base_version = (await http.get(f"{API}/production/flags/base")).json()["version"]
    assert out[0] == "Plan for default/production:"
    assert out[1].startswith("  ~ segment beta (version ")
    assert out[2] == '      included: ["alice", "bob", "dave"] -> ["alice", "bob"]'
    assert out[3] == f"  ~ flag base (version {base_version})"
    assert out[4] == "      on: false -> true"
    assert out[5].startswith("  ~ flag theme (version ")
    assert out[6] == '      fallthrough: {"variation": "on"} -> {"variation": "dark"}'
    assert out[7] == "Plan: 0 to create, 3 to update, 0 to restore, 0 to archive; 2 unchanged."
    assert not any("checkout" in line or "unmanaged" in line for line in out)  # equal, or not managed

    # Planning wrote nothing; --prune adds the archive of what the file does not have.
    assert (await states(http, "production"))[0] == versions
    assert await asyncio.to_thread(main, [*args, "--prune"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("  - flag unmanaged (version ") and line.endswith("[archive]") for line in out)
    assert out[-1] == "Plan: 0 to create, 3 to update, 0 to restore, 1 to archive; 2 unchanged."


async def test_a_change_between_plan_and_apply_is_a_conflict_for_that_flag_only(
    http: httpx.AsyncClient, admin_url: str
) -> None:
    await staging_and_production(http)
    for key in ("base", "theme"):
        r = await http.patch(f"{API}/staging/flags/{key}", json={"targets": [{"variation": "off", "values": ["eve"]}]})
        assert r.status_code == 200, r.text

    def plan_then_apply_after(concurrent: Any) -> tuple[flagfile.Plan, Any]:
        with ApiClient(admin_url, token=ADMIN_TOKEN) as client:
            desired = FlagsApi(client, "staging").export()
            target = FlagsApi(client, "production")
            result = flagfile.plan(desired, *target.current())
            concurrent()
            return result, execute(target, result, "apply with a race")

    def someone_else() -> None:
        r = httpx.post(f"{admin_url}{API}/production/flags/theme/on", json={}, headers=auth_headers())
        assert r.status_code == 200, r.text

    result, outcome = await asyncio.to_thread(plan_then_apply_after, someone_else)
    assert [(c.key, c.action) for c in result.changes] == [("base", Action.UPDATE), ("theme", Action.UPDATE)]
    assert not outcome.ok
    assert len(outcome.applied) == 1
    assert "flag base" in outcome.applied[0]
    assert len(outcome.failed) == 1
    assert "flag theme" in outcome.failed[0]
    assert "changed since the plan was made" in outcome.failed[0]
    production, _ = await states(http, "production")
    assert [t.values for t in production["base"].targets] == [("eve",)]
    assert production["theme"].targets == ()
    assert production["theme"].on


async def test_refusals_and_missing_things_are_clear(
    http: httpx.AsyncClient, admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(http, "production")
    missing = tmp_path / "nope.yaml"
    assert await asyncio.to_thread(main, cli("plan", "--api", admin_url, "--env", "production", "-f", str(missing)))\
        == 1  # fmt: skip
    assert "No such file or directory" in capsys.readouterr().err

    file = tmp_path / "only-checkout.yaml"
    file.write_text(flagfile.dump(FlagFile(flags={"x": Flag(key="x")})))
    assert await asyncio.to_thread(main, cli("plan", "--api", admin_url, "--env", "nowhere", "-f", str(file))) == 1
    assert "environment 'nowhere' not found in project 'default'" in capsys.readouterr().err

    # A flag the API refuses is reported with the API's reason; the others are applied. Pruning archives
    # checkout before base, its prerequisite (the other order would be refused).
    bad = Flag(key="y", fallthrough=msgspec.convert({"variation": "nope"}, Serve))
    file.write_text(flagfile.dump(FlagFile(flags={"x": Flag(key="x"), "y": bad})))
    args = cli("apply", "--api", admin_url, "--env", "production", "-f", str(file), "--prune")
    assert await asyncio.to_thread(main, args) == 1
    out = capsys.readouterr().out
    assert "ok     + flag x -> version" in out
    refused = next(line for line in out.splitlines() if line.startswith("FAILED + flag y"))
    assert "refused" in refused
    assert "nope" in refused
    assert "(HTTP 422)" in refused
    assert out.index("- flag checkout") < out.index("- flag base")
    production, _ = await states(http, "production")
    assert "y" not in production
    assert production["x"].on is False
    assert all(production[k].archived for k in ("base", "checkout", "theme", "limits"))
