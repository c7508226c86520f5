"""Fixtures for the messaging tests: the fake SendGrid/Twilio server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_provider import FakeProvider

FAKE_TWILIO_SID = "AC" + "0123456789abcdef" * 2


@pytest.fixture
def fake_provider(settings, monkeypatch) -> Iterator[FakeProvider]:
    """A fake SendGrid and Twilio on 127.0.0.1, with the provider settings
    pointed at it both in this process (``settings``) and in the environment,
    so Celery workers started by a test inherit them. Timeouts are short so a
    delayed answer turns into a timeout quickly."""
    with FakeProvider() as fake:
        values: dict[str, str | float] = {
            "SENDGRID_API_KEY": "SG.fake-key",
            "SENDGRID_API_HOST": fake.url,
            "TWILIO_ACCOUNT_SID": FAKE_TWILIO_SID,
            "TWILIO_AUTH_TOKEN": "fake-token",
            "TWILIO_API_BASE_URL": fake.url,
            "PROVIDER_CONNECT_TIMEOUT": 1.0,
            "PROVIDER_TIMEOUT": 1.0,
        }
        for name, value in values.items():
            setattr(settings, name, value)
            monkeypatch.setenv(name, str(value))
        yield fake
