"""API keys: tenant isolation, revocation, scopes, one JSON error shape."""

import pytest
from django.test import Client

from retention.models import ApiKey, AuditEntry
from retention.services import api_key_revoke, audit_record
from tests.factories import JourneyFactory


@pytest.fixture
def entries(tenant, other_tenant):
    mine = audit_record(
        tenant=tenant, action="create", obj=JourneyFactory(tenant=tenant, name="Alpha marker")
    )
    theirs = audit_record(
        tenant=other_tenant,
        action="create",
        obj=JourneyFactory(tenant=other_tenant, name="Bravo marker"),
    )
    return mine, theirs


def _error(resp):
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def test_key_reads_own_rows(api_client, entries):
    mine, _ = entries
    resp = api_client.get(f"/api/v1/audit-log/{mine.pk}/")
    assert resp.status_code == 200
    assert resp.json()["object_repr"] == "Alpha marker"


def test_key_of_a_cannot_read_b_rows(api_client, entries):
    _, theirs = entries
    resp = api_client.get(f"/api/v1/audit-log/{theirs.pk}/")
    assert resp.status_code == 404
    assert _error(resp)["code"] == "not_found"
    assert "Bravo" not in resp.content.decode()
    listing = api_client.get("/api/v1/audit-log/")
    assert [r["object_repr"] for r in listing.json()["results"]] == ["Alpha marker"]


def test_current_tenant_is_the_keys(api_client, tenant):
    assert api_client.get("/api/v1/tenant/").json()["slug"] == tenant.slug


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer nonsense",
        "Bearer rk_0000000000.wrongsecret",
        "Token abc",
        "Bearer ",
        "Bearer \u00e9\u00e9",
    ],
    ids=["missing", "garbage", "unknown", "wrong-scheme", "empty", "non-ascii"],
)
def test_missing_or_wrong_key_gets_401_json(db, tenant, header):
    client = Client(HTTP_AUTHORIZATION=header) if header is not None else Client()
    resp = client.get("/api/v1/audit-log/")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"].startswith("Bearer")
    assert _error(resp)["code"] == "unauthorized"


def test_tampered_key_gets_401(db, tenant):
    prefix, _, secret = tenant.api_key.partition(".")
    tampered = f"{prefix}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    resp = Client(HTTP_AUTHORIZATION=f"Bearer {tampered}").get("/api/v1/audit-log/")
    assert resp.status_code == 401


def test_revoked_key_gets_401(api_client, tenant):
    key = ApiKey.objects.for_tenant(tenant).get()
    assert api_client.get("/api/v1/audit-log/").status_code == 200
    api_key_revoke(key=key)
    resp = api_client.get("/api/v1/audit-log/")
    assert resp.status_code == 401
    assert "revoked" in _error(resp)["message"]


def test_read_only_key_cannot_write(db, tenant, read_only_key):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {read_only_key}")
    assert client.get("/api/v1/audit-log/").status_code == 200
    resp = client.post("/api/v1/audit-log/", {}, content_type="application/json")
    assert resp.status_code == 403
    assert _error(resp)["code"] == "forbidden"


def test_last_used_is_recorded(api_client, tenant):
    key = ApiKey.objects.for_tenant(tenant).get()
    assert key.last_used_at is None
    api_client.get("/api/v1/tenant/")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_unknown_api_url_is_json_404(api_client):
    resp = api_client.get("/api/v1/no-such-thing/")
    assert resp.status_code == 404
    assert _error(resp)["code"] == "not_found"


def test_schema_and_docs_are_served(db):
    client = Client()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/audit-log/" in paths
    assert "401" in paths["/api/v1/audit-log/"]["get"]["responses"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.content.decode()
    assert "cdn" not in docs.content.decode().lower()


def test_audit_count_unchanged(entries, tenant):
    assert AuditEntry.objects.for_tenant(tenant).count() == 1
