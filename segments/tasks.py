"""Celery tasks of segments (routed to the ``segments`` queue by
``CELERY_TASK_ROUTES``): thin wrappers over services.

- ``segments.refresh_customer``: after an order (queued on commit by ingestion),
  move that customer's RFM, tier and rule segments within seconds.
- ``segments.refresh_rule_members``: after consent changes or tracked events,
  re-test the rule segments that read them for those customers.
- ``segments.recompute_tenant``: the full recompute (after bulk loads, on demand).
- ``segments.schedule_nightly`` (beat, every 15 minutes): queue the nightly run
  of every tenant whose local night hour has come and that has not run since.
- ``segments.nightly``: full recompute, category flags, rule segments and the
  rising-interest check for one tenant, claimed once per tenant night.
- ``segments.refresh_segment``: one rule segment's memberships (after an edit).
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.db import OperationalError
from django.db.models import Q

from commerce.models import Customer
from retention import clock
from retention.models import Tenant
from segments.models import Segment, SegmentSettings

logger = logging.getLogger(__name__)

# A deadlock or a dropped connection is retried a few times, within the broker's
# countdown limit; every task here is idempotent.
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(name="segments.refresh_customer", **RETRY)
def refresh_customer(tenant_id: int, customer_id: int, cause: str = "order") -> dict:
    from segments.services.rfm import customer_refresh

    customer = Customer.objects.for_tenant(tenant_id).filter(pk=customer_id).first()
    if customer is None:
        return {"missing": customer_id}
    # A merged-away customer's orders now belong to the survivor.
    customer_id = customer.merged_into_id or customer.pk
    result = customer_refresh(tenant_id, customer_id, cause=cause)
    return {
        "customer_id": customer_id,
        "tier": result.rfm.tier if result.rfm else None,
        "transitions": len(result.transitions),
    }


@shared_task(name="segments.refresh_rule_members", **RETRY)
def refresh_rule_members(tenant_id: int, customer_ids: list[int], cause: str) -> dict:
    """Re-test rule segments for customers whose consent or events changed."""
    from segments.services.memberships import segments_refresh_customer

    moved = 0
    for customer_id in customer_ids:
        moved += len(segments_refresh_customer(tenant_id, customer_id, cause=cause))
    return {"customers": len(customer_ids), "transitions": moved}


@shared_task(name="segments.recompute_tenant", **RETRY)
def recompute_tenant(tenant_id: int, families: bool = True, cause: str = "recompute") -> dict:
    """``cause`` is ``import`` after a bulk load of history (see ``rfm_recompute``)."""
    from segments.services.families import families_rebuild
    from segments.services.memberships import segments_refresh_all
    from segments.services.rfm import rfm_recompute, tier_counts_store

    if not Tenant.objects.filter(pk=tenant_id).exists():
        return {"missing": tenant_id}
    result = rfm_recompute(tenant_id, cause=cause)
    tier_counts_store(tenant_id)
    if families:
        families_rebuild(tenant_id)
    segments_refresh_all(tenant_id, cause=cause)
    return {"buyers": result.buyers, "changed": result.changed, "seconds": round(result.seconds, 3)}


def night_start(tenant: Tenant, settings: SegmentSettings, now: datetime) -> datetime:
    """The most recent start of the tenant's night hour, at or before ``now``."""
    return clock.hour_start(tenant.timezone, settings.nightly_hour, now)


@shared_task(name="segments.schedule_nightly")
def schedule_nightly() -> list[int]:
    """Queue tonight's run for every tenant that is due. Safe to run often and
    from two beats: a tenant is queued once its night has started and its run
    has not been claimed since; the run claims itself before it starts."""
    now = clock.now()
    queued = []
    # Platform-wide on purpose: the beat looks at every tenant's settings row.
    for settings in SegmentSettings.objects.unscoped().select_related("tenant"):
        due = night_start(settings.tenant, settings, now)
        if settings.last_nightly_at is None or settings.last_nightly_at < due:
            nightly.delay(settings.tenant_id, due.isoformat())
            queued.append(settings.tenant_id)
    return queued


@shared_task(name="segments.nightly")
def nightly(tenant_id: int, due: str) -> dict:
    from segments.services.alerts import rising_interest_check

    due_at = datetime.fromisoformat(due)
    claimed = (
        SegmentSettings.objects.for_tenant(tenant_id)
        .filter(Q(last_nightly_at__isnull=True) | Q(last_nightly_at__lt=due_at))
        .update(last_nightly_at=clock.now())
    )
    if not claimed:  # another run has it (two beats, a repeated message)
        return {"skipped": "already ran tonight"}
    # Also rebuilds the category flags, repairing any buyer whose refresh was lost.
    done = recompute_tenant(tenant_id, families=True)
    done["alerts"] = len(rising_interest_check(tenant_id))
    return done


@shared_task(name="segments.refresh_segment", **RETRY)
def refresh_segment(tenant_id: int, segment_id: int) -> dict:
    """Bring one rule segment's memberships up to date (set-based)."""
    from segments.services.memberships import segment_refresh

    segment = Segment.objects.for_tenant(tenant_id).filter(pk=segment_id).first()
    if segment is None:
        return {"missing": segment_id}
    entered, left = segment_refresh(segment, cause="refresh")
    return {"entered": entered, "left": left}
