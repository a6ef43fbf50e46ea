"""Peer SDKs configured with the benchmark's flag, each through its own offline mechanism (no network).

Imported by ``eval_speed.py --worker NAME`` inside the peers' venv (never the project's: the peers are not
Flagstream dependencies). The set-up follows the reference harness ``shared/bench/peer_eval.py``:

  "new-checkout": boolean; ON for a sticky 10% of users (bucketed by user key) whose attributes are
                  state == "CA" and os == "iOS"; OFF for everyone else.
  "always-on":    boolean, ON for everyone.

Each adapter returns ``(version, notes, to_context, rule, trivial, close)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import metadata
from typing import Any

RULE = "new-checkout"
TRIVIAL = "always-on"
PCT = 10

#: pip names of the peers, for the venv the benchmark creates.
PACKAGES = ["growthbook", "flagsmith-flag-engine", "launchdarkly-server-sdk", "UnleashClient", "mmh3"]

Adapter = tuple[str, str, Callable[[dict], Any], Callable[[Any], bool], Callable[[Any], bool], Callable[[], None]]


def version(*names: str) -> str:
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            out.append(f"{n} ?")
    return ", ".join(out)


def growthbook(tmp: str) -> Adapter:
    from growthbook import GrowthBook

    features = {
        RULE: {
            "defaultValue": False,
            "rules": [
                {
                    "id": f"{RULE}-r1",
                    "condition": {"state": "CA", "os": "iOS"},
                    "force": True,
                    "coverage": PCT / 100,
                    "hashAttribute": "id",
                }
            ],
        },
        TRIVIAL: {"defaultValue": True},
    }
    gb = GrowthBook(features=features)  # no api_host/client_key: never fetches
    set_attrs, is_on = gb.set_attributes, gb.is_on

    def rule(attrs: dict) -> bool:
        set_attrs(attrs)
        return is_on(RULE)

    def trivial(attrs: dict) -> bool:
        set_attrs(attrs)
        return is_on(TRIVIAL)

    return (
        version("growthbook"),
        "GrowthBook(features=dict); per eval set_attributes + is_on; rule {condition:{state:CA,os:iOS}, force, "
        "coverage 0.1, hashAttribute id}",
        lambda u: {"id": u["key"], "state": u["state"], "os": u["os"]},
        rule,
        trivial,
        gb.destroy,
    )


def flagsmith_engine(tmp: str) -> Adapter:
    from flag_engine.engine import get_evaluation_result

    rule_env = {
        "environment": {"key": "bench-env", "name": "bench"},
        "features": {RULE: {"key": "1000", "name": RULE, "enabled": False, "value": None}},
        "segments": {
            "5000": {
                "key": "5000",
                "name": "ca-ios-10pct",
                "rules": [
                    {
                        "type": "ALL",
                        "conditions": [
                            {"property": "state", "operator": "EQUAL", "value": "CA"},
                            {"property": "os", "operator": "EQUAL", "value": "iOS"},
                            {"property": "", "operator": "PERCENTAGE_SPLIT", "value": str(PCT)},
                        ],
                    }
                ],
                "overrides": [{"key": "1000", "name": RULE, "enabled": True, "value": None, "priority": 0}],
            }
        },
    }
    trivial_env = {
        "environment": {"key": "bench-env", "name": "bench"},
        "features": {TRIVIAL: {"key": "1", "name": TRIVIAL, "enabled": True, "value": None}},
        "segments": {},
    }

    def rule(ident: dict) -> bool:
        return get_evaluation_result({**rule_env, "identity": ident})["flags"][RULE]["enabled"]

    def trivial(ident: dict) -> bool:
        return get_evaluation_result({**trivial_env, "identity": ident})["flags"][TRIVIAL]["enabled"]

    return (
        version("flagsmith-flag-engine"),
        "get_evaluation_result(context); segment ALL(state EQUAL CA, os EQUAL iOS, PERCENTAGE_SPLIT 10) overriding "
        "the feature to enabled",
        lambda u: {
            "identifier": u["key"],
            "key": f"bench-env_{u['key']}",
            "traits": {"state": u["state"], "os": u["os"]},
        },
        rule,
        trivial,
        lambda: None,
    )


def launchdarkly(tmp: str) -> Adapter:
    import ldclient
    from ldclient.config import Config
    from ldclient.context import Context
    from ldclient.integrations import Files

    rule_flag = {
        "key": RULE,
        "version": 1,
        "on": True,
        "salt": RULE,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "targets": [],
        "contextTargets": [],
        "prerequisites": [],
        "rules": [
            {
                "id": f"{RULE}-ca-ios",
                "clauses": [
                    {"contextKind": "user", "attribute": "state", "op": "in", "values": ["CA"], "negate": False},
                    {"contextKind": "user", "attribute": "os", "op": "in", "values": ["iOS"], "negate": False},
                ],
                "rollout": {
                    "kind": "rollout",
                    "bucketBy": "key",
                    "contextKind": "user",
                    "variations": [
                        {"variation": 0, "weight": PCT * 1000},
                        {"variation": 1, "weight": 100000 - PCT * 1000},
                    ],
                },
                "trackEvents": False,
            }
        ],
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "clientSide": False,
    }
    trivial_flag = {
        "key": TRIVIAL,
        "version": 1,
        "on": True,
        "salt": TRIVIAL,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
        "targets": [],
        "rules": [],
        "prerequisites": [],
    }
    path = os.path.join(tmp, "ld_flags.json")
    with open(path, "w") as f:
        json.dump({"flags": {RULE: rule_flag, TRIVIAL: trivial_flag}}, f)
    cfg = Config(
        "offline-sdk-key",
        update_processor_class=Files.new_data_source(paths=[path]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = ldclient.LDClient(config=cfg, start_wait=10)
    assert client.is_initialized(), "LD client not initialized from file"
    variation = client.variation

    def ctx(u: dict) -> Any:
        return Context.builder(u["key"]).set("state", u["state"]).set("os", u["os"]).build()

    return (
        version("launchdarkly-server-sdk"),
        "LDClient + Files data source (rule with 2 clauses + rollout 10000/90000 by key), send_events=False; "
        "client.variation(key, Context, False)",
        ctx,
        lambda c: variation(RULE, c, False),
        lambda c: variation(TRIVIAL, c, False),
        client.close,
    )


def unleash(tmp: str) -> Adapter:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import BaseCache
    from UnleashClient.constants import FEATURES_URL

    class MemCache(BaseCache):
        def __init__(self) -> None:
            self._d: dict = {}

        def set(self, key: str, value: Any) -> None:
            self._d[key] = value

        def mset(self, data: dict) -> None:
            self._d.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self._d.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._d

        def destroy(self) -> None:
            self._d.clear()

    constraint = {"operator": "IN", "inverted": False, "caseInsensitive": False}
    doc = {
        "version": 1,
        "features": [
            {
                "name": RULE,
                "enabled": True,
                "type": "release",
                "project": "default",
                "impressionData": False,
                "strategies": [
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": str(PCT), "stickiness": "userId", "groupId": RULE},
                        "constraints": [
                            {"contextName": "state", "values": ["CA"], **constraint},
                            {"contextName": "os", "values": ["iOS"], **constraint},
                        ],
                    }
                ],
            },
            {"name": TRIVIAL, "enabled": True, "strategies": [{"name": "default", "parameters": {}}]},
        ],
    }
    cache = MemCache()
    cache.set(FEATURES_URL, json.dumps(doc))
    cache.bootstrapped = True  # type: ignore[attr-defined]
    client = UnleashClient(
        url="http://127.0.0.1:9/unused",
        app_name="flagstream-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
        refresh_interval=86400,
    )
    client.initialize_client(fetch_toggles=False)
    is_enabled = client.is_enabled
    return (
        version("UnleashClient", "yggdrasil-engine"),
        "bootstrapped in-memory cache, initialize_client(fetch_toggles=False); flexibleRollout 10% by userId with "
        "2 IN constraints; client.is_enabled(name, ctx)",
        lambda u: {"userId": u["key"], "properties": {"state": u["state"], "os": u["os"]}},
        lambda c: is_enabled(RULE, c),
        lambda c: is_enabled(TRIVIAL, c),
        client.destroy,
    )


ADAPTERS: dict[str, Callable[[str], Adapter]] = {
    "growthbook": growthbook,
    "flagsmith-engine": flagsmith_engine,
    "launchdarkly": launchdarkly,
    "unleash": unleash,
}
