"""The sweeper (beat, every 30 seconds): the database is the source of truth
for what must be sent, so a lost broker message or a dead worker delays a send
but never loses or repeats it.

- ``messages_recover``: batches whose lease ran out (their worker died). In each,
  the lowest ``RECORD_EVERY`` unrecorded messages may have reached the provider
  (calls go in id order, and a worker leaves at most that many accepted calls
  unwritten): they become ``unknown`` and wait for a callback, or for
  ``messaging.services.reconcile`` to ask the provider; the others never left
  and go back to the queue.
- ``messages_dispatch_due``: pending messages that are due (new ones whose task
  was lost, quiet hours over, retry backoff over) are handed to send tasks in
  batches, per tenant.

Reads here cross tenants on purpose (``unscoped()``): the sweeper is platform
work that then fans out per tenant.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q

from messaging.models import PENDING, Message, Reason, Status
from messaging.services.send import BATCH_SIZE, RECORD_EVERY, ready_channels
from retention import clock

logger = logging.getLogger(__name__)

DISPATCH_LIMIT = 50_000
# Fresh messages have their own task queued on commit; leave them to it.
DISPATCH_GRACE = timedelta(seconds=30)


def messages_recover(*, now: datetime | None = None) -> dict[str, int]:
    now = now or clock.now()
    with transaction.atomic():
        expired = list(
            Message.objects.unscoped()
            .filter(status=Status.SENDING, lease_until__lt=now)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "claim")
        )
        by_claim: dict = defaultdict(list)
        for pk, claim in expired:  # in id order, as the calls went
            by_claim[claim].append(pk)
        maybe_sent = {pk for pks in by_claim.values() for pk in pks[:RECORD_EVERY]}
        never_sent = [pk for pk, _ in expired if pk not in maybe_sent]
        if maybe_sent:
            Message.objects.unscoped().filter(pk__in=maybe_sent).update(
                status=Status.UNKNOWN,
                reason=Reason.WORKER_LOST,
                detail="The worker stopped during this send; waiting for the provider's "
                "callback, else the provider is asked.",
                sent_at=now,
                claim=None,
                lease_until=None,
                updated_at=now,
            )
        if never_sent:
            Message.objects.unscoped().filter(pk__in=never_sent).update(
                status=Status.QUEUED,
                claim=None,
                lease_until=None,
                attempts=F("attempts") - 1,
                updated_at=now,
            )
    if expired:
        logger.warning(
            "messaging.recovered unknown=%s requeued=%s", len(maybe_sent), len(never_sent)
        )
    return {"unknown": len(maybe_sent), "requeued": len(never_sent)}


def messages_dispatch_due(
    *,
    now: datetime | None = None,
    grace: timedelta = DISPATCH_GRACE,
    limit: int = DISPATCH_LIMIT,
    enqueue: Callable[[int, list[int]], None] | None = None,
) -> int:
    """Queue send tasks for due pending messages; returns how many were handed on."""
    now = now or clock.now()
    if enqueue is None:
        from messaging.tasks import send_batch

        def enqueue(tenant_id: int, ids: list[int]) -> None:
            send_batch.delay(tenant_id, ids)

    rows = (
        Message.objects.unscoped()
        .filter(status__in=PENDING, due_at__lte=now, channel__in=ready_channels())
        .filter(Q(updated_at__lte=now - grace) | Q(attempts__gt=0))
        .order_by("due_at")
        .values_list("tenant_id", "pk")[:limit]
    )
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, pk in rows:
        by_tenant[tenant_id].append(pk)
    handed = 0
    for tenant_id, ids in by_tenant.items():
        ids.sort()
        for start in range(0, len(ids), BATCH_SIZE):
            enqueue(tenant_id, ids[start : start + BATCH_SIZE])
        handed += len(ids)
    if handed:
        logger.info("messaging.dispatched count=%s tenants=%s", handed, len(by_tenant))
    return handed
