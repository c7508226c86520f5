"""Celery tasks of commerce: thin wrappers that call the services.

- ``commerce.process_inbox_entry`` (queue ``ingest``): apply one stored webhook;
  an out-of-order event is retried with a bounded backoff.
- ``commerce.sweep_inbox`` (beat, every minute): re-enqueue entries still pending
  after ``SWEEP_AFTER``, so a lost broker message delays work but never loses it.
- ``commerce.mark_abandoned_carts`` (beat, every 5 minutes).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from commerce.models import InboxEntry, InboxStatus
from retention import clock
from retention.models import Tenant

logger = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(minutes=2)
SWEEP_BATCH = 500
RETRY_BASE_SECONDS = 10
# Routed per call: Celery deprecates the task-level ``queue`` attribute, and a
# retry goes back to the queue it came from.
INGEST_QUEUE = "ingest"


def enqueue_inbox_entry(*, tenant_id: int, entry_id: int) -> None:
    """Enqueue processing; a broker outage is logged, and the sweeper picks the
    entry up later (it is stored, so nothing is lost)."""
    try:
        process_inbox_entry.apply_async((tenant_id, entry_id), queue=INGEST_QUEUE)
    except Exception:  # the broker is down; the row is safe in the inbox
        logger.warning(
            "commerce.inbox_enqueue_failed tenant_id=%s entry_id=%s",
            tenant_id,
            entry_id,
            exc_info=True,
        )


@shared_task(
    bind=True,
    name="commerce.process_inbox_entry",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded by the entry's attempts (inbox.MAX_ATTEMPTS)
)
def process_inbox_entry(self, tenant_id: int, entry_id: int) -> str:
    from commerce.services.inbox import Outcome, inbox_process

    entry = (
        InboxEntry.objects.for_tenant(tenant_id)
        .select_related("tenant")
        .filter(pk=entry_id)
        .first()
    )
    if entry is None:
        return "missing"
    outcome = inbox_process(entry=entry)
    if outcome == Outcome.WAITING and not self.request.is_eager:
        # In-process (eager) runs leave it pending for the sweeper instead.
        countdown = min(RETRY_BASE_SECONDS * 2**self.request.retries, settings.CELERY_MAX_COUNTDOWN)
        raise self.retry(countdown=countdown, queue=INGEST_QUEUE)
    return str(outcome)


@shared_task(name="commerce.sweep_inbox", acks_late=True, reject_on_worker_lost=True)
def sweep_inbox() -> int:
    """Re-enqueue entries pending for longer than SWEEP_AFTER, per tenant, in batches."""
    cutoff = clock.now() - SWEEP_AFTER
    total = 0
    for tenant_id in Tenant.objects.filter(is_active=True).values_list("pk", flat=True):
        ids = list(
            InboxEntry.objects.for_tenant(tenant_id)
            .filter(status=InboxStatus.PENDING, received_at__lte=cutoff)
            .order_by("received_at")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        for entry_id in ids:
            enqueue_inbox_entry(tenant_id=tenant_id, entry_id=entry_id)
        total += len(ids)
        if ids:
            logger.info("commerce.inbox_swept tenant_id=%s count=%s", tenant_id, len(ids))
    return total


@shared_task(name="commerce.mark_abandoned_carts", acks_late=True, reject_on_worker_lost=True)
def mark_abandoned_carts() -> int:
    from commerce.services.orders import carts_mark_abandoned

    total = 0
    for tenant in Tenant.objects.filter(is_active=True):
        total += carts_mark_abandoned(tenant=tenant)
    return total
