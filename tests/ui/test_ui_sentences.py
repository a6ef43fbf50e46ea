"""Rules in words say the same in the browser as on the server: the UI's sentences.js renders the same flags as
services/targeting/sentences.py (the API's ``summary`` and ``lines``, the CLI, the history), word for word,
in Chromium."""

from __future__ import annotations

from typing import Any

import msgspec

from flagstream.events import (
    Clause,
    Flag,
    Operator,
    Prerequisite,
    Rollout,
    Rule,
    Serve,
    Target,
    Variation,
    WeightedVariation,
)
from flagstream.operators import CASTS, NOW_MODES, STRINGIFY
from flagstream.semver import DIALECTS
from flagstream.services.targeting import clause_text, configuration_lines, rule_text, serve_text, summary
from tests.ui.conftest import UI


def rollout(*shares: tuple[str, int], by: str = "key", kind: str = "user") -> Serve:
    weights = tuple(WeightedVariation(variation=v, weight=w) for v, w in shares)
    return Serve(rollout=Rollout(variations=weights, bucket_by=by, context_kind=kind))


def clause(attribute: str, op: str, *values: Any, **more: Any) -> Clause:
    return Clause(attribute=attribute, op=op, values=values, **more)  # type: ignore[arg-type]


CLAUSES = [
    clause("state", "in", "CA"),
    clause("state", "in", "CA", "NY"),
    clause("state", "in", "CA", negate=True),
    clause("state", "not_in", "CA", "NY"),
    clause("state", "not_in", "CA", negate=True),
    clause("email", "ends_with", "@example.com", case_insensitive=True),
    clause("email", "matches", "^a.*b$", negate=True),
    clause("age", "gte", 18),
    clause("age", "gt", 65, negate=True),
    clause("age", "lte", 99),
    clause("name", "starts_with", "Dr"),
    clause("name", "contains", "van", negate=True),
    clause("tier", "equals", "gold"),
    clause("version", "semver_eq", "1.0.0"),
    clause("version", "semver_lte", "1.9.9"),
    clause("version", "semver_gt", "0.9.0", context_kind="device"),
    clause("age", "lt", 13, 14.5),
    clause("version", "semver_gte", "2.1.0"),
    clause("version", "semver_lt", "3.0.0", negate=True),
    clause("created", "before", "2025-06-01T00:00:00Z"),
    clause("created", "after", "2025-01-01", negate=True),
    clause("phone", "exists"),
    clause("phone", "exists", negate=True),
    clause("plan", "in", "pro", context_kind="organization"),
    clause("key", "in_segment", "beta"),
    clause("key", "in_segment", "beta", "staff", negate=True),
    clause("key", "in_segment", "big-customers", context_kind="organization"),
    clause("tier", "equals", True, 3, None, ["a", "é"], {"x": 1}),
    clause("city", "in", "Zürich", "São Paulo"),
    clause("ip", "in_cidr", "10.0.0.0/8", "2001:db8::/32"),
    clause("ip", "in_cidr", "192.168.1.1", negate=True, context_kind="device"),
    clause("id", "mod", 10, 3),
    clause("id", "mod", 4, 0, negate=True),
    # Reading options an importer sets (the condition answers as the original system did), said in words.
    clause("state", "equals", "ca", case_insensitive=True),
    clause("age", "gt", "30", cast="python", numeric_strings=True),
    clause("id", "mod", 4, 1, numeric_strings=True),
    clause("version", "semver_gte", "2.0.0", semver="strict"),
    clause("version", "semver_eq", "1.0", semver="launchdarkly"),
    clause("version", "semver_lt", "v1.2", semver="flagd", cast="jsonlogic"),
    clause("version", "semver_gt", "1.0", semver="growthbook", cast="js", negate=True),
    clause("score", "starts_with", "1", stringify="python"),
    clause("score", "ends_with", "0", stringify="js", case_insensitive=True),
    clause("$flagd.timestamp", "gt", 1700000000, now="always"),
    clause("currentTime", "after", "2025-01-01T00:00:00Z", now="if_absent"),
    clause("/address/city", "in", "Paris", "Lyon"),
]

ON_OFF = (Variation(key="on", value=True), Variation(key="off", value=False))
THREE = (*ON_OFF, Variation(key="beta", value=True))


def flag(**fields: Any) -> Flag:
    return Flag(key="sample", variations=THREE, on=True, **fields)


