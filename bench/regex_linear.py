"""Clause regexes on RE2 (``sdk/linear_regex.py``): is the worst case linear in the value's length, and what does a
regex clause cost per evaluation?

1. Random patterns built from the pieces that make backtracking engines explode (``.*``, ``a+``, ``(a|ab)``,
   ``(a|a)``, ``{5}``, ``{2,8}``, nesting up to three deep), each searched in adversarial values of 1,000, 10,000
   and 100,000 characters: the slowest search per length. Linear: ten times the length, about ten times the time.
   (Python's ``re`` needs 12 s for ``.*a.*b.*c`` on 1,000 characters; these patterns are worse.)
2. One evaluation of a flag whose rule is a ``matches`` clause (``^.*@example\\.com$`` on an e-mail address),
   through the engine, against the same rule with an ``ends_with`` clause.

    .venv/bin/python bench/regex_linear.py [--patterns 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
import timeit

from _common import print_table
from _common import write_results as save

from flagstream.engine import compile_flag, evaluate
from flagstream.events import Clause, Flag, Operator, Rule, Serve
from flagstream.linear_regex import compile_search

ATOMS = ["a", "b", ".", r"\d", "[ab]", "a?", "(a|b)", "(a|ab)", "(ab|a)", "a+", "a*", ".*", "b+", "(a|a)"]
QUANTIFIERS = ["*", "+", "{5}", "{2,8}", "?"]
ENDINGS = ["$", "c$", "!"]
LENGTHS = [1_000, 10_000, 100_000]


def pattern(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.55:
        return pattern(rng, depth + 1) + pattern(rng, depth + 1)
    if r < 0.7:
        return f"({pattern(rng, depth + 1)}|{pattern(rng, depth + 1)})"
    return f"({pattern(rng, depth + 1)}){rng.choice(QUANTIFIERS)}"


def subjects(n: int) -> list[str]:
    return ["a" * (n - 1) + "!", "ab" * (n // 2 - 1) + "!", "1" * (n - 1) + "!", "a" * (n // 2) + "b" * (n // 2)]


def worst_searches(patterns: list[str]) -> list[list[object]]:
    rows = []
    for n in LENGTHS:
        values = subjects(n)
        worst, culprit = 0.0, ""
        for text in patterns:
            search = compile_search(text)
            for value in values:
                started = time.perf_counter()
                search(value)
                elapsed = time.perf_counter() - started
                if elapsed > worst:
                    worst, culprit = elapsed, text
        rows.append([n, len(patterns) * len(values), round(worst * 1000, 3), culprit])
    return rows


def per_evaluation() -> dict[str, float]:
    def flag(op: Operator, value: str) -> object:
        rule = Rule(id="r", clauses=(Clause(attribute="email", op=op, values=(value,)),), serve=Serve(variation="on"))
        return compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule,)), {})

    user = {"key": "u1", "email": "someone.else@example.org"}
    out = {}
    for name, compiled in (
        ("matches ^.*@example\\.com$", flag(Operator.MATCHES, r"^.*@example\.com$")),
        ("ends_with @example.com", flag(Operator.ENDS_WITH, "@example.com")),
    ):
        flags = {"f": compiled}
        runs = timeit.repeat(lambda flags=flags: evaluate(flags, "f", user, None), number=20_000, repeat=7)
        out[name] = round(min(runs) / 20_000 * 1e6, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    patterns = [pattern(rng) + rng.choice(ENDINGS) for _ in range(args.patterns)]
    rows = worst_searches(patterns)
    print_table(
        f"Slowest RE2 search of {args.patterns} random patterns in adversarial values",
        ["value length", "searches", "slowest ms", "pattern"],
        rows,
    )
    costs = per_evaluation()
    print_table("One evaluation, best of 7 x 20,000", ["rule", "µs"], [[k, v] for k, v in costs.items()])
    save("regex_linear", {"patterns": args.patterns, "slowest": rows, "evaluation_us": costs})


if __name__ == "__main__":
    main()
