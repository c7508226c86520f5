"""The journey engine end to end: triggers from real ingestion, due steps in the
customer's timezone, exits, re-entry, holdouts, versions and family windows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from commerce.models import PriceTier
from commerce.services.orders import order_upsert
from journeys.models import Enrollment, EnrollmentStatus, Journey, StepOutcome, StepRun
from journeys.services.definitions import enrollments_migrate, journey_create, journey_update
from journeys.services.engine import journey_plan, journeys_tick
from messaging.models import Message, Template
from retention import clock
from tests.factories import CustomerFactory, ProductFamilyFactory, make_order

BERLIN = ZoneInfo("Europe/Berlin")
# A Friday before the spring change (29 March 2026: 02:00 -> 03:00 in Berlin).
START = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def template(tenant, name: str, channel: str = "email", category: str = "marketing") -> Template:
    return Template.objects.create(
        tenant=tenant,
        name=name,
        channel=channel,
        category=category,
        subject=f"{name} for {{{{ customer.first_name }}}}",
        text=f"Hello {{{{ customer.first_name }}}}, this is {name}.",
        html=f"<p>{name}</p>",
    )


def welcome(tenant, *, holdout: int = 0, reentry: str = "after_exit", exit_on_order=False):
    steps = [
        {"name": f"Day {d}", "delay": d, "email_template": template(tenant, f"welcome-{d}")}
        for d in (0, 3, 7, 14)
    ]
    return journey_create(
        tenant=tenant,
        name="Welcome",
        status="active",
        version={
            "trigger": "order_placed",
            "order_nth": "first",
            "holdout_percent": holdout,
            "reentry": reentry,
            "exit_on_order": exit_on_order,
        },
        steps=steps,
    )


def order_data(order_id: str, customer_id: str, *, lines=None, tz: str = "Europe/Berlin") -> dict:
    return {
        "id": order_id,
        "customer": {
            "id": customer_id,
            "email": f"{customer_id}@shop.example",
            "first_name": "Ada",
            "timezone": tz,
        },
        "placed_at": clock.now(),
        "total": Decimal("30.00"),
        "currency": "EUR",
        "lines": lines or [{"sku": "A-1", "quantity": 1, "unit_price": Decimal("30.00")}],
    }


def run_for(tenant, *, days: float, step_hours: float = 1) -> None:
    """Move the clock forward, ticking the engine like the beat would."""
    end = clock.now() + timedelta(days=days)
    while clock.now() < end:
        clock.advance(hours=step_hours)
        journeys_tick(tenant_id=tenant.pk)


def sends(journey: Journey) -> list[Message]:
    return list(
        Message.objects.for_tenant(journey.tenant_id)
        .filter(source="journey", context__journey_id=journey.pk)
        .order_by("created_at", "id")
    )


def test_welcome_series_sends_day_0_3_7_14_at_the_same_local_time_across_dst(tenant):
    clock.set_now(START)
    journey = welcome(tenant)
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")

    journeys_tick(tenant_id=tenant.pk)
    run_for(tenant, days=15, step_hours=0.25)

    sent = sends(journey)
    assert [m.subject for m in sent] == [f"welcome-{d} for Ada" for d in (0, 3, 7, 14)]
    local = [m.created_at.astimezone(BERLIN) for m in sent]
    assert [t.date().isoformat() for t in local] == [
        "2026-03-27",
        "2026-03-30",
        "2026-04-03",
        "2026-04-10",
    ]
    # Within the tick after 10:00 local on every day, before and after the change.
    assert all(time(10, 0) <= t.time() <= time(10, 15) for t in local)
    enrollment = Enrollment.objects.for_tenant(tenant).get(journey=journey)
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert sent[0].idempotency_key == (
        f"journey:{enrollment.pk}:{enrollment.version_id}:{sent[0].context['step_id']}"
    )


def test_a_new_order_before_the_next_step_exits_the_journey(tenant):
    clock.set_now(START)
    journey = welcome(tenant, exit_on_order=True)
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")
    journeys_tick(tenant_id=tenant.pk)
    run_for(tenant, days=1)
    order_upsert(tenant=tenant, data=order_data("o-2", "c-1"), source="api")
    run_for(tenant, days=20)

    assert [m.subject for m in sends(journey)] == ["welcome-0 for Ada"]
    enrollment = Enrollment.objects.for_tenant(tenant).get(journey=journey)
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "ordered")


@pytest.mark.parametrize(("reentry", "expected"), [("once", 1), ("after_exit", 2), ("every", 3)])
def test_reentry_policy_decides_how_often_a_customer_enters(tenant, reentry, expected):
    clock.set_now(START)
    steps = [{"name": "Thanks", "delay": 2, "email_template": template(tenant, "thanks")}]
    journey = journey_create(
        tenant=tenant,
        name="Thanks",
        status="active",
        version={"trigger": "order_placed", "reentry": reentry},
        steps=steps,
    )
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")
    clock.advance(minutes=1)
    order_upsert(tenant=tenant, data=order_data("o-2", "c-1"), source="api")
    journeys_tick(tenant_id=tenant.pk)  # o-1 and o-2 in one read: a run is in progress
    run_for(tenant, days=3)
    order_upsert(tenant=tenant, data=order_data("o-3", "c-1"), source="api")
    run_for(tenant, days=3)

    assert Enrollment.objects.for_tenant(tenant).filter(journey=journey).count() == expected
    assert len(sends(journey)) == expected


def test_held_out_customers_receive_nothing_and_are_recorded(tenant):
    clock.set_now(START)
    journey = welcome(tenant, holdout=50)
    for n in range(40):
        order_upsert(tenant=tenant, data=order_data(f"o-{n}", f"c-{n}"), source="api")
    journeys_tick(tenant_id=tenant.pk)
    run_for(tenant, days=15, step_hours=6)

    rows = Enrollment.objects.for_tenant(tenant).filter(journey=journey)
    held = rows.filter(status=EnrollmentStatus.HELD_OUT)
    assert rows.count() == 40
    assert 8 <= held.count() <= 32
    held_customers = set(held.values_list("customer_id", flat=True))
    sent_to = {m.customer_id for m in sends(journey)}
    assert sent_to.isdisjoint(held_customers)
    assert len(sends(journey)) == 4 * (40 - len(held_customers))
    # Each held-out customer is recorded at every step they would have reached.
    held_runs = StepRun.objects.for_tenant(tenant).filter(outcome=StepOutcome.HELD_OUT)
    assert held_runs.count() == 4 * len(held_customers)
    assert all(r.finished_at is not None for r in held)


def test_editing_an_active_journey_makes_a_version_and_in_flight_runs_keep_theirs(tenant):
    clock.set_now(START)
    journey = welcome(tenant)
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")
    journeys_tick(tenant_id=tenant.pk)
    v1 = journey.current_version
    new_steps = [{"name": "Only one", "delay": 1, "email_template": template(tenant, "v2-only")}]
    v2 = journey_update(
        journey=journey, version={"trigger": "order_placed", "order_nth": "first"}, steps=new_steps
    )
    order_upsert(tenant=tenant, data=order_data("o-2", "c-2"), source="api")
    run_for(tenant, days=15, step_hours=6)

    assert (
        v2.number == 2
        and Journey.objects.for_tenant(tenant).get(pk=journey.pk).current_version == v2
    )
    first = Enrollment.objects.for_tenant(tenant).get(
        journey=journey, customer__email="c-1@shop.example"
    )
    second = Enrollment.objects.for_tenant(tenant).get(
        journey=journey, customer__email="c-2@shop.example"
    )
    assert (first.version, second.version) == (v1, v2)
    by_customer = {}
    for m in sends(journey):
        by_customer.setdefault(m.customer_id, []).append(m.subject.split(" ")[0])
    assert by_customer[first.customer_id] == ["welcome-0", "welcome-3", "welcome-7", "welcome-14"]
    assert by_customer[second.customer_id] == ["v2-only"]


def test_in_flight_enrollments_move_to_a_new_version_only_when_migrated(tenant):
    clock.set_now(START)
    journey = welcome(tenant)
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")
    journeys_tick(tenant_id=tenant.pk)  # day 0 sent; now waiting for day 3
    v1 = journey.current_version
    steps = [
        {"name": "New 1", "delay": 0, "email_template": template(tenant, "n1")},
        {"name": "New 2", "delay": 5, "email_template": template(tenant, "n2")},
    ]
    v2 = journey_update(journey=journey, version={"trigger": "order_placed"}, steps=steps)

    assert enrollments_migrate(journey=journey, from_version=v1, to_version=v2) == 1
    run_for(tenant, days=7, step_hours=6)
    assert [m.subject.split(" ")[0] for m in sends(journey)] == ["welcome-0", "n2"]


def test_the_expensive_tier_waits_for_its_longer_family_window(tenant):
    clock.set_now(START)
    family = ProductFamilyFactory(tenant=tenant, reorder_days=7, expensive_min_days=21)
    journey = journey_create(
        tenant=tenant,
        name="Reorder",
        status="active",
        version={"trigger": "family_window", "family_window": "reorder", "exit_on_order": True},
        steps=[
            {
                "name": "Time to reorder",
                "delay_from": "family",
                "family_window": "reorder",
                "email_template": template(tenant, "reorder"),
            }
        ],
    )
    cheap = CustomerFactory(tenant=tenant, timezone="Europe/Berlin")
    dear = CustomerFactory(tenant=tenant, timezone="Europe/Berlin")
    from commerce.models import TouchpointCategory
    from commerce.services.touchpoints import touchpoint_record

    for customer, tier in ((cheap, PriceTier.STANDARD), (dear, PriceTier.EXPENSIVE)):
        order = make_order(customer, clock.now(), families=(family,), price_tier=tier)
        touchpoint_record(
            tenant=tenant,
            customer=customer,
            category=TouchpointCategory.COMMERCE,
            kind="order.placed",
            source="commerce",
            occurred_at=order.placed_at,
            properties={"order_id": order.pk},
        )
    journeys_tick(tenant_id=tenant.pk)
    run_for(tenant, days=30, step_hours=6)

    sent = {m.customer_id: m.created_at for m in sends(journey)}
    assert (sent[cheap.pk] - START).days == 7
    assert (sent[dear.pk] - START).days == 21


def test_a_family_window_send_names_the_product_bought_in_that_family(tenant):
    from tests.factories import ProductFactory

    clock.set_now(START)
    beans = ProductFactory(
        tenant=tenant,
        sku="BEANS-1",
        name="House beans 1 kg",
        family=ProductFamilyFactory(tenant=tenant, reorder_days=7),
    )
    running_low = Template.objects.create(
        tenant=tenant,
        name="Running low",
        channel="email",
        category="marketing",
        subject="Running low on {{ product.name }}?",
        text="Hi, your {{ product.family }} from order {{ order.number }}.",
    )
    journey = journey_create(
        tenant=tenant,
        name="Reorder",
        status="active",
        version={"trigger": "family_window", "family_window": "reorder"},
        steps=[
            {
                "name": "Time to reorder",
                "delay_from": "family",
                "family_window": "reorder",
                "email_template": running_low,
            }
        ],
    )
    lines = [{"sku": "BEANS-1", "quantity": 1, "unit_price": Decimal("30.00")}]
    order_upsert(tenant=tenant, data=order_data("o-1", "c-1", lines=lines), source="api")
    run_for(tenant, days=8, step_hours=6)

    [message] = sends(journey)
    assert message.subject == "Running low on House beans 1 kg?"
    assert message.body_text == f"Hi, your {beans.family.name} from order o-1."


def test_history_before_activation_starts_nothing(tenant):
    clock.set_now(START)
    customer = CustomerFactory(tenant=tenant)
    from commerce.models import TouchpointCategory
    from commerce.services.touchpoints import touchpoint_record

    journey = welcome(tenant)
    order = make_order(customer, START - timedelta(days=200))
    touchpoint_record(
        tenant=tenant,
        customer=customer,
        category=TouchpointCategory.COMMERCE,
        kind="order.placed",
        source="import",
        occurred_at=order.placed_at,
        properties={"order_id": order.pk},
    )
    run_for(tenant, days=1)
    assert not Enrollment.objects.for_tenant(tenant).filter(journey=journey).exists()


def test_plan_shows_each_step_time_in_the_customers_timezone(tenant):
    clock.set_now(START)
    journey = welcome(tenant)
    customer = CustomerFactory(tenant=tenant, first_name="Ada", timezone="America/New_York")
    plan = journey_plan(version=journey.current_version, customer=customer, trigger_at=START)
    assert [p.content.subject for p in plan] == [f"welcome-{d} for Ada" for d in (0, 3, 7, 14)]
    assert [p.at - START for p in plan] == [timedelta(days=d) for d in (0, 3, 7, 14)]


def test_another_tenants_orders_never_enroll_here(tenant, other_tenant):
    clock.set_now(START)
    mine = welcome(tenant)
    order_upsert(tenant=other_tenant, data=order_data("o-1", "c-1"), source="api")
    run_for(tenant, days=1)
    assert not Enrollment.objects.for_tenant(tenant).filter(journey=mine).exists()
    assert not Message.objects.for_tenant(tenant).filter(source="journey").exists()


def churn_risk(tenant, customer, kind: str = "churn_risk.entered", **properties) -> None:
    """The touchpoint the nightly scorer writes when a customer's band changes."""
    from commerce.models import TouchpointCategory
    from commerce.services.touchpoints import touchpoint_record

    touchpoint_record(
        tenant=tenant,
        customer=customer,
        category=TouchpointCategory.PRODUCT,
        kind=kind,
        source="scoring",
        properties={"p_churn": 0.83, "action": "winback", "model_version": 3, **properties},
    )


