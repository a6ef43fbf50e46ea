"""The OpenFeature provider, used only through the official OpenFeature API, against a real nats-server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import nats
import pytest
from nats.js import JetStreamContext
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

from flagstream import FlagstreamClient, TestData
from flagstream.events import (
    Clause,
    Flag,
    FlagCreated,
    FlagKind,
    FlagToggled,
    Operator,
    Prerequisite,
    Rollout,
    Rule,
    Serve,
    Target,
    Variation,
    WeightedVariation,
    encode_event,
    subject,
)
from flagstream.events.catalog import FlagEvent
from flagstream.openfeature import FlagstreamProvider
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

USER = EvaluationContext("user-1", {"country": "NO"})
ALL_TO_B = Serve(
    rollout=Rollout(
        variations=(WeightedVariation(variation="b", weight=100_000), WeightedVariation(variation="a", weight=0))
    )
)


def colours(key: str, **fields: object) -> Flag:
    base: dict[str, object] = {
        "kind": FlagKind.STRING,
        "on": True,
        "variations": (Variation(key="a", value="blue"), Variation(key="b", value="green")),
        "off_variation": "a",
        "fallthrough": Serve(variation="a"),
    }
    return Flag(key=key, **{**base, **fields})  # type: ignore[arg-type]


def numbers(key: str, *values: object) -> Flag:
    variations = tuple(Variation(key=f"v{i}", value=v) for i, v in enumerate(values))
    return Flag(
        key=key,
        kind=FlagKind.NUMBER,
        on=True,
        variations=variations,
        off_variation="v0",
        fallthrough=Serve(variation="v0"),
    )


FLAGS = [
    Flag(key="off-flag", on=False),
    Flag(
        key="targeted",
        on=True,
        fallthrough=Serve(variation="off"),
        targets=(Target(variation="on", values=("user-1",)),),
    ),
    colours(
        "by-rule",
        rules=(
            Rule(
                id="nordic",
                clauses=(Clause(attribute="country", op=Operator.IN, values=("NO",)),),
                serve=Serve(variation="b"),
            ),
        ),
    ),
    colours("rule-rollout", rules=(Rule(id="all", clauses=(Clause(op=Operator.EXISTS),), serve=ALL_TO_B),)),
    colours("static"),
    colours("split", fallthrough=ALL_TO_B),
    Flag(key="needs-off-flag", on=True, prerequisites=(Prerequisite(flag="off-flag", variation="on"),)),
    numbers("int-flag", 3),
    numbers("int-as-float", 4.0),
    numbers("fraction", 2.5),
    numbers("whole", 2),
    Flag(
        key="object",
        kind=FlagKind.JSON,
        on=True,
        variations=(Variation(key="cfg", value={"max": 3, "tags": ["x"]}),),
        off_variation="cfg",
        fallthrough=Serve(variation="cfg"),
    ),
    Flag(key="broken", on=True, off_variation="nope"),
    Flag(
        key="org-flag",
        on=True,
        fallthrough=Serve(variation="off"),
        rules=(
            Rule(
                id="orgs",
                clauses=(Clause(attribute="plan", op=Operator.IN, values=("gold",), context_kind="organization"),),
                serve=Serve(variation="on"),
            ),
        ),
    ),
]


async def publish(js: JetStreamContext, flag: Flag, cls: type[FlagEvent] = FlagCreated) -> int:
    event = cls(project="default", environment="production", actor="test", at=datetime.now(UTC), flag=flag)
    ack = await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))
    return ack.seq


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await ensure_stream(context)
    try:
        yield context
    finally:
        await nc.close()


@pytest.fixture(autouse=True)
def openfeature_reset() -> Iterator[None]:
    yield
    api.shutdown()


class Recorder:
    """Collects events delivered to OpenFeature handlers (on OpenFeature's executor threads)."""

    def __init__(self) -> None:
        self.events: list[tuple[ProviderEvent, EventDetails]] = []
        self._lock = threading.Lock()

    def handler(self, event: ProviderEvent):  # type: ignore[no-untyped-def]
        def record(details: EventDetails) -> None:
            if details.provider_name != "flagstream":
                return  # e.g. the immediate READY of the default no-op provider, on registration
            with self._lock:
                self.events.append((event, details))

        return record

    def of(self, event: ProviderEvent) -> list[EventDetails]:
        with self._lock:
            return [d for e, d in self.events if e is event]


async def test_every_type_and_reason_through_the_openfeature_client(nats_url: str, js: JetStreamContext) -> None:
    last = 0
    for flag in FLAGS:
        last = await publish(js, flag)
    provider = FlagstreamProvider(FlagstreamClient(nats_url, environment="production"))
    await asyncio.to_thread(api.set_provider_and_wait, provider)
    client = api.get_client()
    assert client.get_provider_status() is ProviderStatus.READY

    def boolean(key: str, ctx: EvaluationContext = USER, default: bool = True):  # type: ignore[no-untyped-def]
        d = client.get_boolean_details(key, default, ctx)
        return d.value, d.reason, d.variant

    def string(key: str):  # type: ignore[no-untyped-def]
        d = client.get_string_details(key, "default", USER)
        return d.value, d.reason, d.variant, d.flag_metadata.get("rule_id")

    assert boolean("off-flag") == (False, Reason.DISABLED, "off")
    assert boolean("targeted") == (True, Reason.TARGETING_MATCH, "on")
    assert boolean("targeted", EvaluationContext("user-2"), True) == (False, Reason.DEFAULT, "off")
    assert string("by-rule") == ("green", Reason.TARGETING_MATCH, "b", "nordic")
    assert string("rule-rollout") == ("green", Reason.SPLIT, "b", "all")
    assert string("static") == ("blue", Reason.DEFAULT, "a", None)
    assert string("split") == ("green", Reason.SPLIT, "b", None)
    prerequisite = client.get_boolean_details("needs-off-flag", True, USER)
    assert (prerequisite.value, prerequisite.reason) == (False, "PREREQUISITE_FAILED")
    assert prerequisite.flag_metadata["prerequisite"] == "off-flag"

    integer = client.get_integer_details("int-flag", 0, USER)
    assert (integer.value, integer.reason, integer.variant) == (3, Reason.DEFAULT, "v0")
    assert client.get_integer_value("int-as-float", 0, USER) == 4
    assert type(client.get_integer_value("int-as-float", 0, USER)) is int
    assert client.get_float_value("fraction", 0.0, USER) == 2.5
    whole = client.get_float_details("whole", 0.0, USER)
    assert (whole.value, type(whole.value), whole.error_code) == (2.0, float, None)
    obj = client.get_object_details("object", {}, USER)
    assert (obj.value, obj.variant) == ({"max": 3, "tags": ["x"]}, "cfg")
    assert obj.flag_metadata["seq"] == last

    # A multi-kind context: attributes with kind "multi", one nested mapping per other kind.
    multi = EvaluationContext("user-1", {"kind": "multi", "organization": {"key": "org-1", "plan": "gold"}})
    assert boolean("org-flag", multi, False) == (True, Reason.TARGETING_MATCH, "on")
    assert boolean("org-flag", USER, True) == (False, Reason.DEFAULT, "off")
    # No targeting key: no context; flags still serve, attributes alone match nothing.
    keyless = client.get_string_details("by-rule", "default", EvaluationContext(attributes={"country": "NO"}))
    assert (keyless.value, keyless.reason, keyless.error_code) == ("blue", Reason.DEFAULT, None)
    assert client.get_boolean_value("off-flag", True) is False
    single = EvaluationContext("org-2", {"kind": "organization", "plan": "gold"})
    assert boolean("org-flag", single, False) == (True, Reason.TARGETING_MATCH, "on")


async def test_errors_give_the_default_and_an_error_code(nats_url: str, js: JetStreamContext) -> None:
    for flag in FLAGS:
        await publish(js, flag)
    await asyncio.to_thread(
        api.set_provider_and_wait, FlagstreamProvider(FlagstreamClient(nats_url, environment="production"))
    )
    client = api.get_client()

    def error(details):  # type: ignore[no-untyped-def]
        return details.value, details.reason, details.error_code

    assert error(client.get_boolean_details("no-such-flag", True, USER)) == (
        True,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert error(client.get_boolean_details("static", True, USER)) == (True, Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    assert error(client.get_integer_details("fraction", 7, USER)) == (7, Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    assert error(client.get_string_details("int-flag", "x", USER)) == ("x", Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    assert error(client.get_object_details("static", {"d": 1}, USER)) == (
        {"d": 1},
        Reason.ERROR,
        ErrorCode.TYPE_MISMATCH,
    )
    assert error(client.get_boolean_details("broken", True, USER)) == (True, Reason.ERROR, ErrorCode.PARSE_ERROR)
    bad_context = EvaluationContext("user-1", {"kind": "multi", "organization": {"plan": "no key"}})
    assert error(client.get_boolean_details("org-flag", True, bad_context)) == (
        True,
        Reason.ERROR,
        ErrorCode.INVALID_CONTEXT,
    )


async def test_provider_events_ready_changed_stale_error_ready(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js)
    await publish(js, Flag(key="checkout", on=False))
    await nc.close()

    recorder = Recorder()
    for event in ProviderEvent:
        api.add_handler(event, recorder.handler(event))
    client_changes = Recorder()
    api.get_client().add_handler(
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
        client_changes.handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED),
    )
    flagstream = FlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1)
    api.set_provider(FlagstreamProvider(flagstream))  # initialises in OpenFeature's own thread
    await eventually(lambda: recorder.of(ProviderEvent.PROVIDER_READY), what="PROVIDER_READY")
    of = api.get_client()
    assert of.get_boolean_value("checkout", True, USER) is False

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await publish(js, Flag(key="checkout", on=True), FlagToggled)
    await eventually(
        lambda: client_changes.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED), what="CONFIGURATION_CHANGED"
    )
    assert client_changes.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)[0].flags_changed == ["checkout"]
    assert of.get_boolean_value("checkout", False, USER) is True
    await nc.close()

    nats_server.kill()
    await eventually(lambda: recorder.of(ProviderEvent.PROVIDER_STALE), what="PROVIDER_STALE")
    assert of.get_provider_status() is ProviderStatus.STALE
    assert of.get_boolean_value("checkout", False, USER) is True  # still served, from the known flags

    nats_server.restart()
    await eventually(lambda: len(recorder.of(ProviderEvent.PROVIDER_READY)) == 2, what="READY again")
    assert of.get_provider_status() is ProviderStatus.READY
    assert recorder.of(ProviderEvent.PROVIDER_ERROR) == []
    await asyncio.to_thread(api.shutdown)
    assert flagstream.status.value == "CLOSED"


async def test_not_ready_in_time_is_an_error_then_ready_when_loaded(nats_server: NatsServer) -> None:
    nats_server.kill()
    recorder = Recorder()
    for event in (ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_ERROR):
        api.add_handler(event, recorder.handler(event))
    provider = FlagstreamProvider(
        FlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1), init_timeout=0.2
    )
    api.set_provider(provider)
    await eventually(lambda: recorder.of(ProviderEvent.PROVIDER_ERROR), what="PROVIDER_ERROR")
    assert recorder.of(ProviderEvent.PROVIDER_ERROR)[0].error_code is ErrorCode.PROVIDER_NOT_READY
    details = api.get_client().get_boolean_details("checkout", True, USER)
    assert (details.value, details.error_code) == (True, ErrorCode.PROVIDER_NOT_READY)

    nats_server.restart()
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream())
    await publish(nc.jetstream(), Flag(key="checkout", on=True))
    await nc.close()
    await eventually(lambda: recorder.of(ProviderEvent.PROVIDER_READY), what="PROVIDER_READY after the load")
    await eventually(lambda: api.get_client().get_boolean_value("checkout", False, USER) is True, what="served")


