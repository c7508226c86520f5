"""Processed webhooks leave the inbox after the store's ``inbox_keep_days``;
pending and failed ones stay, and other stores keep theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from commerce.models import CommerceSettings, InboxEntry, InboxStatus
from commerce.services import inbox
from commerce.tasks import prune_inbox
from retention import clock
from tests.commerce.test_admin_commerce import _settings_form
from tests.conftest import login_as

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _entry(tenant, days_ago: float, status: str, name: str) -> InboxEntry:
    return InboxEntry.objects.create(
        tenant=tenant,
        channel="standard",
        webhook_id=name,
        topic="order.created",
        body="{}",
        status=status,
        received_at=NOW - timedelta(days=days_ago),
    )


def _left(tenant) -> list[str]:
    return sorted(InboxEntry.objects.for_tenant(tenant).values_list("webhook_id", flat=True))


def test_processed_entries_past_the_keep_days_are_deleted_and_nothing_else(tenant, other_tenant):
    # given a store that keeps 7 days, and another store with the default 30
    CommerceSettings.objects.for_tenant(tenant).update(inbox_keep_days=7)
    _entry(tenant, 8, InboxStatus.PROCESSED, "old-done")
    _entry(tenant, 6, InboxStatus.PROCESSED, "recent-done")
    _entry(tenant, 40, InboxStatus.FAILED, "old-failed")
    _entry(tenant, 40, InboxStatus.PENDING, "old-pending")
    _entry(other_tenant, 8, InboxStatus.PROCESSED, "theirs-done")

    # when the hourly task runs
    clock.set_now(NOW)
    deleted = prune_inbox()

    # then only the first store's old processed entry is gone
    assert deleted == 1
    assert _left(tenant) == ["old-failed", "old-pending", "recent-done"]
    assert _left(other_tenant) == ["theirs-done"]


def test_a_large_backlog_is_deleted_in_batches(tenant, monkeypatch):
    monkeypatch.setattr(inbox, "PRUNE_BATCH", 3)
    for i in range(7):
        _entry(tenant, 31 + i, InboxStatus.PROCESSED, f"done-{i}")
    _entry(tenant, 29, InboxStatus.PROCESSED, "kept")

    assert inbox.inbox_prune(tenant_id=tenant.pk, now=NOW) == 7
    assert _left(tenant) == ["kept"]
    assert inbox.inbox_prune(tenant_id=tenant.pk, now=NOW) == 0


def test_a_webhook_sent_again_after_its_entry_was_pruned_is_stored_again(tenant):
    from tests.commerce.test_webhooks import ORDER, post

    first = post(tenant, {"type": "order.created", "data": ORDER}, msg_id="again-1")
    assert first.status_code == 202
    clock.set_now(clock.now() + timedelta(days=31))
    InboxEntry.objects.for_tenant(tenant).update(status=InboxStatus.PROCESSED)
    assert inbox.inbox_prune(tenant_id=tenant.pk) == 1

    again = post(tenant, {"type": "order.created", "data": ORDER}, msg_id="again-1")

    assert again.status_code == 202
    assert again.json()["status"] == "accepted"


@pytest.mark.parametrize(("days", "ok"), [(0, False), (1, True), (365, True), (366, False)])
def test_the_keep_days_are_edited_in_the_admin_within_bounds(tenant, days, ok):
    row = CommerceSettings.objects.for_tenant(tenant).get()
    client = login_as(tenant, "owner")
    url = reverse("admin:commerce_commercesettings_change", args=[row.pk])
    form = _settings_form(inbox_keep_days=days)
    resp = client.post(url, form)
    row.refresh_from_db()
    if ok:
        assert resp.status_code == 302, resp.content.decode()[-1500:]
        assert row.inbox_keep_days == days
    else:
        assert resp.status_code == 200
        assert row.inbox_keep_days == 30
