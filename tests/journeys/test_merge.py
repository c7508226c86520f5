"""A customer merge: the survivor carries on the merged customer's journeys,
and one person never runs the same journey twice at once."""

from __future__ import annotations

from commerce.models import Customer
from commerce.services.customers import customer_merge
from commerce.services.orders import order_upsert
from journeys.models import Enrollment, EnrollmentStatus
from journeys.services.engine import journeys_tick
from retention import clock
from tests.journeys.test_engine import START, order_data, run_for, sends, welcome


def customer(tenant, external: str) -> Customer:
    return Customer.objects.for_tenant(tenant).get(email=f"{external}@shop.example")


def test_the_survivor_carries_on_a_journey_only_the_merged_customer_was_on(tenant):
    clock.set_now(START)
    journey = welcome(tenant)
    order_upsert(tenant=tenant, data=order_data("o-1", "old"), source="api")
    journeys_tick(tenant_id=tenant.pk)  # day 0 sent to the old record
    survivor = Customer.objects.create(tenant=tenant, email="ada@shop.example", first_name="Ada")
    merged = customer(tenant, "old")

    customer_merge(survivor=survivor, merged=merged, reason="same person")
    run_for(tenant, days=4, step_hours=6)

    enrollment = Enrollment.objects.for_tenant(tenant).get(journey=journey)
    assert (enrollment.customer_id, enrollment.status) == (survivor.pk, EnrollmentStatus.ACTIVE)
    day_3 = sends(journey)[-1]
    assert day_3.subject.startswith("welcome-3")
    assert (day_3.customer_id, day_3.to_address) == (survivor.pk, "ada@shop.example")
    assert enrollment.runs.count() == 2  # day 0's run came along


def test_when_both_were_on_the_journey_the_merged_run_ends_and_one_series_goes_on(
    tenant, other_tenant
):
    clock.set_now(START)
    journey = welcome(tenant)
    theirs = welcome(other_tenant)
    order_upsert(tenant=tenant, data=order_data("o-1", "a"), source="api")
    clock.advance(days=1)
    order_upsert(tenant=tenant, data=order_data("o-2", "b"), source="api")
    order_upsert(tenant=other_tenant, data=order_data("o-9", "a"), source="api")
    journeys_tick(tenant_id=tenant.pk)
    journeys_tick(tenant_id=other_tenant.pk)
    survivor, merged = customer(tenant, "a"), customer(tenant, "b")

    customer_merge(survivor=survivor, merged=merged, reason="same person")
    run_for(tenant, days=5, step_hours=6)

    runs = Enrollment.objects.for_tenant(tenant).filter(journey=journey)
    assert sorted(runs.values_list("customer_id", "status", "exit_reason")) == sorted(
        [
            (survivor.pk, EnrollmentStatus.ACTIVE, ""),
            (survivor.pk, EnrollmentStatus.EXITED, "customer_merged"),
        ]
    )
    subjects = [m.subject.split(" ")[0] for m in sends(journey)]
    assert subjects == ["welcome-0", "welcome-0", "welcome-3"]  # one day 3, not two
    other = Enrollment.objects.for_tenant(other_tenant).get(journey=theirs)
    assert other.status == EnrollmentStatus.ACTIVE
    assert other.customer.email == "a@shop.example"