async def test_stream_missing_is_a_provider_error(nats_url: str) -> None:
    recorder = Recorder()
    api.add_handler(ProviderEvent.PROVIDER_ERROR, recorder.handler(ProviderEvent.PROVIDER_ERROR))
    flagstream = FlagstreamClient(nats_url, environment="production", reconnect_wait=0.1)
    api.set_provider(FlagstreamProvider(flagstream, init_timeout=5))
    await eventually(lambda: recorder.of(ProviderEvent.PROVIDER_ERROR), what="PROVIDER_ERROR")
    assert api.get_client().get_provider_status() is ProviderStatus.ERROR


def test_offline_test_data_through_openfeature() -> None:
    td = TestData()
    td.flag("new-checkout").on(True)
    changes = Recorder()
    api.add_handler(
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changes.handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    )
    api.set_provider_and_wait(FlagstreamProvider(FlagstreamClient.from_test_data(td)))
    client = api.get_client()
    assert client.get_boolean_value("new-checkout", False, USER) is True
    td.flag("new-checkout").on(False)
    assert client.get_boolean_details("new-checkout", True, USER).reason == Reason.DISABLED
    td.flag("greeting").variations("hi", "hello").serve("hello")
    assert client.get_string_value("greeting", "", EvaluationContext()) == "hello"
    # Each builder call is one change (greeting: created, variations, serve).
    changed = ["new-checkout"] + ["greeting"] * 3
    asyncio.run(eventually(lambda: len(changes.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)) == 4, what="events"))
    assert [
        k for d in changes.of(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED) for k in d.flags_changed or ()
    ] == changed