def test_a_churn_band_journey_enrolls_on_entering_its_band_only(tenant):
    clock.set_now(START)
    journey = journey_create(
        tenant=tenant,
        name="High churn risk",
        status="active",
        version={"trigger": "churn_band", "value": "High"},
        steps=[{"name": "We miss you", "email_template": template(tenant, "miss-you")}],
    )
    high, medium, old_kind, no_band = (CustomerFactory(tenant=tenant) for _ in range(4))
    churn_risk(tenant, high, band="high")
    churn_risk(tenant, medium, band="medium", p_churn=0.6)
    churn_risk(tenant, old_kind, "churn.band_entered", band="high")
    churn_risk(tenant, no_band)

    run_for(tenant, days=1)

    assert journey.current_version.value == "high"
    enrolled = Enrollment.objects.for_tenant(tenant).filter(journey=journey)
    assert [(e.customer_id, e.context) for e in enrolled] == [(high.pk, {"band": "high"})]
    assert [m.customer_id for m in sends(journey)] == [high.pk]


def test_a_churn_band_trigger_names_a_band_the_scorer_announces(tenant):
    from retention.errors import InvalidInput

    for value in ("", "low", "churn_risk.entered"):
        with pytest.raises(InvalidInput) as err:
            journey_create(
                tenant=tenant,
                name=f"Churn {value}",
                version={"trigger": "churn_band", "value": value},
                steps=[{"name": "Hi", "email_template": template(tenant, f"hi {value}")}],
            )
        assert err.value.fields["value"] == [
            "Choose the churn risk band whose entry starts the journey: medium or high."
        ]
