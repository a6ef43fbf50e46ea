#!/usr/bin/env python3
"""The hot path in nanoseconds, the three rows of the reference harness alternated in one process.

``../shared/bench/peer_eval.py`` times each row in its own process, one after the other: when the host's speed
drifts between those processes (it does on the shared machine, even with nothing else running), the ratios drift
with it. This script times the same three closures as ``eval_instructions.py`` -- the bare-Python floor's rule,
``bool_variation`` of the always-on flag and of the rule flag, over the same 10,000 contexts -- taking turns, each
turn 200,000 evaluations (``time.perf_counter_ns`` around the loop, ``gc.collect()`` before), and reports the
fastest and the median turn of each row and the ratios of the fastest turns to the floor's.

    .venv/bin/python bench/hot_path.py               # the compiled accessors (about 10 s)
    FLAGSTREAM_PURE_PYTHON=1 .venv/bin/python bench/hot_path.py   # the pure-Python accessors
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, write_results
from eval_instructions import N, rows
from eval_speed import eval_sequence, make_users

import flagstream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=9, help="turns of each row (default 9)")
    args = ap.parse_args()
    fns = {name: fn for name, fn in rows().items() if name in ("floor", "always-on", "rule")}
    seq = eval_sequence([dict(u) for u in make_users()], N)
    for fn in fns.values():
        for ctx in seq[:20_000]:  # warm-up (specialisation)
            fn(ctx)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.turns):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter_ns()
            for ctx in seq:
                fn(ctx)
            times[name].append((time.perf_counter_ns() - start) / len(seq))
    floor = min(times["floor"])
    table = [(n, round(min(t)), round(statistics.median(t)), f"{min(t) / floor:.2f}") for n, t in times.items()]
    accessors = "compiled" if flagstream.COMPILED_ACCESSORS else "pure Python"
    print_table(f"ns per evaluation, {args.turns} turns each ({accessors} accessors)",
                ["row", "fastest", "median", "fastest x floor"], table)  # fmt: skip
    write_results("hot_path", {"accessors": accessors, "ns": times})


if __name__ == "__main__":
    main()
