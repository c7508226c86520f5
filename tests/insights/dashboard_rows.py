"""Hand-made rollup rows for the dashboard's tests: inserted directly, so the
dashboard is tested on numbers we computed by hand, not on the rollup code.

The clock stands at Wednesday 18 March 2026, 10:00 UTC; the tenant (Europe/
Berlin) is on the same day, so the default range is 19 Feb - 18 Mar 2026 and
the newest full week of the retention metric is Mon 9 - Sun 15 March.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from commerce.models import Customer
from experiments.models import Experiment, ExperimentStatus
from insights.models import (
    CohortMonthly,
    FamilyDaily,
    MessageDaily,
    RetentionDaily,
    SegmentMessageDaily,
    Snapshot,
)
from journeys.models import JourneyStep, JourneyVersion
from retention.models import Tenant
from segments.models import RisingInterestAlert, Segment, SegmentKind
from tests.factories import JourneyFactory, ProductFamilyFactory

NOW = datetime(2026, 3, 18, 10, 0, tzinfo=UTC)
TODAY = date(2026, 3, 18)

# (day, step, channel, tier, counts) for the journey; counts are
# sent, delivered, opened, clicked, converted, responded, unsubscribed,
# next_action, next_action_seconds.
JOURNEY_ROWS = [
    (date(2026, 3, 2), 1, "email", "high_value_repeat", (100, 95, 30, 5, 4, 6, 1, 10, 36000)),
    (date(2026, 3, 3), 2, "email", "one_time", (200, 190, 19, 1, 1, 2, 2, 5, 36000)),
    (date(2026, 3, 4), 1, "sms", "high_value_repeat", (50, 50, 0, 3, 2, 3, 0, 0, 0)),
    # Before the default range: never counted there.
    (date(2026, 1, 5), 1, "email", "high_value_repeat", (1000, 1000, 900, 800, 700, 0, 0, 0, 0)),
]
# Not from a journey (journey_id 0).
LOOSE_ROW = (date(2026, 3, 10), "email", "", (10, 10, 5, 1, 0, 1, 0, 0, 0))
COUNTS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "converted",
    "responded",
    "unsubscribed",
    "next_action",
    "next_action_seconds",
)


def _counts(values: tuple) -> dict:
    return dict(zip(COUNTS, values, strict=True)) | {"messages": values[0]}


def journey_with_steps(tenant: Tenant, name: str) -> tuple:
    journey = JourneyFactory(tenant=tenant, name=name)
    version = JourneyVersion.objects.create(tenant=tenant, journey=journey, trigger="order_placed")
    steps = [
        JourneyStep.objects.create(
            tenant=tenant, version=version, position=p, name=f"{name} step {p}"
        )
        for p in (1, 2)
    ]
    return journey, steps


def fill(tenant: Tenant, *, marker: str = "Alpha") -> dict:
    """Every rollup and snapshot the dashboard reads, for ``tenant``; names
    and the at-risk customer's email carry ``marker``."""
    journey, steps = journey_with_steps(tenant, f"{marker} Welcome journey")
    for day, step, channel, tier, values in JOURNEY_ROWS:
        MessageDaily.objects.create(
            tenant=tenant,
            day=day,
            journey_id=journey.pk,
            step_id=steps[step - 1].pk,
            channel=channel,
            tier=tier,
            **_counts(values),
        )
    day, channel, tier, values = LOOSE_ROW
    MessageDaily.objects.create(
        tenant=tenant, day=day, channel=channel, tier=tier, **_counts(values)
    )

    segment = Segment.objects.create(
        tenant=tenant,
        name=f"{marker} VIP segment",
        slug=f"{marker.lower()}-vip",
        kind=SegmentKind.RULE,
    )
    SegmentMessageDaily.objects.create(
        tenant=tenant, day=date(2026, 3, 5), segment_id=segment.pk, channel="email",
        **_counts((40, 40, 12, 4, 2, 5, 0, 4, 4 * 86400)),
    )  # fmt: skip
    SegmentMessageDaily.objects.create(
        tenant=tenant, day=date(2026, 3, 6), segment_id=segment.pk, channel="sms",
        **_counts((10, 9, 0, 1, 1, 1, 1, 0, 0)),
    )  # fmt: skip

    # Retention: the newest full week (9-15 Mar) reads first orders of 9-15 Dec
    # 2025; the week before reads 2-8 Dec.
    for day, buyers, returned in [
        (date(2025, 12, 9), 10, 3),
        (date(2025, 12, 15), 10, 2),
        (date(2025, 12, 8), 20, 4),
        (date(2025, 12, 16), 100, 100),  # its window closes after 15 Mar
    ]:
        RetentionDaily.objects.create(
            tenant=tenant, day=day, window_days=90, first_buyers=buyers, returned=returned
        )
    # Computed with another window: never mixed in.
    RetentionDaily.objects.create(
        tenant=tenant, day=date(2025, 12, 3), window_days=60, first_buyers=1000, returned=1000
    )

    for cohort, months, size, active in [
        (date(2026, 1, 1), 0, 100, 100),
        (date(2026, 1, 1), 1, 100, 20),
        (date(2026, 1, 1), 2, 100, 10),
        (date(2026, 2, 1), 0, 50, 50),
        (date(2026, 2, 1), 1, 50, 5),
        (date(2024, 1, 1), 0, 999, 999),  # older than 12 cohorts
    ]:
        CohortMonthly.objects.create(
            tenant=tenant, cohort=cohort, months=months, size=size, active=active
        )

    family = ProductFamilyFactory(tenant=tenant, name=f"{marker} Coffee family")
    FamilyDaily.objects.create(
        tenant=tenant, day=date(2026, 3, 1), family_id=family.pk, orders=10, reorders=4,
        buyers=9, upsell_orders=2, upsell_revenue=Decimal("50.00"),
    )  # fmt: skip
    FamilyDaily.objects.create(
        tenant=tenant, day=date(2026, 3, 2), family_id=family.pk, orders=10, reorders=1,
        buyers=10, upsell_orders=3, upsell_revenue=Decimal("100.00"),
    )  # fmt: skip

    customer = Customer.objects.create(
        tenant=tenant, email=f"{marker.lower()}-at-risk@example.com", first_name=marker,
        last_name="Risky",
    )  # fmt: skip
    Snapshot.objects.create(
        tenant=tenant,
        day=date(2026, 3, 17),
        kind="tiers",
        data={
            "sizes": {"high_value_repeat": 120, "mid_value_repeat": 340, "one_time": 900},
            "flow": [
                {"from": "mid_value_repeat", "to": "high_value_repeat", "n": 7},
                {"from": "one_time", "to": "mid_value_repeat", "n": 25},
                {"from": "", "to": "one_time", "n": 3},
            ],
        },
    )
    Snapshot.objects.create(
        tenant=tenant,
        day=date(2026, 3, 17),
        kind="churn",
        data={
            "histogram": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
            "bands": {"low": 600, "medium": 300, "high": 100},
            "at_risk": [
                {"id": customer.pk, "email": customer.email, "p_churn": 0.81, "value": 950.0}
            ],
        },
    )
    Snapshot.objects.create(
        tenant=tenant,
        day=date(2026, 3, 17),
        kind="feedback",
        data={
            "invited": 200,
            "answered": 50,
            "response_rate": 0.25,
            "classes": {"promoter": 30, "neutral": 15, "detractor": 5},
            "callbacks_due": 5,
            "callbacks_met_sla": 4,
            "sla_met_rate": 0.8,
        },
    )
    RisingInterestAlert.objects.create(
        tenant=tenant, segment=segment, day=date(2026, 3, 16), members=80,
        current_per_member=2.0, baseline_per_member=1.0, rise_pct=100.0,
    )  # fmt: skip
    experiment = Experiment.objects.create(
        tenant=tenant,
        name=f"{marker} subject line test",
        kind="step",
        status=ExperimentStatus.RUNNING,
        journey=journey,
        started_at=NOW - timedelta(days=10),
    )
    return {
        "journey": journey,
        "steps": steps,
        "segment": segment,
        "family": family,
        "customer": customer,
        "experiment": experiment,
    }
