"""Fixtures shared by the whole suite: two tenants, people in each role, API keys,
the fake SendGrid/Twilio."""

import uuid
from collections.abc import Iterator

import pytest
from django.test import Client

from retention import clock
from retention.models import ApiScope, Role, Tenant
from retention.services import api_key_issue, tenant_create
from tests.factories import MembershipFactory, UserFactory
from tests.fake_provider import FakeProvider


def _tenant(slug: str, name: str) -> Tenant:
    """A tenant made as operators make them, carrying the secrets a storefront
    would hold as plain attributes (``webhook_secret``, ``api_key``)."""
    created = tenant_create(slug=slug, name=name, timezone="Europe/Berlin", currency="EUR")
    created.tenant.webhook_secret = created.webhook_secret
    created.tenant.api_key = created.api_key
    return created.tenant


@pytest.fixture
def tenant(db) -> Tenant:
    return _tenant("alpha", "Alpha Store")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return _tenant("bravo", "Bravo Store")


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process: `make test` sets REDIS_URL, which turns eager
    mode off (tests of real workers start their own)."""
    from retention.celery import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture(autouse=True)
def _unfrozen_clock():
    yield
    clock.set_now(None)


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    """Each test counts from zero: the cache (Redis under `make test`) outlives tests."""
    settings.RATELIMIT_KEY_PREFIX = f"rl-test-{uuid.uuid4().hex}"


def login_as(tenant, role: str, email: str | None = None) -> Client:
    user = UserFactory(email=email or f"{role}@{tenant.slug}.example")
    MembershipFactory(tenant=tenant, user=user, role=role)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def marketer_client(tenant) -> Client:
    return login_as(tenant, Role.MARKETER)


@pytest.fixture
def owner_client(tenant) -> Client:
    return login_as(tenant, Role.OWNER)


@pytest.fixture
def agent_client(tenant) -> Client:
    return login_as(tenant, Role.AGENT)


@pytest.fixture
def viewer_client(tenant) -> Client:
    return login_as(tenant, Role.VIEWER)


@pytest.fixture
def api_client(tenant) -> Client:
    """A client that sends the tenant's full-scope API key."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")


@pytest.fixture
def read_only_key(tenant) -> str:
    return api_key_issue(tenant=tenant, name="read only", scopes=[ApiScope.READ])[1]


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
