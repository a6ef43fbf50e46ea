"""Prometheus guardrails: a PromQL query against the Prometheus server the team runs (the admin service's
``--prometheus-url``), over its HTTP API (``GET /api/v1/query``).

A query is checked when a plan is created: one the server rejects (a typo, an unknown function) is a 422 then, not a
silent guardrail at 2 AM. While a step runs, the query is evaluated every ``interval`` seconds; its value is the
largest (for a guardrail against increases) or smallest (against decreases) of the series it returns, a scalar as it
is, nothing for an empty result (no data is not a breach).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx


class QueryRejected(Exception):
    """The server answered that the query is not valid PromQL (or cannot run)."""


class Unreachable(Exception):
    """The server could not be asked (down, wrong address, a timeout)."""


@dataclass(frozen=True)
class Prometheus:
    url: str
    timeout: float = 5.0

    async def query(self, promql: str, bad: str = "increase") -> float | None:
        """The query's value now (see the module's text), or None when it returns nothing."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                answer = await http.get(f"{self.url.rstrip('/')}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise Unreachable(f"Prometheus at {self.url} could not be asked: {exc!r}") from exc
        try:
            body: dict[str, Any] = answer.json()
        except ValueError:
            raise Unreachable(f"Prometheus at {self.url} answered {answer.status_code} with no JSON") from None
        if body.get("status") != "success":
            if answer.status_code in (400, 422):
                raise QueryRejected(f"{body.get('errorType', 'error')}: {body.get('error', 'rejected')}")
            raise Unreachable(f"Prometheus at {self.url} answered {answer.status_code}: {body.get('error', '')}")
        return value_of(body.get("data", {}), bad)


def value_of(data: dict[str, Any], bad: str) -> float | None:
    kind = data.get("resultType")
    result = data.get("result")
    values: list[float] = []
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        values = [float(result[1])]
    elif kind == "vector" and isinstance(result, list):
        values = [float(item["value"][1]) for item in result if "value" in item]
    elif kind == "matrix" and isinstance(result, list):
        values = [float(item["values"][-1][1]) for item in result if item.get("values")]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return max(values) if bad == "increase" else min(values)


def breached(value: float | None, threshold: float, bad: str) -> bool:
    if value is None:
        return False
    return value > threshold if bad == "increase" else value < threshold
