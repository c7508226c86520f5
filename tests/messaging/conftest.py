"""Fixtures of the send-path tests: a store with a sender, at a fixed noon."""

from datetime import UTC, datetime

import pytest

from messaging.services.outbox import messaging_settings
from retention import clock

NOON = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 12:00 in Berlin (the tenant's zone)


@pytest.fixture
def sender(tenant):
    ms = messaging_settings(tenant)
    ms.from_email, ms.sms_from = "shop@alpha.example", "+4930901820"
    ms.save()
    return ms


@pytest.fixture
def now():
    with clock.travel_to(NOON):
        yield NOON
