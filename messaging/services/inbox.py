"""The in-app inbox: messages stored for the storefront to fetch and show.

Fetching marks what was fetched ``delivered``; the storefront marks a message
read when the shopper opens it (``opened``, with a touchpoint).
"""

from __future__ import annotations

from datetime import datetime

from commerce.models import Customer, TouchpointCategory
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from messaging.models import Message, Status
from messaging.selectors import inbox_queryset
from messaging.services.outbox import message_advance
from retention import clock
from retention.errors import NotFound


def inbox_mark_delivered(*, customer: Customer, message_ids: list[int]) -> datetime:
    """Fetched messages not yet marked are delivered now; returns that time."""
    now = clock.now()
    Message.objects.for_tenant(customer.tenant_id).filter(
        pk__in=message_ids, customer=customer, status=Status.SENT
    ).update(status=Status.DELIVERED, delivered_at=now, updated_at=now)
    return now


def inbox_mark_read(*, customer: Customer, message_id: object) -> Message:
    """Mark one in-app message of this customer read; reading twice is harmless."""
    try:
        pk = int(message_id)
    except (TypeError, ValueError):
        raise NotFound("No such message.") from None
    message = inbox_queryset(customer=customer).filter(pk=pk).first()
    if message is None:
        raise NotFound("No such message.")
    now = clock.now()
    if message_advance(
        tenant_id=customer.tenant_id, message_id=message.pk, status=Status.OPENED, at=now
    ):
        touchpoints_record_many(
            tenant_id=customer.tenant_id,
            source="messaging",
            items=[
                TouchpointIn(
                    customer_id=customer.pk,
                    category=TouchpointCategory.MARKETING,
                    kind="message.opened",
                    occurred_at=now,
                    properties={"message_id": message.pk, "channel": message.channel},
                    external_id=f"message:{message.pk}:opened",
                )
            ],
        )
    message.refresh_from_db()
    return message
