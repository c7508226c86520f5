"""List segments: customers added and removed one at a time, by journey steps
("add to segment", "remove from segment") or by marketers. No rule refresh
touches them (``segment_refresh`` and the per-customer refresh only read
``kind=rule``), so a member stays until someone removes them.

Each change is one conditional statement whose row count says whether the
membership really changed (``INSERT … ON CONFLICT DO NOTHING``, ``DELETE``), so
two workers adding the same customer at once write one membership, one
"entered" transition and one +1 on ``member_count``. Both take the locks every
segment writer takes (the tenant's, shared; the customer's), which keeps them
out of a segment's deletion and a customer merge that are half done.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from commerce.models import Customer
from retention import clock
from retention.errors import InvalidInput
from retention.models import AuditAction, Tenant
from retention.services import audit_record
from segments.models import (
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    SegmentTransition,
    TransitionKind,
)
from segments.services.locks import lock_customer, lock_tenant
from segments.services.memberships import segment_validate

logger = logging.getLogger(__name__)

CAUSE_MAX = SegmentTransition._meta.get_field("cause").max_length

_JOIN_SQL = """
INSERT INTO segments_segmentmembership (tenant_id, segment_id, customer_id, since)
VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, segment_id, customer_id) DO NOTHING"""


def list_segment_create(
    *, tenant: Tenant | int, name: str, slug: str = "", description: str = "", actor=None
) -> Segment:
    """A new, empty list segment (the name and slug checked as for rule
    segments), audited."""
    tenant_id = getattr(tenant, "pk", tenant)
    clean = segment_validate(
        tenant=tenant_id, data={"name": name, "slug": slug, "description": description}
    )
    with transaction.atomic():
        segment = Segment.objects.create(
            tenant_id=tenant_id,
            kind=SegmentKind.LIST,
            name=clean["name"],
            slug=clean["slug"],
            description=clean["description"],
            counted_at=clock.now(),
        )
        audit_record(
            tenant=tenant_id,
            action=AuditAction.CREATE,
            obj=segment,
            changes={"name": segment.name, "slug": segment.slug, "kind": segment.kind},
            user=actor,
        )
    return segment


def segment_member_add(
    *, tenant_id: int, segment: Segment | int, customer_id: int, cause: str = "journey"
) -> bool:
    """Put a customer in an active list segment; True when they were not in it
    (an "entered" transition is written), False when they already were.

    A merged-away customer's survivor is added instead (journeys may still hold
    the old id). Raises InvalidInput for another tenant's segment or customer,
    a tier or rule segment, or an archived list segment."""
    _check_cause(cause)
    now = clock.now()
    with transaction.atomic():
        seg, customer_id = _locked(tenant_id, segment, customer_id)
        if seg.status != SegmentStatus.ACTIVE:
            raise InvalidInput(
                f"The segment '{seg.name}' is archived; nobody can be added to it.",
                fields={"segment": "Archived."},
            )
        with connection.cursor() as cur:
            cur.execute(_JOIN_SQL, [tenant_id, seg.pk, customer_id, now])
            joined = cur.rowcount == 1
        if joined:
            _record(tenant_id, seg.pk, customer_id, TransitionKind.ENTERED, now, cause, +1)
    return joined


def segment_member_remove(
    *, tenant_id: int, segment: Segment | int, customer_id: int, cause: str = "journey"
) -> bool:
    """Take a customer out of a list segment (archived ones too); True when
    they were in it (a "left" transition is written), False when they were not
    (nothing is written). Raises InvalidInput like :func:`segment_member_add`."""
    _check_cause(cause)
    now = clock.now()
    with transaction.atomic():
        seg, customer_id = _locked(tenant_id, segment, customer_id)
        # No cascades point at memberships, so this is one DELETE and its row count.
        removed, _ = (
            SegmentMembership.objects.for_tenant(tenant_id)
            .filter(segment_id=seg.pk, customer_id=customer_id)
            .delete()
        )
        if removed:
            _record(tenant_id, seg.pk, customer_id, TransitionKind.LEFT, now, cause, -1)
    return bool(removed)


def list_memberships_move(*, tenant_id: int, merged_id: int, survivor_id: int) -> int:
    """On a customer merge, before the merged customer's memberships are
    deleted: the survivor joins every list segment the merged customer was in
    (rule segments are re-derived by the survivor's refresh; lists cannot be).
    Returns how many the survivor entered. Runs inside the merge transaction,
    which holds the locks already."""
    now = clock.now()
    segment_ids = list(
        SegmentMembership.objects.for_tenant(tenant_id)
        .filter(
            customer_id=merged_id,
            segment_id__in=Segment.objects.for_tenant(tenant_id)
            .filter(kind=SegmentKind.LIST)
            .values("pk"),
        )
        .values_list("segment_id", flat=True)
    )
    entered = 0
    with connection.cursor() as cur:
        for segment_id in sorted(segment_ids):
            cur.execute(_JOIN_SQL, [tenant_id, segment_id, survivor_id, now])
            if cur.rowcount == 1:
                _record(
                    tenant_id, segment_id, survivor_id, TransitionKind.ENTERED, now, "merge", +1
                )
                entered += 1
    return entered


def _check_cause(cause: str) -> None:
    if not isinstance(cause, str) or len(cause) > CAUSE_MAX:
        raise InvalidInput(
            f"The cause must be text of at most {CAUSE_MAX} characters.",
            fields={"cause": f"At most {CAUSE_MAX} characters."},
        )


def _locked(tenant_id: int, segment: Segment | int, customer_id: int) -> tuple[Segment, int]:
    """Take the locks, then read the segment and customer under them: a
    segment deleted or a customer merged meanwhile is seen as it now is."""
    segment_id = getattr(segment, "pk", segment)
    lock_tenant(tenant_id, shared=True)
    seg = _list_segment(tenant_id, segment_id)
    if not isinstance(customer_id, int):
        raise InvalidInput("No such customer in this store.", fields={"customer": "Not found."})
    lock_customer(customer_id)
    customer = (
        Customer.objects.for_tenant(tenant_id)
        .filter(pk=customer_id)
        .values("pk", "merged_into_id")
        .first()
    )
    if customer is None:
        raise InvalidInput("No such customer in this store.", fields={"customer": "Not found."})
    target = customer["merged_into_id"] or customer["pk"]
    if target != customer["pk"]:
        # The merge has committed (it held this customer's lock), so taking
        # the survivor's lock now cannot deadlock with it.
        lock_customer(target)
        logger.info(
            "segments.list_member_survivor tenant_id=%s customer_id=%s survivor_id=%s",
            tenant_id,
            customer["pk"],
            target,
        )
    return seg, target


def _list_segment(tenant_id: int, segment_id: Any) -> Segment:
    seg = (
        Segment.objects.for_tenant(tenant_id)
        .filter(pk=segment_id)
        .only("pk", "tenant_id", "kind", "status", "name")
        .first()
        if isinstance(segment_id, int)
        else None
    )
    if seg is None:
        raise InvalidInput("No such segment in this store.", fields={"segment": "Not found."})
    if seg.kind != SegmentKind.LIST:
        raise InvalidInput(
            f"'{seg.name}' is a {seg.get_kind_display().lower()}: its members follow its "
            "rule; only list segments take members one by one.",
            fields={"segment": "Not a list segment."},
        )
    return seg


def _record(
    tenant_id: int,
    segment_id: int,
    customer_id: int,
    kind: str,
    at: Any,
    cause: str,
    delta: int,
) -> None:
    SegmentTransition.objects.create(
        tenant_id=tenant_id,
        segment_id=segment_id,
        customer_id=customer_id,
        kind=kind,
        at=at,
        cause=cause,
    )
    # Greatest: a count that drifted (rows deleted by hand) must not make a
    # journey step fail on the column's non-negative check.
    Segment.objects.for_tenant(tenant_id).filter(pk=segment_id).update(
        member_count=Greatest(F("member_count") + delta, 0), counted_at=at
    )
    logger.info(
        "segments.list_member_%s tenant_id=%s segment_id=%s customer_id=%s cause=%s",
        kind,
        tenant_id,
        segment_id,
        customer_id,
        cause,
    )


__all__ = [
    "list_memberships_move",
    "list_segment_create",
    "segment_member_add",
    "segment_member_remove",
]
