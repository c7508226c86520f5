"""Settling ``unknown`` messages by asking the provider.

A message is ``unknown`` when a provider call may or may not have reached the
provider: the worker died during it (``worker_lost``, see
``messaging.services.sweep``) or the answer was lost (``timeout``). Usually
the provider's callback settles it. When no callback has come after
``MESSAGING_RECONCILE_AFTER`` (the provider has long finished with anything it
took), the sweeper asks the provider itself (``adapter.lookup``):

- it holds the message: ``sent``, with the provider's id;
- it holds none: the call never arrived, so the message goes back to the
  queue and is sent once, now;
- it cannot say (a transient error): asked again after another period;
- it can never say (SendGrid without the Email Activity add-on): the message
  stays ``unknown`` with that in its detail, for a person to check; nothing is
  sent blindly.

So a crash costs a delay, never a lost or a doubled message, as far as the
provider's own records reach. Reads cross tenants on purpose (``unscoped()``):
this is platform work, and each update is scoped to the message's tenant.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from messaging.models import Message, MessagingSettings, Reason, Status
from messaging.providers import adapter_for
from messaging.providers.base import LookupUnsupported, Outgoing, TransientError
from retention import clock

logger = logging.getLogger(__name__)

# Messages asked about per sweep: lookups are one HTTP request each, and a
# slow provider must not hold the sweeper up for long (the rest wait a run).
RECONCILE_LIMIT = 200
RECONCILE_BUDGET_SECONDS = 20.0
# Past this age an unknown message is left to a person.
RECONCILE_MAX_AGE = timedelta(days=3)


def reconcile_after() -> timedelta:
    return timedelta(seconds=settings.MESSAGING_RECONCILE_AFTER_SECONDS)


def messages_reconcile(
    *, now: datetime | None = None, limit: int = RECONCILE_LIMIT
) -> dict[str, int]:
    """Ask the provider about ``unknown`` messages that no callback settled
    within ``reconcile_after()``; returns counts per outcome."""
    now = now or clock.now()
    waiting = list(
        Message.objects.unscoped()
        .filter(
            status=Status.UNKNOWN,
            provider_id="",
            reason__in=(Reason.WORKER_LOST, Reason.TIMEOUT),
            updated_at__lte=now - reconcile_after(),
        )
        .filter(Q(sent_at__isnull=True) | Q(sent_at__gte=now - RECONCILE_MAX_AGE))
        .select_related("customer")
        .order_by("updated_at")[:limit]
    )
    counts: Counter[str] = Counter()
    settings_of: dict[int, MessagingSettings] = {}
    stop_at = time.monotonic() + RECONCILE_BUDGET_SECONDS
    for message in waiting:
        if time.monotonic() > stop_at:
            break
        adapter = adapter_for(message.channel)
        if adapter is None:
            continue  # no provider configured now: nothing to ask
        ms = settings_of.get(message.tenant_id)
        if ms is None:
            from messaging.services.outbox import messaging_settings

            ms = settings_of[message.tenant_id] = messaging_settings(message.tenant_id)
        try:
            provider_id = adapter.lookup(_outgoing(message, ms), since=message.created_at)
        except LookupUnsupported as exc:
            counts["unsupported"] += _update(
                message,
                now,
                detail=f"The provider cannot be asked whether it took this message "
                f"({exc.detail}); check its log before sending again.",
            )
            continue
        except TransientError as exc:
            counts["retry"] += _update(message, now, detail=f"Asking the provider: {exc.detail}")
            continue
        if provider_id is not None:
            counts["sent"] += _update(
                message,
                now,
                status=Status.SENT,
                provider_id=provider_id or "",
                reason=Reason.NONE,
                detail="Found at the provider when its callback did not come.",
            )
            _touchpoint_sent(message)
        else:
            counts["requeued"] += _update(
                message,
                now,
                status=Status.QUEUED,
                sent_at=None,
                reason=Reason.NONE,
                detail="The provider never received it; sending it again.",
            )
    if counts:
        logger.warning("messaging.reconciled %s", dict(counts))
    return dict(counts)


def _update(message: Message, now: datetime, **fields) -> int:
    """Change the message only if it is still ``unknown``: a callback that came
    meanwhile knows better."""
    return (
        Message.objects.for_tenant(message.tenant_id)
        .filter(pk=message.pk, status=Status.UNKNOWN)
        .update(updated_at=now, **fields)
    )


def _outgoing(message: Message, ms: MessagingSettings) -> Outgoing:
    """What a lookup matches on: our ids, the recipient, the sender and the text."""
    from messaging.services.send import _sender

    from_address, from_name = _sender(message, ms)
    return Outgoing(
        message_id=message.pk,
        tenant_id=message.tenant_id,
        channel=message.channel,
        to=message.to_address,
        from_address=from_address,
        from_name=from_name,
        subject=message.subject,
        text=message.body_text,
    )


def _touchpoint_sent(message: Message) -> None:
    from messaging.services.send import _touchpoints_sent

    _touchpoints_sent(message.tenant_id, [message])
