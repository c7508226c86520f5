"""Reads for segments: a segment's members and counts, a customer's RFM, current
segments and segment history.

Every function reads through the tenant-scoped managers with the tenant it is
given (or the segment's own tenant). Customer ids are taken as they are: callers
that accept ids from outside resolve merges first (``commerce.selectors.customer_get``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet

from commerce.models import Customer, ProductFamily
from retention import clock
from retention.models import Tenant
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentTransition,
    TransitionKind,
)

TRANSITIONS_SHOWN = 50
COUNT_WINDOWS_DAYS = (7, 30)


def _tenant_id(tenant: Tenant | int) -> int:
    return getattr(tenant, "pk", tenant)


# --- segments -------------------------------------------------------------------


def segment_list(*, tenant: Tenant | int, kind: str = "") -> QuerySet[Segment]:
    """The tenant's segments, tiers and rule segments, optionally of one kind."""
    queryset = Segment.objects.for_tenant(_tenant_id(tenant))
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset


def segment_get(*, tenant: Tenant | int, segment_id: int) -> Segment | None:
    """The tenant's segment with this id, or None (another tenant's id included)."""
    return Segment.objects.for_tenant(_tenant_id(tenant)).filter(pk=segment_id).first()


def segment_member_rows(segment: Segment) -> QuerySet[CustomerRFM] | QuerySet[SegmentMembership]:
    """The rows that make the segment's members: a tier's CustomerRFM rows, a
    rule segment's SegmentMembership rows (only ``customer_id`` and ``since``).

    Page them by ``customer_id`` (a cursor, ``WHERE customer_id < last``) and
    turn a page into customers with :func:`member_page`. Both tables have a
    unique index that leads with (tenant, [segment,] customer), so a page is one
    index range scan however large the tenant; the customers are then fetched by
    primary key. (A join would let the planner pick a merge join that walks the
    other side from its end, ignoring the cursor.) Nothing here counts."""
    tenant_id = segment.tenant_id
    if segment.kind == SegmentKind.TIER:
        return (
            CustomerRFM.objects.for_tenant(tenant_id).filter(tier=segment.tier).only("customer_id")
        )
    return (
        SegmentMembership.objects.for_tenant(tenant_id)
        .filter(segment_id=segment.pk)
        .only("customer_id", "since")
    )


def segment_members(segment: Segment) -> QuerySet[Customer]:
    """The segment's current members as customers: for a tier, those whose RFM
    row has that tier; for a rule segment, those with a SegmentMembership.

    To page through a large segment use :func:`segment_member_rows`, whose
    cursor runs on the membership table's own index."""
    member_ids = segment_member_rows(segment).order_by().values("customer_id")
    return Customer.objects.for_tenant(segment.tenant_id).filter(pk__in=member_ids)


def member_page(
    segment: Segment, rows: list[CustomerRFM] | list[SegmentMembership]
) -> list[Customer]:
    """The customers of a page of :func:`segment_member_rows`, in its order,
    each with ``since``: when they joined the segment. For a rule segment that
    is the membership's ``since``; for a tier, the latest ``entered``
    transition (None when none was recorded). Two queries for a tier page, one
    for a rule segment's."""
    tenant_id = segment.tenant_id
    ids = [row.customer_id for row in rows]
    if not ids:
        return []
    if segment.kind == SegmentKind.TIER:
        since: dict[int, datetime | None] = dict.fromkeys(ids)
        since.update(
            SegmentTransition.objects.for_tenant(tenant_id)
            .filter(segment_id=segment.pk, customer_id__in=ids, kind=TransitionKind.ENTERED)
            .order_by()
            .values("customer_id")
            .annotate(at=Max("at"))
            .values_list("customer_id", "at")
        )
    else:
        since = {row.customer_id: row.since for row in rows}
    customers = Customer.objects.for_tenant(tenant_id).in_bulk(ids)
    page = []
    for pk in ids:
        customer = customers.get(pk)
        if customer is not None:
            customer.since = since[pk]
            page.append(customer)
    return page


