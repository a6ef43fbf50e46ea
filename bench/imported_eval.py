#!/usr/bin/env python3
"""Evaluation speed of imported flags, each scheme against the peer's own SDK on the same flag, in one run.

    .venv/bin/python bench/imported_eval.py            # 5 x 200,000 evaluations per row
    .venv/bin/python bench/imported_eval.py --quick    # 3 x 20,000

The flag of eval_speed.py and shared/bench/peer_eval.py -- ON for a sticky 10% of users with state == CA and os ==
iOS, else OFF -- written in each system's own format (LaunchDarkly flag JSON, Unleash feature, flagd definition,
Flagsmith segment with PERCENTAGE_SPLIT, GrowthBook force rule with coverage), driven offline through that system's
SDK as the reference harness does, and written as a Flagstream flag bucketing with the system's scheme
(``Rollout.algorithm``); the ``-import`` rows time the flag as the flagd, Flagsmith and GrowthBook importers write
it from the system's own document, against that system's SDK. Before timing, both answer for the 10,000 contexts (half
CA/iOS) and must agree on every one: the bench refuses to time a flag that answers differently. Then 20,000 warm-up
evaluations and the repetitions of a one-line closure around each call (gc enabled, collected before each); the
median ns per evaluation is reported, Flagstream (engine ``evaluate`` and the SDK's ``bool_variation``) next to the
peer. The peers are test-only dependencies of the project (pyproject.toml ``dev``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

RULE = "new-checkout"
N_USERS = 10_000
PCT = 10


def users(n: int = N_USERS, seed: int = 42) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    other = [("CA", "Android"), ("NY", "iOS"), ("TX", "Android")]
    out = []
    for i in range(n):
        state, os_ = ("CA", "iOS") if i % 2 == 0 else other[(i // 2) % 3]
        out.append({"key": f"user-{rnd.getrandbits(64):016x}-{i}", "state": state, "os": os_})
    return out


def timed(fn: Callable[[Any], Any], ctxs: list[Any], evals: int, reps: int) -> float:
    order = list(range(len(ctxs)))
    random.Random(7).shuffle(order)
    seq = [ctxs[order[i % len(order)]] for i in range(evals)]
    for c in seq[:20_000]:
        fn(c)
    out = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter_ns()
        for c in seq:
            fn(c)
        out.append((time.perf_counter_ns() - t0) / len(seq))
    return statistics.median(out)


# -- Flagstream side ---------------------------------------------------------------------------------------------


def flagstream(flag: Any, segments: tuple[Any, ...] = ()) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(engine evaluate, SDK bool_variation) for ``flag`` folded into a ruleset as an SDK would."""
    from datetime import UTC, datetime

    from flagstream.cache import FlagEvaluations, RulesetCache
    from flagstream.engine import evaluate
    from flagstream.events import FlagCreated, SegmentCreated
    from flagstream.ruleset import Ruleset, apply_events

    at = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[tuple[int, Any]] = [
        (i + 1, SegmentCreated(project="default", environment="e", actor="b", at=at, segment=s))
        for i, s in enumerate(segments)
    ]
    events.append((len(events) + 1, FlagCreated(project="default", environment="e", actor="b", at=at, flag=flag)))
    ruleset, _ = apply_events(Ruleset(project="default", environment="e"), events)
    compiled, seq = ruleset.compiled, ruleset.seq

    class Client(FlagEvaluations):
        pass

    client = Client()
    client._cache = RulesetCache(ruleset)
    client._cache.ready = client._cache.loaded = True
    client._counter = None
    client._observe = None
    key = flag.key
    return (lambda c: evaluate(compiled, key, c, False, seq).value), (lambda c: client.bool_variation(key, c, False))


def rule_flag(rollout: Any, clauses: tuple[Any, ...] | None = None) -> Any:
    from flagstream.events import Clause, Flag, Operator, Rule, Serve

    if clauses is None:
        clauses = (
            Clause(attribute="state", op=Operator.IN, values=("CA",)),
            Clause(attribute="os", op=Operator.IN, values=("iOS",)),
        )
    serve = Serve(rollout=rollout) if rollout is not None else Serve(variation="on")
    return Flag(
        key=RULE, on=True, fallthrough=Serve(variation="off"), rules=(Rule(id="r", clauses=clauses, serve=serve),)
    )


def weighted(on: int, off: int | None = None) -> tuple[Any, ...]:
    from flagstream.events import WeightedVariation

    out = [WeightedVariation(variation="on", weight=on)]
    if off is not None:
        out.append(WeightedVariation(variation="off", weight=off))
    return tuple(out)


# -- the peers -------------------------------------------------------------------------------------------------------


