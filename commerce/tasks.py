"""Celery tasks of commerce: thin wrappers that call the services.

- ``commerce.drain_inbox`` (queue ``ingest``): process a tenant's due webhooks in
  batches. Webhooks *kick* it after commit; while a drain is queued and has not
  started, further kicks publish nothing, so a burst of webhooks costs a few
  broker messages, not one each. And for ``INBOX_KICK_MEMO_SECONDS`` after a
  process has seen a drain queued, its kicks do not even ask Redis (a round
  trip that was a fifth of a webhook's cost): each kicked drain runs once more
  that long after it ends, which sees whatever those kicks skipped.
- ``commerce.process_inbox_entry`` (queue ``ingest``): process one entry now.
- ``commerce.sweep_inbox`` (beat, every minute): kick every tenant that has due
  pending entries nobody is draining (a lost kick, a broker restart, or an
  out-of-order event whose backoff has passed): delayed, never lost.
- ``commerce.mark_abandoned_carts`` (beat, every 5 minutes).
- ``commerce.prune_inbox`` (beat, hourly): delete each tenant's processed
  entries older than its ``inbox_keep_days``.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import timedelta

import redis
from celery import shared_task
from django.conf import settings

from commerce.models import InboxEntry, InboxStatus
from commerce.services.inbox import inbox_drain, inbox_process, inbox_prune
from retention import clock
from retention.models import Tenant

logger = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"
# Safety expiry of the coalescing key, should a queued drain be lost.
KICK_WINDOW_MS = 5000
# A due entry this long untouched means its kick was lost: the sweeper kicks again.
SWEEP_AFTER = timedelta(seconds=60)


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def _coalescing() -> bool:
    return bool(settings.REDIS_URL) and not drain_inbox.app.conf.task_always_eager


def _kick_key(tenant_id: int) -> str:
    return f"retention:inbox-kick:{tenant_id}"


# Per process: tenant id -> when this process last saw a drain queued for it
# (time.monotonic() taken before it asked Redis).
_SEEN_QUEUED: dict[int, float] = {}


def kick_inbox(*, tenant_id: int) -> None:
    """Make sure a drain for this tenant is queued soon. Never raises: the entry
    is stored, and the sweeper finds it if the kick is lost.

    Why skipping Redis within the memo is safe: this process saw, at time t0,
    the key set, so a kicked drain D had not started. D starts after t0, so
    its trailing check, ``memo`` seconds after D ends, runs after t0 + memo:
    after the commit of every entry whose kick was skipped."""
    try:
        memo = settings.INBOX_KICK_MEMO_SECONDS
        asked_at = time.monotonic()
        # Only a coalescing process records a sighting, so this needs no look
        # at Celery's configuration first (that lookup cost as much as the rest).
        if asked_at - _SEEN_QUEUED.get(tenant_id, float("-inf")) < memo:
            return
        if not _coalescing():
            drain_inbox.apply_async((tenant_id,), queue=INGEST_QUEUE)
            return
        # The key is set when a drain is queued and cleared when it starts: while
        # it is set, a queued drain that has not looked yet will see this entry.
        if _redis().set(_kick_key(tenant_id), 1, nx=True, px=KICK_WINDOW_MS):
            drain_inbox.apply_async((tenant_id,), {"trail": memo}, queue=INGEST_QUEUE)
        if len(_SEEN_QUEUED) > 10_000:
            _SEEN_QUEUED.clear()
        _SEEN_QUEUED[tenant_id] = asked_at
    except Exception:  # broker or Redis down; the row is safe in the inbox
        logger.warning("commerce.inbox_kick_failed tenant_id=%s", tenant_id, exc_info=True)


@shared_task(
    name="commerce.drain_inbox", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def drain_inbox(tenant_id: int, trail: float = 0.0, trailing: bool = False) -> bool:
    """Drain the tenant's due entries. ``trail``: check once more this many
    seconds after the drain ends (see ``kick_inbox``); ``trailing``: this is
    that check, which leaves the key alone (it may belong to a newer drain)."""
    if _coalescing() and not trailing:
        try:
            _redis().delete(_kick_key(tenant_id))
        except redis.RedisError:
            logger.warning("commerce.inbox_kick_clear_failed tenant_id=%s", tenant_id)
    more = inbox_drain(tenant_id=tenant_id)
    if more:
        drain_inbox.apply_async((tenant_id,), {"trail": trail}, queue=INGEST_QUEUE)
    elif trail > 0 and not trailing:
        drain_inbox.apply_async(
            (tenant_id,),
            {"trailing": True},
            countdown=min(trail, settings.CELERY_MAX_COUNTDOWN),
            queue=INGEST_QUEUE,
        )
    return more


@shared_task(name="commerce.process_inbox_entry", acks_late=True, reject_on_worker_lost=True)
def process_inbox_entry(tenant_id: int, entry_id: int) -> str:
    entry = (
        InboxEntry.objects.for_tenant(tenant_id)
        .select_related("tenant")
        .filter(pk=entry_id)
        .first()
    )
    if entry is None:
        return "missing"
    return str(inbox_process(entry=entry))


@shared_task(name="commerce.sweep_inbox", acks_late=True, reject_on_worker_lost=True)
def sweep_inbox() -> int:
    """Kick each tenant with entries due for longer than SWEEP_AFTER. Returns
    how many such entries there were."""
    cutoff = clock.now() - SWEEP_AFTER
    total = 0
    for tenant_id in Tenant.objects.filter(is_active=True).values_list("pk", flat=True):
        due = (
            InboxEntry.objects.for_tenant(tenant_id)
            .filter(status=InboxStatus.PENDING, available_at__lte=cutoff)
            .count()
        )
        if due:
            logger.info("commerce.inbox_swept tenant_id=%s due=%s", tenant_id, due)
            kick_inbox(tenant_id=tenant_id)
            total += due
    return total


@shared_task(name="commerce.mark_abandoned_carts", acks_late=True, reject_on_worker_lost=True)
def mark_abandoned_carts() -> int:
    from commerce.services.orders import carts_mark_abandoned

    total = 0
    for tenant in Tenant.objects.filter(is_active=True):
        total += carts_mark_abandoned(tenant=tenant)
    return total


@shared_task(name="commerce.prune_inbox")
def prune_inbox() -> int:
    """Every active tenant's processed entries past its keep days; returns how many."""
    return sum(
        inbox_prune(tenant_id=tenant_id)
        for tenant_id in Tenant.objects.filter(is_active=True).values_list("pk", flat=True)
    )
