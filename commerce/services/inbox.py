"""Processing of stored webhooks (the inbox): claim, parse, apply, record.

An entry is claimed by a conditional update (only pending or failed rows, with
``attempts = attempts + 1``), so a processed entry is never applied twice and a
replayed task does nothing. An event that refers to something not received yet
(:class:`NotYetKnown`) leaves the entry pending with a later ``available_at``
(backoff), up to ``MAX_ATTEMPTS``; after that it is failed, never dropped, and can be retried
from the admin.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F

from commerce import ingest
from commerce.models import InboxEntry, InboxStatus
from commerce.services.orders import NotYetKnown, commerce_settings
from retention import clock
from retention.errors import DomainError

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_ERROR_CHARS = 2000
RETRY_BASE = timedelta(seconds=10)
RETRY_MAX = timedelta(minutes=5)
DRAIN_BATCH = 100
DRAIN_SECONDS = 30.0


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    WAITING = "waiting"  # out of order: still pending, retry later
    FAILED = "failed"
    SKIPPED = "skipped"  # already processed, or claimed by someone else


def inbox_process(*, entry: InboxEntry) -> Outcome:
    """Apply one stored webhook. Safe to call any number of times."""
    with transaction.atomic():
        # Claim: lock the row without waiting (another worker holding it is
        # processing it), then count the attempt. The lock is held until commit.
        rows = InboxEntry.objects.for_tenant(entry.tenant_id).filter(
            pk=entry.pk, status__in=[InboxStatus.PENDING, InboxStatus.FAILED]
        )
        if not rows.select_for_update(skip_locked=True).values_list("pk", flat=True):
            return Outcome.SKIPPED
        rows.update(attempts=F("attempts") + 1)
        entry.refresh_from_db(fields=["attempts", "status", "body", "topic", "channel"])
        try:
            with transaction.atomic():
                _apply(entry)
        except NotYetKnown as exc:
            final = entry.attempts >= MAX_ATTEMPTS
            status = InboxStatus.FAILED if final else InboxStatus.PENDING
            _record(
                entry,
                status=status,
                error=f"{exc.message} (attempt {entry.attempts})",
                available_at=clock.now() + retry_delay(entry.attempts),
            )
            logger.info(
                "commerce.inbox_waiting tenant_id=%s entry_id=%s attempts=%s final=%s",
                entry.tenant_id,
                entry.pk,
                entry.attempts,
                final,
            )
            return Outcome.FAILED if final else Outcome.WAITING
        except DomainError as exc:
            detail = f"{exc.message} {json.dumps(exc.fields, default=str)}" if exc.fields else ""
            _record(entry, status=InboxStatus.FAILED, error=detail or exc.message)
            return Outcome.FAILED
        except Exception as exc:  # recorded on the row and retried from the admin
            logger.exception(
                "commerce.inbox_failed tenant_id=%s entry_id=%s", entry.tenant_id, entry.pk
            )
            _record(entry, status=InboxStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            return Outcome.FAILED
        _record(entry, status=InboxStatus.PROCESSED, error="", processed_at=clock.now())
    return Outcome.PROCESSED


def inbox_retry(*, entry: InboxEntry) -> bool:
    """Put a failed (or stuck pending) entry back in the queue with a fresh
    attempt budget. Returns False for a processed entry (nothing to do)."""
    from commerce.tasks import kick_inbox

    with transaction.atomic():
        updated = (
            InboxEntry.objects.for_tenant(entry.tenant_id)
            .filter(pk=entry.pk, status__in=[InboxStatus.FAILED, InboxStatus.PENDING])
            .update(status=InboxStatus.PENDING, attempts=0, available_at=clock.now())
        )
        if updated:
            tenant_id = entry.tenant_id
            transaction.on_commit(lambda: kick_inbox(tenant_id=tenant_id))
    return bool(updated)


def retry_delay(attempts: int) -> timedelta:
    """Backoff for an out-of-order event: 10 s, 20 s, 40 s … at most 5 minutes."""
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX)


def inbox_drain(*, tenant_id: int, budget_seconds: float = DRAIN_SECONDS) -> bool:
    """Process the tenant's due pending entries, oldest first, in batches, until
    none is left or the time budget is spent. Several drains may run at once:
    each entry is claimed without waiting, so they share the work. Returns True
    when due entries remain (the caller enqueues another drain)."""
    deadline = time.monotonic() + budget_seconds
    while True:
        due = list(
            InboxEntry.objects.for_tenant(tenant_id)
            .filter(status=InboxStatus.PENDING, available_at__lte=clock.now())
            .select_related("tenant")
            .order_by("available_at", "pk")[:DRAIN_BATCH]
        )
        if not due:
            return False
        for entry in due:
            inbox_process(entry=entry)
        if time.monotonic() > deadline:
            return True


def _apply(entry: InboxEntry) -> None:
    try:
        payload = json.loads(entry.body)
    except (ValueError, RecursionError) as exc:
        raise DomainError(f"The stored body is not JSON: {exc}", code="not_json") from exc
    if not isinstance(payload, dict):
        raise DomainError("The stored body is not a JSON object.", code="not_json")
    tenant = entry.tenant
    if entry.channel == "shopify":
        from commerce import shopify

        for topic, data in shopify.to_events(entry.topic, payload):
            ingest.apply(tenant=tenant, topic=topic, data=data, source="shopify")
        return
    if not isinstance(payload.get("data"), dict):
        raise DomainError("The stored webhook has no data object.", code="invalid")
    ingest.apply(tenant=tenant, topic=entry.topic, data=payload["data"])


def _record(
    entry: InboxEntry, *, status: str, error: str, processed_at=None, available_at=None
) -> None:
    fields = {"status": status, "error": error[:MAX_ERROR_CHARS]}
    if processed_at is not None:
        fields["processed_at"] = processed_at
    if available_at is not None:
        fields["available_at"] = available_at
    InboxEntry.objects.for_tenant(entry.tenant_id).filter(pk=entry.pk).update(**fields)
    for name, value in fields.items():
        setattr(entry, name, value)


PRUNE_BATCH = 10_000


def inbox_prune(*, tenant_id: int, now: datetime | None = None) -> int:
    """Delete the tenant's processed entries older than its ``inbox_keep_days``,
    in batches of PRUNE_BATCH (a short statement each, found through the
    (tenant, status, received_at) index); returns how many.
    Pending and failed entries are never deleted here."""
    days = commerce_settings(tenant_id).inbox_keep_days
    cutoff = (now or clock.now()) - timedelta(days=days)
    old = InboxEntry.objects.for_tenant(tenant_id).filter(
        status=InboxStatus.PROCESSED, received_at__lt=cutoff
    )
    deleted = 0
    while True:
        batch = list(old.order_by("-received_at").values_list("pk", flat=True)[:PRUNE_BATCH])
        if not batch:
            break
        count, _ = InboxEntry.objects.for_tenant(tenant_id).filter(pk__in=batch).delete()
        deleted += count
        if len(batch) < PRUNE_BATCH:
            break
    if deleted:
        logger.info(
            "commerce.inbox_pruned tenant_id=%s before=%s entries=%s",
            tenant_id, cutoff.isoformat(), deleted,
        )  # fmt: skip
    return deleted