def launchdarkly(tmp: str) -> dict[str, Any]:
    import ldclient
    from ldclient.config import Config
    from ldclient.context import Context
    from ldclient.integrations import Files

    from flagstream.events import Rollout

    clauses = [
        {"contextKind": "user", "attribute": a, "op": "in", "values": [v], "negate": False}
        for a, v in (("state", "CA"), ("os", "iOS"))
    ]
    rollout = {
        "bucketBy": "key",
        "contextKind": "user",
        "variations": [{"variation": 0, "weight": PCT * 1000}, {"variation": 1, "weight": 100000 - PCT * 1000}],
    }
    flag = {
        "key": RULE,
        "version": 1,
        "on": True,
        "salt": "pepper",
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "targets": [],
        "prerequisites": [],
        "rules": [{"id": "r", "clauses": clauses, "rollout": rollout}],
    }
    path = os.path.join(tmp, "ld.json")
    with open(path, "w") as f:
        json.dump({"flags": {RULE: flag}}, f)
    cfg = Config(
        "offline",
        update_processor_class=Files.new_data_source(paths=[path]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = ldclient.LDClient(config=cfg, start_wait=10)
    ours = rule_flag(
        Rollout(
            variations=weighted(PCT * 1000, 100000 - PCT * 1000),
            algorithm="launchdarkly",
            hash_prefix=f"{RULE}.pepper.",
        )
    )
    return {
        "peer": "launchdarkly-server-sdk",
        "how": "LDClient + Files data source, client.variation(key, Context, False)",
        "peer_ctx": lambda u: Context.builder(u["key"]).set("state", u["state"]).set("os", u["os"]).build(),
        "peer_eval": lambda c: client.variation(RULE, c, False),
        "ours": ours,
        "close": client.close,
    }


def unleash(tmp: str) -> dict[str, Any]:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import BaseCache
    from UnleashClient.constants import FEATURES_URL

    from flagstream.events import Rollout

    class MemCache(BaseCache):
        def __init__(self) -> None:
            self._d: dict[str, Any] = {}

        def set(self, key: str, value: Any) -> None:
            self._d[key] = value

        def mset(self, data: dict[str, Any]) -> None:
            self._d.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self._d.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._d

        def destroy(self) -> None:
            self._d.clear()

    constraints = [
        {"contextName": a, "operator": "IN", "values": [v], "inverted": False, "caseInsensitive": False}
        for a, v in (("state", "CA"), ("os", "iOS"))
    ]
    feature = {
        "name": RULE,
        "enabled": True,
        "strategies": [
            {
                "name": "flexibleRollout",
                "constraints": constraints,
                "parameters": {"rollout": str(PCT), "stickiness": "userId", "groupId": RULE},
            }
        ],
    }
    cache = MemCache()
    cache.set(FEATURES_URL, json.dumps({"version": 1, "features": [feature]}))
    cache.bootstrapped = True  # type: ignore[attr-defined]
    client = UnleashClient(
        url="http://127.0.0.1:9/unused",
        app_name="bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
        refresh_interval=86400,
    )
    client.initialize_client(fetch_toggles=False)
    ours = rule_flag(
        Rollout(
            variations=weighted(PCT * 1000),
            bucket_by="userId",
            algorithm="unleash",
            hash_prefix=f"{RULE}:",
            partial=True,
        )
    )
    return {
        "peer": "UnleashClient",
        "how": "bootstrapped in-memory cache, initialize_client(fetch_toggles=False); client.is_enabled(name, ctx)",
        "peer_ctx": lambda u: {"userId": u["key"], "properties": {"state": u["state"], "os": u["os"]}},
        "peer_eval": lambda c: client.is_enabled(RULE, c),
        "ours_ctx": lambda u: {**u, "userId": u["key"]},
        "ours": ours,
        "close": client.destroy,
    }


def flagd(tmp: str) -> dict[str, Any]:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    from flagstream.events import Rollout

    doc = {
        "flags": {
            RULE: {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {
                    "if": [
                        {"and": [{"==": [{"var": "state"}, "CA"]}, {"==": [{"var": "os"}, "iOS"]}]},
                        {"fractional": [["on", PCT], ["off", 100 - PCT]]},
                        "off",
                    ]
                },
            }
        }
    }
    core = FlagdCore()
    core.set_flags(doc)
    resolve = core.resolve_boolean_value
    ours = rule_flag(
        Rollout(
            variations=weighted(PCT * 1000, 100000 - PCT * 1000),
            algorithm="flagd_v2_pair",
            hash_prefix=RULE,
            ranges=((0, PCT), (PCT, 100)),
        )
    )
    return {
        "peer": "openfeature-flagd-core",
        "how": "FlagdCore (the in-process evaluator) resolve_boolean_value(key, False, EvaluationContext).value",
        "peer_ctx": lambda u: EvaluationContext(
            targeting_key=u["key"], attributes={"state": u["state"], "os": u["os"]}
        ),
        "peer_eval": lambda c: resolve(RULE, False, c).value,
        "ours": ours,
        "doc": doc,
    }


def flagsmith(tmp: str) -> dict[str, Any]:
    from flag_engine.engine import get_evaluation_result

    from flagstream.events import Clause, Operator, Segment, SegmentRule

    env = {
        "environment": {"key": "bench-env", "name": "bench"},
        "features": {RULE: {"key": "1000", "name": RULE, "enabled": False, "value": None}},
        "segments": {
            "5000": {
                "key": "5000",
                "name": "ca-ios-10",
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
    clauses = (
        Clause(attribute="state", op=Operator.IN, values=("CA",)),
        Clause(attribute="os", op=Operator.IN, values=("iOS",)),
    )
    segment = Segment(
        key="ca-ios-10",
        rules=(SegmentRule(id="r", clauses=clauses, weight=PCT * 1000, algorithm="flagsmith", hash_prefix="5000,"),),
    )
    ours = rule_flag(None, (Clause(op=Operator.IN_SEGMENT, values=("ca-ios-10",)),))
    return {
        "peer": "flagsmith-flag-engine",
        "how": "get_evaluation_result({environment, features, segments, identity})['flags'][key]['enabled']",
        "peer_ctx": lambda u: {"identifier": u["key"], "key": u["key"], "traits": {"state": u["state"], "os": u["os"]}},
        "peer_eval": lambda i: get_evaluation_result({**env, "identity": i})["flags"][RULE]["enabled"],
        "ours": ours,
        "segments": (segment,),
    }


def growthbook(tmp: str) -> dict[str, Any]:
    from growthbook import GrowthBook

    from flagstream.events import Rollout

    features = {
        RULE: {
            "defaultValue": False,
            "rules": [
                {
                    "id": "r",
                    "condition": {"state": "CA", "os": "iOS"},
                    "force": True,
                    "coverage": PCT / 100,
                    "hashAttribute": "id",
                }
            ],
        }
    }
    gb = GrowthBook(features=features)
    set_attributes, is_on = gb.set_attributes, gb.is_on

    def peer_eval(attrs: dict[str, Any]) -> bool:
        set_attributes(attrs)
        return is_on(RULE)

    ours = rule_flag(
        Rollout(
            variations=weighted(PCT * 1000),
            algorithm="growthbook",
            hash_prefix=RULE,
            hash_version=1,
            ranges=((0.0, PCT / 100),),
            partial=True,
        )
    )
    return {
        "peer": "growthbook",
        "how": "one GrowthBook(features=...) instance; gb.set_attributes(attrs) + gb.is_on(key)",
        "peer_ctx": lambda u: {"id": u["key"], "state": u["state"], "os": u["os"]},
        "peer_eval": peer_eval,
        "ours": ours,
        "close": gb.destroy,
    }


def flagsmith_import(tmp: str) -> dict[str, Any]:
    """The same flag as an environment document, imported by ``flagstream import flagsmith`` (typed ``cast:
    python`` clauses, the segment's split), against Flagsmith's SDK evaluating that document locally."""
    from flagsmith import Flagsmith

    from flagstream.services.importers import import_flagsmith

    def state(enabled: bool, django_id: int, priority: int | None = None) -> dict[str, Any]:
        return {"feature": {"id": 1, "name": RULE}, "enabled": enabled, "feature_state_value": None,
                "django_id": django_id, "featurestate_uuid": f"uuid-{django_id}",
                "multivariate_feature_state_values": [],
                "feature_segment": None if priority is None else {"priority": priority}}  # fmt: skip

    conditions = [
        {"operator": "EQUAL", "property_": "state", "value": "CA"},
        {"operator": "EQUAL", "property_": "os", "value": "iOS"},
        {"operator": "PERCENTAGE_SPLIT", "property_": "", "value": str(PCT)},
    ]
    doc = {"api_key": "bench-env", "name": "bench", "feature_states": [state(False, 1)],
           "project": {"segments": [{"id": 5000, "name": "ca-ios-10", "feature_states": [state(True, 2, 0)],
                                     "rules": [{"type": "ALL", "conditions": conditions, "rules": []}]}]},
           "identity_overrides": []}  # fmt: skip

    class Handler:
        def get_environment(self) -> dict[str, Any]:
            return doc

    client = Flagsmith(offline_mode=True, offline_handler=Handler())
    result = import_flagsmith(doc)
    assert not result.problems(), result.problems()
    identity_flags = client.get_identity_flags
    return {
        "peer": "flagsmith (SDK, offline)",
        "how": "Flagsmith(offline_mode, the environment document); get_identity_flags(id, traits).is_feature_enabled",
        "peer_ctx": lambda u: (u["key"], {"state": u["state"], "os": u["os"]}),
        "peer_eval": lambda c: identity_flags(c[0], c[1]).is_feature_enabled(RULE),
        "ours": result.flags[0],
        "segments": tuple(result.segments),
    }


def flagd_import(tmp: str) -> dict[str, Any]:
    """The flagd row's definition imported by ``flagstream import flagd`` (clauses with ``cast: jsonlogic``, JSON
    Logic's loose ``==``; a ``flagd_v2_pair`` rollout), against flagd's evaluator."""
    from flagstream.services.importers import import_flagd

    row = flagd(tmp)
    result = import_flagd(row.pop("doc"))
    assert not result.problems(), result.problems()
    return row | {"ours": result.flags[0]}


def growthbook_import(tmp: str) -> dict[str, Any]:
    """The same flag as a GrowthBook payload, imported by ``flagstream import growthbook`` (``cast: js``
    clauses, a partial ``growthbook`` rollout), against GrowthBook's SDK."""
    from growthbook import GrowthBook

    from flagstream.services.importers import import_growthbook

    rule = {"condition": {"state": "CA", "os": "iOS"}, "force": True, "coverage": PCT / 100, "hashAttribute": "id"}
    features = {RULE: {"defaultValue": False, "rules": [rule]}}
    gb = GrowthBook(features=features)
    set_attributes, is_on = gb.set_attributes, gb.is_on

    def peer_eval(attrs: dict[str, Any]) -> bool:
        set_attributes(attrs)
        return is_on(RULE)

    result = import_growthbook({"features": features})
    assert not result.problems(), result.problems()
    return {
        "peer": "growthbook",
        "how": "one GrowthBook(features=...) instance; gb.set_attributes(attrs) + gb.is_on(key)",
        "peer_ctx": lambda u: {"id": u["key"], "state": u["state"], "os": u["os"]},
        "peer_eval": peer_eval,
        "ours_ctx": lambda u: {**u, "id": u["key"]},
        "ours": result.flags[0],
        "close": gb.destroy,
    }


ROWS = {
    "launchdarkly": launchdarkly,
    "unleash": unleash,
    "flagd": flagd,
    "flagsmith": flagsmith,
    "growthbook": growthbook,
    "flagd-import": flagd_import,
    "flagsmith-import": flagsmith_import,
    "growthbook-import": growthbook_import,
}


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 x 20,000 evaluations instead of 5 x 200,000")
    parser.add_argument("--only", default="", help="comma-separated rows (default: all)")
    args = parser.parse_args()
    evals, reps = (20_000, 3) if args.quick else (200_000, 5)
    people = users()
    names = [n for n in args.only.split(",") if n] or list(ROWS)
    print(f"load average {os.getloadavg()[0]:.2f}; {reps} x {evals:,} evaluations per row; ns per evaluation (median)")
    print(f"{'scheme':<18}{'flagstream engine':>18}{'flagstream SDK':>16}{'peer SDK':>12}{'peer/SDK':>10}  peer")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = ROWS[name](tmp)
            engine, sdk = flagstream(row["ours"], row.get("segments", ()))
            ours_ctx = row.get("ours_ctx", dict)
            theirs = [row["peer_ctx"](u) for u in people]
            mine = [ours_ctx(u) for u in people]
            peer_answers = [bool(row["peer_eval"](c)) for c in theirs]
            our_answers = [bool(sdk(c)) for c in mine]
            differ = sum(a != b for a, b in zip(peer_answers, our_answers, strict=True))
            if differ:
                raise SystemExit(f"{name}: {differ} of {len(people)} contexts answered differently; not timed")
            on = sum(our_answers[0::2]) / (len(people) / 2)
            t_engine = timed(engine, mine, evals, reps)
            t_sdk = timed(sdk, mine, evals, reps)
            t_peer = timed(row["peer_eval"], theirs, evals, reps)
            print(
                f"{name:<18}{t_engine:>18.0f}{t_sdk:>16.0f}{t_peer:>12.0f}{t_peer / t_sdk:>9.1f}x  "
                f"{row['peer']} ({on:.1%} on among CA/iOS, 10,000 contexts agree)"
            )
            row.get("close", lambda: None)()


if __name__ == "__main__":
    main()
