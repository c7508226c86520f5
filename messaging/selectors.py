"""Reads for messaging: a customer's in-app inbox, the outbox of a customer."""

from __future__ import annotations

from django.db.models import QuerySet

from commerce.models import Channel, Customer
from messaging.models import Message, Status

# In the inbox once "sent" (stored for the storefront); never before.
INBOX_STATUSES = (Status.SENT, Status.DELIVERED, Status.OPENED, Status.CLICKED)


def inbox_queryset(*, customer: Customer, unread_only: bool = False) -> QuerySet[Message]:
    qs = Message.objects.for_tenant(customer.tenant_id).filter(
        customer=customer, channel=Channel.IN_APP, status__in=INBOX_STATUSES
    )
    if unread_only:
        qs = qs.filter(opened_at__isnull=True)
    return qs


def customer_messages(*, customer: Customer) -> QuerySet[Message]:
    return Message.objects.for_tenant(customer.tenant_id).filter(customer=customer)
