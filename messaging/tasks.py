"""Celery tasks of messaging (routed to the ``dispatch`` queue): thin wrappers
over services.

- ``messaging.send_batch``: claim, check and send up to a batch of messages of
  one tenant (queued on commit by ``message_enqueue``, or by the sweeper).
- ``messaging.sweep`` (beat, every 30 seconds): recover batches of dead workers,
  ask the provider about ``unknown`` messages no callback settled, hand due
  messages to send tasks, apply provider callbacks not yet applied.
"""

from __future__ import annotations

import psycopg
from celery import shared_task
from django.db import InterfaceError, OperationalError

# A dropped connection or deadlock is retried within the broker's countdown
# limit; the claim makes every run safe to repeat. The driver's own errors count
# too: the send path's hot statement runs on psycopg's connection directly. The
# retry runs on a new connection (retention.celery closes the broken one).
RETRY = {
    "autoretry_for": (
        OperationalError,
        InterfaceError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    ),
    # 2, 4, 8, 16 and 32 s: a database restart of up to a minute is ridden out
    # before the sweeper has to pick the batch up. Without jitter on purpose:
    # Celery's full jitter draws each wait from 0 up, and tasks failing fast on
    # a refused connection spent all five retries within a second or two.
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": False,
    "max_retries": 5,
}


@shared_task(name="messaging.send_batch", **RETRY)
def send_batch(tenant_id: int, message_ids: list[int]) -> dict:
    from messaging.services.send import send_batch as run

    return run(tenant_id=tenant_id, message_ids=message_ids)


@shared_task(name="messaging.sweep", **RETRY)
def sweep() -> dict:
    from messaging.services.callbacks import provider_events_apply_pending
    from messaging.services.reconcile import messages_reconcile
    from messaging.services.sweep import messages_dispatch_due, messages_recover

    recovered = messages_recover()
    reconciled = messages_reconcile()
    dispatched = messages_dispatch_due()
    applied = provider_events_apply_pending()
    return {
        "recovered": recovered,
        "reconciled": reconciled,
        "dispatched": dispatched,
        "applied_events": applied,
    }
