#!/usr/bin/env python3
"""Release safety, measured: how fast the guardian rolls back a variation that raises errors, how often it rolls
back when nothing is wrong.

    .venv/bin/python bench/release_guardian.py                       # 20 detection trials, 200 A/A trials
    .venv/bin/python bench/release_guardian.py --trials 5 --aa 50    # shorter

**Detection, through the real system.** A ``flagstream admin`` process over a throwaway nats-server; a simulated
application in this process: a real ``AsyncFlagstreamClient`` evaluating the flag 1,000 times a second for users
drawn at random among 10,000, tracking ``errors`` with a 1% chance per evaluation, 3% for the users the new variation
is served to. Per trial, a fresh flag and a plan ``5% (hold 1h), 25%, 50%, 100%`` with the guardrail
``errors:count:+0`` and the default error rate (5%). The onset is the plan's first step (the moment the new variation
exists: the ``plan.advanced`` event's time); the detection time runs from it to the rollback event
(``plan.stopping``, actor ``guardian``), both stamped by the admin process. Each trial's draws come from
``(--seed, trial)``: the same seed gives each trial the same traffic whatever the trials before it took, so a second
run with it repeats the trials (new trials: another seed).

**False rollbacks (A/A).** Running 200 whole plans through the real system would take days, so the A/A trials run
the guardian's own decision code (``services/release``: ``judge`` and the sample ratio test, with each step's shares
of the error rate and ``t*`` as ``split_by_step`` gives them to a new plan) on the same traffic simulated second by
second (1,000 evaluations/s, 10,000 users, 1% errors on both sides), each trial a plan of three watched steps (5%,
25%, 50%) held ``--aa-hold`` seconds each, looked at every second as the runner does. The share of trials with any
rollback is the false rollback rate.

**False rollbacks through the real system** (``--aa-real ROUNDS``): the same admin process and SDK client as the
detection trials; per round ``--aa-real-flags`` fresh flags, each with an A/A plan (5%, 25%, 50% held
``--aa-real-hold`` seconds, then 100%) guarded by a metric of its own (``errors-k``, 1% per evaluation on both
variations, drawn independently per flag, so the plans' verdicts are independent); the app evaluates every flag
for each of its 1,000 users a second. A plan that does not complete is a false rollback.

The machine's load average is printed and stored with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import ENVIRONMENT, AdminProcess, nats_server, percentile, print_table, write_results

from flagstream import AsyncFlagstreamClient
from flagstream.services.release import judge, srm_mismatch
from flagstream.services.release.stats import Shares, split_by_step

PLAN = "/environments/production/plans"


class App:
    """1,000 evaluations a second of one flag for users drawn among ``users``, errors tracked by variation."""

    def __init__(self, client: AsyncFlagstreamClient, seed: int, users: int = 10_000, rate: float = 1_000.0) -> None:
        self.client = client
        self.rng = np.random.default_rng(seed)
        self.users = users
        self.rate = rate
        self.flag = ""
        self.error_rate = {"on": 0.03, "off": 0.01}
        self.evaluations = 0

    async def run(self, stop: asyncio.Event) -> None:
        tick = 0.02
        per_tick = int(self.rate * tick)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            who = self.rng.integers(0, self.users, per_tick)
            draws = self.rng.random(per_tick)
            for user_id, draw in zip(who.tolist(), draws.tolist(), strict=True):
                user = {"key": f"user-{user_id}"}
                variation = self.client.variation_detail(self.flag, user, False).variation or "off"
                if draw < self.error_rate.get(variation, 0.01):
                    self.client.track("errors", user)
            self.evaluations += per_tick
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > 1.0:  # far behind: no burst to catch up
                next_at = loop.time()


async def detection(trials: int, limit: float, seed: int = 1) -> dict[str, Any]:
    times: list[float] = []
    outcomes: list[dict[str, Any]] = []
    with nats_server() as server, tempfile.TemporaryDirectory() as folder:
        admin = AdminProcess(server.url, Path(folder), "warmup")
        await admin.start()
        client = AsyncFlagstreamClient(server.url, environment=ENVIRONMENT, track_interval=1.0)
        assert await client.start(wait=30)
        app = App(client, seed=seed)
        stop = asyncio.Event()
        app.flag = "warmup"
        task = asyncio.create_task(app.run(stop))
        try:
            # The metric must be known before a plan may name it.
            metrics = f"/environments/{ENVIRONMENT}/metrics"
            while "errors" not in (await admin.http.get(metrics)).json()["metrics"]:
                client.track("errors", {"key": "warmup"})
                await asyncio.sleep(0.2)
            for trial in range(trials):
                key = f"checkout-{trial}"
                flag = {"key": key, "on": True, "fallthrough": {"variation": "off"}}
                made = await admin.http.post(f"/environments/{ENVIRONMENT}/flags", json=flag)
                assert made.status_code == 201, made.text
                assert await client.wait_for_sequence(made.json()["version"], timeout=30)
                app.flag = key
                await asyncio.sleep(2)  # the users meet the flag as it is before the plan
                body = {"flag": key, "variation": "on", "steps": [{"percent": 5, "hold": "1h"}, {"percent": 25,
                        "hold": "1h"}, {"percent": 50, "hold": "1h"}, {"percent": 100}],
                        "guardrails": [{"metric": "errors", "kind": "count", "max_change": 0}]}  # fmt: skip
                # Each trial's draws from its own seed: the same trial sees the same traffic whatever the trials
                # before it took (with one stream for all, a faster guardian shifted every later trial's draws).
                app.rng = np.random.default_rng((seed, trial))
                created = await admin.http.post(PLAN, json=body)
                assert created.status_code == 201, created.text
                plan_id = created.json()["id"]
                evaluated, began = app.evaluations, time.monotonic()
                deadline = time.monotonic() + limit
                plan: dict[str, Any] = {}
                while time.monotonic() < deadline:
                    plan = (await admin.http.get(f"{PLAN}/{plan_id}")).json()
                    if plan["status"] not in ("running", "paused", "rolling_back"):
                        break
                    await asyncio.sleep(0.25)
                rate = (app.evaluations - evaluated) / max(1e-9, time.monotonic() - began)  # what the app kept up
                timeline = (await admin.http.get(f"{PLAN}/{plan_id}/timeline")).json()["entries"]
                onset = next(e["at"] for e in timeline if e["type"] == "plan.advanced")
                stopped = next((e for e in timeline if e["type"] == "plan.stopping"), None)
                seconds = None
                if stopped is not None:
                    seconds = _seconds(stopped["at"]) - _seconds(onset)
                    times.append(seconds)
                evidence = plan.get("evidence") or {}
                outcomes.append({
                    "trial": trial, "status": plan.get("status"), "seconds": seconds, "step": plan.get("step"),
                    "reason": evidence.get("reason"), "effect": evidence.get("effect"),
                    "treatment_users": evidence.get("treatment_users"), "control_users": evidence.get("control_users"),
                    "evaluations_per_s": round(rate), "load": os.getloadavg()[0],
                })  # fmt: skip
                shown = f"{seconds:.1f} s" if seconds is not None else "no rollback"
                print(f"trial {trial + 1}/{trials}: {plan.get('status')} after {shown} "
                      f"({evidence.get('treatment_users')} vs {evidence.get('control_users')} users), "
                      f"{rate:.0f} evaluations/s, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        finally:
            stop.set()
            await task
            await client.close()
            await admin.close()
    return {"times": times, "outcomes": outcomes, "evaluations": app.evaluations, "seed": seed}


class ManyFlags:
    """The A/A app of the real-system check: each second ``rate`` users drawn among ``users``, each evaluates every
    flag of ``flags``; flag k's own metric ``errors-k`` fails with 1% on either variation (independent draws, so the
    plans' verdicts are independent)."""

    def __init__(self, client: AsyncFlagstreamClient, seed: int, users: int = 10_000, rate: float = 1_000.0) -> None:
        self.client = client
        self.rng = np.random.default_rng(seed)
        self.users = users
        self.rate = rate
        self.flags: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        tick = 0.02
        per_tick = int(self.rate * tick)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            flags = list(self.flags)
            who = self.rng.integers(0, self.users, per_tick).tolist()
            draws = self.rng.random((per_tick, max(1, len(flags)))).tolist()
            for user_id, row in zip(who, draws, strict=True):
                user = {"key": f"user-{user_id}"}
                for k, flag in enumerate(flags):
                    self.client.variation_detail(flag, user, False)
                    if row[k] < 0.01:
                        self.client.track(f"errors-{k}", user)
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > 1.0:
                next_at = loop.time()


