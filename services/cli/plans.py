"""``flagstream plans create|list|show|pause|resume|advance|abort|results|metrics``: release plans and experiment
results through the admin API (``docs/release.md``).

::

    flagstream plans create new-checkout --variation on --steps 5,25,50,100 --hold 30m \\
        --guardrail errors:count:+0 --guardrail latency_ms:mean:+10% --promql 'sum(rate(http_5xx[5m])) > 0.5'
    flagstream plans show p1a2b3...        # the steps, what the guardian sees now, what happened and why
    flagstream plans results new-checkout  # per variation: users, each metric, the difference to the control

A guardrail is ``METRIC:KIND:CHANGE``: ``KIND`` is ``count`` (events per user), ``proportion`` (share of users with
one) or ``mean`` (mean value per user); ``CHANGE`` the worst move accepted, ``+`` for a rise that hurts (errors,
latency), ``-`` for a fall (conversions), in the metric's unit or in percent of the control (``+10%``). A PromQL
guardrail is the query, then ``>`` or ``<`` and the value its result may not go past. ``--steps`` takes each step's
percent, with its own hold if you like (``5:10m,25:1h,50:manual,100``); ``--hold`` is the others'.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from .api import ApiClient, ApiError, add_client_arguments, dispatch, output, table

_PROMQL = re.compile(r"^(?P<query>.*\S)\s*(?P<op>[<>])\s*(?P<value>[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*$", re.S)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="roll a variation of a flag out in steps, watched by guardrails")
    create.add_argument("flag", help="the flag's key")
    create.add_argument("--variation", required=True, help="the variation rolled out")
    create.add_argument("--steps", required=True, help="percent of each step, comma-separated: 5,25,50,100 "
                        "(a step's own hold after a colon: 5:10m,25:manual,100)")  # fmt: skip
    create.add_argument("--hold", default="manual", help="how long each step is held: 90s, 30m, 2h, 1d, or manual "
                        "(until someone runs plans advance); default manual")  # fmt: skip
    create.add_argument("--rule", default=None, help="the rule rolled out (its id); default: the default rule")
    create.add_argument("--guardrail", action="append", default=[], metavar="METRIC:KIND:CHANGE",
                        help="a tracked metric that may not move more than CHANGE (errors:count:+0, "
                        "latency_ms:mean:+10%%, signups:proportion:-0.01); repeatable")  # fmt: skip
    create.add_argument("--promql", action="append", default=[], metavar="'QUERY > VALUE'",
                        help="a PromQL query whose value may not go past VALUE (> for above, < for below); "
                        "repeatable")  # fmt: skip
    create.add_argument("--rollback", choices=("restore", "off"), default="restore",
                        help="on a breach: restore the rule's serve from before the plan (default), or turn the flag "
                        "off")  # fmt: skip
    create.add_argument("--error-rate", type=float, default=0.05, help="chance of a rollback when nothing is wrong, "
                        "over the whole plan (default 0.05)")  # fmt: skip
    create.add_argument("--min-users", type=int, default=100, help="users on each side before a guardrail is judged")
    add_client_arguments(create, suppress=True)
    listing = sub.add_parser("list", help="the environment's release plans, newest first")
    listing.add_argument("--status", choices=("all", "active", "ended"), default="all")
    add_client_arguments(listing, suppress=True)
    show = sub.add_parser("show", help="a plan: its steps, what the guardian sees, what happened and why")
    show.add_argument("id", help="the plan's id (see plans list)")
    add_client_arguments(show, suppress=True)
    for action, text in (
        ("pause", "stop taking steps (the guardian keeps watching)"),
        ("resume", "take steps again"),
        ("advance", "write the next step now"),
        ("abort", "stop: the rule serves what it served before the plan"),
    ):
        one = sub.add_parser(action, help=text)
        one.add_argument("id", help="the plan's id (see plans list)")
        add_client_arguments(one, suppress=True)
    results = sub.add_parser("results", help="experiment results of a flag with a percentage rollout")
    results.add_argument("flag", help="the flag's key")
    results.add_argument("--since", default=None, help="from (RFC 3339; default: its plan's current step, else an "
                         "hour ago)")  # fmt: skip
    results.add_argument("--control", default=None, help="the variation compared against (default: its off one)")
    results.add_argument("--metric", action="append", default=None, help="only this metric (repeatable)")
    add_client_arguments(results, suppress=True)
    add_client_arguments(sub.add_parser("metrics", help="the metrics this environment's applications track"),
                         suppress=True)  # fmt: skip


def guardrail(text: str) -> dict[str, Any]:
    """``METRIC:KIND:CHANGE`` as the API's guardrail body (ValueError saying what is wrong)."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0] or parts[2][:1] not in ("+", "-"):
        raise ValueError(
            f"--guardrail {text!r}: expected METRIC:KIND:+CHANGE or METRIC:KIND:-CHANGE, e.g. errors:count:+0"
        )
    metric, kind, change = parts
    bad = "increase" if change[0] == "+" else "decrease"
    amount = change[1:]
    body: dict[str, Any] = {"metric": metric, "kind": kind, "bad": bad}
    try:
        if amount.endswith("%"):
            body["max_change_pct"] = float(amount[:-1])
        else:
            body["max_change"] = float(amount)
    except ValueError:
        raise ValueError(f"--guardrail {text!r}: {amount!r} is not a number (or a percentage)") from None
    return body


