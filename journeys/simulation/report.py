"""What the journeys did in a simulated period, per journey, step and day,
read set-based from the step runs and their outbox messages."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from django.db.models import Q

from journeys.models import Journey, JourneyStatus, JourneyStep, StepOutcome, StepRun
from journeys.simulation.store import DAY
from messaging.models import Status
from retention.models import Tenant

# What a message's outbox status counts as in the report.
NOT_SENT = (Status.SUPPRESSED, Status.FAILED, Status.BOUNCED)


def journey_report(*, tenant: Tenant, start: datetime, end: datetime) -> dict:
    """Per journey and step, per simulated day (1 = the first), what the steps
    did: ``sent`` (queued or done, and not suppressed or failed by the outbox),
    ``suppressed`` (suppressed by the outbox, or no template for the channel)
    and ``held_out``. Active journeys that did nothing are listed with no steps."""
    rows = (
        StepRun.objects.for_tenant(tenant)
        .filter(at__gt=start, at__lte=end, enrollment__is_test=False)
        .values_list("step_id", "outcome", "message__status", "at")
    )
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for step_id, outcome, status, at in rows.iterator(chunk_size=5000):
        # Hour h of day d ticks at start + (d - 1) days + h hours, h = 1..24.
        day = -((start - at) // DAY)
        if outcome == StepOutcome.HELD_OUT:
            counts[step_id, day]["held_out"] += 1
        elif outcome == StepOutcome.NO_CONTENT or status == Status.SUPPRESSED:
            counts[step_id, day]["suppressed"] += 1
        elif outcome in (StepOutcome.QUEUED, StepOutcome.DONE) and status not in NOT_SENT:
            counts[step_id, day]["sent"] += 1
    steps = {
        s.pk: s
        for s in JourneyStep.objects.for_tenant(tenant)
        .filter(pk__in={step_id for step_id, _ in counts})
        .select_related("version")
    }
    acting = {s.version.journey_id for s in steps.values()}
    journeys = Journey.objects.for_tenant(tenant).filter(
        Q(status=JourneyStatus.ACTIVE) | Q(pk__in=acting)
    )
    by_journey: dict[int, list] = defaultdict(list)
    for (step_id, day), c in counts.items():
        step = steps[step_id]
        by_journey[step.version.journey_id].append(
            (
                (step.position, step.version.number, day),
                {
                    "name": step.name,
                    "day": day,
                    "sent": c["sent"],
                    "suppressed": c["suppressed"],
                    "held_out": c["held_out"],
                },
            )
        )
    return {
        "journeys": [
            {"name": j.name, "steps": [row for _, row in sorted(by_journey[j.pk])]}
            for j in journeys.order_by("name")
        ]
    }
