#!/usr/bin/env python3
"""Local evaluation speed of the Flagstream engine against peer SDKs, side by side in one run.

    .venv/bin/python bench/eval_speed.py            # full run (about 2 minutes), peers venv created if needed
    .venv/bin/python bench/eval_speed.py --quick    # 20k evals x 3 reps
    .venv/bin/python bench/eval_speed.py --peers-python /path/to/python --only flagstream,growthbook

The same flag in every row -- "new-checkout": ON for a sticky 10% of users with state == CA and os == iOS,
else OFF -- plus an always-on flag, over the same 10,000 pre-built contexts (half CA/iOS). Each row runs in
its own fresh subprocess: Flagstream and the bare-Python floor in this interpreter, the peers in a separate
venv (they are not Flagstream dependencies; ``--peers-python`` or a venv made in ``--peers-venv``). Each row is
first verified (about 10% on among CA/iOS users, none among the others, always-on 100%, sticky on a second
pass), then timed: 20,000 warm-up evals, then 5 repetitions of 200,000 evals of a one-line closure around the
SDK call (gc enabled, gc.collect() before each); the median ns per evaluation is reported, with the ratio
peer / Flagstream. Then memory: RSS growth when 10,000 flags of that shape are loaded in the SDK's ruleset
(fold of 10,000 FlagCreated events, compiled), minus the same with 1 flag, each in a fresh process.

Results go to bench/results/eval_speed-<time>.{txt,json}. The method follows shared/bench/peer_eval.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RULE = "new-checkout"
TRIVIAL = "always-on"
N_USERS = 10_000
N_EVALS, REPS, WARMUP = 200_000, 5, 20_000
PCT = 10
OWN_ROWS = ["floor", "flagstream", "flagstream-client"]
PEER_ROWS = ["growthbook", "flagsmith-engine", "launchdarkly", "unleash"]
NON_MATCH = [("CA", "Android"), ("NY", "iOS"), ("TX", "Android")]
DEFAULT_PEERS_VENV = Path(os.environ.get("FLAGSTREAM_PEERS_VENV", "/tmp/flagstream-bench-peers"))

Row = tuple[str, str, Callable[[dict], Any], Callable[[Any], bool], Callable[[Any], bool], Callable[[], None]]


# ---------------------------------------------------------------------------------------------------------
# the workload: identical to the reference harness
# ---------------------------------------------------------------------------------------------------------


def make_users(n: int = N_USERS, seed: int = 42) -> list[dict]:
    rnd = random.Random(seed)
    users = []
    for i in range(n):
        key = f"user-{rnd.getrandbits(64):016x}-{i}"
        state, os_ = ("CA", "iOS") if i % 2 == 0 else NON_MATCH[(i // 2) % len(NON_MATCH)]
        users.append({"key": key, "state": state, "os": os_})
    return users


def eval_sequence(ctxs: list, n: int, seed: int = 7) -> list:
    order = list(range(len(ctxs)))
    random.Random(seed).shuffle(order)
    return [ctxs[order[i % len(order)]] for i in range(n)]


def verify(rule: Callable[[Any], bool], trivial: Callable[[Any], bool], users: list[dict], ctxs: list) -> dict:
    tgt_on = tgt_n = oth_on = triv_on = 0
    first = []
    for u, c in zip(users, ctxs, strict=True):
        r = bool(rule(c))
        first.append(r)
        if u["state"] == "CA" and u["os"] == "iOS":
            tgt_n += 1
            tgt_on += r
        else:
            oth_on += r
        triv_on += bool(trivial(c))
    sticky = all(bool(rule(c)) == r for c, r in zip(ctxs, first, strict=True))
    pct = 100.0 * tgt_on / tgt_n
    ok = PCT * 0.7 <= pct <= PCT * 1.3 and oth_on == 0 and triv_on == len(users) and sticky
    return {"ok": ok, "target_pct_on": round(pct, 2), "other_on": oth_on, "trivial_on": triv_on, "sticky": sticky}


def time_per_eval(fn: Callable[[Any], Any], seq: list, reps: int, warmup: int) -> list[float]:
    for c in seq[:warmup]:
        fn(c)
    out = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter_ns()
        for c in seq:
            fn(c)
        out.append((time.perf_counter_ns() - t0) / len(seq))
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------------------
# Flagstream rows (project interpreter)
# ---------------------------------------------------------------------------------------------------------


def flagstream_flags(n_rule_flags: int = 1) -> list:
    """The benchmark's flags as Flagstream data: no code, just the model."""
    from flagstream.events import Clause, Flag, Operator, Rollout, Rule, Serve, WeightedVariation

    def rule_flag(key: str) -> Flag:
        return Flag(
            key=key,
            on=True,
            fallthrough=Serve(variation="off"),
            rules=(
                Rule(
                    id="ca-ios",
                    clauses=(
                        Clause(attribute="state", op=Operator.IN, values=("CA",)),
                        Clause(attribute="os", op=Operator.IN, values=("iOS",)),
                    ),
                    serve=Serve(
                        rollout=Rollout(
                            variations=(
                                WeightedVariation(variation="on", weight=PCT * 1_000),
                                WeightedVariation(variation="off", weight=100_000 - PCT * 1_000),
                            )
                        )
                    ),
                ),
            ),
        )

    keys = [RULE] + [f"flag-{i:05d}" for i in range(n_rule_flags - 1)]
    return [rule_flag(k) for k in keys] + [Flag(key=TRIVIAL, on=True)]


