"""No feature sees the future, and labels count exactly the horizon.

- ``history_load`` + ``features_build`` as of a moment give the same frame
  whatever is added at or after that moment (orders, cancellations, touchpoints,
  returns, deliveries, survey answers, new customers): drawn by hypothesis.
- ``labels_load`` counts order days in ``[as_of, as_of + horizon)``: an order at
  as_of counts, one at the end does not, two on one day are one order day,
  cancelled and refunded orders are not orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commerce.models import (
    Customer,
    DeliveryEvent,
    Fulfillment,
    FulfillmentStatus,
    Order,
    OrderStatus,
    PriceTier,
    ProductFamily,
    Return,
    Touchpoint,
)
from commerce.services.orders import order_cancel, return_create
from retention import clock
from scoring.btyd import DEFAULT_PARAMS
from scoring.data import TOUCH_KINDS, history_load, labels_load
from scoring.features import Features, features_build
from tests.factories import CustomerFactory, ProductFamilyFactory, make_order
from tests.feedback.callback_factories import answer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AS_OF = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
HORIZON = 90
ALL_GROUPS = {
    "orders", "families", "returns", "deliveries", "surveys", "support", "product", "messages",
    "btyd",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def days_before(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def features(tenant) -> Features:
    return features_build(history_load(tenant.pk, AS_OF), DEFAULT_PARAMS, HORIZON)


def touch(customer: Customer, kind: str, at: datetime, **properties) -> Touchpoint:
    category = kind.split(".")[0]
    category = {"message": "marketing", "ticket": "support"}.get(category, "product")
    return Touchpoint.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        category=category,
        kind=kind,
        source="test",
        occurred_at=at,
        properties=properties,
    )


def deliver(order: Order, at: datetime, *, promised_by: datetime, delayed_at=None) -> Fulfillment:
    fulfillment = Fulfillment.objects.create(
        tenant_id=order.tenant_id,
        order=order,
        external_id=f"F{order.pk}-{Fulfillment.objects.for_tenant(order.tenant_id).count()}",
        status=FulfillmentStatus.DELIVERED,
        estimated_delivery_end=promised_by,
        shipped_at=order.placed_at + timedelta(days=1),
        delivered_at=at,
    )
    if delayed_at is not None:
        DeliveryEvent.objects.create(
            tenant_id=order.tenant_id,
            fulfillment=fulfillment,
            status=FulfillmentStatus.DELAYED,
            at=delayed_at,
        )
    return fulfillment


@dataclass
class Store:
    customers: list[Customer]
    orders: list[Order]  # placed before AS_OF, paid
    fulfillments: list[Fulfillment]  # delivered before AS_OF
    families: list[ProductFamily]
    cancelled_later: Customer  # an order before AS_OF, cancelled after it


@pytest.fixture
def store(tenant) -> Store:
    """Four customers with a history of every kind before AS_OF."""
    families = [ProductFamilyFactory(tenant=tenant), ProductFamilyFactory(tenant=tenant)]
    c1, c2, c3, c4 = (CustomerFactory(tenant=tenant, created_at=days_before(400)) for _ in range(4))
    o1 = make_order(c1, days_before(200), "80.00", families=(families[0],))
    o2 = make_order(
        c1, days_before(120), "60.00", families=families, price_tier=PriceTier.EXPENSIVE
    )
    o3 = make_order(c1, days_before(40.5), "45.50", families=(families[1],))
    o4 = make_order(c2, days_before(90), "30.00", families=(families[0],))
    later = make_order(c2, days_before(10), "25.00", status=OrderStatus.CANCELLED)
    Order.objects.for_tenant(tenant).filter(pk=later.pk).update(
        cancelled_at=AS_OF + timedelta(days=3)
    )
    make_order(c4, days_before(50), "99.00", status=OrderStatus.CANCELLED)
    Order.objects.for_tenant(tenant).filter(customer=c4).update(cancelled_at=days_before(49))
    Order.objects.for_tenant(tenant).filter(pk=o2.pk).update(discount_total=Decimal("6.00"))

    fulfillments = [
        deliver(o1, days_before(196), promised_by=days_before(195)),
        deliver(o3, days_before(35), promised_by=days_before(38), delayed_at=days_before(37)),
        deliver(o4, days_before(87), promised_by=days_before(86)),
    ]
    Return.objects.create(
        tenant=tenant, order=o2, external_id="R1", refund_amount=Decimal("20.00"),
        created_at=days_before(110),
    )  # fmt: skip
    answer(c1, 2, at=days_before(30))
    answer(c2, 5, at=days_before(80))
    for kind, days in (
        ("message.sent", 20), ("message.sent", 100), ("message.opened", 19),
        ("message.clicked", 19), ("ticket.opened", 33), ("onboarding.completed", 390),
        ("feature.activated", 380),
    ):  # fmt: skip
        touch(c1, kind, days_before(days))
    touch(c1, "ticket.answered", days_before(32), response_seconds=90_000)
    touch(c2, "message.opened", days_before(5))
    touch(c3, "message.sent", days_before(2))
    return Store(
        customers=[c1, c2, c3, c4],
        orders=[o1, o2, o3, o4],
        fulfillments=fulfillments,
        families=families,
        cancelled_later=c2,
    )


def test_the_store_gives_every_feature_group_something_to_read(store, tenant):
    built = features(tenant)
    c1, c2, c3, c4 = (c.pk for c in store.customers)

    assert set(built.present) == ALL_GROUPS
    assert list(built.frame.index) == [c1, c2, c3, c4]
    row = built.frame.loc[c1]
    assert (row["orders"], row["late_deliveries"], row["last_late_days"]) == (3.0, 1.0, 3.0)
    assert (row["returns"], row["survey_rating_last"], row["slow_tickets"]) == (1.0, 2.0, 1.0)
    # The order cancelled only after AS_OF was a live order at AS_OF: it counts.
    assert built.frame.loc[c2, "orders"] == 2.0
    assert built.frame.loc[c2, "recency_days"] == pytest.approx(10.0)
    # Cancelled before AS_OF: not an order; c3 never ordered.
    assert built.frame.loc[c4, "orders"] == built.frame.loc[c3, "orders"] == 0.0


# --- later events, drawn ----------------------------------------------------------

KINDS = ("order", "cancel", "touch", "return", "fulfillment", "delay", "survey", "customer")
offsets = st.one_of(
    st.just(timedelta(0)),
    st.just(timedelta(microseconds=1)),
    st.integers(0, 200 * 86_400).map(lambda s: timedelta(seconds=s)),
)
events = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 3),  # which customer / order / fulfilment
        offsets,
        st.integers(1, 50_000).map(lambda cents: Decimal(cents).scaleb(-2)),
        st.integers(0, 4),  # a status, a rating, a touch kind, a family
    ),
    min_size=1,
    max_size=8,
)
STATUSES = (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.OPEN, OrderStatus.CANCELLED)


def happen(store: Store, tenant, kind: str, which: int, after: timedelta, amount, pick) -> None:
    """One event at AS_OF + ``after`` (>= AS_OF)."""
    at = AS_OF + after
    customer = store.customers[which]
    order = store.orders[which]
    if kind == "order":
        family = store.families[pick % 2]
        made = make_order(customer, at, amount, families=(family,), status=STATUSES[pick % 4])
        if made.status == OrderStatus.CANCELLED:
            Order.objects.for_tenant(tenant).filter(pk=made.pk).update(
                cancelled_at=at + timedelta(hours=1)
            )
    elif kind == "cancel":  # an order placed before AS_OF, cancelled at or after it
        data = {"id": order.external_id, "cancelled_at": at}
        order_cancel(tenant=tenant, data=data, source="storefront")
    elif kind == "touch":
        touch(customer, TOUCH_KINDS[(pick + which) % len(TOUCH_KINDS)], at, response_seconds=99_000)
    elif kind == "return":  # a part of an earlier order returned later (full refunds below)
        Return.objects.create(
            tenant=tenant,
            order=order,
            external_id=f"RL{Return.objects.for_tenant(tenant).count()}",
            refund_amount=min(amount, order.total - Decimal("0.01")),
            created_at=at,
        )
    elif kind == "fulfillment":  # an earlier order delivered (late) only now
        deliver(order, at, promised_by=AS_OF - timedelta(days=1), delayed_at=at)
    elif kind == "delay":  # a late carrier report on a parcel delivered before AS_OF
        DeliveryEvent.objects.for_tenant(tenant).get_or_create(
            tenant=tenant, fulfillment=store.fulfillments[which % 3],
            status=FulfillmentStatus.DELAYED, at=at,
        )  # fmt: skip
    elif kind == "survey":
        answer(customer, pick + 1, at=at)
    elif kind == "customer":  # someone new, who may order at once
        newcomer = CustomerFactory(tenant=tenant, created_at=at)
        if pick % 2:
            make_order(newcomer, at, amount)
    else:  # pragma: no cover
        raise AssertionError(kind)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(later=events)
@example(later=[("order", 0, timedelta(0), Decimal("10.00"), 0)])
@example(later=[("cancel", 0, timedelta(0), Decimal("1.00"), 0)])
@example(later=[("survey", 2, timedelta(0), Decimal("1.00"), 0)])
def test_nothing_at_or_after_as_of_changes_the_features(store, tenant, later):
    before = features(tenant)
    with transaction.atomic():
        for event in later:
            happen(store, tenant, *event)
        after = features(tenant)
        transaction.set_rollback(True)  # the next example starts from the same store

    pd.testing.assert_frame_equal(after.frame, before.frame)
    pd.testing.assert_frame_equal(after.btyd_input, before.btyd_input)
    assert after.present == before.present


def test_an_order_refunded_after_as_of_still_counts_at_as_of(store, tenant):
    before = features(tenant)
    order = store.orders[3]  # c2's order 90 days before AS_OF

    return_create(
        tenant=tenant,
        data={"order_id": order.external_id, "id": "R-late", "refund_amount": order.total,
              "created_at": AS_OF + timedelta(days=5)},
        source="storefront",
    )  # fmt: skip

    assert Order.objects.for_tenant(tenant).get(pk=order.pk).status == OrderStatus.REFUNDED
    pd.testing.assert_frame_equal(features(tenant).frame, before.frame)


# --- labels --------------------------------------------------------------------------


def test_labels_count_order_days_in_the_horizon_and_nothing_else(tenant):
    end = AS_OF + timedelta(days=HORIZON)

    def buyer(*placed: datetime, status: str = OrderStatus.PAID) -> int:
        customer = CustomerFactory(tenant=tenant, created_at=days_before(100))
        for at in placed:
            make_order(customer, at, status=status)
        return customer.pk

    at_start = buyer(AS_OF)
    just_before_end = buyer(end - timedelta(microseconds=1))
    at_end = buyer(end)
    just_before_start = buyer(AS_OF - timedelta(microseconds=1))
    same_day = buyer(AS_OF + timedelta(days=10, hours=1), AS_OF + timedelta(days=10, hours=23))
    two_days = buyer(AS_OF + timedelta(days=10, hours=23), AS_OF + timedelta(days=11, hours=1))
    cancelled = buyer(AS_OF + timedelta(days=3), status=OrderStatus.CANCELLED)
    refunded = buyer(AS_OF + timedelta(days=3), status=OrderStatus.REFUNDED)
    open_order = buyer(AS_OF + timedelta(days=3), status=OrderStatus.OPEN)

    labels = labels_load(tenant.pk, AS_OF, HORIZON)

    assert labels.to_dict() == {
        at_start: 1,
        just_before_end: 1,
        same_day: 1,
        two_days: 2,
        open_order: 1,
    }
    for absent in (at_end, just_before_start, cancelled, refunded):
        assert absent not in labels.index


def test_labels_of_a_customer_range_stay_in_the_range(tenant):
    ids = []
    for day in range(4):
        customer = CustomerFactory(tenant=tenant, created_at=days_before(10))
        make_order(customer, AS_OF + timedelta(days=day))
        ids.append(customer.pk)

    labels = labels_load(tenant.pk, AS_OF, HORIZON, lo=ids[1], hi=ids[2])

    assert labels.to_dict() == {ids[1]: 1, ids[2]: 1}
