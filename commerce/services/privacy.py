"""GDPR: export everything about one customer, and erase their personal data.

The one place that reads (and, for erasure, scrubs) other apps' rows about a
customer. It walks the models that point at ``Customer`` instead of listing
them, so a new app's customer rows show up in the export without a change
here; erasure names the fields that hold personal data.

Erasure keeps the store's books (orders, lines, amounts, dates) on an
anonymous customer, and keeps only the SHA-256 of each email and phone number
(:class:`ErasedContact`) so a later webhook or import cannot opt the person
back in.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import models, transaction

from commerce.identity import BadIdentifier, normalize_email, normalize_phone
from commerce.models import (
    Cart,
    Channel,
    ChannelConsent,
    ConsentStatus,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    ErasedContact,
    Fulfillment,
    IdentityKind,
    InboxEntry,
    InboxStatus,
    Order,
    Return,
    Touchpoint,
)
from retention import clock
from retention.errors import NotFound
from retention.models import AuditAction, AuditEntry, Tenant
from retention.tenancy import TenantOwnedModel

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "retention.gdpr-export/1"
ERASED = "[erased]"
ERASURE_SOURCE = "gdpr_erasure"
# Nested rows (order → fulfilment → delivery events) are followed this deep.
MAX_DEPTH = 3
# Fields left out of the export: internals of the platform, not facts about the person.
EXPORT_EXCLUDED = {
    "messaging.message": {"body_text", "body_html", "claim", "lease_until"},
}
# Models never nested into the export (platform bookkeeping that points at rows).
EXPORT_SKIPPED = {"commerce.customer", "retention.auditentry"}


# --- hashing -------------------------------------------------------------------------


def contact_digest(kind: str, value: str) -> str:
    """SHA-256 hex of the normalised email or phone, "" if it cannot be normalised."""
    try:
        normal = normalize_email(value) if kind == IdentityKind.EMAIL else normalize_phone(value)
    except BadIdentifier:
        return ""
    return hashlib.sha256(f"{kind}:{normal}".encode()).hexdigest() if normal else ""


def contact_is_erased(*, tenant_id: int, kind: str, value: str) -> bool:
    digest = contact_digest(kind, value)
    return bool(digest) and (
        ErasedContact.objects.for_tenant(tenant_id).filter(kind=kind, digest=digest).exists()
    )


# --- export --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def _row(obj: models.Model, depth: int) -> dict[str, Any]:
    label = obj._meta.label_lower
    excluded = EXPORT_EXCLUDED.get(label, set())
    out: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in excluded or field.name == "tenant":
            continue
        if field.is_relation:
            out[field.name] = getattr(obj, field.attname)
            related = field.related_model
            if (
                out[field.name] is not None
                and related is not Customer
                and related._meta.label_lower != "retention.user"
            ):
                target = getattr(obj, field.name)
                out[f"{field.name}_label"] = str(target)[:200]
        else:
            out[field.name] = _plain(field.value_from_object(obj))
    if depth < MAX_DEPTH:
        for key, rows in _children(obj, depth + 1).items():
            out[key] = rows
    return out


def _has_customer_fk(model: type[models.Model]) -> bool:
    return any(f.is_relation and f.related_model is Customer for f in model._meta.concrete_fields)


def _children(obj: models.Model, depth: int) -> dict[str, list[dict]]:
    """Rows hanging off ``obj`` that are not themselves about the customer
    (those are exported at the top level)."""
    out: dict[str, list[dict]] = {}
    for rel in obj._meta.related_objects:
        model = rel.related_model
        if not rel.one_to_many or model._meta.label_lower in EXPORT_SKIPPED:
            continue
        if _has_customer_fk(model):
            continue
        qs = model._default_manager.all()
        if issubclass(model, TenantOwnedModel):
            qs = model.objects.for_tenant(obj.tenant_id)
        rows = qs.filter(**{rel.field.name: obj}).order_by("pk")
        key = rel.get_accessor_name() or model._meta.model_name
        out[key] = [_row(r, depth) for r in rows]
    return out


def _customer_relations() -> list[tuple[str, type[TenantOwnedModel], str]]:
    out = []
    # Hidden relations too: derived tables (RFM, memberships, scores) use related_name="+".
    for rel in Customer._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete):
            continue
        model = rel.related_model
        if not rel.one_to_many or not issubclass(model, TenantOwnedModel):
            continue
        if model is Customer:
            continue
        out.append((model._meta.label_lower, model, rel.field.name))
    return sorted(out, key=lambda item: (item[0], item[2]))


def customer_export(*, tenant: Tenant, customer: Customer) -> dict[str, Any]:
    """Everything the platform holds about ``customer``, as plain JSON values.

    Rows of customers merged into this one are included under ``merged``.
    """
    if customer.tenant_id != tenant.pk:
        raise NotFound("No such customer.")
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": clock.now().isoformat(),
        "tenant": tenant.slug,
        **_customer_document(customer),
    }
    merged = Customer.objects.for_tenant(tenant).filter(merged_into=customer).order_by("pk")
    doc["merged"] = [_customer_document(m) for m in merged]
    return doc


def _customer_document(customer: Customer) -> dict[str, Any]:
    profile = _row(customer, MAX_DEPTH)
    data: dict[str, Any] = {}
    for label, model, field in _customer_relations():
        key = label if label not in data else f"{label}.{field}"
        rows = model.objects.for_tenant(customer.tenant_id).filter(**{field: customer})
        data[key] = [_row(r, 1) for r in rows.order_by("pk")]
    audit = AuditEntry.objects.for_tenant(customer.tenant_id).filter(
        object_type=Customer._meta.label_lower, object_id=str(customer.pk)
    )
    data["retention.auditentry"] = [
        {
            "at": e.at.isoformat(),
            "action": e.action,
            "changes": e.changes,
            "by": "api key" if e.actor_api_key_id else ("staff" if e.actor_user_id else "system"),
        }
        for e in audit.order_by("pk")
    ]
    return {"customer": profile, "data": data}


# --- erasure -------------------------------------------------------------------------


def customer_erase(*, tenant: Tenant, customer: Customer, actor: Any = None) -> dict[str, int]:
    """Remove or anonymise ``customer``'s personal data; keep orders for the books.

    ``actor`` is the user or API key asking (for the audit log). Idempotent: a
    second call changes nothing and records nothing. Returns counts per kind.
    """
    if customer.tenant_id != tenant.pk:
        raise NotFound("No such customer.")
    with transaction.atomic():
        customer = Customer.objects.for_tenant(tenant).select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            return {}
        counts: dict[str, int] = {}
        for person in [
            customer,
            *Customer.objects.for_tenant(tenant).filter(merged_into=customer).order_by("pk"),
        ]:
            for key, n in _erase_one(tenant, person).items():
                counts[key] = counts.get(key, 0) + n
        _audit_erasure(tenant, customer, actor, counts)
    logger.info(
        "commerce.customer_erased tenant_id=%s customer_id=%s rows=%s",
        tenant.pk,
        customer.pk,
        sum(counts.values()),
    )
    return counts


def _contacts(tenant: Tenant, customer: Customer) -> set[tuple[str, str]]:
    from messaging.models import Message

    contacts = {(IdentityKind.EMAIL, customer.email), (IdentityKind.PHONE, customer.phone)}
    for kind, value in (
        CustomerIdentity.objects.for_tenant(tenant)
        .filter(customer=customer, kind__in=[IdentityKind.EMAIL, IdentityKind.PHONE])
        .values_list("kind", "value")
    ):
        contacts.add((kind, value))
    for channel, address in (
        Message.objects.for_tenant(tenant)
        .filter(customer=customer)
        .exclude(to_address="")
        .values_list("channel", "to_address")
        .distinct()
    ):
        kind = IdentityKind.EMAIL if channel == Channel.EMAIL else IdentityKind.PHONE
        contacts.add((kind, address))
    return {(k, v) for k, v in contacts if v}


def _erase_one(tenant: Tenant, customer: Customer) -> dict[str, int]:
    from feedback.models import Callback, CallbackContact, SurveyResponse
    from messaging.models import Message, ProviderEvent

    now = clock.now()
    contacts = _contacts(tenant, customer)
    for kind, value in contacts:
        digest = contact_digest(kind, value)
        if digest:
            ErasedContact.objects.get_or_create(tenant=tenant, kind=kind, digest=digest)
    names = [n for n in (customer.first_name, customer.last_name) if len(n) >= 2]
    counts = {"contacts_suppressed": len(contacts)}

    counts["identities"], _ = (
        CustomerIdentity.objects.for_tenant(tenant).filter(customer=customer).delete()
    )
    counts["consents"] = (
        ChannelConsent.objects.for_tenant(tenant)
        .filter(customer=customer)
        .update(status=ConsentStatus.OPTED_OUT, source=ERASURE_SOURCE, at=now)
    )
    messages = Message.objects.for_tenant(tenant).filter(customer=customer)
    counts["provider_events"] = ProviderEvent.objects.filter(
        tenant=tenant, message__in=messages
    ).update(payload={"erased": True})
    counts["messages"] = messages.update(
        to_address="", subject="", body_text="", body_html="", detail=""
    )
    counts["touchpoints"] = (
        Touchpoint.objects.for_tenant(tenant).filter(customer=customer).update(properties={})
    )
    counts["carts"] = (
        Cart.objects.for_tenant(tenant).filter(customer=customer).update(recovery_url="")
    )
    orders = Order.objects.for_tenant(tenant).filter(customer=customer)
    fulfillments = Fulfillment.objects.for_tenant(tenant).filter(order__in=orders)
    DeliveryEvent.objects.for_tenant(tenant).filter(fulfillment__in=fulfillments).update(message="")
    counts["fulfillments"] = fulfillments.update(tracking_number="", tracking_url="")
    counts["returns"] = Return.objects.for_tenant(tenant).filter(order__in=orders).update(reason="")
    counts["survey_responses"] = (
        SurveyResponse.objects.for_tenant(tenant)
        .filter(customer=customer)
        .update(comment="", highlight_text="", sms_body="")
    )
    callbacks = Callback.objects.for_tenant(tenant).filter(customer=customer)
    counts["callback_notes"] = (
        CallbackContact.objects.for_tenant(tenant).filter(callback__in=callbacks).update(notes="")
    )
    counts["callbacks"] = callbacks.update(context={})
    counts["inbox_entries"] = _redact_inbox(tenant, contacts, names)
    counts["audit_entries"] = (
        AuditEntry.objects.for_tenant(tenant)
        .filter(object_type=Customer._meta.label_lower, object_id=str(customer.pk))
        .update(object_repr=f"Customer {customer.pk}", changes={})
    )
    customer.email = customer.phone = customer.first_name = customer.last_name = ""
    customer.erased_at = customer.updated_at = now
    customer.save(
        update_fields=["email", "phone", "first_name", "last_name", "erased_at", "updated_at"]
    )
    return counts


def _redact_inbox(tenant: Tenant, contacts: set[tuple[str, str]], names: list[str]) -> int:
    """Raw webhook bodies already processed keep the order for replay, not the person.

    Stored bodies hold contact points as the store sent them ("(415) 555-2671"),
    so every string in the JSON is compared in normalised form.
    """
    values = [v for _, v in contacts]
    if not values:
        return 0
    query = models.Q()
    for value in values:
        query |= models.Q(body__icontains=value)
        if value.startswith("+") and len(value) > 8:
            query |= models.Q(body__contains=value[-4:])  # the raw form ends like E.164
    digests = {contact_digest(k, v) for k, v in contacts}
    entries = (
        InboxEntry.objects.for_tenant(tenant)
        .filter(query)
        .exclude(status=InboxStatus.PENDING)
        .only("pk", "body")
    )
    redacted = 0
    for entry in entries:
        body = _redact_body(entry.body, values, names, digests)
        if body != entry.body:
            InboxEntry.objects.for_tenant(tenant).filter(pk=entry.pk).update(body=body)
            redacted += 1
    return redacted


def _redact_body(body: str, values: list[str], names: list[str], digests: set[str]) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if data is not None:
        body = json.dumps(_redact_value(data, {n.lower() for n in names}, digests))
    for value in sorted({*values, *names}, key=len, reverse=True):
        body = _replace_ci(body, value, ERASED)
    return body


def _redact_value(value: Any, names: set[str], digests: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _redact_value(v, names, digests) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, names, digests) for v in value]
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lower() in names:
            return ERASED
        kind = IdentityKind.EMAIL if "@" in text else IdentityKind.PHONE
        maybe_contact = kind == IdentityKind.EMAIL or any(ch.isdigit() for ch in text)
        if maybe_contact and contact_digest(kind, text) in digests:
            return ERASED
    return value


def _replace_ci(text: str, old: str, new: str) -> str:
    lower, needle = text.lower(), old.lower()
    out, start = [], 0
    while (index := lower.find(needle, start)) >= 0:
        out += [text[start:index], new]
        start = index + len(old)
    return "".join(out) + text[start:]


def _audit_erasure(tenant: Tenant, customer: Customer, actor: Any, counts: dict) -> None:
    from retention.models import ApiKey
    from retention.services import audit_record

    audit_record(
        tenant=tenant,
        action=AuditAction.ACTION,
        obj=customer,
        changes={"gdpr_erasure": dict(sorted(counts.items()))},
        user=None if isinstance(actor, ApiKey) else actor,
        api_key=actor if isinstance(actor, ApiKey) else None,
    )