def flagstream_ruleset(flags: list) -> Any:
    """Fold FlagCreated events into a ruleset, as the SDK does when they arrive (each flag compiled once)."""
    from datetime import UTC, datetime

    from flagstream.events import FlagCreated
    from flagstream.ruleset import Ruleset, apply_events

    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        (i + 1, FlagCreated(project="default", environment="production", actor="bench", at=at, flag=f))
        for i, f in enumerate(flags)
    ]
    ruleset, _ = apply_events(Ruleset(project="default", environment="production"), events)
    return ruleset


def row_floor(tmp: str) -> Row:
    import mmh3

    h = mmh3.hash

    def rule(ctx: dict) -> bool:
        return ctx["state"] == "CA" and ctx["os"] == "iOS" and h(ctx["key"] + RULE, signed=False) % 100 < PCT

    return (
        f"mmh3 {metadata.version('mmh3')}",
        'bare inline Python: state=="CA" and os=="iOS" and mmh3(key+flag) % 100 < 10; trivial = `return True`'
        " (= harness overhead)",
        dict,
        rule,
        lambda ctx: True,
        lambda: None,
    )


def row_flagstream(tmp: str) -> Row:
    from flagstream.engine import evaluate

    ruleset = flagstream_ruleset(flagstream_flags())
    compiled, seq = ruleset.compiled, ruleset.seq
    return (
        "flagstream (this checkout)",
        "engine: evaluate(ruleset.compiled, key, {'key','state','os'}, False, seq).value; flag defined as data "
        "(rule: state in [CA] AND os in [iOS] -> rollout 10,000/90,000 by key; fallthrough off)",
        dict,
        lambda c: evaluate(compiled, RULE, c, False, seq).value,
        lambda c: evaluate(compiled, TRIVIAL, c, False, seq).value,
        lambda: None,
    )


def row_flagstream_client(tmp: str) -> Row:
    """The public SDK API (typed accessor) over an in-memory ruleset, no NATS connection."""
    from flagstream.cache import FlagEvaluations, RulesetCache

    cache = RulesetCache(flagstream_ruleset(flagstream_flags()))
    cache.ready = True  # type: ignore[attr-defined]

    class Offline(FlagEvaluations):
        def __init__(self) -> None:
            cache.attach(self)

    client = Offline()
    bool_variation = client.bool_variation
    return (
        "flagstream (this checkout)",
        "SDK API: bool_variation(key, context, False) over the same ruleset (typed accessor, no I/O)",
        dict,
        lambda c: bool_variation(RULE, c, False),
        lambda c: bool_variation(TRIVIAL, c, False),
        lambda: None,
    )


