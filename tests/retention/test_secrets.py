"""Webhook signing secrets rotate with an overlap; API keys are stored hashed."""

from datetime import timedelta

from retention import clock
from retention.models import ApiKey, WebhookSecret
from retention.services import api_key_issue, webhook_secret_rotate


def test_rotation_keeps_old_secret_active_for_the_overlap(tenant):
    old = WebhookSecret.objects.for_tenant(tenant).get()
    new = webhook_secret_rotate(tenant=tenant, overlap=timedelta(days=7))
    now = clock.now()
    active = [s.secret for s in WebhookSecret.objects.for_tenant(tenant) if s.is_active(now)]
    assert sorted(active) == sorted([old.secret, new.secret])
    later = now + timedelta(days=7, seconds=1)
    assert [s.secret for s in WebhookSecret.objects.for_tenant(tenant) if s.is_active(later)] == [
        new.secret
    ]
    assert new.secret.startswith("whsec_") and new.secret != old.secret


def test_api_key_stored_only_as_hash(tenant):
    key, raw = api_key_issue(tenant=tenant, name="pos", scopes=["read"])
    row = ApiKey.objects.for_tenant(tenant).filter(pk=key.pk).values().get()
    assert raw not in str(row)
    assert raw.startswith(key.prefix + ".")