async def aa_real(rounds: int, flags: int, hold: float, limit: float) -> dict[str, Any]:
    """A/A plans through the real system, ``flags`` at a time: the same path as detection (SDK, metrics stream,
    the runner's window and guardian), no difference between the variations."""
    outcomes: list[dict[str, Any]] = []
    with nats_server() as server, tempfile.TemporaryDirectory() as folder:
        admin = AdminProcess(server.url, Path(folder), "warmup")
        await admin.start()
        client = AsyncFlagstreamClient(server.url, environment=ENVIRONMENT, track_interval=1.0)
        assert await client.start(wait=30)
        app = ManyFlags(client, seed=2)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            names = {f"errors-{k}" for k in range(flags)}
            metrics = f"/environments/{ENVIRONMENT}/metrics"
            while not names <= set((await admin.http.get(metrics)).json()["metrics"]):
                for name in names:
                    client.track(name, {"key": "warmup"})
                await asyncio.sleep(0.2)
            for r in range(rounds):
                keys = [f"aa-{r}-{k}" for k in range(flags)]
                version = 0
                for key in keys:
                    made = await admin.http.post(
                        f"/environments/{ENVIRONMENT}/flags",
                        json={"key": key, "on": True, "fallthrough": {"variation": "off"}},
                    )
                    assert made.status_code == 201, made.text
                    version = made.json()["version"]
                assert await client.wait_for_sequence(version, timeout=30)
                app.flags = keys
                await asyncio.sleep(2)
                ids = []
                for k, key in enumerate(keys):
                    steps = [{"percent": p, "hold": hold} for p in (5, 25, 50)] + [{"percent": 100}]
                    body = {
                        "flag": key,
                        "variation": "on",
                        "steps": steps,
                        "guardrails": [{"metric": f"errors-{k}", "kind": "count", "max_change": 0}],
                    }
                    created = await admin.http.post(PLAN, json=body)
                    assert created.status_code == 201, created.text
                    ids.append(created.json()["id"])
                deadline = time.monotonic() + limit
                ended: dict[str, dict[str, Any]] = {}
                while len(ended) < len(ids) and time.monotonic() < deadline:
                    for plan_id in ids:
                        if plan_id not in ended:
                            plan = await _plan(admin, plan_id)
                            if plan and plan["status"] not in ("running", "paused", "rolling_back"):
                                ended[plan_id] = plan
                    await asyncio.sleep(1)
                for plan_id in ids:
                    plan = ended.get(plan_id) or await _plan(admin, plan_id) or {"status": "unknown", "step": None}
                    evidence = plan.get("evidence") or {}
                    outcomes.append(
                        {
                            "plan": plan_id,
                            "status": plan["status"],
                            "step": plan["step"],
                            "reason": evidence.get("reason"),
                            "text": evidence.get("text"),
                        }
                    )
                shown = [o["status"] + (f" ({o['reason']}, step {o['step'] + 1})" if o["reason"] else "")
                         for o in outcomes[-len(ids) :]]  # fmt: skip
                print(f"A/A round {r + 1}/{rounds}: {', '.join(shown)}, load {os.getloadavg()[0]:.1f}", flush=True)
                app.flags = []
        finally:
            stop.set()
            await task
            await client.close()
            await admin.close()
    return {"rounds": rounds, "flags": flags, "hold_s": hold, "outcomes": outcomes}


