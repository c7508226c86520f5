"""Customers: identity resolution, profile updates, consent, merges."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction

from commerce.identity import BadIdentifier, normalize_email, normalize_phone
from commerce.models import (
    Cart,
    Channel,
    ChannelConsent,
    ConsentStatus,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
    Order,
    Touchpoint,
)
from commerce.selectors import customers_by_identities
from commerce.services.privacy import ERASURE_SOURCE, contact_is_erased
from retention import clock
from retention.errors import Conflict, InvalidInput
from retention.models import Tenant

logger = logging.getLogger(__name__)

PROFILE_FIELDS = ("first_name", "last_name", "timezone", "locale", "preferred_channel")

# Other apps that hold customer foreign keys register a function(survivor, merged)
# that moves their rows; called inside the merge transaction.
CUSTOMER_MERGE_HOOKS: list[Callable[[Customer, Customer], dict[str, int]]] = []
# Called after commit with (tenant id, customer ids, cause) when facts other than
# orders change: consent decisions ("consent") and tracked events ("touchpoint").
CUSTOMER_FACTS_CHANGED_HOOKS: list[Callable[[int, list[int], str], None]] = []


def customer_facts_changed(tenant_id: int, customer_ids: Iterable[int], cause: str) -> None:
    """Tell listeners (segments) once the current transaction commits."""
    ids = sorted(set(customer_ids))
    if not ids or not CUSTOMER_FACTS_CHANGED_HOOKS:
        return

    def run() -> None:
        for hook in CUSTOMER_FACTS_CHANGED_HOOKS:
            hook(tenant_id, ids, cause)

    transaction.on_commit(run)


@dataclass(frozen=True)
class CustomerRef:
    """What an event tells us about who it is about. Any subset may be empty."""

    external_id: str = ""
    source: str = "storefront"
    email: str = ""
    phone: str = ""

    @classmethod
    def from_data(cls, data: dict, *, source: str) -> CustomerRef:
        """Normalise a validated payload's customer block; raises InvalidInput."""
        fields: dict[str, list[str]] = {}
        try:
            email = normalize_email(data.get("email"))
        except BadIdentifier as exc:
            fields["email"] = [str(exc)]
            email = ""
        try:
            phone = normalize_phone(data.get("phone"))
        except BadIdentifier as exc:
            fields["phone"] = [str(exc)]
            phone = ""
        if fields:
            raise InvalidInput("The customer has invalid fields.", fields={"customer": fields})
        ref = cls(
            external_id=str(data.get("id") or "").strip(), source=source, email=email, phone=phone
        )
        if not ref.keys():
            raise InvalidInput(
                "A customer needs an id, an email or a phone number.",
                fields={"customer": {"id": ["Give at least one of id, email, phone."]}},
            )
        return ref

    def keys(self) -> list[tuple[str, str, str]]:
        out = []
        if self.external_id:
            out.append((IdentityKind.EXTERNAL, self.source, self.external_id))
        if self.email:
            out.append((IdentityKind.EMAIL, "", self.email))
        if self.phone:
            out.append((IdentityKind.PHONE, "", self.phone))
        return out


def _lock_identities(tenant_id: int, keys: Iterable[tuple[str, str, str]]) -> None:
    """Serialise concurrent resolution of the same identifiers (PostgreSQL only):
    two webhooks about one new person must not create two customers."""
    if connection.vendor != "postgresql":
        return
    ids = sorted(
        int.from_bytes(
            hashlib.blake2b(f"{tenant_id}|{k}|{s}|{v}".encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )
        for k, s, v in keys
    )
    with connection.cursor() as cur:
        for lock_id in ids:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])


@transaction.atomic
def customer_resolve(*, tenant: Tenant, ref: CustomerRef, profile: dict | None = None) -> Customer:
    """The one customer these identifiers lead to, created if none does.

    An email or phone already known under another storefront id lands on the
    same customer. When the identifiers lead to two customers, they are merged
    (the older one survives) and the merge is recorded.
    """
    keys = ref.keys()
    if not keys:
        raise InvalidInput("A customer needs an id, an email or a phone number.")
    _lock_identities(tenant.pk, keys)

    found = customers_by_identities(tenant=tenant, keys=keys)
    if not found:
        customer = Customer.objects.create(tenant=tenant, email=ref.email, phone=ref.phone)
    else:
        customer = found[0]
        for other in found[1:]:
            customer_merge(
                survivor=customer,
                merged=other,
                reason=f"shared identifier in one event ({_describe(keys)})",
            )
    _attach_identities(customer, keys)
    _update_contact(customer, ref, profile or {})
    return customer


