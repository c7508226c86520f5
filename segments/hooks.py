"""Where segments listen to the rest of the platform (wired in ``apps.ready``).

Commerce knows nothing of segments; it calls these through its hook lists.
"""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)

# The cause on segment and tier moves that come from a bulk load of history.
IMPORT_CAUSE = "import"


def register() -> None:
    from commerce.services.customers import CUSTOMER_FACTS_CHANGED_HOOKS, CUSTOMER_MERGE_HOOKS
    from commerce.services.orders import ORDER_INGESTED_HOOKS, ORDERS_BULK_LOADED_HOOKS
    from retention.services import TENANT_CREATED_HOOKS
    from segments.services.setup import segments_setup

    for hooks, hook in (
        (TENANT_CREATED_HOOKS, segments_setup),
        (ORDER_INGESTED_HOOKS, on_order_ingested),
        (ORDERS_BULK_LOADED_HOOKS, on_orders_bulk_loaded),
        (CUSTOMER_MERGE_HOOKS, on_customer_merged),
        (CUSTOMER_FACTS_CHANGED_HOOKS, on_customer_facts_changed),
    ):
        if hook not in hooks:
            hooks.append(hook)


def _enqueue(task, *args) -> None:
    """Queue follow-up work; a broker outage must not fail the commerce write
    that triggered it (the nightly recompute repairs anything missed)."""
    try:
        task.delay(*args)
    except Exception:
        logger.exception("segments.enqueue_failed task=%s args=%s", task.name, args)


def on_order_ingested(order, created: bool) -> None:
    """Runs after the order's transaction commits: move the buyer within seconds."""
    from segments.tasks import refresh_customer

    _enqueue(refresh_customer, order.tenant_id, order.customer_id, "order")


def on_orders_bulk_loaded(tenant) -> None:
    """After a CSV import or demo seed: one full recompute, not one task per order.
    Its moves are recorded with cause ``import``: loaded history, not news, so
    they start no journey."""
    from segments.tasks import recompute_tenant

    _enqueue(recompute_tenant, tenant.pk, True, IMPORT_CAUSE)


def on_customer_merged(survivor, merged) -> dict[str, int]:
    """Inside the merge transaction: the survivor keeps the merged customer's
    segment history; the merged customer's derived rows go, and the survivor is
    refreshed once the merge commits."""
    from django.db.models import F

    from segments.models import (
        CustomerFamily,
        CustomerRFM,
        Segment,
        SegmentMembership,
        SegmentTransition,
    )
    from segments.services.locks import lock_customer, lock_tenant
    from segments.tasks import refresh_customer

    tenant_id = survivor.tenant_id
    # No refresh of either customer may write while their rows move.
    lock_tenant(tenant_id, shared=True)
    for customer_id in sorted((survivor.pk, merged.pk)):
        lock_customer(customer_id)
    moved = {
        "segment_transitions": SegmentTransition.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor)
    }
    # List segments are not rebuilt by any refresh: their members move across.
    from segments.services.lists import list_memberships_move

    moved["list_memberships"] = list_memberships_move(
        tenant_id=tenant_id, merged_id=merged.pk, survivor_id=survivor.pk
    )
    memberships = SegmentMembership.objects.for_tenant(tenant_id).filter(customer=merged)
    left = list(memberships.values_list("segment_id", flat=True))
    memberships.delete()
    # The survivor's refresh re-enters what applies; the counts drop now.
    Segment.objects.for_tenant(tenant_id).filter(pk__in=left).update(
        member_count=F("member_count") - 1
    )
    for model in (CustomerRFM, CustomerFamily):
        model.objects.for_tenant(tenant_id).filter(customer=merged).delete()
    transaction.on_commit(lambda: _enqueue(refresh_customer, tenant_id, survivor.pk, "merge"))
    return moved


# Which rule conditions read which kind of fact (orders are handled above).
FIELDS_BY_CAUSE = {"consent": {"consent"}, "touchpoint": {"touchpoint"}}


def refresh_fields_on(cause: str, fields: set[str]) -> None:
    """Another app's condition fields that read a customer fact: re-test them
    when that fact changes (``cause`` as passed to ``customer_facts_changed``).
    Feedback's ``survey_class`` and ``survey_wants`` read survey touchpoints."""
    FIELDS_BY_CAUSE.setdefault(cause, set()).update(fields)


def on_customer_facts_changed(tenant_id: int, customer_ids: list[int], cause: str) -> None:
    """After a consent change or tracked events commit: re-test the rule segments
    that read them, for those customers only; nothing to do (and no task) when no
    active segment uses such a condition."""
    from segments.models import Segment, SegmentKind, SegmentStatus
    from segments.tasks import refresh_rule_members

    fields = FIELDS_BY_CAUSE.get(cause)
    if not fields:
        return
    conditions = (
        Segment.objects.for_tenant(tenant_id)
        .filter(kind=SegmentKind.RULE, status=SegmentStatus.ACTIVE)
        .values_list("conditions", flat=True)
    )
    if any(
        isinstance(c, dict) and c.get("field") in fields
        for rule in conditions
        for c in (rule or [])
    ):
        _enqueue(refresh_rule_members, tenant_id, customer_ids, cause)
