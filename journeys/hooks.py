"""Where journeys listen to the rest of the platform (wired in ``apps.ready``)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from journeys.models import LIVE_STATUSES, Enrollment

MERGED = "customer_merged"


def on_customer_merged(survivor, merged) -> dict[str, int]:
    """Inside the merge: the survivor carries on the merged customer's journeys.

    Enrollments move to the survivor (with their step runs), so the re-entry
    policy and the per-step figures see one person. Where the survivor is
    already on a journey, or holds the same trigger occurrence, the merged
    customer's live run of it ends instead (reason ``customer_merged``): one
    person gets one welcome series, not two interleaved. Ended runs that clash
    stay as history on the merged customer."""
    from journeys.services.triggers import enrollments_end
    from retention import clock

    tenant_id = survivor.tenant_id
    theirs = Enrollment.objects.for_tenant(tenant_id).filter(customer=merged)
    survivors = Enrollment.objects.for_tenant(tenant_id).filter(customer=survivor)
    same_journey_live = survivors.filter(
        journey_id=OuterRef("journey_id"), status__in=LIVE_STATUSES
    )
    same_occurrence = survivors.filter(
        journey_id=OuterRef("journey_id"), trigger_key=OuterRef("trigger_key")
    )
    doubled = theirs.filter(status__in=LIVE_STATUSES, finished_at__isnull=True).filter(
        Exists(same_journey_live) | Exists(same_occurrence)
    )
    ended = enrollments_end(
        tenant_id=tenant_id,
        ids=list(doubled.values_list("pk", flat=True)),
        reason=MERGED,
        now=clock.now(),
    )
    moved = theirs.exclude(Exists(same_occurrence)).update(customer=survivor)
    return {"enrollments": moved, "enrollments_ended": ended}