def _describe(keys) -> str:
    return ", ".join(k for k, _, _ in keys)


def _attach_identities(customer: Customer, keys) -> None:
    existing = set(
        CustomerIdentity.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer)
        .values_list("kind", "source", "value")
    )
    missing = [k for k in keys if k not in existing]
    if missing:
        CustomerIdentity.objects.bulk_create(
            [
                CustomerIdentity(
                    tenant_id=customer.tenant_id, customer=customer, kind=k, source=s, value=v
                )
                for k, s, v in missing
            ],
            ignore_conflicts=True,
        )


def _update_contact(customer: Customer, ref: CustomerRef, profile: dict) -> None:
    changed = []
    # The newest contact point given becomes the primary one; old ones remain
    # identities, so they still lead here.
    if ref.email and customer.email != ref.email:
        customer.email = ref.email
        changed.append("email")
    if ref.phone and customer.phone != ref.phone:
        customer.phone = ref.phone
        changed.append("phone")
    for field in PROFILE_FIELDS:
        value = profile.get(field)
        if value not in (None, "") and getattr(customer, field) != value:
            setattr(customer, field, value)
            changed.append(field)
    if changed:
        customer.updated_at = clock.now()
        customer.save(update_fields=[*changed, "updated_at"])


def customer_upsert(*, tenant: Tenant, data: dict, source: str) -> Customer:
    """Create or update a customer from a validated customer payload, with consent."""
    ref = CustomerRef.from_data(data, source=source)
    with transaction.atomic():
        customer = customer_resolve(tenant=tenant, ref=ref, profile=data)
        consent_from_payload(customer=customer, data=data, source=source)
    return customer


@transaction.atomic
def customer_update(
    *, tenant: Tenant, customer: Customer, data: dict, contacts: dict, source: str
) -> Customer:
    """Apply a partial update to one customer. ``contacts`` holds the normalised
    email and phone when given. A contact point of another customer is a 409:
    an update never merges customers."""
    customer = Customer.objects.for_tenant(tenant).select_for_update().get(pk=customer.pk)
    changed = []
    for field, kind in (("email", IdentityKind.EMAIL), ("phone", IdentityKind.PHONE)):
        if field not in contacts:
            continue
        value = contacts[field]
        if value:
            try:
                with transaction.atomic():
                    identity, _ = CustomerIdentity.objects.get_or_create(
                        tenant=tenant,
                        kind=kind,
                        source="",
                        value=value,
                        defaults={"customer": customer},
                    )
            except IntegrityError:
                identity = None
            if identity is None or identity.customer_id != customer.pk:
                raise Conflict(
                    f"This {field} belongs to another customer.",
                    fields={field: ["Already an identity of another customer."]},
                )
        if getattr(customer, field) != value:
            setattr(customer, field, value)
            changed.append(field)
    for field in PROFILE_FIELDS:
        if field in data and getattr(customer, field) != data[field]:
            setattr(customer, field, data[field])
            changed.append(field)
    if changed:
        customer.updated_at = clock.now()
        customer.save(update_fields=[*changed, "updated_at"])
    consent_from_payload(customer=customer, data=data, source=source)
    return customer


def consent_from_payload(*, customer: Customer, data: dict, source: str) -> None:
    # A storefront clock ahead of ours must not make its decision outrank the
    # shopper's next one (an unsubscribe a minute later would be ignored).
    now = clock.now()
    at = min(data.get("updated_at") or now, now)
    for field, channel in (("accepts_email", Channel.EMAIL), ("accepts_sms", Channel.SMS)):
        if data.get(field) is None:
            continue
        status, by = (ConsentStatus.OPTED_IN if data[field] else ConsentStatus.OPTED_OUT), source
        if status == ConsentStatus.OPTED_IN and _contact_erased(customer, channel):
            # The person asked to be erased: a store's feed cannot opt them back in.
            status, by = ConsentStatus.OPTED_OUT, ERASURE_SOURCE
        consent_set(customer=customer, channel=channel, status=status, source=by, at=at)


