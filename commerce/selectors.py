"""Reads for commerce: customer lookups, the timeline, orders with their details.

Every function takes the tenant explicitly and reads through the tenant-scoped
managers; an id of another tenant is treated exactly like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from commerce.models import (
    ChannelConsent,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    Fulfillment,
    IdentityKind,
    Order,
    OrderLine,
    OrderStatus,
    Touchpoint,
)
from retention.errors import NotFound
from retention.models import Tenant

# Orders that count towards a customer's order count and spend.
COUNTED_ORDER_STATUSES = (OrderStatus.OPEN, OrderStatus.PAID, OrderStatus.FULFILLED)
_MAX_MERGE_HOPS = 20


def _not_found(what: str) -> NotFound:
    return NotFound(f"No such {what}.")


def _int_id(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


# --- customers ------------------------------------------------------------------


def customer_queryset(*, tenant: Tenant) -> QuerySet[Customer]:
    """Customers with their identities and consent prefetched."""
    return Customer.objects.for_tenant(tenant).prefetch_related(
        Prefetch(
            "identities",
            queryset=CustomerIdentity.objects.for_tenant(tenant).order_by("kind", "id"),
        ),
        Prefetch(
            "consents", queryset=ChannelConsent.objects.for_tenant(tenant).order_by("channel")
        ),
    )


def customer_get(*, tenant: Tenant, customer_id: object) -> Customer:
    """The customer with this id, or the one it was merged into. Raises NotFound."""
    pk = _int_id(customer_id)
    if pk is None:
        raise _not_found("customer")
    queryset = customer_queryset(tenant=tenant)
    customer = queryset.filter(pk=pk).first()
    hops = 0
    while customer is not None and customer.merged_into_id and hops < _MAX_MERGE_HOPS:
        customer = queryset.filter(pk=customer.merged_into_id).first()
        hops += 1
    if customer is None:
        raise _not_found("customer")
    return customer


def customer_list(
    *,
    tenant: Tenant,
    email: str = "",
    phone: str = "",
    external_id: str = "",
    source: str = "storefront",
) -> QuerySet[Customer]:
    """Live (not merged) customers, optionally narrowed to those an identifier
    leads to. ``email`` and ``phone`` must already be normalised."""
    queryset = customer_queryset(tenant=tenant).filter(merged_into__isnull=True)
    identities = CustomerIdentity.objects.for_tenant(tenant)
    for kind, src, value in (
        (IdentityKind.EMAIL, "", email),
        (IdentityKind.PHONE, "", phone),
        (IdentityKind.EXTERNAL, source, external_id),
    ):
        if value:
            queryset = queryset.filter(
                pk__in=identities.filter(kind=kind, source=src, value=value).values("customer_id")
            )
    return queryset


def customer_stats(*, tenant: Tenant, customer_ids: list[int]) -> dict[int, dict]:
    """Order count and spend (orders not cancelled or refunded), and the ids of
    customers merged into each, for a page of customers: two queries."""
    stats: dict[int, dict] = {
        pk: {"order_count": 0, "total_spent": Decimal("0"), "merged_from": []}
        for pk in customer_ids
    }
    if not customer_ids:
        return stats
    rows = (
        Order.objects.for_tenant(tenant)
        .filter(customer_id__in=customer_ids, status__in=COUNTED_ORDER_STATUSES)
        .values("customer_id")
        .annotate(n=Count("id"), spent=Sum("total"))
    )
    for row in rows:
        stats[row["customer_id"]]["order_count"] = row["n"]
        stats[row["customer_id"]]["total_spent"] = row["spent"] or Decimal("0")
    merged = (
        Customer.objects.for_tenant(tenant)
        .filter(merged_into_id__in=customer_ids)
        .order_by("id")
        .values_list("merged_into_id", "id")
    )
    for survivor_id, merged_id in merged:
        stats[survivor_id]["merged_from"].append(merged_id)
    return stats


def customer_owner_of(*, tenant: Tenant, kind: str, value: str, source: str = "") -> int | None:
    """The id of the customer an identifier belongs to, if any."""
    return (
        CustomerIdentity.objects.for_tenant(tenant)
        .filter(kind=kind, source=source, value=value)
        .values_list("customer_id", flat=True)
        .first()
    )


def customer_timeline(
    *, tenant: Tenant, customer: Customer, category: str = "", kind: str = ""
) -> QuerySet[Touchpoint]:
    """The customer's touchpoints, newest first."""
    queryset = (
        Touchpoint.objects.for_tenant(tenant)
        .filter(customer=customer)
        .order_by("-occurred_at", "-id")
    )
    if category:
        queryset = queryset.filter(category=category)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset


