"""Rate limits: admin sign-in per IP and username, the API per key, shopper pages
per IP. Over the limit answers 429 with Retry-After; the next window is open."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from retention import clock, ratelimit
from retention.models import AuditEntry

# The start of a 60-second (and 900-second) window, so Retry-After is exact.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def limits(settings):
    settings.RATELIMITS = {"login": "3/900", "api": "3/60", "pages": "2/60"}
    with clock.travel_to(START):
        yield settings.RATELIMITS


def _login(client: Client, username: str, ip: str = "10.0.0.1"):
    return client.post(
        "/admin/login/",
        {"username": username, "password": "wrong"},
        REMOTE_ADDR=ip,
    )


def test_api_answers_429_with_retry_after_then_opens_in_the_next_window(limits, tenant):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")
    clock.advance(seconds=15)

    codes = [client.get("/api/v1/customers/").status_code for _ in range(4)]
    refused = client.get("/api/v1/customers/")

    assert codes == [200, 200, 200, 429]
    assert refused["Retry-After"] == "45"
    assert refused.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Too many requests. Try again in 45 seconds.",
            "fields": {},
        }
    }
    clock.advance(seconds=45)
    assert client.get("/api/v1/customers/").status_code == 200


def test_api_limit_is_per_key(limits, tenant, other_tenant):
    mine = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")
    theirs = Client(HTTP_AUTHORIZATION=f"Bearer {other_tenant.api_key}")
    for _ in range(3):
        mine.get("/api/v1/customers/")

    assert mine.get("/api/v1/customers/").status_code == 429
    assert theirs.get("/api/v1/customers/").status_code == 200


def test_api_schema_is_not_counted(limits, tenant):
    client = Client()
    codes = {client.get("/api/v1/schema/").status_code for _ in range(5)}

    assert codes == {200}


def test_shopper_pages_answer_429_in_html_per_ip(limits):
    client = Client()
    first = [client.get("/o/not-a-token/", REMOTE_ADDR="10.0.0.7").status_code for _ in range(2)]
    refused = client.get("/s/not-a-token/", REMOTE_ADDR="10.0.0.7")
    elsewhere = client.get("/u/not-a-token/", REMOTE_ADDR="10.0.0.8")

    assert first == [404, 404]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused["Content-Type"].startswith("text/html")
    assert b"Too many requests" in refused.content
    assert elsewhere.status_code != 429
    clock.advance(seconds=60)
    assert client.get("/o/not-a-token/", REMOTE_ADDR="10.0.0.7").status_code == 404


@pytest.mark.django_db
def test_admin_login_is_limited_per_ip_and_username(limits):
    client = Client()
    codes = [_login(client, "owner@alpha.example").status_code for _ in range(3)]
    refused = _login(client, "Owner@alpha.example")

    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "900"
    assert _login(client, "someone@alpha.example").status_code == 200
    assert _login(client, "owner@alpha.example", ip="10.0.0.2").status_code == 200
    assert client.get("/admin/login/", REMOTE_ADDR="10.0.0.1").status_code == 200
    clock.advance(seconds=900)
    assert _login(client, "owner@alpha.example").status_code == 200


def test_a_refused_request_does_nothing(limits, tenant):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")
    for _ in range(3):
        client.get("/api/v1/customers/")
    audits = AuditEntry.objects.for_tenant(tenant).count()

    refused = client.post(
        "/api/v1/customers/", {"email": "a@example.com"}, content_type="application/json"
    )

    assert refused.status_code == 429
    assert AuditEntry.objects.for_tenant(tenant).count() == audits


def test_limits_can_be_switched_off(limits, settings, tenant):
    settings.RATELIMIT_ENABLED = False
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")

    codes = {client.get("/api/v1/customers/").status_code for _ in range(6)}

    assert codes == {200}


def test_limit_text_is_parsed_and_checked():
    assert ratelimit.Limit.parse("10/900") == ratelimit.Limit(10, 900)
    assert ratelimit.Limit.parse("5") == ratelimit.Limit(5, 60)
    with pytest.raises(ValueError):
        ratelimit.Limit.parse("0/60")


def test_a_broken_cache_lets_requests_through(limits, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(ratelimit.cache, "add", broken)

    assert ratelimit.hit("pages", "10.0.0.9") == ratelimit.Decision(True)


def test_forwarded_for_is_used_only_when_trusted(settings, rf):
    request = rf.get("/o/x/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8")

    assert ratelimit.client_ip(request) == "10.0.0.1"
    settings.RATELIMIT_TRUST_X_FORWARDED_FOR = True
    assert ratelimit.client_ip(request) == "5.6.7.8"