def _contact_erased(customer: Customer, channel: str) -> bool:
    kind, value = (
        (IdentityKind.EMAIL, customer.email)
        if channel == Channel.EMAIL
        else (IdentityKind.PHONE, customer.phone)
    )
    return bool(value) and contact_is_erased(tenant_id=customer.tenant_id, kind=kind, value=value)


def consent_set(
    *, customer: Customer, channel: str, status: str, source: str, at: datetime | None = None
) -> ChannelConsent:
    """Record a consent decision unless a newer one is already known."""
    at = at or clock.now()
    consent, created = ChannelConsent.objects.get_or_create(
        tenant_id=customer.tenant_id,
        customer=customer,
        channel=channel,
        defaults={"status": status, "source": source, "at": at},
    )
    if created:
        customer_facts_changed(customer.tenant_id, [customer.pk], "consent")
    elif at >= consent.at and (consent.status, consent.source) != (status, source):
        ChannelConsent.objects.for_tenant(customer.tenant_id).filter(
            pk=consent.pk, at__lte=at
        ).update(status=status, source=source, at=at)
        changed = consent.status != status
        consent.refresh_from_db()
        if changed:
            customer_facts_changed(customer.tenant_id, [customer.pk], "consent")
    return consent


@transaction.atomic
def customer_merge(*, survivor: Customer, merged: Customer, reason: str) -> CustomerMerge:
    """Fold ``merged`` into ``survivor``: orders, carts, touchpoints, identities
    and consent move; the newer consent decision per channel wins (a tie goes to
    opted out). ``merged`` stays as a tombstone pointing at the survivor."""
    if survivor.tenant_id != merged.tenant_id:
        raise InvalidInput("Customers of different tenants cannot be merged.")
    if survivor.pk == merged.pk:
        raise InvalidInput("A customer cannot be merged into itself.")
    tenant_id = survivor.tenant_id
    moved = {
        "orders": Order.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
        "carts": Cart.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
        "touchpoints": Touchpoint.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
        "identities": CustomerIdentity.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
    }
    moved["consents"] = _merge_consents(survivor, merged)
    for hook in CUSTOMER_MERGE_HOOKS:
        moved.update(hook(survivor, merged))

    profile_changed = []
    for field in ("email", "phone", *PROFILE_FIELDS):
        if not getattr(survivor, field) and getattr(merged, field):
            setattr(survivor, field, getattr(merged, field))
            profile_changed.append(field)
    if profile_changed:
        survivor.save(update_fields=profile_changed)
    Customer.objects.for_tenant(tenant_id).filter(pk=merged.pk).update(
        merged_into=survivor, updated_at=clock.now()
    )
    merged.merged_into = survivor
    record = CustomerMerge.objects.create(
        tenant_id=tenant_id, survivor=survivor, merged=merged, reason=reason[:200], moved=moved
    )
    logger.info(
        "commerce.customer_merged tenant_id=%s survivor=%s merged=%s moved=%s",
        tenant_id,
        survivor.pk,
        merged.pk,
        moved,
    )
    return record


def _merge_consents(survivor: Customer, merged: Customer) -> int:
    tenant_id = survivor.tenant_id
    mine = {
        c.channel: c for c in ChannelConsent.objects.for_tenant(tenant_id).filter(customer=survivor)
    }
    moved = 0
    for theirs in ChannelConsent.objects.for_tenant(tenant_id).filter(customer=merged):
        current = mine.get(theirs.channel)
        wins = (
            current is None
            or theirs.at > current.at
            or (theirs.at == current.at and theirs.status == ConsentStatus.OPTED_OUT)
        )
        if current is None:
            theirs.customer = survivor
            theirs.save(update_fields=["customer"])
        elif wins:
            ChannelConsent.objects.for_tenant(tenant_id).filter(pk=current.pk).update(
                status=theirs.status, source=theirs.source, at=theirs.at
            )
            theirs.delete()
        else:
            theirs.delete()
        moved += 1
    return moved


__all__ = [
    "CUSTOMER_FACTS_CHANGED_HOOKS",
    "CUSTOMER_MERGE_HOOKS",
    "CustomerRef",
    "consent_set",
    "customer_facts_changed",
    "customer_merge",
    "customer_resolve",
    "customer_update",
    "customer_upsert",
]
