"""Celery tasks of outbound webhooks: thin wrappers over
``journeys.services.webhooks``. Imported by ``journeys.tasks`` so the worker
registers them.

- ``journeys.deliver_webhook``: post one webhook (queued on commit by
  ``outbound_webhook_queue``, or by the sweeper); the claim makes a duplicate
  run a no-op.
- ``journeys.sweep_webhooks`` (beat, every minute): queue due pending
  webhooks (lost tasks, retries whose backoff is over, dead workers' claims).
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

# A dropped connection or deadlock is retried within the broker's countdown
# limit; the claim makes every run safe to repeat. HTTP failures are not
# retried here: they move the row's due time and the sweeper picks it up.
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


@shared_task(name="journeys.deliver_webhook", acks_late=True, **RETRY)
def deliver_webhook(tenant_id: int, webhook_id: int) -> str | None:
    from journeys.services.webhooks import outbound_webhook_deliver

    return outbound_webhook_deliver(webhook_id=webhook_id, tenant_id=tenant_id)


@shared_task(name="journeys.sweep_webhooks", acks_late=True, **RETRY)
def sweep_webhooks() -> int:
    from journeys.services.webhooks import outbound_webhooks_sweep

    return outbound_webhooks_sweep()