# --- orders ---------------------------------------------------------------------


def order_queryset(*, tenant: Tenant) -> QuerySet[Order]:
    """Orders with lines, fulfilments and their delivery events prefetched."""
    return Order.objects.for_tenant(tenant).prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.for_tenant(tenant).order_by("id")),
        Prefetch(
            "fulfillments",
            queryset=Fulfillment.objects.for_tenant(tenant)
            .order_by("id")
            .prefetch_related(
                Prefetch(
                    "events", queryset=DeliveryEvent.objects.for_tenant(tenant).order_by("at", "id")
                )
            ),
        ),
    )


def order_get(*, tenant: Tenant, order_id: object) -> Order:
    """One order with its details. Raises NotFound."""
    pk = _int_id(order_id)
    order = order_queryset(tenant=tenant).filter(pk=pk).first() if pk else None
    if order is None:
        raise _not_found("order")
    return order


def order_list(
    *,
    tenant: Tenant,
    customer_id: int | None = None,
    placed_after: datetime | None = None,
    placed_before: datetime | None = None,
) -> QuerySet[Order]:
    """Orders, newest placed first, optionally for one customer (a merged
    customer's id means its survivor) and a time range (after is inclusive)."""
    queryset = Order.objects.for_tenant(tenant).order_by("-placed_at", "-id")
    if customer_id is not None:
        try:
            survivor = customer_get(tenant=tenant, customer_id=customer_id)
        except NotFound:
            return queryset.none()
        queryset = queryset.filter(customer=survivor)
    if placed_after is not None:
        queryset = queryset.filter(placed_at__gte=placed_after)
    if placed_before is not None:
        queryset = queryset.filter(placed_at__lt=placed_before)
    return queryset


def customer_survivor(customer: Customer) -> Customer:
    """The customer a merged customer was folded into (itself if not merged)."""
    seen = set()
    while customer.merged_into_id and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.for_tenant(customer.tenant_id).get(pk=customer.merged_into_id)
    return customer


def customers_by_identities(*, tenant: Tenant, keys: list[tuple[str, str, str]]) -> list[Customer]:
    """The customers these (kind, source, value) identifiers lead to, merged ones
    followed to their survivor, oldest first (the oldest survives a merge)."""
    query = Q()
    for kind, source, value in keys:
        query |= Q(kind=kind, source=source, value=value)
    identities = (
        CustomerIdentity.objects.for_tenant(tenant).filter(query).select_related("customer")
    )
    # Priority: the storefront id first, then email, then phone.
    rank = {IdentityKind.EXTERNAL: 0, IdentityKind.EMAIL: 1, IdentityKind.PHONE: 2}
    ordered = sorted(identities, key=lambda i: (rank[i.kind], i.customer_id))
    customers: list[Customer] = []
    for identity in ordered:
        c = customer_survivor(identity.customer)
        if all(c.pk != x.pk for x in customers):
            customers.append(c)
    # The oldest customer survives a merge, so references stay stable.
    return sorted(customers, key=lambda c: c.pk)


def customer_find(*, tenant: Tenant, ref) -> Customer | None:
    """The customer a ``CustomerRef`` leads to, or None."""
    found = customers_by_identities(tenant=tenant, keys=ref.keys())
    return found[0] if found else None


def consents_for(*, tenant_id: int, customer_ids: list[int]) -> dict[tuple[int, str], str]:
    """The current consent status per (customer id, channel) for these customers;
    a pair with no decision on record is absent."""
    if not customer_ids:
        return {}
    rows = (
        ChannelConsent.objects.for_tenant(tenant_id)
        .filter(customer_id__in=customer_ids)
        .values_list("customer_id", "channel", "status")
    )
    return {(customer_id, channel): status for customer_id, channel, status in rows}


def customers_by_phone(*, tenant_id: int, phone: str) -> list[Customer]:
    """Live customers known by this E.164 number (as contact or identity)."""
    ids = set(
        CustomerIdentity.objects.for_tenant(tenant_id)
        .filter(kind=IdentityKind.PHONE, value=phone)
        .values_list("customer_id", flat=True)
    )
    return list(
        Customer.objects.for_tenant(tenant_id)
        .filter(Q(pk__in=ids) | Q(phone=phone), merged_into__isnull=True)
        .order_by("pk")
    )