def run_worker(name: str, n_evals: int, reps: int, warmup: int) -> dict:
    if name in PEER_ROWS:
        sys.path.insert(0, str(HERE))
        import peers

        factory: Callable[[str], Row] = peers.ADAPTERS[name]
    else:
        factory = {"floor": row_floor, "flagstream": row_flagstream, "flagstream-client": row_flagstream_client}[name]
    users = make_users()
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-") as tmp:
        t0 = time.perf_counter()
        version, notes, to_ctx, rule, trivial, close = factory(tmp)
        setup_s = time.perf_counter() - t0
        ctxs = [to_ctx(u) for u in users]
        checked = verify(rule, trivial, users, ctxs)
        res: dict[str, Any] = {"name": name, "version": version, "notes": notes, "verify": checked}
        res["setup_s"] = round(setup_s, 3)
        if checked["ok"]:
            seq = eval_sequence(ctxs, n_evals)
            r = time_per_eval(rule, seq, reps, warmup)
            t = time_per_eval(trivial, seq, reps, warmup)
            res.update(rule_ns=statistics.median(r), rule_all=r, trivial_ns=statistics.median(t), trivial_all=t)
        close()
    return res


def run_mem(n_flags: int) -> dict:
    """RSS growth loading ``n_flags`` rule flags (+1 always-on) into a ruleset; eval time of one among them."""
    import flagstream.engine
    import flagstream.ruleset

    users = make_users(2_000)
    gc.collect()
    rss0 = rss_bytes()
    ruleset = flagstream_ruleset(flagstream_flags(n_flags))
    gc.collect()
    rss1 = rss_bytes()
    compiled, seq = ruleset.compiled, ruleset.seq
    evaluate = flagstream.engine.evaluate
    r = time_per_eval(lambda c: evaluate(compiled, RULE, c, False, seq).value, eval_sequence(users, 20_000), 3, 2_000)
    return {"n_flags": n_flags, "rss_mb": (rss1 - rss0) / 2**20, "rule_ns": statistics.median(r)}


# ---------------------------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------------------------


