"""The send workload the fault cases share: a store with a sender and
``count`` transactional emails to ``customers`` buyers, and its statuses."""

from __future__ import annotations

from django.db.models import Count

from commerce.models import Customer
from messaging.models import Message
from messaging.services.outbox import Content, MessageIn, messaging_settings


def shipped_emails(tenant, count: int, customers: int = 200) -> list[MessageIn]:
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    buyers = Customer.objects.bulk_create(
        Customer(tenant=tenant, email=f"buyer{i}@shop.example") for i in range(customers)
    )
    return shipped_messages(buyers, count)


def shipped_messages(buyers: list, count: int) -> list[MessageIn]:
    """``count`` "order shipped" emails, one per order, to the buyers in turn."""
    return [
        MessageIn(
            idempotency_key=f"order:{i}:shipped",
            customer=buyers[i % len(buyers)],
            channel="email",
            category="transactional",
            content=Content(subject="Shipped", text=f"Order {i} shipped"),
        )
        for i in range(count)
    ]


def statuses(tenant) -> dict[str, int]:
    rows = Message.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    return {r["status"]: r["n"] for r in rows}