async def _plan(admin: AdminProcess, plan_id: str) -> dict[str, Any]:
    """The plan, or ``{}`` if the admin could not answer this time (a 503 while NATS is slow on a loaded machine)."""
    import httpx

    try:
        answer = await admin.http.get(f"{PLAN}/{plan_id}")
    except httpx.TransportError:
        return {}
    return answer.json() if answer.status_code == 200 else {}  # type: ignore[no-any-return]


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def aa_trial(seed: int, hold: int, steps: tuple[float, ...], shares: list[Shares], rate: int = 1_000,
             users: int = 10_000, p: float = 0.01, min_users: int = 100) -> str | None:  # fmt: skip
    """One A/A plan, second by second: the reason of a (false) rollback, or None. ``shares``: each step's error
    rates (the guardrail's, the sample ratio test's), as the runner gives them (``services/release/plans.py``)."""
    rng = np.random.default_rng(seed)
    for k, (weight, share) in enumerate(zip(steps, shares, strict=True)):
        treated = rng.random(users) < weight  # each step: the window starts afresh
        seen = np.zeros(users, bool)
        errors = np.zeros(users)
        for _ in range(hold):
            who = rng.integers(0, users, rate)
            seen[who] = True
            np.add.at(errors, who, rng.random(rate) < p)
            t, c = seen & treated, seen & ~treated
            if judge(errors[t], errors[c], bad="increase", max_change=0.0, relative=False, alpha=share.guardrail,
                     min_users=min_users, t_star=share.t_star).breached:  # fmt: skip
                return f"guardrail at step {k + 1}"
            if srm_mismatch([int(t.sum()), int(c.sum())], [weight, 1 - weight], share.sample_ratio):
                return f"sample_ratio at step {k + 1}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="detection trials through the real system")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds a detection trial may take")
    ap.add_argument("--seed", type=int, default=1, help="the simulated app's draws, per trial from (seed, trial): "
                    "the same seed repeats the same trials")  # fmt: skip
    ap.add_argument("--aa", type=int, default=200, help="A/A trials (the guardian's code on simulated traffic)")
    ap.add_argument("--aa-hold", type=int, default=300, help="seconds each A/A step is held (looked at each second)")
    ap.add_argument(
        "--aa-real",
        type=int,
        default=0,
        help="rounds of A/A plans through the real system (default none: the simulated ones only)",
    )
    ap.add_argument("--aa-real-flags", type=int, default=10, help="A/A plans at a time in a real-system round")
    ap.add_argument("--aa-real-hold", type=float, default=60.0, help="seconds each real-system A/A step is held")
    args = ap.parse_args()
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}", flush=True)
    found: dict[str, Any] = {"times": [], "outcomes": []}
    if args.trials:
        found = asyncio.run(detection(args.trials, args.timeout, args.seed))
    load_mid = os.getloadavg()
    steps = (0.05, 0.25, 0.5)
    shares = split_by_step(0.05, [*steps, 1.0], 1)[: len(steps)]  # the plan 5%, 25%, 50%, 100%, one guardrail
    started = time.monotonic()
    reasons = [aa_trial(10_000 + i, args.aa_hold, steps, shares) for i in range(args.aa)]
    aa_seconds = time.monotonic() - started
    false = [r for r in reasons if r is not None]
    real: dict[str, Any] = {}
    if args.aa_real:
        real = asyncio.run(aa_real(args.aa_real, args.aa_real_flags, args.aa_real_hold,
                                   args.aa_real_hold * 3 + args.timeout))  # fmt: skip
    load_after = os.getloadavg()
    times = found["times"]
    rows = []
    if times:
        rows.append(("detection: rolled back", f"{len(times)} of {args.trials}"))
        rows.append(("detection p50 / p95 / max (s)", f"{statistics.median(times):.1f} / {percentile(times, 95):.1f} / "
                     f"{max(times):.1f}"))  # fmt: skip
    rows.append(("A/A false rollbacks", f"{len(false)} of {args.aa} ({len(false) / max(1, args.aa):.1%})"))
    if real:
        outs = real["outcomes"]
        wrong = [o for o in outs if o["status"] != "completed"]
        rows.append((f"A/A through the real system ({args.aa_real_flags} plans at a time, steps held "
                     f"{args.aa_real_hold:g} s): not completed", f"{len(wrong)} of {len(outs)} "
                     f"({len(wrong) / max(1, len(outs)):.1%})"))  # fmt: skip
    rows.append(("load average (before, after detection, after A/A)",
                 f"{load_before[0]:.1f}, {load_mid[0]:.1f}, {load_after[0]:.1f}"))  # fmt: skip
    print_table("Release safety", ("", "value"), rows)
    write_results("release_guardian", {
        "detection": found, "aa": {"trials": args.aa, "hold_s": args.aa_hold, "steps": steps,
                                   "shares": [[a.guardrail, a.sample_ratio] for a in shares],
                                   "false_rollbacks": len(false), "reasons": false, "seconds": round(aa_seconds, 1)},
        "aa_real": real, "load_before": load_before, "load_mid": load_mid, "load_after": load_after,
    })  # fmt: skip


if __name__ == "__main__":
    main()
