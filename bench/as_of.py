"""Time travel speed: "the environment as of T" with 10,000 flags and 1,000,000 events in the read model.

How the read model is filled: the events are generated in bulk (10,000 ``flag.created``, then updates and
toggles of random flags, each ``at`` a millisecond after the previous one) and written through the projector's
own code path -- ``projection.fold_batch`` on raw messages with consecutive stream sequences, then
``ReadModel.apply`` per batch of 20,000 (one transaction each) -- without NATS, which is not what is measured.

Measured, at instants spread over the history (early, middle, late, now):

* ``seq_at``: a time resolved to the last stream sequence at or before it (one index look-up);
* ``states_as_of``: the event that set each entity's state as of that sequence (10,000 rows);
* ``state``: the above plus decoding every event to its state and the state hash (what ``GET .../state`` does
  before encoding JSON);
* ``evaluate``: the above plus folding into a Ruleset (compiling 10,000 flags) and evaluating every flag for
  one context (what ``POST .../evaluate`` with ``as_of`` does).

Usage: ``python bench/as_of.py [--flags 10000] [--events 1000000] [--runs 5] [--db PATH]`` (with ``--db``, an
existing file filled earlier with the same sizes is reused).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ENVIRONMENT, PROJECT, print_table, summary_ms, write_results

from flagstream.events import (
    Clause,
    Flag,
    FlagCreated,
    FlagToggled,
    FlagUpdated,
    Operator,
    Rule,
    Serve,
    encode_event,
    subject,
)
from flagstream.services.history.timetravel import evaluate_all, hash_of, ruleset_of, states
from flagstream.services.projector.projection import RawMessage, fold_batch
from flagstream.services.projector.readmodel import ReadModel

BATCH = 20_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def flag(i: int, revision: int, on: bool) -> Flag:
    rules = (
        (
            Rule(
                id="beta",
                clauses=(Clause(attribute="country", op=Operator.IN, values=("NO", "SE")),),
                serve=Serve(variation="on"),
            ),
        )
        if i % 4 == 0
        else ()
    )
    return Flag(key=f"flag-{i:05d}", description=f"revision {revision}", on=on, rules=rules)


def messages(flags: int, events: int, seed: int = 7) -> Iterator[RawMessage]:
    """The whole history, deterministically, one message at a time."""
    rng = random.Random(seed)
    revision = [0] * flags
    on = [False] * flags
    for seq in range(1, events + 1):
        at = START + timedelta(milliseconds=seq)
        common = {"project": PROJECT, "environment": ENVIRONMENT, "actor": "bench", "at": at}
        if seq <= flags:
            i = seq - 1
            event = FlagCreated(**common, flag=flag(i, 0, False))  # type: ignore[arg-type]
        else:
            i = rng.randrange(flags)
            revision[i] += 1
            if rng.random() < 0.5:
                on[i] = not on[i]
                event = FlagToggled(**common, version=revision[i] + 1, flag=flag(i, revision[i], on[i]))  # type: ignore[arg-type]
            else:
                event = FlagUpdated(**common, version=revision[i] + 1, flag=flag(i, revision[i], on[i]))  # type: ignore[arg-type]
        yield RawMessage(seq, subject(PROJECT, ENVIRONMENT, "flag", f"flag-{i:05d}"), encode_event(event))


async def fill(db: Path, flags: int, events: int) -> float:
    started = time.perf_counter()
    model = await ReadModel.open(db)
    try:
        done = await model.last_seq()  # a reused file: skip what it has
        source = itertools.islice(messages(flags, events), done, None)
        while chunk := list(itertools.islice(source, BATCH)):
            batch = fold_batch(done, chunk)
            await model.apply(batch)
            done = batch.last_seq
            if done % 100_000 == 0:
                print(f"  {done:,} events", flush=True)
    finally:
        await model.close()
    return time.perf_counter() - started


async def measure(db: Path, flags: int, events: int, runs: int) -> dict[str, object]:
    model = await ReadModel.open(db, readonly=True)
    try:
        instants = {
            "early (10%)": START + timedelta(milliseconds=events // 10),
            "middle (50%)": START + timedelta(milliseconds=events // 2),
            "late (90%)": START + timedelta(milliseconds=events * 9 // 10),
            "now": START + timedelta(milliseconds=events + 1000),
        }
        rows = []
        results: dict[str, object] = {}
        for label, at in instants.items():
            t_seq, t_states, t_state, t_eval = [], [], [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                seq = await model.seq_at(at)
                t1 = time.perf_counter()
                records = await model.states_as_of(PROJECT, ENVIRONMENT, seq)
                t2 = time.perf_counter()
                found = states((r.seq, r.event()) for r in records)
                state_hash = hash_of(PROJECT, ENVIRONMENT, found)
                t3 = time.perf_counter()
                ruleset = ruleset_of(PROJECT, ENVIRONMENT, seq, found)
                answers = evaluate_all(ruleset, {"key": "user-1", "country": "NO"})
                t4 = time.perf_counter()
                t_seq.append(t1 - t0)
                t_states.append(t2 - t1)
                t_state.append(t3 - t0)
                t_eval.append(t4 - t0)
            assert len(records) == flags
            assert len(answers) == flags
            assert state_hash
            summary = {
                "seq": seq,
                "seq_at": summary_ms(t_seq),
                "states_as_of": summary_ms(t_states),
                "state": summary_ms(t_state),
                "evaluate": summary_ms(t_eval),
            }
            results[label] = summary
            rows.append(
                (label, f"{seq:,}", *(summary[k]["p50_ms"] for k in ("seq_at", "states_as_of", "state", "evaluate")))
            )  # type: ignore[index]
        print_table(
            f"environment as of T, {flags:,} flags, {events:,} events (median of {runs} runs, ms)",
            ("instant", "seq", "seq_at", "states_as_of", "state+hash", "evaluate all"),
            rows,
        )
        return results
    finally:
        await model.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="reuse (or create) this read model file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-asof-") as folder:
        db = args.db or Path(folder) / "readmodel.sqlite"
        print(f"filling {db} with {args.flags:,} flags and {args.events:,} events ...", flush=True)
        fill_seconds = await fill(db, args.flags, args.events)
        print(f"filled in {fill_seconds:.1f}s ({db.stat().st_size / 1e6:.0f} MB)")
        results = await measure(db, args.flags, args.events, args.runs)
        write_results(
            "as_of",
            {"flags": args.flags, "events": args.events, "runs": args.runs, "fill_seconds": round(fill_seconds, 1),
             "db_mb": round(db.stat().st_size / 1e6), "instants": results},
        )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
