"""Contexts in the SDK: a number as the key is its decimal string; a context the SDK cannot use is logged,
once per flag and then at most once per interval, never per evaluation (the default is served)."""

from __future__ import annotations

import logging

import pytest

from flagstream import ErrorKind, FlagstreamClient, TestData


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("flagstream") and r.levelno >= logging.WARNING]


def test_an_unusable_context_is_logged_once_per_flag_not_per_evaluation(caplog: pytest.LogCaptureFixture) -> None:
    td = TestData()
    td.flag("new-checkout").on(True)
    td.flag("dark-mode").on(True)
    client = FlagstreamClient.from_test_data(td)
    caplog.set_level(logging.INFO, logger="flagstream")
    try:
        for _ in range(1000):
            assert client.bool_variation("new-checkout", {"key": ["u1"]}, False) is False
            detail = client.bool_variation_detail("dark-mode", {"name": "ada"}, False)
            assert detail.reason.error_kind is ErrorKind.MALFORMED_CONTEXT
        logged = _warnings(caplog)
        assert len(logged) == 2, logged
        checkout = next(m for m in logged if "'new-checkout'" in m)
        assert "'key' must be a string or a whole number, not list" in checkout
        assert "'dark-mode'" in next(m for m in logged if "no 'key'" in m)
        assert not [m for m in logged if "u1" in m or "ada" in m], "no attribute value is logged"

        # A number as the key is used (as its decimal string): nothing to log.
        caplog.clear()
        assert client.bool_variation("new-checkout", {"key": 42}, False) is True
        assert client.all_flags({"key": 42})["dark-mode"].value is True
        assert _warnings(caplog) == []
    finally:
        client.close()


def test_the_log_comes_back_after_the_interval_with_the_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagstream import cache

    now = [1000.0]
    monkeypatch.setattr(cache, "_monotonic", lambda: now[0])
    td = TestData()
    td.flag("new-checkout").on(True)
    client = FlagstreamClient.from_test_data(td)
    caplog.set_level(logging.INFO, logger="flagstream")
    try:
        for _ in range(10):
            client.bool_variation("new-checkout", {"key": None}, False)
        assert len(_warnings(caplog)) == 1
        now[0] += cache.CONTEXT_LOG_INTERVAL - 1
        client.bool_variation("new-checkout", {"key": None}, False)
        assert len(_warnings(caplog)) == 1, "not again within the interval"
        now[0] += 2
        client.bool_variation("new-checkout", {"key": None}, False)
        logged = _warnings(caplog)
        assert len(logged) == 2
        assert "11 more evaluations" in logged[1], logged[1]
    finally:
        client.close()


def test_an_exposure_names_a_numeric_key_as_its_decimal_string() -> None:
    td = TestData()
    td.flag("new-checkout").on(True)
    client = FlagstreamClient.from_test_data(td)
    seen: list[tuple[str | None, str | None]] = []
    recorder = client.on_exposure(lambda e: seen.append((e.context_kind, e.context_key)))
    try:
        client.bool_variation("new-checkout", {"key": 42}, False)
        client.bool_variation("new-checkout", {"kind": "organization", "key": 7}, False)
        client.bool_variation("new-checkout", {"kind": "multi", "user": {"key": 1}, "org": {"key": "o"}}, False)
        recorder.close()
    finally:
        client.close()
    assert seen == [("user", "42"), ("organization", "7"), ("multi", "org:o:user:1")]
