#!/usr/bin/env python3
"""Instructions per evaluation, the shared reference harness's workload: a figure that a busy machine does not move.

Wall-clock figures (``eval_speed.py``, ``../shared/bench/peer_eval.py``) need a quiet machine: on the shared 2-core
machine several other jobs often run, and every row slows down by a factor that varies from run to run. This
script counts the CPU instructions instead, with valgrind's cachegrind (``apt-get install valgrind``): each row
runs in a fresh process under cachegrind, once without evaluating (the baseline: start-up, imports, the contexts)
and once with 200,000 evaluations of the harness's one-line closure over the 10,000 contexts; the difference
divided by 200,000 is the instructions per evaluation, harness loop included (as in the reference's figures).

Rows: ``floor`` (the reference's bare-Python rule), ``harness`` (``return True``: the loop itself), ``always-on``
and ``rule`` (``FlagstreamClient.from_file(...).bool_variation``, as the reference's Flagstream row: the compiled
accessors, ``flagstream._accel``), and the same two with the pure-Python accessors (``-py``,
``FLAGSTREAM_PURE_PYTHON=1``). The ratios
to the floor are what the reference's targets are about (rule within 2x, always-on no slower than the floor's rule).

    .venv/bin/python bench/eval_instructions.py          # about 2 minutes
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import print_table, write_results

HERE = Path(__file__).resolve().parent
ROWS = ["harness", "floor", "always-on", "rule", "always-on-py", "rule-py"]
N = 200_000


def rows() -> dict[str, Callable[[dict], object]]:
    """The rows' one-line closures, as the reference harness builds them (also used by ``hot_path.py``)."""
    sys.path.insert(0, str(HERE))
    import mmh3
    from eval_speed import PCT, RULE, TRIVIAL

    from flagstream import FlagstreamClient

    flags = [
        {"key": RULE, "on": True, "variations": [{"key": "on", "value": True}, {"key": "off", "value": False}],
         "off_variation": "off", "fallthrough": {"variation": "off"},
         "rules": [{"id": "ca-ios", "clauses": [{"attribute": "state", "op": "in", "values": ["CA"]},
                                                {"attribute": "os", "op": "in", "values": ["iOS"]}],
                    "serve": {"rollout": {"variations": [{"variation": "on", "weight": PCT * 1000},
                                                         {"variation": "off", "weight": 100_000 - PCT * 1000}]}}}]},
        {"key": TRIVIAL, "on": True, "fallthrough": {"variation": "on"}},
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flags.json"
        path.write_text(json.dumps({"environment": "production", "flags": flags}))
        client = FlagstreamClient.from_file(path)
    bv, h = client.bool_variation, mmh3.hash
    fns = {
        "harness": lambda ctx: True,
        "floor": lambda c: c["state"] == "CA" and c["os"] == "iOS" and h(c["key"] + RULE, signed=False) % 100 < 10,
        "always-on": lambda ctx: bv(TRIVIAL, ctx, False),
        "rule": lambda ctx: bv(RULE, ctx, False),
    }
    fns["always-on-py"], fns["rule-py"] = fns["always-on"], fns["rule"]  # fmt: skip
    return fns


def child(row: str) -> None:
    from eval_speed import eval_sequence, make_users

    fns = rows()
    seq = eval_sequence([dict(u) for u in make_users()], N)
    fn = fns[row.removesuffix(":base")]
    for ctx in seq[:20_000]:  # warm-up (specialisation), in the baseline too
        fn(ctx)
    if not row.endswith(":base"):
        for ctx in seq:
            fn(ctx)


def instructions(row: str) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if row.removesuffix(":base").endswith("-py"):  # the pure-Python accessors (no compiled flagstream._accel)
        env["FLAGSTREAM_PURE_PYTHON"] = "1"
    args = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
            __file__, "--child", row]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stderr
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    assert match, out[-2000:]
    return int(match.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    per_eval = {row: (instructions(row) - instructions(f"{row}:base")) / N for row in ROWS}
    floor = per_eval["floor"]
    rows = [(row, round(n), f"{n / floor:.2f}") for row, n in per_eval.items()]
    print_table("Instructions per evaluation (cachegrind), harness loop included", ["row", "instructions", "x floor"],
                rows)  # fmt: skip
    write_results("eval_instructions", {"instructions_per_eval": per_eval, "evaluations": N})


if __name__ == "__main__":
    main()
