"""Targeting edited from the command line, without JSON: what ``flags rule add`` writes, ``flags show`` prints back
in the same words; history reads the changes as sentences; ``flags diff`` and ``flags copy`` between
environments. Real ``flagstream`` processes against the admin API (with a projector for history)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagstream.events import Clause, Operator, Rollout, Serve, WeightedVariation
from flagstream.services.targeting import (
    GrammarError,
    format_condition,
    parse_condition,
    parse_rollout,
    serve_options,
)
from tests.helpers import ADMIN_TOKEN, auth_headers, served_with_history


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[str]:
    async with served_with_history(nats_url, tmp_path) as (url, projector):
        cli.projector = projector  # type: ignore[attr-defined]
        yield url


async def cli(url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FLAGSTREAM_TOKEN": ADMIN_TOKEN, "FLAGSTREAM_API": url, "FLAGSTREAM_ENV": "production"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flagstream.services.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(url: str, *args: str) -> str:
    code, out, err = await cli(url, *args)
    assert code == 0, (args, out, err)
    return out


async def test_rules_targets_default_and_prerequisites_round_trip_through_show(api: str) -> None:
    for env in ("staging", "production"):
        await ok(api, "envs", "create", env)
    await ok(api, "flags", "create", "new-checkout", "--name", "New checkout")
    await ok(api, "flags", "create", "new-cart")
    typed = "--when 'state in CA' --when 'os in iOS' --rollout on=10,off=90"
    added = await ok(
        api, "flags", "rule", "add", "new-checkout", "--env", "production",
        "--when", "state in CA", "--when", "os in iOS", "--rollout", "on=10,off=90", "--comment", "launch CA",
    )  # fmt: skip
    assert f"rule 1 (state-os) {typed}" in added
    shown = await ok(api, "flags", "show", "new-checkout", "--env", "production")
    assert f"rule 1 (state-os) {typed}" in shown, shown
    assert "If state is CA and os is iOS, serve on to 10%, off to 90%" in shown
    assert "staging: off" in shown  # the other environment, in one line

    await ok(api, "flags", "rule", "change", "new-checkout", "1", "--env", "production", "--rollout", "on=25,off=75")
    await ok(api, "flags", "rule", "change", "new-checkout", "state-os", "--env", "production",
             "--add-when", "email ends-with @acme.com (any case)", "--drop-when", "os in iOS")  # fmt: skip
    segment = {"key": "staff", "included": ["carol"]}
    async with httpx.AsyncClient(base_url=api, headers=auth_headers(), timeout=30) as http:
        created = await http.post("/api/v1/projects/default/environments/production/segments", json=segment)
        assert created.status_code == 201, created.text
    await ok(api, "flags", "rule", "add", "new-checkout", "--env", "production", "--when", "in segment staff",
             "--serve", "on", "--id", "staff", "--position", "1")  # fmt: skip
    await ok(api, "flags", "target", "add", "new-checkout", "alice", "bob", "--env", "production", "--serve", "on")
    await ok(api, "flags", "target", "remove", "new-checkout", "bob", "--env", "production")
    await ok(api, "flags", "default", "new-checkout", "--env", "production", "--serve", "off")
    await ok(api, "flags", "prereq", "add", "new-checkout", "--env", "production", "--flag", "new-cart", "--is", "on")
    shown = await ok(api, "flags", "show", "new-checkout", "--env", "production")
    for words in (
        "prereq     --flag new-cart --is on",
        "target     alice --serve on",
        "rule 1 (staff) --when 'in segment staff' --serve on",
        "rule 2 (state-os) --when 'state in CA' --when 'email ends-with @acme.com (any case)' --rollout on=25,off=75",
        "default    --serve off",
        "If state is CA and email ends with @acme.com (any case), serve on to 25%, off to 75%",
    ):
        assert words in shown, (words, shown)
    await ok(api, "flags", "rule", "move", "new-checkout", "staff", "--env", "production", "--to", "2")
    await ok(api, "flags", "rule", "remove", "new-checkout", "staff", "--env", "production")
    await ok(api, "flags", "prereq", "remove", "new-checkout", "--env", "production", "--flag", "new-cart")
    await ok(api, "flags", "default", "new-checkout", "--env", "production", "--serve-default")
    assert "default    --serve-default" in await ok(api, "flags", "show", "new-checkout", "--env", "production")

    # The audit log reads the changes as sentences, in every environment or one.
    await cli.projector.wait_caught_up(30)  # type: ignore[attr-defined]
    history = await ok(api, "history", "new-checkout", "--all-envs")
    assert "Rule 1 (state-os) added: If state is CA and os is iOS, serve on to 10%, off to 90%" in history
    assert "Rule 1 (state-os): rollout on 10% -> 25%, off 90% -> 75%" in history
    assert "Rule 1 (state-os): removed condition os is iOS" in history
    assert "Targets: alice gets on" in history
    assert "Default: serve on -> off" in history
    assert "  production  " in history
    assert "  staging  " in history  # the creation, in every environment
    only = await ok(api, "history", "new-checkout")
    assert "  staging  " not in only


async def test_mistyped_targeting_is_one_clear_line_and_writes_nothing(api: str) -> None:
    await ok(api, "envs", "create", "production")
    await ok(api, "flags", "create", "f")
    for args, says in [
        (["--when", "state on CA", "--serve", "on"], "unknown operator 'on'"),
        (["--when", "state in CA", "--rollout", "on=10,off=80"], "add up to 90, not 100"),
        (["--when", "state in CA", "--serve", "maybe"], "unknown variation 'maybe'"),
        (["--when", "in segment nobody", "--serve", "on"], "nobody"),
    ]:
        code, out, err = await cli(api, "flags", "rule", "add", "f", *args)
        assert code == 1, (args, out, err)
        assert says in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
    code, _, err = await cli(api, "flags", "rule", "remove", "f", "7")
    assert code == 1
    assert "no rule '7' in this environment (rules: none)" in err
    assert "Rule" not in await ok(api, "flags", "show", "f")


async def test_diff_and_copy_between_environments(api: str) -> None:
    for env in ("staging", "production"):
        await ok(api, "envs", "create", env)
    for key in ("a", "b"):
        await ok(api, "flags", "create", key)
        await ok(api, "flags", "rule", "add", key, "--env", "staging", "--when", "plan in pro", "--serve", "on")
        await ok(api, "flags", "on", key, "--env", "staging")
    diff = await ok(api, "flags", "diff", "a", "--from", "staging", "--to", "production")
    assert "on: false -> true" in diff
    preview = await ok(api, "flags", "copy", "--from", "staging", "--to", "production", "--dry-run")
    assert "2 flag(s) would change in production" in preview
    assert "Only on" not in preview
    copied = await ok(api, "flags", "copy", "a", "b", "--from", "staging", "--to", "production", "--comment", "go")
    assert "2 flag(s) changed in production" in copied
    again = await ok(api, "flags", "diff", "a", "--from", "staging", "--to", "production")
    assert "production is configured as staging" in again


conditions = st.builds(
    Clause,
    attribute=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    op=st.sampled_from([o for o in Operator if o not in (Operator.IN_SEGMENT, Operator.NOT_IN)]),
    values=st.lists(st.text(min_size=1, max_size=8).filter(lambda v: v.strip()), min_size=1, max_size=3).map(tuple),
    negate=st.booleans(),
    case_insensitive=st.booleans(),
    context_kind=st.sampled_from(["user", "organization"]),
    semver=st.sampled_from(["", "strict", "flagd"]),
    stringify=st.sampled_from(["", "python"]),
    numeric_strings=st.booleans(),
    now=st.sampled_from(["", "if_absent"]),
    cast=st.sampled_from(["", "python", "js", "jsonlogic"]),
)


@given(conditions)
def test_a_condition_prints_as_it_is_typed(clause: Clause) -> None:
    if clause.op is Operator.EXISTS:
        clause = Clause(**{**{f: getattr(clause, f) for f in Clause.__struct_fields__}, "values": ()})
    if clause.op in (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.MODULO):
        clause = Clause(**{**{f: getattr(clause, f) for f in Clause.__struct_fields__}, "values": (4, 1.5)})
    assert parse_condition(format_condition(clause)) == clause


def test_rollouts_must_add_up_and_keep_three_decimals() -> None:
    assert [w.weight for w in parse_rollout("on=12.345,off=87.655").variations] == [12345, 87655]
    for bad in ("on=10", "on=10,off=90.0001", "on", "on=ten,off=90"):
        with pytest.raises(GrammarError):
            parse_rollout(bad)


def test_an_imported_rollout_says_that_typed_again_it_would_bucket_users_anew() -> None:
    shares = (WeightedVariation(variation="on", weight=30_000), WeightedVariation(variation="off", weight=70_000))
    ours = Serve(rollout=Rollout(variations=shares, bucket_by="userId"))
    assert serve_options(ours) == "--rollout on=30,off=70 --by userId"
    imported = Serve(rollout=Rollout(variations=shares, bucket_by="userId", algorithm="unleash", hash_prefix="g:"))
    words = serve_options(imported)
    assert words.startswith("--rollout on=30,off=70 --by userId  # bucketed as unleash does (imported)"), words
    assert serve_options(Serve(default=True)) == "--serve-default"
