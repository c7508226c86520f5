"""Operator commands: create_tenant and add_member."""

import json

import pytest
from django.core.management import CommandError, call_command

from retention.models import ApiKey, Membership, Tenant, WebhookSecret
from retention.selectors import api_key_authenticate


def _run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_prints_secret_and_key_once_as_json(db):
    out = json.loads(
        _run("create_tenant", "acme", "--name", "Acme", "--timezone", "America/New_York", "--json")
    )
    assert set(out) == {"slug", "webhook_secret", "api_key"}
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.timezone) == ("Acme", "America/New_York")
    assert out["webhook_secret"].startswith("whsec_")
    assert WebhookSecret.objects.for_tenant(tenant).get().secret == out["webhook_secret"]
    key = api_key_authenticate(raw=out["api_key"])
    assert key is not None and key.tenant == tenant
    assert out["api_key"] not in str(ApiKey.objects.for_tenant(tenant).values().get())


def test_create_tenant_with_owner(db):
    _run("create_tenant", "acme", "--owner", "Boss@Acme.example")
    m = Membership.objects.unscoped().get(user__email="boss@acme.example")
    assert (m.tenant.slug, m.role) == ("acme", "owner")


def test_create_tenant_twice_fails_clearly(db):
    _run("create_tenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        _run("create_tenant", "acme")
    assert Tenant.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["Bad Slug"], "slug"),
        (["ok-slug", "--timezone", "Mars/Base"], "timezone"),
        (["ok-slug", "--currency", "euro"], "currency"),
    ],
)
def test_create_tenant_rejects_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        _run("create_tenant", *args)
    assert not Tenant.objects.exists()


def test_add_member_creates_user_and_sets_role(tenant):
    out = _run(
        "add_member",
        "--tenant",
        tenant.slug,
        "Agent@Example.com",
        "--role",
        "agent",
        "--password",
        "a-long-password-1",
    )
    assert "Created user" in out
    m = Membership.objects.for_tenant(tenant).get(user__email="agent@example.com")
    assert m.role == "agent"
    assert m.user.check_password("a-long-password-1")
    assert m.user.is_staff

    _run("add_member", "--tenant", tenant.slug, "agent@example.com", "--role", "marketer")
    assert Membership.objects.for_tenant(tenant).get(user=m.user).role == "marketer"


def test_add_member_unknown_tenant(db):
    with pytest.raises(CommandError, match="No active tenant"):
        _run("add_member", "--tenant", "nope", "x@example.com", "--role", "agent")


def test_add_member_bad_email(tenant):
    with pytest.raises(CommandError, match="email"):
        _run("add_member", "--tenant", tenant.slug, "not-an-email", "--role", "agent")
