"""The pure fleet aggregation: instances, convergence of changes, evaluation counts, last-evaluated times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from flagstream.events.telemetry import (
    AppliedChange,
    EvaluationCounts,
    FlagCount,
    Heartbeat,
    decode_heartbeat,
    encode_telemetry,
)
from flagstream.services.fleet.aggregator import Change, FleetAggregator, percentile

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def beat(instance: str, seq: int, sent: datetime, *applied: tuple[int, datetime], started: datetime = T0) -> Heartbeat:
    return Heartbeat(
        instance_id=instance,
        sdk_version="1.2.3",
        project="default",
        environment="production",
        seq=seq,
        applied=tuple(AppliedChange(seq=s, at=at) for s, at in applied),
        started_at=started,
        sent_at=sent,
        status="READY",
    )


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


def test_instances_are_connected_until_they_miss_three_intervals() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock, default_interval=10)
    fleet.heartbeat(beat("a", 5, T0, (5, T0)))
    fleet.heartbeat(beat("b", 5, T0, (5, T0)))
    clock.advance(2)
    fleet.heartbeat(beat("a", 5, T0 + timedelta(seconds=2)))  # a reports every 2 s
    [a, _] = fleet.instances("default", "production")
    assert (a.instance_id, a.sdk_version, a.seq, a.connected) == ("a", "1.2.3", 5, True)
    clock.advance(7)  # a: 7 s > 3 x 2 s; b: 9 s < 3 x 10 s (its interval is not known yet)
    assert [i.instance_id for i in fleet.instances("default", "production")] == ["b"]
    assert [i.connected for i in fleet.instances("default", "production", include_gone=True)] == [False, True]
    assert fleet.instances("default", "staging") == []
    assert fleet.connected_counts() == {("default", "production"): 1}


def test_connected_counts_read_zero_once_an_environments_instances_are_gone() -> None:
    """What the ``flagstream_sdk_instances_connected`` gauge shows: an environment whose SDKs stopped reads 0,
    first while they are silent, then after they were forgotten, rather than its series vanishing."""
    clock = Clock()
    fleet = FleetAggregator(clock=clock, default_interval=10, forget_after=120)
    fleet.heartbeat(beat("a", 5, T0))
    assert fleet.connected_counts() == {("default", "production"): 1}
    clock.advance(31)  # three intervals of 10 s missed
    assert fleet.connected_counts() == {("default", "production"): 0}
    clock.advance(200)  # past forget_after: the next heartbeat (another environment's) forgets "a"
    staging = msgspec.structs.replace(beat("b", 1, clock.now), environment="staging")
    fleet.heartbeat(staging)
    assert fleet.instances("default", "production", include_gone=True) == []
    assert fleet.connected_counts() == {("default", "production"): 0, ("default", "staging"): 1}


def test_convergence_counts_applied_and_pending_instances_with_their_times() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock)
    change = Change(seq=10, entity="flag", key="checkout", type="FlagToggled", at=T0 + timedelta(seconds=1))
    for n, delay in enumerate((5, 20, 8)):
        fleet.heartbeat(beat(f"i{n}", 10, T0 + timedelta(seconds=2), (4, T0), (10, change.at + ms(delay))))
    fleet.heartbeat(beat("slow", 4, T0 + timedelta(seconds=2), (4, T0)))
    # Started after the change: it loaded it (applied, but no propagation time).
    fleet.heartbeat(beat("late", 10, T0 + timedelta(seconds=3), (10, T0 + timedelta(seconds=3)), started=T0 + ms(2500)))
    [result] = fleet.convergence("default", "production", [change])
    assert (result.applied, result.pending, result.measured) == (4, 1, 3)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (8, 20, 20)
    assert result.change.key == "checkout"


def test_a_batch_that_skipped_over_the_change_still_measures_it() -> None:
    fleet = FleetAggregator()
    change = Change(seq=7, entity="flag", key="a", type="FlagUpdated", at=T0)
    fleet.heartbeat(beat("i", 9, T0 + ms(50), (3, T0 - ms(10)), (9, T0 + ms(30))))  # 7..9 arrived together
    [result] = fleet.convergence("default", "production", [change])
    assert (result.applied, result.measured, result.p50_ms) == (1, 1, 30)


def test_heartbeats_repeating_batches_do_not_count_them_twice() -> None:
    fleet = FleetAggregator()
    change = Change(seq=5, entity="flag", key="a", type="FlagUpdated", at=T0)
    fleet.heartbeat(beat("i", 5, T0, (1, T0 - ms(5)), (5, T0 + ms(40))))
    fleet.heartbeat(beat("i", 5, T0 + ms(1), (5, T0 + ms(90))))
    assert fleet.convergence("default", "production", [change])[0].p50_ms == 40


def counts(instance: str, until: datetime, *items: tuple[str, str | None, int]) -> EvaluationCounts:
    return EvaluationCounts(
        instance_id=instance,
        project="default",
        environment="production",
        since=until - timedelta(seconds=10),
        until=until,
        counts=tuple(FlagCount(flag=f, variation=v, count=n) for f, v, n in items),
    )


def test_evaluation_counts_total_and_recent() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock)
    fleet.counts(counts("a", T0, ("checkout", "on", 3), ("checkout", "off", 1), ("banner", None, 2)))
    clock.advance(600)
    fleet.counts(counts("b", clock.now, ("checkout", "on", 4)))
    [banner, checkout] = fleet.evaluations("default", "production", window=60)
    assert (banner.flag, banner.total, banner.recent) == ("banner", 2, 0)
    assert banner.variations[0].variation is None
    assert (checkout.total, checkout.recent) == (8, 4)
    assert [(v.variation, v.total, v.recent) for v in checkout.variations] == [("off", 1, 0), ("on", 7, 4)]
    assert checkout.last_evaluated == clock.now
    assert banner.last_evaluated == T0
    assert fleet.evaluations("default", "staging", window=60) == []


def test_last_evaluated_times_are_handed_out_once_to_persist_and_can_be_restored() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock)
    fleet.counts(counts("a", T0, ("checkout", "on", 1), ("unused", "on", 0)))
    assert fleet.take_dirty() == {("default", "production", "checkout"): T0}
    assert fleet.take_dirty() == {}
    restarted = FleetAggregator(clock=clock)
    restarted.remember_evaluated("default", "production", "checkout", T0)
    restarted.remember_evaluated("default", "production", "checkout", T0 - timedelta(days=3))
    assert restarted.last_evaluated("default", "production") == {"checkout": T0}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0], 99) == 3
    assert percentile([float(n) for n in range(1, 101)], 50) == 50
    assert percentile([float(n) for n in range(1, 101)], 99) == 99


def test_what_one_environment_can_fill_is_bounded() -> None:
    fleet = FleetAggregator(max_instances=2, max_counters=2)
    for n in range(3):
        fleet.heartbeat(beat(f"i{n}", 1, T0))
    fleet.counts(counts("i0", T0, ("a", "on", 1), ("b", "on", 1), ("c", "on", 1)))
    fleet.counts(counts("i0", T0, ("a", "on", 1)))
    assert [i.instance_id for i in fleet.instances("default", "production")] == ["i0", "i1"]
    assert [(f.flag, f.total) for f in fleet.evaluations("default", "production", window=60)] == [("a", 2), ("b", 1)]
    assert fleet.dropped == 2


def test_attribute_names_are_the_union_of_what_instances_report_bounded_and_forgotten_in_time() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock, max_kinds=2, max_attribute_names=3, forget_after=3600)

    def names(instance: str, attributes: dict[str, list[str]]) -> None:
        fleet.heartbeat(msgspec.structs.replace(beat(instance, 1, clock.now), attributes=attributes))

    names("i0", {"user": ["key", "state"], "device": ["os"]})
    names("i1", {"user": ["key", "plan"]})
    names("i1", {})  # nothing new from this one: what is known stays
    assert [(k.kind, k.attributes) for k in fleet.attributes("default", "production")] == [
        ("device", ["os"]),
        ("user", ["key", "plan", "state"]),
    ]
    assert fleet.attributes("default", "staging") == []
    # Bounded: a third kind, a fourth name of a kind, an absurdly long name are not kept (and counted).
    names("i2", {"organization": ["key"], "user": ["email", "x" * 101]})
    assert [k.kind for k in fleet.attributes("default", "production")] == ["device", "user"]
    assert fleet.attributes("default", "production")[1].attributes == ["key", "plan", "state"]
    assert fleet.dropped == 3
    # A name nobody reported for an hour is forgotten; one reported again stays.
    clock.advance(1800)
    names("i0", {"user": ["key"]})
    clock.advance(1801)
    assert [(k.kind, k.attributes) for k in fleet.attributes("default", "production")] == [("user", ["key"])]


def test_an_old_sdk_heartbeat_has_no_attribute_names_and_a_new_one_reads_in_an_old_admin() -> None:
    old = b'{"instance_id":"i","sdk_version":"0.9","project":"default","environment":"production","seq":3,'
    old += b'"applied":[],"started_at":"2026-01-01T12:00:00Z","sent_at":"2026-01-01T12:00:10Z","status":"READY"}'
    assert decode_heartbeat(old).attributes == {}

    class OldHeartbeat(msgspec.Struct, frozen=True, kw_only=True):  # Heartbeat as it was before the field
        instance_id: str
        sdk_version: str
        project: str
        environment: str
        seq: int
        applied: tuple[AppliedChange, ...] = ()
        started_at: datetime
        sent_at: datetime
        status: str = ""

    new = msgspec.structs.replace(beat("i", 3, T0), attributes={"user": ["key", "state"]})
    read = msgspec.json.decode(encode_telemetry(new), type=OldHeartbeat)
    assert (read.instance_id, read.seq, read.status) == ("i", 3, "READY")


def test_a_backlog_read_late_counts_at_the_time_the_stream_stored_it() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock, default_interval=10)
    clock.advance(600)  # the aggregator reads, 10 minutes late, what was stored at T0 and T0 + 10 s
    fleet.heartbeat(beat("gone", 1, T0), at=T0)
    fleet.heartbeat(beat("alive", 1, T0), at=T0)
    fleet.heartbeat(beat("alive", 2, T0 + timedelta(seconds=10)), at=clock.now - timedelta(seconds=1))
    fleet.heartbeat(beat("alive", 1, T0), at=clock.now)  # an older heartbeat delivered again: old news
    assert [(i.instance_id, i.seq) for i in fleet.instances("default", "production")] == [("alive", 2)]
    fleet.counts(counts("gone", T0, ("checkout", "on", 2)), at=T0)
    fleet.counts(counts("alive", clock.now, ("checkout", "on", 3)), at=clock.now)
    [checkout] = fleet.evaluations("default", "production", window=60)
    assert (checkout.total, checkout.recent) == (5, 3)


def test_seen_sequences_are_kept_as_ranges() -> None:
    from flagstream.services.fleet.stream import Seen

    seen = Seen(max_ranges=3)
    for seq in [*range(1, 101), 200, 202, 201, 150]:
        seen.add(seq)
    assert all(seq in seen for seq in [1, 50, 100, 150, 200, 201, 202])
    assert not any(seq in seen for seq in [0, 101, 149, 151, 199, 203])
    seen.add(300)  # a fourth range: the oldest one is forgotten
    assert [seq in seen for seq in (50, 150, 300)] == [False, True, True]


def test_silent_instances_are_forgotten_by_a_sweep_once_a_minute_not_at_every_heartbeat() -> None:
    clock = Clock()
    fleet = FleetAggregator(clock=clock, forget_after=3600)
    sweeps = []
    forget = fleet._forget
    fleet._forget = lambda now: (sweeps.append(now), forget(now))  # type: ignore[method-assign]
    fleet.heartbeat(beat("silent", 1, T0))
    clock.advance(3601)
    for _ in range(100):  # 100 heartbeats over 50 s, a minute after the start: one sweep
        fleet.heartbeat(beat("busy", 1, clock.now))
        clock.advance(0.5)
    assert len(sweeps) == 1
    assert [i.instance_id for i in fleet.instances("default", "production", include_gone=True)] == ["busy"]


def test_totals_stored_and_resumed_count_on_where_they_were() -> None:
    """What the aggregator stores for its successor (``totals``) is what the successor counts on from (``resume``)."""
    from flagstream.services.fleet.stream import Seen

    first = FleetAggregator()
    now = datetime.now(UTC)
    first.counts(EvaluationCounts(instance_id="i", project="p", environment="e", since=now, until=now,
                                  counts=(FlagCount(flag="f", variation="on", count=5),
                                          FlagCount(flag="f", variation=None, count=2))))  # fmt: skip
    stored = first.totals()
    second = FleetAggregator()
    second.resume(first.counting_since, stored)
    second.counts(EvaluationCounts(instance_id="i", project="p", environment="e", since=now, until=now,
                                   counts=(FlagCount(flag="f", variation="on", count=1),)))  # fmt: skip
    [flag] = second.evaluations("p", "e", 60)
    assert {v.variation: v.total for v in flag.variations} == {"on": 6, None: 2}
    assert second.counting_since == first.counting_since
    assert flag.last_evaluated == now
    seen = Seen()
    for first_seq, last_seq in ((1, 5), (7, 9), (10, 12), (3, 8)):
        seen.add_range(first_seq, last_seq)
    assert seen.ranges() == ((1, 12),)
