"""Celery tasks of insights (routed to the ``default`` queue): thin wrappers.

- ``insights.schedule_nightly`` (beat, every 15 minutes): queue the nightly
  rollup refresh of every tenant whose local rollup hour has come and that has
  not run since; the run claims its night first (two beats, one run).
- ``insights.refresh_rollups``: rebuild the days that can still change (the
  whole history the first time a tenant is seen).
- ``insights.refresh_today`` (beat, hourly): queue ``insights.refresh_days``
  (today's and yesterday's rows) for every tenant, so the dashboard is at most
  an hour behind during the day.
- ``insights.send_summaries`` (beat, every 15 minutes): make and send each
  weekly summary that is due (``summaries_due``); the outbox key per week and
  recipient makes a repeat harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery import shared_task
from django.db import OperationalError
from django.db.models import Q

from insights.models import InsightsSettings, MessageDaily, RetentionDaily
from retention import clock
from retention.models import Tenant

logger = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


def _ensure_settings() -> None:
    """Every tenant gets its settings row (and so its nightly run)."""
    have = set(InsightsSettings.objects.unscoped().values_list("tenant_id", flat=True))
    missing = Tenant.objects.exclude(pk__in=have).values_list("pk", flat=True)
    InsightsSettings.objects.bulk_create(
        [InsightsSettings(tenant_id=pk) for pk in missing], ignore_conflicts=True
    )


@shared_task(name="insights.schedule_nightly")
def schedule_nightly() -> list[int]:
    now = clock.now()
    _ensure_settings()
    queued = []
    # Platform-wide on purpose: the beat looks at every tenant's settings row.
    for settings in InsightsSettings.objects.unscoped().select_related("tenant"):
        due = clock.hour_start(settings.tenant.timezone, settings.nightly_hour, now)
        if settings.last_rollups_at is None or settings.last_rollups_at < due:
            refresh_rollups.delay(settings.tenant_id, due.isoformat())
            queued.append(settings.tenant_id)
    return queued


@shared_task(name="insights.refresh_rollups", **RETRY)
def refresh_rollups(tenant_id: int, due: str | None = None) -> dict:
    from insights.services.rollups import rollups_backfill, rollups_refresh_recent

    if due is not None:
        claimed = (
            InsightsSettings.objects.for_tenant(tenant_id)
            .filter(
                Q(last_rollups_at__isnull=True) | Q(last_rollups_at__lt=datetime.fromisoformat(due))
            )
            .update(last_rollups_at=clock.now())
        )
        if not claimed:
            return {"skipped": "already ran tonight"}
    first = not (
        RetentionDaily.objects.for_tenant(tenant_id).exists()
        or MessageDaily.objects.for_tenant(tenant_id).exists()
    )
    if first:
        return {"backfill": rollups_backfill(tenant_id=tenant_id)}
    return {"recent": rollups_refresh_recent(tenant_id=tenant_id)}


@shared_task(name="insights.refresh_today")
def refresh_today() -> list[int]:
    """Queue each tenant's refresh of today and yesterday: one task per tenant,
    so more workers finish sooner and one slow store holds up no other."""
    queued = list(Tenant.objects.values_list("pk", flat=True))
    for tenant_id in queued:
        refresh_days.delay(tenant_id)
    return queued


@shared_task(name="insights.refresh_days", **RETRY)
def refresh_days(tenant_id: int) -> dict:
    from insights.services.rollups import rollups_refresh

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return {"missing": tenant_id}
    today = clock.now().astimezone(ZoneInfo(tenant.timezone or "UTC")).date()
    return rollups_refresh(tenant_id=tenant_id, start=today - timedelta(days=1), end=today)


@shared_task(name="insights.send_summaries", **RETRY)
def send_summaries() -> list[str]:
    from insights.services.summary import summaries_due, summary_send

    sent = []
    for tenant_id, week_start in summaries_due(clock.now()):
        tenant = Tenant.objects.get(pk=tenant_id)
        try:
            summary_send(tenant=tenant, week_start=week_start)
        except Exception:  # one store's failure must not stop the others
            logger.exception("insights.summary_failed tenant_id=%s week=%s", tenant_id, week_start)
            continue
        sent.append(f"{tenant.slug}:{week_start}")
    return sent
