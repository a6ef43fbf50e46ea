"""Experiment results from the same data the guardian reads, for a flag with a percentage rollout and no plan: a real
SDK client evaluates the flag for its users and tracks a conversion and a latency; the API gives, per variation, the
users the rollout served and each metric's value as the application produced it, the difference to the control with
an interval around it; what contexts never served track is counted apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from flagstream import AsyncFlagstreamClient
from tests.helpers import WithHistory, admin_with_history, until
from tests.release.helpers import ENV, ok, seed

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    async with admin_with_history(nats_url, tmp_path) as found:
        yield found


def _metric(results: dict[str, Any], name: str, kind: str) -> dict[str, dict[str, Any]]:
    found = next(m for m in results["metrics"] if (m["metric"], m["kind"]) == (name, kind))
    return {v["variation"]: v for v in found["variations"]}


async def test_results_per_variation_are_what_the_application_did(api: WithHistory, nats_url: str) -> None:
    http = api.http
    await seed(http, nats_url)
    split = {"variations": [{"variation": "a", "weight": 50_000}, {"variation": "b", "weight": 50_000}]}
    await ok(http, "PATCH", f"{ENV}/flags/banner", {"fallthrough": {"variation": None, "rollout": split}})
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.1)
    served: dict[str, list[int]] = {"a": [], "b": []}
    latency: dict[str, list[float]] = {"a": [], "b": []}
    converted: dict[str, int] = {"a": 0, "b": 0}
    try:
        assert await client.start(wait=15)
        version = (await ok(http, "GET", f"{ENV}/flags/banner"))["version"]
        assert await client.wait_for_sequence(version, timeout=15)
        # Visitors this client never served the flag: not counted, counted as such. (A client notes what rollouts
        # serve from its first track() call on: these come first.)
        for i in range(5):
            client.track("converted", {"key": f"visitor-{i}"})
        for i in range(600):
            user = {"key": f"user-{i}"}
            variation = client.variation_detail("banner", user, "none").variation
            assert variation in ("a", "b")
            served[variation].append(i)
            # b converts one user in two, a one in four; b is 20 ms slower.
            if i % (2 if variation == "b" else 4) == 0:
                client.track("converted", user)
                converted[variation] += 1
            value = 100.0 + (20.0 if variation == "b" else 0.0) + i % 7
            client.track("latency_ms", user, value)
            latency[variation].append(value)

        async def all_in() -> bool:
            found = await ok(http, "GET", f"{ENV}/flags/banner/results")
            return bool(sum(found["users"].values()) == 600 and found["metrics"]
                        and _metric(found, "latency_ms", "mean")["b"]["users"] == len(served["b"])
                        and _metric(found, "converted", "count")["a"]["users"] == len(served["a"]))  # fmt: skip

        await until(all_in, "every user and metric of the application in the results")
    finally:
        await client.close()
    results = await ok(http, "GET", f"{ENV}/flags/banner/results")
    assert results["control"] == "a"  # the flag's off variation, unless asked otherwise
    assert results["users"] == {"a": len(served["a"]), "b": len(served["b"])}
    assert 200 < len(served["b"]) < 400  # a 50/50 rollout
    share = _metric(results, "converted", "proportion")
    for v in ("a", "b"):
        assert share[v]["users"] == len(served[v])
        assert share[v]["value"] == pytest.approx(converted[v] / len(served[v]))
    assert share["a"]["difference"] is None  # the control itself
    difference = converted["b"] / len(served["b"]) - converted["a"] / len(served["a"])
    assert share["b"]["difference"] == pytest.approx(difference)
    assert share["b"]["lower"] < difference < share["b"]["upper"]
    assert share["b"]["lower"] > 0  # a one-in-two against one-in-four conversion over 600 users: clearly better
    latencies = _metric(results, "latency_ms", "mean")
    for v in ("a", "b"):
        assert latencies[v]["value"] == pytest.approx(mean(latency[v]))
    assert latencies["b"]["difference"] == pytest.approx(mean(latency["b"]) - mean(latency["a"]))
    assert latencies["b"]["lower"] < latencies["b"]["difference"] < latencies["b"]["upper"]
    counts = _metric(results, "converted", "count")
    assert counts["b"]["value"] == pytest.approx(converted["b"] / len(served["b"]))  # events per user
    unexposed = next(m for m in results["metrics"] if m["metric"] == "converted")["unexposed"]
    assert unexposed == 5
    # Against another control, and a control the flag does not have.
    flipped = await ok(http, "GET", f"{ENV}/flags/banner/results", params={"control": "b", "metric": "converted"})
    assert _metric(flipped, "converted", "proportion")["a"]["difference"] == pytest.approx(-difference)
    assert {m["metric"] for m in flipped["metrics"]} == {"converted"}
    bad = await http.get(f"{ENV}/flags/banner/results", params={"control": "c"})
    assert bad.status_code == 400
    assert "control" in bad.json()["error"]
