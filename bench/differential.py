"""The long differential run: every bucketing scheme against its home system's own engine, 100,000 generated
contexts per scheme by default (tests/importers/differential.py; the suite runs 10,000 per scheme); then the
Flagsmith and GrowthBook importers whole against those systems' SDKs, 100,000 flag answers each by default
(tests/importers/peer_documents.py: generated documents, imported, every flag on every context).

    .venv/bin/python bench/differential.py [--flags 200] [--contexts 500] [--only launchdarkly,flagsmith-import]
        [--documents 500] [--document-contexts 120]

Prints one line per scheme and importer (flags, contexts compared, differences, seconds) and exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.importers.differential import SCHEMES, run_scheme
from tests.importers.peer_documents import IMPORTERS, run_importer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", type=int, default=200, help="generated flags per scheme (default 200)")
    parser.add_argument("--contexts", type=int, default=500, help="contexts per flag (default 500)")
    parser.add_argument("--only", default="", help="comma-separated schemes and NAME-import (default: all)")
    parser.add_argument("--documents", type=int, default=500, help="generated documents per importer (default 500)")
    parser.add_argument("--document-contexts", type=int, default=120, help="contexts per document (default 120)")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    schemes = [s for s in only if s in SCHEMES] if only else list(SCHEMES)
    importers = [s.removesuffix("-import") for s in only if s.endswith("-import")] if only else list(IMPORTERS)
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
    if importers:
        print(f"importers: {args.documents} documents x {args.document_contexts} contexts, every flag of each")
        print(f"{'importer':<24}{'flags':>8}{'answers':>12}{'differences':>13}{'seconds':>9}  skipped flags")
    for importer in importers:
        start = time.perf_counter()
        found = run_importer(importer, args.documents, args.document_contexts)
        seconds = time.perf_counter() - start
        print(
            f"{importer + '-import':<24}{found.flags:>8}{found.contexts:>12,}{len(found.differences):>13}"
            f"{seconds:>9.1f}  {found.skipped}"
        )
        for d in found.differences:
            print("   ", d)
        failed |= bool(found.differences)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
