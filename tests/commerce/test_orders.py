"""Orders, fulfilments, carts and returns are idempotent and only move forward."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce import ingest
from commerce.models import (
    Cart,
    DeliveryEvent,
    Fulfillment,
    Order,
    OrderLine,
    Product,
    ProductFamily,
    Return,
    Touchpoint,
)
from commerce.services.orders import NotYetKnown, carts_mark_abandoned
from retention import clock

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def order_payload(**over):
    data = {
        "id": "1001",
        "number": "#1001",
        "currency": "eur",
        "placed_at": "2026-05-01T10:00:00Z",
        "customer": {"id": "c-1", "email": "a@x.com"},
        "lines": [
            {
                "sku": "COF-1",
                "name": "Coffee",
                "product_family": "Coffee",
                "quantity": 2,
                "unit_price": "9.50",
            },
            {
                "sku": "MUG-1",
                "name": "Mug",
                "quantity": 1,
                "unit_price": "12.00",
                "discount": "2.00",
            },
        ],
        "discount_total": "3.00",
        "shipping_total": "4.90",
        "tax_total": "1.10",
        "fee_total": "0.50",
    }
    data.update(over)
    return data


def test_order_created_with_lines_totals_and_catalogue(tenant):
    order, created = ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    assert created
    assert order.currency == "EUR"
    assert order.subtotal == Decimal("29.00")  # 2 x 9.50 + 12.00 - 2.00
    assert order.total == Decimal("29.00") - Decimal("3.00") + Decimal("4.90") + Decimal(
        "1.10"
    ) + Decimal("0.50")
    lines = list(OrderLine.objects.for_tenant(tenant).filter(order=order).order_by("sku"))
    assert [(ln.sku, ln.quantity, ln.total) for ln in lines] == [
        ("COF-1", 2, Decimal("19.00")),
        ("MUG-1", 1, Decimal("10.00")),
    ]
    coffee = ProductFamily.objects.for_tenant(tenant).get(slug="coffee")
    assert lines[0].family_id == coffee.pk
    assert Product.objects.for_tenant(tenant).get(sku="COF-1").family_id == coffee.pk
    assert Touchpoint.objects.for_tenant(tenant).get().kind == "order.placed"


def test_same_order_twice_is_stored_once(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    _, created = ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    assert not created
    assert Order.objects.for_tenant(tenant).count() == 1
    assert OrderLine.objects.for_tenant(tenant).count() == 2
    assert Touchpoint.objects.for_tenant(tenant).count() == 1


def test_order_updated_replaces_lines(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    order, _ = ingest.apply(
        tenant=tenant,
        topic="order.updated",
        data=order_payload(
            lines=[{"sku": "COF-1", "quantity": 1, "unit_price": "9.50"}], total="9.50"
        ),
    )
    assert order.total == Decimal("9.50")
    assert OrderLine.objects.for_tenant(tenant).count() == 1


def test_order_cancelled(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    order = ingest.apply(tenant=tenant, topic="order.cancelled", data={"id": "1001"})
    assert order.status == "cancelled" and order.cancelled_at is not None


def test_events_about_unknown_order_are_not_yet_known(tenant):
    with pytest.raises(NotYetKnown):
        ingest.apply(
            tenant=tenant,
            topic="fulfillment.updated",
            data={"id": "f1", "order_id": "nope", "status": "shipped"},
        )


def test_fulfilment_status_never_moves_backwards(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())

    def ship(status, at):
        return ingest.apply(
            tenant=tenant,
            topic="fulfillment.updated",
            data={
                "id": "f1",
                "order_id": "1001",
                "status": status,
                "occurred_at": at,
                "estimated_delivery": {
                    "start": "2026-05-03T00:00:00Z",
                    "end": "2026-05-05T00:00:00Z",
                },
            },
        )

    ship("packed", "2026-05-01T12:00:00Z")
    ship("shipped", "2026-05-02T08:00:00Z")
    ship("delivered", "2026-05-04T15:00:00Z")
    f = ship("shipped", "2026-05-02T08:00:00Z")  # a late duplicate
    f = ship("packed", "2026-05-01T13:00:00Z")  # a late, older event
    assert f.status == "delivered"
    assert f.delivered_at == datetime(2026, 5, 4, 15, tzinfo=UTC)
    assert f.shipped_at == datetime(2026, 5, 2, 8, tzinfo=UTC)
    assert f.estimated_delivery_end == datetime(2026, 5, 5, tzinfo=UTC)
    assert DeliveryEvent.objects.for_tenant(tenant).count() == 4  # timeline keeps late news once
    assert Fulfillment.objects.for_tenant(tenant).count() == 1


def test_delay_then_delivery(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    for status in ("shipped", "delayed", "out_for_delivery", "delivered"):
        f = ingest.apply(
            tenant=tenant,
            topic="fulfillment.updated",
            data={"id": "f1", "order_id": "1001", "status": status},
        )
    assert f.status == "delivered"


def test_cart_abandoned_after_tenant_time_and_converted_by_order(tenant):
    clock.set_now(T0)
    ingest.apply(
        tenant=tenant,
        topic="cart.updated",
        data={
            "id": "cart-1",
            "customer": {"email": "a@x.com"},
            "items": [{"sku": "COF-1", "quantity": 2, "unit_price": "9.50"}],
        },
    )
    cart = Cart.objects.for_tenant(tenant).get()
    assert (cart.status, cart.total) == ("active", Decimal("19.00"))

    clock.set_now(T0 + timedelta(minutes=59))
    assert carts_mark_abandoned(tenant=tenant) == 0
    clock.set_now(T0 + timedelta(minutes=60))
    assert carts_mark_abandoned(tenant=tenant) == 1
    cart.refresh_from_db()
    assert cart.status == "abandoned"

    clock.set_now(T0 + timedelta(hours=3))
    ingest.apply(
        tenant=tenant,
        topic="order.created",
        data=order_payload(
            customer={"email": "a@x.com"}, cart_id="cart-1", placed_at="2026-05-01T13:00:00Z"
        ),
    )
    cart.refresh_from_db()
    assert cart.status == "converted" and cart.order_id is not None


def test_return_refunds_order_when_fully_refunded(tenant):
    order, _ = ingest.apply(tenant=tenant, topic="order.created", data=order_payload(total="20.00"))
    ingest.apply(
        tenant=tenant,
        topic="return.created",
        data={"id": "r1", "order_id": "1001", "refund_amount": "5.00"},
    )
    order.refresh_from_db()
    assert order.status == "paid"
    ingest.apply(
        tenant=tenant,
        topic="return.created",
        data={
            "id": "r2",
            "order_id": "1001",
            "refund_amount": "15.00",
            "lines": [{"sku": "COF-1", "quantity": 1}],
        },
    )
    ingest.apply(
        tenant=tenant,
        topic="return.created",
        data={"id": "r2", "order_id": "1001", "refund_amount": "15.00"},
    )
    order.refresh_from_db()
    assert order.status == "refunded"
    assert Return.objects.for_tenant(tenant).count() == 2


def test_tracked_event_idempotent_on_client_id(tenant):
    data = {
        "id": "evt-1",
        "customer": {"id": "c-1"},
        "category": "product",
        "kind": "onboarding.completed",
        "properties": {"step": 3},
    }
    assert ingest.apply(tenant=tenant, topic="event.tracked", data=data)["created"] == 1
    assert ingest.apply(tenant=tenant, topic="event.tracked", data=data)["created"] == 0
    t = Touchpoint.objects.for_tenant(tenant).get()
    assert (t.kind, t.properties) == ("onboarding.completed", {"step": 3})


@pytest.mark.parametrize(
    "topic,data,field",
    [
        ("order.created", {"id": "1", "customer": {"id": "c"}}, "placed_at"),
        (
            "order.created",
            {"id": "1", "placed_at": "yesterday", "customer": {"id": "c"}},
            "placed_at",
        ),
        (
            "order.created",
            {"id": "1", "placed_at": "2026-05-01T10:00:00Z", "customer": {}},
            "customer",
        ),
        ("order.created", order_payload(total="-1"), "total"),
        ("order.created", order_payload(total="1e30"), "total"),
        ("fulfillment.updated", {"id": "f", "order_id": "1", "status": "teleported"}, "status"),
        (
            "event.tracked",
            {"customer": {"id": "c"}, "category": "product", "kind": "Bad Kind!"},
            "kind",
        ),
    ],
)
def test_schema_violations_name_the_field(tenant, topic, data, field):
    with pytest.raises(ingest.InvalidInput) as exc:
        ingest.apply(tenant=tenant, topic=topic, data=data)
    assert field in exc.value.fields["data"]
    assert not Order.objects.for_tenant(tenant).exists()


def test_other_tenant_untouched(tenant, other_tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    assert not Order.objects.for_tenant(other_tenant).exists()
    assert not Touchpoint.objects.for_tenant(other_tenant).exists()


def test_late_order_created_does_not_undo_cancellation(tenant):
    ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    ingest.apply(
        tenant=tenant,
        topic="order.cancelled",
        data={"id": "1001", "cancelled_at": "2026-05-02T09:00:00Z"},
    )
    order, _ = ingest.apply(tenant=tenant, topic="order.created", data=order_payload())
    assert order.status == "cancelled"
    assert order.cancelled_at == datetime(2026, 5, 2, 9, tzinfo=UTC)


def test_completed_checkout_is_converted_even_before_its_order(tenant):
    clock.set_now(T0)
    ingest.apply(
        tenant=tenant,
        topic="cart.updated",
        data={
            "id": "chk-1",
            "customer": {"email": "a@x.com", "accepts_email": True},
            "items": [{"sku": "A", "unit_price": "5.00"}],
            "completed_at": "2026-05-01T10:05:00Z",
        },
    )
    clock.set_now(T0 + timedelta(hours=2))
    assert carts_mark_abandoned(tenant=tenant) == 0
    assert Cart.objects.for_tenant(tenant).get().status == "converted"
    from commerce.models import ChannelConsent

    assert ChannelConsent.objects.for_tenant(tenant).get().status == "opted_in"


@pytest.mark.parametrize(
    "over,field",
    [
        ({"placed_at": "0001-01-01T00:00:00Z"}, "placed_at"),
        ({"placed_at": "2999-01-01T00:00:00Z"}, "placed_at"),
        ({"lines": [{"sku": "A", "quantity": 100000, "unit_price": "999999999.99"}]}, "lines"),
        ({"lines": [{"sku": "A", "unit_price": "10000000000"}]}, "lines"),
        ({"customer": {"id": "c", "first_name": "bad\x00name"}}, "customer"),
        ({"customer": {"id": "c", "first_name": "lone \ud800 surrogate"}}, "customer"),
    ],
)
def test_values_the_database_cannot_hold_are_field_errors(tenant, over, field):
    with pytest.raises(ingest.InvalidInput) as exc:
        ingest.apply(tenant=tenant, topic="order.created", data=order_payload(**over))
    assert field in exc.value.fields["data"]
    assert not Order.objects.for_tenant(tenant).exists()


def test_surrogates_in_event_properties_refused(tenant):
    with pytest.raises(ingest.InvalidInput):
        ingest.apply(
            tenant=tenant,
            topic="event.tracked",
            data={
                "customer": {"id": "c"},
                "category": "product",
                "kind": "a.b",
                "properties": {"k": ["ok", {"x": "\ud800"}]},
            },
        )
    assert not Touchpoint.objects.for_tenant(tenant).exists()


def test_long_order_id_without_number(tenant):
    order, _ = ingest.apply(
        tenant=tenant, topic="order.created", data=order_payload(id="x" * 100, number="")
    )
    assert order.external_id == "x" * 100 and order.number == "x" * 50


def test_known_products_cost_no_query_per_line(tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    skus = [f"SKU-{i}" for i in range(10)]
    catalogue = [{"sku": s, "product_family": "Coffee", "unit_price": "1.00"} for s in skus]
    ingest.apply(
        tenant=tenant, topic="order.created", data=order_payload(id="warm", lines=catalogue)
    )

    def queries(order_id, lines):
        with CaptureQueriesContext(connection) as ctx:
            ingest.apply(
                tenant=tenant, topic="order.created", data=order_payload(id=order_id, lines=lines)
            )
        return len(ctx.captured_queries)

    assert queries("one", catalogue[:1]) == queries("ten", catalogue)
    assert OrderLine.objects.for_tenant(tenant).filter(order__external_id="ten").count() == 10