def segment_counts(segment: Segment, *, now: datetime | None = None) -> dict[str, int]:
    """The live member count and how many entered and left in the last 7 and 30
    days (``now - N days < at <= now``). Two queries on the segment's indexes."""
    now = now or clock.now()
    tenant_id = segment.tenant_id
    if segment.kind == SegmentKind.TIER:
        members = CustomerRFM.objects.for_tenant(tenant_id).filter(tier=segment.tier).count()
    else:
        members = SegmentMembership.objects.for_tenant(tenant_id).filter(segment=segment).count()
    widest = max(COUNT_WINDOWS_DAYS)
    aggregates = {
        f"{kind}_{days}d": Count("id", filter=Q(kind=kind, at__gt=now - timedelta(days=days)))
        for days in COUNT_WINDOWS_DAYS
        for kind in (TransitionKind.ENTERED, TransitionKind.LEFT)
    }
    moved = (
        SegmentTransition.objects.for_tenant(tenant_id)
        .filter(segment=segment, at__gt=now - timedelta(days=widest), at__lte=now)
        .aggregate(**aggregates)
    )
    return {"members": members, **moved}


# --- one customer -----------------------------------------------------------------


def customer_rfm(tenant: Tenant | int, customer_id: int) -> CustomerRFM | None:
    """The customer's RFM row, or None when they have no counted order. Its
    ``families`` attribute holds the ProductFamily rows of ``top_families``, in
    that order (families deleted since are left out)."""
    tenant_id = _tenant_id(tenant)
    rfm = CustomerRFM.objects.for_tenant(tenant_id).filter(customer_id=customer_id).first()
    if rfm is None:
        return None
    ids = [
        int(value)
        for value in rfm.top_families or []
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit())
    ]
    found = ProductFamily.objects.for_tenant(tenant_id).in_bulk(ids) if ids else {}
    rfm.families = [found[pk] for pk in ids if pk in found]
    return rfm


def recency_days(rfm: CustomerRFM, *, now: datetime | None = None) -> int:
    """Whole days since the customer's last counted order."""
    return max(0, ((now or clock.now()) - rfm.last_order_at).days)


def customer_segments(tenant: Tenant | int, customer_id: int) -> list[Segment]:
    """The segments the customer is in now: their tier's segment first, then rule
    segments by name. Each has ``since`` set: the membership's start for a rule
    segment, the latest ``entered`` transition for the tier (or None)."""
    tenant_id = _tenant_id(tenant)
    segments: list[Segment] = []
    tier = (
        CustomerRFM.objects.for_tenant(tenant_id)
        .filter(customer_id=customer_id)
        .values_list("tier", flat=True)
        .first()
    )
    if tier:
        tier_segment = (
            Segment.objects.for_tenant(tenant_id).filter(kind=SegmentKind.TIER, tier=tier).first()
        )
        if tier_segment is not None:
            tier_segment.since = (
                SegmentTransition.objects.for_tenant(tenant_id)
                .filter(segment=tier_segment, customer_id=customer_id, kind=TransitionKind.ENTERED)
                .aggregate(at=Max("at"))["at"]
            )
            segments.append(tier_segment)
    memberships = (
        SegmentMembership.objects.for_tenant(tenant_id)
        .filter(customer_id=customer_id)
        .select_related("segment")
        .order_by("segment__name", "segment_id")
    )
    for membership in memberships:
        segment = membership.segment
        segment.since = membership.since
        segments.append(segment)
    return segments


def customer_transitions(
    tenant: Tenant | int, customer_id: int, limit: int = TRANSITIONS_SHOWN
) -> list[SegmentTransition]:
    """The customer's latest segment entries and exits, newest first, with their
    segments loaded."""
    return list(
        SegmentTransition.objects.for_tenant(_tenant_id(tenant))
        .filter(customer_id=customer_id)
        .select_related("segment")
        .order_by("-at", "-id")[:limit]
    )
