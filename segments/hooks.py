"""Where segments listen to the rest of the platform (wired in ``apps.ready``).

Commerce knows nothing of segments; it calls these through its hook lists.
"""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def register() -> None:
    from commerce.services.customers import CUSTOMER_MERGE_HOOKS
    from commerce.services.orders import ORDER_INGESTED_HOOKS, ORDERS_BULK_LOADED_HOOKS
    from retention.services import TENANT_CREATED_HOOKS
    from segments.services.setup import segments_setup

    for hooks, hook in (
        (TENANT_CREATED_HOOKS, segments_setup),
        (ORDER_INGESTED_HOOKS, on_order_ingested),
        (ORDERS_BULK_LOADED_HOOKS, on_orders_bulk_loaded),
        (CUSTOMER_MERGE_HOOKS, on_customer_merged),
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
    """After a CSV import or demo seed: one full recompute, not one task per order."""
    from segments.tasks import recompute_tenant

    _enqueue(recompute_tenant, tenant.pk, True)


def on_customer_merged(survivor, merged) -> dict[str, int]:
    """Inside the merge transaction: the survivor keeps the merged customer's
    segment history; the merged customer's derived rows go, and the survivor is
    refreshed once the merge commits."""
    from segments.models import CustomerFamily, CustomerRFM, SegmentMembership, SegmentTransition
    from segments.tasks import refresh_customer

    tenant_id = survivor.tenant_id
    moved = {
        "segment_transitions": SegmentTransition.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor)
    }
    for model in (CustomerRFM, CustomerFamily, SegmentMembership):
        model.objects.for_tenant(tenant_id).filter(customer=merged).delete()
    transaction.on_commit(lambda: _enqueue(refresh_customer, tenant_id, survivor.pk, "merge"))
    return moved