def promql(text: str) -> dict[str, Any]:
    found = _PROMQL.match(text)
    if found is None:
        raise ValueError(f"--promql {text!r}: expected 'QUERY > VALUE' or 'QUERY < VALUE'")
    bad = "increase" if found["op"] == ">" else "decrease"
    return {"promql": found["query"], "bad": bad, "threshold": float(found["value"])}


def steps(text: str, hold: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    items = [s.strip() for s in text.split(",") if s.strip()]
    for i, item in enumerate(items):
        percent, _, own = item.partition(":")
        try:
            value = float(percent.rstrip("%"))
        except ValueError:
            raise ValueError(f"--steps: {percent!r} is not a percentage") from None
        step: dict[str, Any] = {"percent": value}
        if i < len(items) - 1 or own:  # the last step (100%) has nothing to hold
            step["hold"] = own or hold
        out.append(step)
    return out


def _create(client: ApiClient, args: argparse.Namespace) -> None:
    try:
        body: dict[str, Any] = {
            "flag": args.flag, "variation": args.variation, "steps": steps(args.steps, args.hold),
            "guardrails": [*(guardrail(g) for g in args.guardrail), *(promql(q) for q in args.promql)],
            "rollback": args.rollback, "error_rate": args.error_rate, "min_users": args.min_users,
            "comment": args.comment,
        }  # fmt: skip
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    if args.rule:
        body["rule"] = args.rule
    rec = client.request("POST", client.project_path(f"environments/{args.env}/plans"), json=body)
    output(args, rec, f"created release plan {rec['id']} for {rec['flag']} in {args.env}\n" + describe(rec))


def _list(client: ApiClient, args: argparse.Namespace) -> None:
    found = client.request("GET", client.project_path(f"environments/{args.env}/plans"), params={"status": args.status})
    rows = [
        (p["id"], p["flag"], p["variation"], p["status"], _where(p), (p.get("evidence") or {}).get("reason", ""))
        for p in found["items"]
    ]
    text = table(("ID", "FLAG", "VARIATION", "STATUS", "STEP", "WHY"), rows) if rows else "no release plans"
    output(args, found, text)


def _show(client: ApiClient, args: argparse.Namespace) -> None:
    base = client.project_path(f"environments/{args.env}/plans/{args.id}")
    rec = client.request("GET", base)
    timeline = client.request("GET", f"{base}/timeline")
    output(args, {**rec, "timeline": timeline["entries"]}, describe(rec, timeline["entries"]))


def _action(action: str) -> Any:
    def run(client: ApiClient, args: argparse.Namespace) -> None:
        path = client.project_path(f"environments/{args.env}/plans/{args.id}/{action}")
        rec = client.request("POST", path, json={"comment": args.comment})
        output(args, rec, f"release plan {rec['id']}: {rec['status']}\n" + describe(rec))

    return run


def _results(client: ApiClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {}
    if args.since:
        params["since"] = args.since
    if args.control:
        params["control"] = args.control
    if args.metric:
        params["metric"] = args.metric
    found = client.request("GET", client.project_path(f"environments/{args.env}/flags/{args.flag}/results"),
                           params=params)  # fmt: skip
    output(args, found, describe_results(found))


def _metrics(client: ApiClient, args: argparse.Namespace) -> None:
    found = client.request("GET", client.project_path(f"environments/{args.env}/metrics"))
    output(args, found, "\n".join(found["metrics"]) or "no metric tracked here yet (client.track)")


def run(args: argparse.Namespace) -> int:
    actions = {
        "create": _create, "list": _list, "show": _show, "pause": _action("pause"), "resume": _action("resume"),
        "advance": _action("advance"), "abort": _action("abort"), "results": _results, "metrics": _metrics,
    }  # fmt: skip
    return dispatch(args, "plans", actions)


# -- text ------------------------------------------------------------------------------------------------------------


def _where(rec: dict[str, Any]) -> str:
    if rec["step"] < 0:
        return "not started"
    return f"{rec['step'] + 1}/{len(rec['steps'])} ({rec['percent']:g}%)"


def _seconds(value: float | None) -> str:
    if value is None:
        return "manual"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _guardrail(g: dict[str, Any]) -> str:
    sign = "+" if g["bad"] == "increase" else "-"
    if g.get("promql"):
        return f"{g['promql']} {'>' if sign == '+' else '<'} {g['threshold']:g} (Prometheus)"
    change = f"{g['max_change'] * 100:g}%" if g.get("relative") else f"{g['max_change']:g}"
    return f"{g['metric']} ({g['kind']}) may not move {sign}{change}"


def describe(rec: dict[str, Any], timeline: list[dict[str, Any]] | None = None) -> str:
    """A plan for people: status, steps, guardrails, what the guardian sees, what happened and why."""
    lines = [f"{rec['flag']}: {rec['variation']} instead of {rec['control']}, {rec['status']}, step {_where(rec)}"]
    marks = []
    for i, s in enumerate(rec["steps"]):
        mark = "*" if i == rec["step"] else ("x" if i < rec["step"] else " ")
        marks.append(f"[{mark}] {s['percent']:g}% hold {_seconds(s['hold'])}" if i < len(rec["steps"]) - 1 or
                     s["hold"] is not None else f"[{mark}] {s['percent']:g}%")  # fmt: skip
    lines.append("steps: " + "  ".join(marks))
    if rec.get("next_step_in") is not None and rec["status"] == "running":
        lines.append(f"next step in {rec['next_step_in']:.0f}s")
    for g in rec["guardrails"]:
        lines.append(f"guardrail: {_guardrail(g)}")
    shares = [f"{i + 1}: {s.get('guardrail_alpha', 0):.3g} / {s.get('sample_ratio_alpha', 0):.3g}"
              for i, s in enumerate(rec["steps"]) if s.get("sample_ratio_alpha")]  # fmt: skip
    lines.append(f"error rate {rec['error_rate']:g}, split {rec.get('split', 'equal')} (per step, each tracked "
                 f"guardrail / the sample ratio test: {', '.join(shares) or 'none watched'})")  # fmt: skip
    watch = rec.get("watch")
    if watch and watch.get("guardrails"):
        lines.append(
            f"guardian (step {watch['step'] + 1}, {watch['treatment_users']} users on {rec['variation']}, "
            f"{watch['control_users']} on {rec['control']}, expected share {watch['expected_share']:.2%}):"
        )
        for v in watch["guardrails"]:
            if v["kind"] == "promql":
                lines.append(f"  {v['name']}: {v['state']}, value {_num(v.get('value'))}" +
                             (f" ({v['error']})" if v.get("error") else ""))  # fmt: skip
                continue
            t, c = v.get("treatment") or {}, v.get("control") or {}
            lines.append(
                f"  {v['name']} ({v['kind']}): {v['state']}; {rec['variation']} {_num(t.get('value'))} over "
                f"{t.get('users', 0)} users, {rec['control']} {_num(c.get('value'))} over {c.get('users', 0)}; "
                f"difference {_num(v.get('effect'))} [{_num(v.get('lower'))}, {_num(v.get('upper'))}], accepted "
                f"{_num(v['limit'])}; not counted: {v['unexposed']} from contexts never exposed"
            )
    evidence = rec.get("evidence")
    if evidence:
        who = next((e["actor"] for e in reversed(timeline or []) if e["type"] == "plan.stopping"), "")
        lines.append(f"rolled back{' by ' + who if who else ''}: {evidence['text']}")
    if rec.get("error"):
        lines.append(f"error: {rec['error']}")
    for e in timeline or []:
        lines.append(f"  {e['at'][:19]}  {e['type']:<24} {e['actor']}: {e['comment']}")
    return "\n".join(lines)


def describe_results(found: dict[str, Any]) -> str:
    lines = [
        f"{found['flag']} in {found['environment']} since {found['since'][:19]} (control {found['control']}, "
        f"{found['confidence']:.0%} always-valid intervals)",
        "users: " + ", ".join(f"{v} {n}" for v, n in found["users"].items()),
    ]
    for m in found["metrics"]:
        rows = [
            (v["variation"], v["users"], _num(v["value"]), _num(v.get("difference")),
             f"[{_num(v.get('lower'))}, {_num(v.get('upper'))}]" if v.get("difference") is not None else "")
            for v in m["variations"]
        ]  # fmt: skip
        lines.append(f"\n{m['metric']} ({m['kind']}); not counted: {m['unexposed']} from contexts never exposed")
        lines.append(table(("VARIATION", "USERS", "VALUE", "DIFFERENCE", "INTERVAL"), rows))
    return "\n".join(lines)