def peers_python(explicit: str | None, venv: Path, install: bool) -> str | None:
    """A Python with the peer SDKs: the one given, or a venv made (once) in ``venv``."""
    if explicit:
        return explicit
    python = venv / "bin" / "python"
    probe = "import growthbook, flag_engine, ldclient, UnleashClient, mmh3"
    if python.exists() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return str(python)
    if not install:
        return None
    sys.path.insert(0, str(HERE))
    import peers

    print(f"# creating the peers venv in {venv} ({', '.join(peers.PACKAGES)})", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", *peers.PACKAGES], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"# peers install failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return str(python)


def sub(python: str, args: list[str], timeout: int = 1800) -> tuple[int, str, str]:
    env = dict(os.environ, RUST_LIB_BACKTRACE="0", PYTHONHASHSEED="0")
    p = subprocess.run(
        [python, str(Path(__file__).resolve()), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


def last_json(out: str) -> Any:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no result line")


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns:,.0f} ns" if ns < 10_000 else f"{ns / 1000:,.1f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k evals x 3 reps instead of 200k x 5")
    ap.add_argument("--only", help="comma-separated rows, e.g. flagstream,growthbook")
    ap.add_argument("--peers-python", help="a Python with the peer SDKs installed")
    ap.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS_VENV, help="where to make the peers venv")
    ap.add_argument("--no-install", action="store_true", help="do not create the peers venv; skip peers if absent")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--mem", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    n_evals, reps, warmup = (20_000, 3, 5_000) if a.quick else (N_EVALS, REPS, WARMUP)
    if a.worker:
        print(json.dumps(run_worker(a.worker, n_evals, reps, warmup)))
        return
    if a.mem:
        print(json.dumps(run_mem(a.mem)))
        return

    names = a.only.split(",") if a.only else OWN_ROWS + PEER_ROWS
    if "floor" not in names:
        names.insert(0, "floor")  # the machine's yardstick: every run reports it
    peer_py = peers_python(a.peers_python, a.peers_venv, not a.no_install) if set(names) & set(PEER_ROWS) else None
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say("# eval_speed: local evaluation, Flagstream vs peer SDKs (one row per fresh subprocess)")
    say(
        f"# python {sys.version.split()[0]} on {os.uname().machine}, {os.cpu_count()} cpus; evals={n_evals:,} "
        f"reps={reps} warmup={warmup:,} contexts={N_USERS:,}; {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    results: list[dict] = []
    for name in names:
        python = sys.executable if name in OWN_ROWS else peer_py
        if python is None:
            results.append({"name": name, "error": "no peers Python (use --peers-python or allow the venv install)"})
            continue
        rc, out, err = sub(python, ["--worker", name] + (["--quick"] if a.quick else []))
        try:
            res = last_json(out)
        except ValueError:
            res = {"name": name, "error": f"rc={rc}: " + (err.strip().splitlines() or ["?"])[-1][:300]}
        results.append(res)
        print(f"# done {name}", file=sys.stderr, flush=True)

    base = next((r for r in results if r["name"] == "flagstream" and "rule_ns" in r), None)
    floor = next((r for r in results if r["name"] == "floor" and "rule_ns" in r), None)
    say(
        f"{'row':<18} {'rule':>9} {'spread':>7} {'best':>9} {'always-on':>10} {'best':>9} {'check':>14} {'rule x':>7}"
        f" {'on x':>6}  version"
    )
    say("-" * 118)
    for r in results:
        if "error" in r:
            say(f"{r['name']:<18} FAILED: {r['error']}")
            continue
        v = r["verify"]
        chk = f"{v['target_pct_on']:.1f}% / {v['other_on']}" + ("" if v["ok"] else " BAD")
        ra = r.get("rule_all")
        spread = f"{100 * (max(ra) - min(ra)) / statistics.median(ra):.0f}%" if ra else "-"
        rx = f"{r['rule_ns'] / base['rule_ns']:.1f}" if base and "rule_ns" in r else "-"
        tx = f"{r['trivial_ns'] / base['trivial_ns']:.1f}" if base and "trivial_ns" in r else "-"
        rb = fmt_ns(min(ra)) if ra else "-"
        tb = fmt_ns(min(r["trivial_all"])) if r.get("trivial_all") else "-"
        say(
            f"{r['name']:<18} {fmt_ns(r.get('rule_ns')):>9} {spread:>7} {rb:>9} {fmt_ns(r.get('trivial_ns')):>10}"
            f" {tb:>9} {chk:>14} {rx:>7} {tx:>6}  {r['version']}"
        )
    say(
        "# rule / always-on: median ns per evaluation (best: fastest repetition, closer to a quiet machine's figure"
        " when others share the CPUs); 'rule x' and 'on x' = row median / flagstream median"
    )
    say("# check: % on among CA/iOS users / number on among the others (must be ~10% / 0)")
    if base and floor:
        say(
            f"# flagstream / bare-Python floor: rule {base['rule_ns'] / floor['rule_ns']:.1f}x; targets on a quiet"
            " machine where the floor is ~134 ns: rule < 1 us (7.5x), always-on < 300 ns"
        )

    memory: dict[str, Any] = {}
    if not a.no_memory:
        m = {}
        for n in (1, 10_000):
            rc, out, err = sub(sys.executable, ["--mem", str(n)])
            m[n] = last_json(out) if rc == 0 else {"error": err[-300:]}
        if all("rss_mb" in v for v in m.values()):
            grow = m[10_000]["rss_mb"] - m[1]["rss_mb"]
            memory = {
                "rss_mb_10000": grow,
                "bytes_per_flag": grow * 2**20 / 9_999,
                "rule_ns_10000": m[10_000]["rule_ns"],
            }
            say(
                f"# memory: 10,000 rule flags loaded in the SDK ruleset (Flag + compiled): RSS +{grow:.1f} MB "
                f"(~{memory['bytes_per_flag'] / 1024:.1f} KiB per flag); one rule flag among them evaluates in "
                f"{fmt_ns(m[10_000]['rule_ns'])}"
            )
        else:
            say(f"# memory: FAILED {m}")
    say()
    say("# how each row is configured")
    for r in results:
        if "notes" in r:
            say(f"# {r['name']}: {r['notes']}")

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"eval_speed-{stamp}.txt").write_text("\n".join(lines) + "\n")
    (RESULTS / f"eval_speed-{stamp}.json").write_text(json.dumps({"rows": results, "memory": memory}, indent=1))
    print(f"# written to {RESULTS}/eval_speed-{stamp}.txt", file=sys.stderr)


if __name__ == "__main__":
    main()
