"""The long differential run: every bucketing scheme against its home system's own engine, 100,000 generated
contexts per scheme by default (tests/importers/differential.py; the suite runs 10,000 per scheme).

    .venv/bin/python bench/differential.py [--flags 200] [--contexts 500] [--only launchdarkly,flagsmith]

Prints one line per scheme (flags, contexts compared, differences, seconds) and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.importers.differential import SCHEMES, run_scheme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", type=int, default=200, help="generated flags per scheme (default 200)")
    parser.add_argument("--contexts", type=int, default=500, help="contexts per flag (default 500)")
    parser.add_argument("--only", default="", help="comma-separated schemes (default: all)")
    args = parser.parse_args()
    schemes = [s for s in args.only.split(",") if s] or list(SCHEMES)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.flags} flags x {args.contexts} contexts per scheme")
    print(f"{'scheme':<24}{'flags':>8}{'contexts':>12}{'differences':>13}{'seconds':>9}")
    failed = False
    for scheme in schemes:
        start = time.perf_counter()
        tally = run_scheme(scheme, args.flags, args.contexts)
        seconds = time.perf_counter() - start
        print(f"{scheme:<24}{tally.flags:>8}{tally.contexts:>12,}{len(tally.differences):>13}{seconds:>9.1f}")
        for d in tally.differences:
            print("   ", d)
        failed |= bool(tally.differences)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
