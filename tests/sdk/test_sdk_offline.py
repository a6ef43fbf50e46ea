"""Offline mode (a flag file, never connecting) and TestData (flags set in the application's own tests)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flagstream import (
    AsyncFlagstreamClient,
    ClientStatus,
    ErrorKind,
    FlagFileError,
    FlagstreamClient,
    ReasonKind,
    TestData,
)
from flagstream.events import Clause, Flag, Operator, Rule, Segment, Serve
from flagstream.offline import export_flag_file

USER = {"key": "user-1", "country": "NO"}

FILE = {
    "project": "shop",
    "environment": "production",
    "flags": [
        {"key": "new-checkout", "on": True},
        {
            "key": "banner",
            "kind": "string",
            "on": True,
            "variations": [{"key": "a", "value": "blue"}, {"key": "b", "value": "green"}],
            "off_variation": "a",
            "fallthrough": {"variation": "a"},
            "rules": [
                {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "b"}}
            ],
        },
    ],
    "segments": [{"key": "beta", "included": ["user-1"]}],
}


def test_sync_client_from_a_json_file_serves_its_flags_without_connecting(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(FILE))
    client = FlagstreamClient.from_file(path)
    assert (client.project, client.environment) == ("shop", "production")
    assert client.is_ready
    assert client.status is ClientStatus.READY
    assert client.start(wait=5) is True
    assert client.bool_variation("new-checkout", USER, False) is True
    detail = client.string_variation_detail("banner", USER, "none")
    assert (detail.value, detail.variation, detail.reason.kind) == ("green", "b", ReasonKind.RULE_MATCH)
    assert client.string_variation("banner", {"key": "user-2"}, "none") == "blue"
    assert client.variation_detail("missing", USER, 7).reason.error_kind is ErrorKind.FLAG_NOT_FOUND
    client.close()
    assert client.status is ClientStatus.CLOSED
    assert client.bool_variation("new-checkout", USER, False) is True


async def test_async_client_from_an_exported_file(tmp_path: Path) -> None:
    source = FlagstreamClient.from_file(_write(tmp_path / "in.json", FILE))
    exported = tmp_path / "exported.json"
    exported.write_bytes(export_flag_file(source.ruleset))
    async with AsyncFlagstreamClient.from_file(exported) as client:
        assert await client.wait_until_ready(1)
        assert client.state_hash() == source.state_hash()
        assert client.string_variation("banner", USER, "none") == "green"


def test_yaml_file_when_pyyaml_is_installed(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "flags.yaml"
    path.write_text(yaml.safe_dump(FILE))
    assert FlagstreamClient.from_file(path).bool_variation("new-checkout", USER, False) is True


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["flags"][1].update(kind="colour"), "$.flags[1].kind"),
        (lambda d: d["flags"][0].update(key="bad key!"), "$.flags[0].key"),
        (lambda d: d.pop("environment"), "environment"),
        (lambda d: d["flags"][1]["rules"][0]["serve"].update(variation="zzz"), "$.flags[1].rules[0].serve.variation"),
        (lambda d: d["flags"].append({"key": "new-checkout"}), "$.flags[2].key"),
        (lambda d: d["flags"][1]["rules"][0]["clauses"][0].update(values=["nope"]), "$.flags[1].rules[0].clauses[0]"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_the_json_path(tmp_path: Path, change, where: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(FILE))
    change(data)
    path = _write(tmp_path / "flags.json", data)
    with pytest.raises(FlagFileError) as error:
        FlagstreamClient.from_file(path)
    assert str(path) in str(error.value)
    assert where in str(error.value)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(FlagFileError, match=r"missing\.json"):
        FlagstreamClient.from_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"environment": "x", "flags": [')
    with pytest.raises(FlagFileError, match=r"broken\.json"):
        AsyncFlagstreamClient.from_file(broken)


def test_test_data_changes_apply_at_once_and_fire_listeners() -> None:
    td = TestData()
    td.flag("new-checkout").on(True)
    client = FlagstreamClient.from_test_data(td)
    seen: list[tuple[str, bool | None]] = []
    client.on_change(None, lambda key, old, new: seen.append((key, new.on if new else None)))
    assert client.bool_variation("new-checkout", USER, False) is True

    td.flag("new-checkout").on(False)
    assert client.bool_variation("new-checkout", USER, True) is False
    assert seen == [("new-checkout", False)]

    td.flag("button").variations("blue", "green", "red").serve("green").value_for("user-1", "red")
    assert client.string_variation("button", {"key": "user-2"}, "none") == "green"
    detail = client.string_variation_detail("button", USER, "none")
    assert (detail.value, detail.reason.kind) == ("red", ReasonKind.TARGET_MATCH)
    td.flag("button").on(False)
    assert client.string_variation("button", USER, "none") == "blue"  # the off value: the first variation
    # A string value is its variation's key when it can be one; "line\n" cannot (a key ends in no newline).
    td.flag("text").variations("line", "line\n").serve("line\n")
    served = client.string_variation_detail("text", USER, "none")
    assert (served.value, served.variation) == ("line\n", "v1")

    td.flag("limits").serve({"max": 3})
    assert client.json_variation("limits", USER, {}) == {"max": 3}
    td.flag("ratio").variations(0.25, 0.5).serve(0.5)
    assert client.number_variation("ratio", USER, 0.0) == 0.5
    assert client.bool_variation_detail("ratio", USER, False).reason.error_kind is ErrorKind.WRONG_TYPE


async def test_test_data_with_whole_flags_and_segments_for_an_async_client() -> None:
    td = TestData(environment="unit")
    client = AsyncFlagstreamClient.from_test_data(td)
    assert await client.start(wait=1)
    td.update_segment(Segment(key="norway", rules=()))
    td.update(
        Flag(
            key="nordic",
            on=True,
            fallthrough=Serve(variation="off"),
            rules=(
                Rule(
                    id="no",
                    clauses=(Clause(attribute="country", op=Operator.IN, values=("NO",)),),
                    serve=Serve(variation="on"),
                ),
            ),
        )
    )
    assert client.bool_variation("nordic", USER, False) is True
    assert client.bool_variation("nordic", {"key": "user-2", "country": "SE"}, True) is False
    other = AsyncFlagstreamClient.from_test_data(td)  # a second client sees the same data
    assert other.bool_variation("nordic", USER, False) is True
    await asyncio.gather(client.close(), other.close())


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_all_flags_evaluates_every_active_flag_from_one_ruleset() -> None:
    td = TestData()
    td.flag("new-checkout").on(True)
    td.flag("button").variations("blue", "green").serve("green").value_for("user-1", "blue")
    td.update(Flag(key="gone", on=True, archived=True))
    client = FlagstreamClient.from_test_data(td)
    flags = client.all_flags(USER)
    assert list(flags) == ["button", "new-checkout"]  # sorted; the archived flag is not served
    assert (flags["button"].value, flags["button"].reason.kind) == ("blue", ReasonKind.TARGET_MATCH)
    assert flags["new-checkout"].value is True
    assert {d.seq for d in flags.values()} == {client.seq}
    bad = client.all_flags(42)  # a context that is no context: an error detail per flag, no exception
    assert {(d.value, d.reason.error_kind) for d in bad.values()} == {(None, ErrorKind.MALFORMED_CONTEXT)}
    assert client.all_flags(USER) == flags  # the same answer again: nothing random, nothing remembered