FLAGS = [
    Flag(key="off"),
    Flag(key="archived", archived=True, on=True),
    flag(),
    flag(fallthrough=Serve(variation="off")),
    flag(fallthrough=rollout(("on", 25_000), ("off", 75_000))),
    flag(fallthrough=rollout(("on", 12_345), ("off", 87_655), by="company")),
    flag(fallthrough=rollout(("on", 100_000), ("off", 0), by="id", kind="organization")),
    flag(fallthrough=rollout(("off", 100_000))),
    flag(
        fallthrough=Serve(variation="off"),
        rules=(Rule(id="ca", clauses=(CLAUSES[0],), serve=rollout(("on", 10_000), ("off", 90_000))),),
    ),
    flag(
        fallthrough=Serve(variation="off"),
        rules=(Rule(id="ca-ios", clauses=(CLAUSES[1], clause("os", "in", "iOS")), serve=Serve(variation="on")),),
        targets=(Target(variation="on", values=("qa-1", "qa-2")), Target(variation="beta", values=())),
        prerequisites=(Prerequisite(flag="login-v2", variation="on"),),
    ),
    flag(
        fallthrough=rollout(("on", 50_000), ("beta", 25_000), ("off", 25_000)),
        rules=(
            Rule(id="always", serve=Serve(variation="beta")),
            Rule(id="many", clauses=tuple(CLAUSES), serve=rollout(("beta", 33_333), ("on", 66_667))),
        ),
    ),
    flag(targets=(Target(variation="beta", values=("ann",), context_kind="organization"),)),
    flag(rules=(Rule(id="empty", clauses=(), serve=Serve()),), off_variation="beta"),
    flag(  # LaunchDarkly's prerequisites, as its importer writes them: not met while the other flag is off
        prerequisites=(
            Prerequisite(flag="login-v2", variation="on", require_on=True),
            Prerequisite(flag="search", variation="off"),
        )
    ),
]


def python_side() -> dict[str, Any]:
    return {
        "clauses": [clause_text(c) for c in CLAUSES],
        "rules": [rule_text(r) for f in FLAGS for r in f.rules],
        "serves": [serve_text(f.fallthrough) for f in FLAGS],
        "lines": [configuration_lines(f) for f in FLAGS],
        "summaries": [summary(f) for f in FLAGS],
    }


BROWSER_SIDE = """async ({ clauses, flags }) => {
  const s = await import("/ui/sentences.js");
  return {
    clauses: clauses.map(s.clauseText),
    rules: flags.flatMap((f) => f.rules.map(s.ruleText)),
    serves: flags.map((f) => s.serveText(f.fallthrough)),
    lines: flags.map(s.configurationLines),
    summaries: flags.map(s.summary),
  };
}"""


async def test_the_browser_says_what_the_server_says(ui: UI) -> None:
    await ui.page.goto(f"{ui.base}/ui/")  # the module is served with the page; no need to sign in
    payload = {"clauses": msgspec.to_builtins(CLAUSES), "flags": msgspec.to_builtins(FLAGS)}
    browser = await ui.page.evaluate(BROWSER_SIDE, payload)
    python = python_side()
    for part, expected in python.items():
        assert browser[part] == expected, part
    # The samples are worth comparing: every operator, negated and not, and every shape of configuration.
    assert {c.op for c in CLAUSES} == set(Operator)
    assert "If state is CA, serve on to 10%, off to 90%" in python["rules"]
    assert python["summaries"][8] == "10% on for state is CA; else off"
    # Every reading option, with each of its values, is said in words (none as a bare option=value).
    assert {c.cast for c in CLAUSES} == set(CASTS)
    assert {c.now for c in CLAUSES} == set(NOW_MODES)
    assert {c.semver for c in CLAUSES} == set(DIALECTS)
    assert {c.stringify for c in CLAUSES} == {"", *STRINGIFY}
    assert not [text for text in python["clauses"] if "=" in text], "an option without words"
    assert "state equals ca (any case)" in python["clauses"]
    assert python["lines"][-1][:2] == ["Only if login-v2 is on (not while switched off)", "Only if search is off"]
    assert "age is more than 30 (numbers read from strings, compared as Flagsmith does)" in python["clauses"]
    assert "$flagd.timestamp is more than 1700000000 (the evaluation time, not the attribute)" in python["clauses"]
