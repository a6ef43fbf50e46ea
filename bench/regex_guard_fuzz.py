"""Does the regex check (``sdk/regex_guard.py``) let a catastrophically backtracking pattern through?

Builds random patterns from the risky pieces (``.*``, ``a+``, ``(a|ab)``, ``(a|a)``, ``{5}``, ``{2,8}``,
nesting up to three deep), keeps those ``regex_problem`` accepts and times ``re.search`` on adversarial
strings. Each accepted pattern is printed before it runs, so a hang shows the culprit. Reports how many were
accepted and the slowest search.

    .venv/bin/python bench/regex_guard_fuzz.py [--patterns 6000] [--seeds 1,2,3,4,5,6]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from flagstream.operators import regex_problem

ATOMS = ["a", "b", ".", r"\d", "[ab]", "a?", "(a|b)", "(a|ab)", "(ab|a)", "a+", "a*", ".*", "b+", "(a|a)"]
QUANTIFIERS = ["*", "+", "{5}", "{2,8}", "?"]
ENDINGS = ["$", "c$", "!"]
SUBJECTS = ["a" * 24 + "!", "ab" * 12 + "!", "1" * 24 + "!", "a" * 12 + "b" * 12]


def pattern(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.55:
        return pattern(rng, depth + 1) + pattern(rng, depth + 1)
    if r < 0.7:
        return f"({pattern(rng, depth + 1)}|{pattern(rng, depth + 1)})"
    return f"({pattern(rng, depth + 1)}){rng.choice(QUANTIFIERS)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=6000, help="patterns per seed")
    parser.add_argument("--seeds", default="1,2,3,4,5,6")
    args = parser.parse_args()
    accepted = refused = 0
    worst = (0.0, "", "")
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = random.Random(seed)
        for _ in range(args.patterns):
            text = pattern(rng) + rng.choice(ENDINGS)
            if regex_problem(text):
                refused += 1
                continue
            accepted += 1
            compiled = re.compile(text)
            print(f"\r{text!r:<70}", end="", flush=True)
            for subject in SUBJECTS:
                started = time.perf_counter()
                compiled.search(subject)
                elapsed = time.perf_counter() - started
                if elapsed > worst[0]:
                    worst = (elapsed, text, subject)
    slowest = f"{worst[0] * 1000:.2f} ms: {worst[1]!r} on {worst[2]!r}"
    print(f"\raccepted {accepted}, refused {refused}; slowest search {slowest}")


if __name__ == "__main__":
    main()
