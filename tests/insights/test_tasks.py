"""The beat's insights work: the nightly rollups once per tenant night, the
weekly summaries when due, and the command that rebuilds rollups on demand."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from insights import tasks
from insights.models import InsightsSettings, RetentionDaily
from retention import clock
from tests.factories import CustomerFactory, make_order

# 06:30 in Berlin: after the default 05:00 rollup hour.
NIGHT = datetime(2026, 6, 3, 4, 30, tzinfo=UTC)


def test_the_beat_runs_every_insights_task():
    beat = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "insights.schedule_nightly",
        "insights.refresh_today",
        "insights.send_summaries",
    } <= beat


def test_nightly_rollups_run_once_per_tenant_night(tenant, other_tenant, eager_tasks):
    make_order(CustomerFactory(tenant=tenant), NIGHT - timedelta(days=3))
    clock.set_now(NIGHT)
    assert sorted(tasks.schedule_nightly()) == sorted([tenant.pk, other_tenant.pk])
    assert RetentionDaily.objects.for_tenant(tenant).filter(first_buyers=1).count() == 1
    assert not RetentionDaily.objects.for_tenant(other_tenant).filter(first_buyers__gt=0).exists()
    # Claimed: later beats the same night queue nothing.
    clock.set_now(NIGHT + timedelta(minutes=15))
    assert tasks.schedule_nightly() == []
    # A repeated message of tonight's run does nothing either.
    assert tasks.refresh_rollups(tenant.pk, NIGHT.isoformat()) == {"skipped": "already ran tonight"}
    clock.set_now(NIGHT + timedelta(days=1))
    assert tenant.pk in tasks.schedule_nightly()
    claimed = InsightsSettings.objects.for_tenant(tenant).get().last_rollups_at
    assert claimed == NIGHT + timedelta(days=1)


def test_refresh_today_covers_every_tenant(tenant, other_tenant, eager_tasks):
    clock.set_now(NIGHT)
    make_order(CustomerFactory(tenant=tenant), NIGHT - timedelta(hours=1))
    assert set(tasks.refresh_today()) >= {tenant.pk, other_tenant.pk}
    assert RetentionDaily.objects.for_tenant(tenant).filter(first_buyers=1).exists()


def test_send_summaries_sends_what_is_due(tenant):
    # Nobody opted in: nothing is due, nothing is sent.
    clock.set_now(NIGHT)
    assert tasks.send_summaries() == []


def test_refresh_insights_command(tenant):
    clock.set_now(NIGHT)
    make_order(CustomerFactory(tenant=tenant), NIGHT - timedelta(days=2))
    out = StringIO()
    call_command("refresh_insights", "--tenant", tenant.slug, "--days", "30", stdout=out)
    assert "rollups rebuilt" in out.getvalue() and "retention_daily" in out.getvalue()
    assert RetentionDaily.objects.for_tenant(tenant).filter(first_buyers=1).exists()
    with pytest.raises(CommandError, match="No tenant"):
        call_command("refresh_insights", "--tenant", "nope")
