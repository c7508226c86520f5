"""The outbox: every message is a row written before any provider is called.

    message = message_enqueue(
        tenant=tenant, customer=customer, channel="email", category="marketing",
        idempotency_key=f"journey:{enrollment.pk}:{step.pk}", template=template,
    )

Asking twice with the same key stores once and returns the first row. The send
itself happens in a task queued after commit (``messaging.send_batch``), or by the
sweeper for anything due later or lost on the way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction

from commerce.models import Channel, Customer
from messaging.models import (
    STAFF_CATEGORIES,
    STATUS_RANK,
    Category,
    Message,
    MessagingSettings,
    Status,
    Suppression,
    Template,
)
from retention import clock
from retention.db import execute_binary
from retention.errors import InvalidInput
from retention.models import Tenant

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200
# The timestamp each status sets the first time it is reached.
STATUS_TIMESTAMP = {
    Status.SENT: "sent_at",
    Status.DELIVERED: "delivered_at",
    Status.OPENED: "opened_at",
    Status.CLICKED: "clicked_at",
    Status.BOUNCED: "failed_at",
    Status.FAILED: "failed_at",
}
# An open implies delivery, a click implies both: fill the earlier timestamps.
IMPLIED = {
    Status.OPENED: ("delivered_at",),
    Status.CLICKED: ("delivered_at", "opened_at"),
}


@dataclass(frozen=True)
class Content:
    subject: str = ""
    text: str = ""
    html: str = ""


def messaging_settings(tenant: Tenant | int) -> MessagingSettings:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    found, _ = MessagingSettings.objects.get_or_create(tenant_id=tenant_id)
    return found


def address_for(customer: Customer | None, channel: str) -> str:
    if customer is None:
        return ""
    if channel == Channel.EMAIL:
        return (customer.email or "").strip().lower()
    if channel == Channel.SMS:
        return customer.phone or ""
    return ""


def message_enqueue(
    *,
    tenant: Tenant,
    channel: str,
    category: str,
    idempotency_key: str,
    customer: Customer | None = None,
    template: Template | None = None,
    content: Content | None = None,
    render_context: dict | None = None,
    to_address: str | None = None,
    source: str = "",
    context: dict | None = None,
    due_at: datetime | None = None,
) -> Message:
    """Queue one message (or return the one already queued under this key).

    Content comes from ``template`` rendered for the customer now (with
    ``render_context`` for order/product variables) or is given as ``content``.
    Consent, quiet hours and the cap are not checked here but at send time.
    """
    if channel not in Channel.values:
        raise _invalid("channel", f"Unknown channel {channel!r}.")
    if category not in Category.values:
        raise _invalid("category", f"Unknown category {category!r}.")
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise _invalid(
            "idempotency_key", f"An idempotency key of 1 to {MAX_KEY_LENGTH} characters is needed."
        )
    if customer is not None and customer.tenant_id != tenant.pk:
        raise _invalid("customer", "The customer belongs to another tenant.")
    if template is not None and template.tenant_id != tenant.pk:
        raise _invalid("template", "The template belongs to another tenant.")
    if customer is None and category not in STAFF_CATEGORIES:
        raise _invalid("customer", "Only a send to the store's staff may go without a customer.")
    if channel == Channel.IN_APP and customer is None:
        raise _invalid("customer", "In-app messages need a customer.")

    existing = Message.objects.for_tenant(tenant).filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing

    if template is not None:
        if category not in STAFF_CATEGORIES and template.category != category:
            raise _invalid(
                "category",
                f"Template {template.name!r} is {template.category}; it cannot be sent as "
                f"{category} (marketing rules would be skipped or misapplied).",
            )
        if template.channel != channel:
            raise _invalid(
                "template", f"Template {template.name!r} is for {template.channel}, not {channel}."
            )
        from messaging.services.templates import template_render

        content = template_render(template=template, customer=customer, **(render_context or {}))
    if content is None:
        raise _invalid("content", "A template or content is needed.")

    now = clock.now()
    fields = {
        "customer": customer,
        "template": template,
        "channel": channel,
        "category": category,
        "source": source,
        "context": context or {},
        "to_address": address_for(customer, channel) if to_address is None else to_address,
        "subject": content.subject,
        "body_text": content.text,
        "body_html": content.html if channel == Channel.EMAIL else "",
        "due_at": due_at or now,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with transaction.atomic():
            message = Message.objects.create(
                tenant=tenant, idempotency_key=idempotency_key, **fields
            )
    except IntegrityError:
        # Another request stored the same key since we looked.
        return Message.objects.for_tenant(tenant).get(idempotency_key=idempotency_key)
    logger.info(
        "messaging.queued tenant_id=%s message_id=%s channel=%s category=%s key=%s",
        tenant.pk,
        message.pk,
        channel,
        category,
        idempotency_key,
    )
    if message.due_at <= now:
        transaction.on_commit(lambda: _kick(tenant.pk, [message.pk]))
    return message


@dataclass(frozen=True)
class MessageIn:
    """One message of a batch, its content already rendered by the caller."""

    idempotency_key: str
    customer: Customer
    channel: str
    category: str
    content: Content
    template: Template | None = None
    source: str = ""
    context: dict | None = None


@dataclass(frozen=True)
class Enqueued:
    """What :func:`messages_enqueue_many` stored: every key's message id, and the
    keys this call stored (the others were stored before, by this or another
    writer)."""

    ids: dict[str, int]
    created: frozenset[str]


def messages_enqueue_many(*, tenant: Tenant, items: list[MessageIn]) -> Enqueued:
    """Queue many messages at once (the journey dispatcher's path).

    Every key gets its row's id; a key stored before keeps its first row, as
    with ``message_enqueue``. On PostgreSQL this is one ``INSERT … SELECT FROM
    unnest(…) ON CONFLICT DO NOTHING RETURNING``, so the unique (tenant, key)
    constraint decides which rows are new even against a concurrent writer;
    elsewhere (SQLite) it is a look-up and a ``bulk_create``. The caller holds
    the locks that make its keys its own (an enrollment row), so a concurrent
    writer of the same key is a bug there, not a race to win."""
    for item in items:
        if item.channel not in Channel.values or item.category not in Category.values:
            raise _invalid("channel", f"Unknown channel or category for {item.idempotency_key!r}.")
        if not item.idempotency_key or len(item.idempotency_key) > MAX_KEY_LENGTH:
            raise _invalid(
                "idempotency_key", "An idempotency key of 1 to 200 characters is needed."
            )
        if item.customer.tenant_id != tenant.pk:
            raise _invalid("customer", "The customer belongs to another tenant.")
    if not items:
        return Enqueued(ids={}, created=frozenset())
    now = clock.now()
    if connection.vendor == "postgresql":
        created = _insert_unnest(tenant.pk, items, now)
        ids = dict(created)
        missing = [i.idempotency_key for i in items if i.idempotency_key not in ids]
        if missing:
            # Stored before (a replayed batch): their first rows stand.
            ids.update(
                Message.objects.for_tenant(tenant)
                .filter(idempotency_key__in=missing)
                .values_list("idempotency_key", "id")
            )
    else:
        found, created = _insert_orm(tenant, items, now)
        ids = {**found, **created}
    new_ids = sorted(created.values())
    if new_ids:
        from messaging.services.send import BATCH_SIZE

        def kick() -> None:
            for start in range(0, len(new_ids), BATCH_SIZE):
                _kick(tenant.pk, new_ids[start : start + BATCH_SIZE])

        transaction.on_commit(kick)
    return Enqueued(ids=ids, created=frozenset(created))


def _row_values(item: MessageIn) -> tuple:
    """The per-message columns of ``_INSERT_SQL``, in its order."""
    content = item.content
    return (
        item.idempotency_key,
        item.customer.pk,
        item.template.pk if item.template is not None else None,
        item.channel,
        item.category,
        item.source,
        json.dumps(item.context or {}),
        address_for(item.customer, item.channel),
        content.subject,
        content.text,
        content.html if item.channel == Channel.EMAIL else "",
    )


# Per message: the columns of ``_row_values``; the rest is one value per batch.
_INSERT_SQL = """
    INSERT INTO messaging_message (
        tenant_id, status, reason, detail, provider_id, attempts, due_at, created_at, updated_at,
        idempotency_key, customer_id, template_id, channel, category, source,
        context, to_address, subject, body_text, body_html
    )
    SELECT %b, %b, '', '', '', 0, %b, %b, %b,
        u.key, u.customer_id, u.template_id, u.channel, u.category, u.source,
        u.context::jsonb, u.to_address, u.subject, u.body_text, u.body_html
    FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[],
                %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
        AS u(key, customer_id, template_id, channel, category, source,
             context, to_address, subject, body_text, body_html)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING idempotency_key, id
"""


def _insert_unnest(tenant_id: int, items: list[MessageIn], now: datetime) -> dict[str, int]:
    """Insert the messages whose keys are new, in one statement; returns those
    keys with their ids (a key already stored is left alone and not returned)."""
    columns = [list(c) for c in zip(*map(_row_values, items), strict=True)]
    return dict(execute_binary(_INSERT_SQL, [tenant_id, Status.QUEUED, now, now, now, *columns]))


def _insert_orm(
    tenant: Tenant, items: list[MessageIn], now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """The portable path: skip keys stored before, ``bulk_create`` the rest (a
    concurrent writer of the same key makes the unique constraint refuse the
    batch, as it must). Returns (keys stored before, keys stored now), with ids."""
    found = dict(
        Message.objects.for_tenant(tenant)
        .filter(idempotency_key__in=[i.idempotency_key for i in items])
        .values_list("idempotency_key", "id")
    )
    first = {}
    for item in items:  # a key twice in one call: the first stands, as on PostgreSQL
        first.setdefault(item.idempotency_key, item)
    rows = [
        Message(
            tenant=tenant,
            idempotency_key=item.idempotency_key,
            customer=item.customer,
            template=item.template,
            channel=item.channel,
            category=item.category,
            source=item.source,
            context=item.context or {},
            to_address=address_for(item.customer, item.channel),
            subject=item.content.subject,
            body_text=item.content.text,
            body_html=item.content.html if item.channel == Channel.EMAIL else "",
            due_at=now,
            created_at=now,
            updated_at=now,
        )
        for item in first.values()
        if item.idempotency_key not in found
    ]
    created = Message.objects.bulk_create(rows, batch_size=1000)
    return found, {m.idempotency_key: m.pk for m in created}


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, fields={field: [message]})


def _kick(tenant_id: int, message_ids: list[int]) -> None:
    """Queue the send now; if the broker is down the sweeper sends it later."""
    from messaging.tasks import send_batch

    try:
        send_batch.delay(tenant_id, message_ids)
    except Exception:
        logger.exception("messaging.kick_failed tenant_id=%s ids=%s", tenant_id, message_ids)


def message_advance(
    *,
    tenant_id: int,
    message_id: int,
    status: str,
    at: datetime | None = None,
    provider_id: str = "",
    reason: str = "",
    detail: str = "",
) -> bool:
    """Move a message forward to ``status`` (a callback's news). A status of the
    same or a lower rank changes nothing, so late, replayed or out-of-order
    callbacks never undo a newer state; the first time of each event is kept
    either way. Returns True if the status moved."""
    at = at or clock.now()
    with transaction.atomic():
        message = (
            Message.objects.for_tenant(tenant_id).select_for_update().filter(pk=message_id).first()
        )
        if message is None:
            return False
        changed: list[str] = []
        for field in (STATUS_TIMESTAMP.get(status), *IMPLIED.get(status, ())):
            if field and getattr(message, field) is None:
                setattr(message, field, at)
                changed.append(field)
        if provider_id and not message.provider_id:
            message.provider_id = provider_id
            changed.append("provider_id")
        moved = STATUS_RANK[status] > STATUS_RANK[message.status]
        if moved:
            # A message still `sending` keeps its claim: the sender records its
            # provider id and send time by it once the call returns.
            if message.claim is not None and message.status != Status.SENDING:
                message.claim, message.lease_until = None, None
                changed += ["claim", "lease_until"]
            message.status = status
            changed.append("status")
            if reason or detail:
                message.reason, message.detail = reason, detail[:500]
                changed += ["reason", "detail"]
        if changed:
            message.updated_at = clock.now()
            message.save(update_fields=[*changed, "updated_at"])
    return moved


# --- suppressions -------------------------------------------------------------------


def suppression_add(
    *, tenant_id: int, channel: str, address: str, reason: str, source: str, detail: str = ""
) -> bool:
    """Put an address on the tenant's suppression list (a repeat keeps the first
    entry). Returns True if it was added now."""
    address = _normal_address(channel, address)
    if not address:
        return False
    _, created = Suppression.objects.get_or_create(
        tenant_id=tenant_id,
        channel=channel,
        address=address,
        defaults={"reason": reason, "source": source, "detail": detail[:500]},
    )
    if created:
        logger.info(
            "messaging.suppressed tenant_id=%s channel=%s reason=%s source=%s",
            tenant_id,
            channel,
            reason,
            source,
        )
    return created


def suppression_remove(
    *, tenant_id: int, channel: str, address: str, reasons: tuple[str, ...]
) -> int:
    """Lift suppressions of these reasons (an opt-back-in lifts its opt-out, not
    a hard bounce). Returns how many were removed."""
    address = _normal_address(channel, address)
    deleted, _ = (
        Suppression.objects.for_tenant(tenant_id)
        .filter(channel=channel, address=address, reason__in=reasons)
        .delete()
    )
    return deleted


def _normal_address(channel: str, address: str) -> str:
    address = (address or "").strip()
    return address.lower() if channel == Channel.EMAIL else address
