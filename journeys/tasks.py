"""Journey tasks: a beat fan-out per tenant, each tick scanning triggers and
taking due steps. Future work waits as rows with due times, never in the broker."""

from __future__ import annotations

import logging

from celery import shared_task

from journeys import webhook_tasks  # noqa: F401  (registers journeys.deliver_webhook, sweep_webhooks)
from journeys.services.engine import journeys_tick
from journeys.services.triggers import journeys_with_scan_work

logger = logging.getLogger(__name__)


@shared_task(name="journeys.tick", acks_late=True, ignore_result=True)
def tick() -> int:
    """Every minute: one tick task per tenant with an active journey."""
    tenants = journeys_with_scan_work()
    for tenant_id in tenants:
        tick_tenant.delay(tenant_id)
    return len(tenants)


@shared_task(name="journeys.tick_tenant", acks_late=True, ignore_result=True)
def tick_tenant(tenant_id: int) -> dict:
    return journeys_tick(tenant_id=tenant_id)


@shared_task(name="journeys.dispatch", acks_late=True, ignore_result=True)
def dispatch(tenant_id: int, limit: int | None = None) -> int:
    """Only the due steps (the bench and catch-up fan out several of these)."""
    from journeys.services.dispatch import enrollments_dispatch

    return enrollments_dispatch(tenant_id=tenant_id, limit=limit)
