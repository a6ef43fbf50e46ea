"""The webhook tests' receivers listen on 127.0.0.1, which webhooks refuse by default: their admin API allows it
through the operator setting (``create_app(webhook_allow=...)``, ``--webhook-allow``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers import ADMIN_TOKEN, serving


@pytest.fixture
async def admin_url(nats_url: str) -> AsyncIterator[str]:
    from flagstream.services.admin.app import create_app

    async with serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, webhook_allow=["127.0.0.1"])) as url:
        yield url
