"""Shopify-format webhooks: the signature check and the mapping of Shopify's own
webhook bodies (shaped like its admin REST API samples, in ``shopify_payloads/``)
to our events, applied through ``commerce.ingest`` as the inbox task does."""

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from commerce import ingest, shopify
from commerce.models import (
    Cart,
    CartStatus,
    ChannelConsent,
    CommerceSettings,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    Fulfillment,
    Order,
    OrderLine,
    Return,
    Touchpoint,
)
from commerce.services.orders import NotYetKnown
from retention.errors import InvalidInput
from retention.models import Tenant

PAYLOADS = Path(__file__).parent / "shopify_payloads"
EST = timezone(timedelta(hours=-5))
EDT = timezone(timedelta(hours=-4))
ORDER_ID = "820982911946154508"
SHOPIFY_CUSTOMER_ID = "115310627314723954"
SECRET = "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"


def raw(topic: str) -> bytes:
    return (PAYLOADS / f"{topic.replace('/', '_')}.json").read_bytes()


def payload(topic: str) -> dict:
    return json.loads(raw(topic))


def deliver(tenant: Tenant, topic: str, body: dict | None = None) -> list:
    """What the inbox task does with one verified Shopify webhook."""
    events = shopify.to_events(topic, payload(topic) if body is None else body)
    return [
        ingest.apply(tenant=tenant, topic=our_topic, data=data, source="shopify")
        for our_topic, data in events
    ]


def live(tenant: Tenant):
    return Customer.objects.for_tenant(tenant).filter(merged_into__isnull=True)


def snapshot(tenant: Tenant) -> dict:
    """Everything a Shopify webhook can write, minus bookkeeping timestamps."""

    def rows(model, *fields):
        return sorted(model.objects.for_tenant(tenant).values_list(*fields), key=repr)

    return {
        "customers": rows(
            Customer, "id", "email", "phone", "first_name", "last_name", "locale", "merged_into"
        ),
        "identities": rows(CustomerIdentity, "customer", "kind", "source", "value"),
        "consents": rows(ChannelConsent, "customer", "channel", "status", "source", "at"),
        "orders": rows(
            Order,
            "id",
            "customer",
            "source",
            "external_id",
            "number",
            "status",
            "currency",
            "subtotal",
            "discount_total",
            "shipping_total",
            "tax_total",
            "total",
            "placed_at",
            "cancelled_at",
        ),
        "lines": rows(
            OrderLine, "order", "sku", "name", "quantity", "unit_price", "discount", "total"
        ),
        "fulfillments": rows(
            Fulfillment,
            "id",
            "order",
            "external_id",
            "status",
            "carrier",
            "tracking_number",
            "tracking_url",
            "shipped_at",
            "delivered_at",
        ),
        "delivery_events": rows(DeliveryEvent, "fulfillment", "status", "at", "message"),
        "carts": rows(
            Cart,
            "id",
            "customer",
            "external_id",
            "status",
            "currency",
            "total",
            "items",
            "recovery_url",
            "updated_at",
            "order",
        ),
        "returns": rows(
            Return, "id", "order", "external_id", "reason", "refund_amount", "lines", "created_at"
        ),
        "touchpoints": rows(Touchpoint, "customer", "kind", "source", "external_id"),
    }


# --- verify ---------------------------------------------------------------------


def test_verify_accepts_the_correct_hmac_of_the_raw_body():
    body = raw("orders/create")
    header = shopify.sign(SECRET, body)
    assert shopify.verify(SECRET, body, header) is True
    assert shopify.verify(SECRET, body, f"  {header}\n") is True


@pytest.mark.parametrize(
    ("secret", "tamper", "header"),
    [
        pytest.param(SECRET, True, None, id="tampered body"),
        pytest.param("shpss_someone_else", False, None, id="wrong secret"),
        pytest.param("", False, None, id="empty secret"),
        pytest.param(SECRET, False, "", id="empty header"),
        pytest.param(SECRET, False, "not base64 at all!", id="garbled header"),
        pytest.param(SECRET, False, "c2hvcnQ=", id="decodes to the wrong length"),
        pytest.param(SECRET, False, "sha256=ÄÖÜ", id="non-ASCII header"),
        pytest.param(SECRET, False, "v1,abc", id="another scheme's header"),
    ],
)
def test_verify_rejects(secret, tamper, header):
    body = raw("orders/create")
    good = shopify.sign(SECRET, body)
    sent = body.replace(b'"418.24"', b'"0.01"', 1) if tamper else body
    assert shopify.verify(secret, sent, good if header is None else header) is False


def test_verify_never_raises_on_odd_types():
    body = raw("orders/create")
    assert shopify.verify(SECRET, body, None) is False
    assert shopify.verify(None, body, shopify.sign(SECRET, body)) is False
    assert shopify.verify(SECRET, body, 12345) is False


# --- mapping --------------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(shopify.TOPICS))
def test_every_topic_maps_to_data_our_schemas_accept(topic):
    events = shopify.to_events(topic, payload(topic))
    assert events
    for our_topic, data in events:
        assert our_topic in ingest.TOPICS
        ingest.validate(topic=our_topic, data=data)
        json.dumps(data)  # plain JSON, storable as it is


def test_orders_create_maps_ids_money_customer_and_lines():
    [(topic, data)] = shopify.to_events("orders/create", payload("orders/create"))
    assert topic == "order.created"
    assert {k: data[k] for k in ("id", "number", "status", "currency", "placed_at")} == {
        "id": ORDER_ID,
        "number": "#9999",
        "status": "paid",
        "currency": "USD",
        "placed_at": "2026-03-03T14:21:07-05:00",
    }
    assert {k: data[k] for k in ("subtotal", "discount_total", "shipping_total", "tax_total")} == {
        "subtotal": "398.00",
        "discount_total": "20.00",
        "shipping_total": "10.00",
        "tax_total": "30.24",
    }
    assert (data["total"], data["cart_id"]) == ("418.24", "bd5a8aa1ecd019dd3520ff791ee3a24c")
    assert data["customer"] == {
        "id": SHOPIFY_CUSTOMER_ID,
        "email": "john@example.com",
        "phone": "+16135550135",
        "first_name": "John",
        "last_name": "Smith",
        "locale": "en-US",
        "accepts_email": True,
        "accepts_sms": False,
        "updated_at": "2026-03-02T10:05:00-05:00",
    }
    assert data["lines"] == [
        {
            "quantity": 1,
            "sku": "IPOD2008PINK",
            "name": "IPod Nano - 8GB",
            "product_family": "Apple",
            "unit_price": "199.00",
            "discount": "0.00",
        },
        {
            "quantity": 1,
            "sku": "IPOD2008BLACK",
            "name": "IPod Nano - 8GB",
            "unit_price": "199.00",
            "discount": "20.00",
        },
    ]


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled_at", "expected"),
    [
        ("paid", None, None, "paid"),
        ("partially_refunded", None, None, "paid"),
        ("paid", "fulfilled", None, "fulfilled"),
        ("pending", None, None, "open"),
        ("authorized", None, None, "open"),
        ("refunded", None, None, "refunded"),
        ("voided", None, None, "cancelled"),
        ("paid", None, "2026-03-03T16:02:54-05:00", "cancelled"),
    ],
)
def test_order_status_follows_financial_status_and_cancellation(
    financial, fulfillment, cancelled_at, expected
):
    body = payload("orders/create")
    body.update(
        financial_status=financial, fulfillment_status=fulfillment, cancelled_at=cancelled_at
    )
    [(_, data)] = shopify.to_events("orders/updated", body)
    assert data["status"] == expected


def test_order_falls_back_to_order_email_and_shipping_lines_without_a_customer():
    body = payload("orders/create")
    body["customer"] = None
    del body["total_shipping_price_set"]
    body["shipping_lines"].append({"price": "2.50", "title": "Insurance"})
    [(_, data)] = shopify.to_events("orders/create", body)
    assert data["customer"] == {
        "email": "jon@example.com",
        "locale": "en-US",
        "accepts_email": True,
        "updated_at": "2026-03-03T14:21:09-05:00",
    }
    assert data["shipping_total"] == "12.50"


def test_an_unusable_phone_is_dropped_when_an_email_identifies_the_customer():
    body = payload("orders/create")
    body["customer"]["phone"] = "call me maybe"
    [(_, data)] = shopify.to_events("orders/create", body)
    assert "phone" not in data["customer"]
    assert data["customer"]["email"] == "john@example.com"


@pytest.mark.parametrize(
    ("shipment_status", "status", "expected"),
    [
        ("label_printed", "success", "packed"),
        ("label_purchased", "success", "packed"),
        ("confirmed", "success", "packed"),
        ("in_transit", "success", "shipped"),
        ("out_for_delivery", "success", "out_for_delivery"),
        ("attempted_delivery", "success", "delayed"),
        ("delayed", "success", "delayed"),
        ("delivered", "success", "delivered"),
        ("failure", "success", "failed"),
        (None, "success", "shipped"),
        (None, "pending", "pending"),
        (None, "error", "failed"),
        ("something_new", "success", "shipped"),
    ],
)
def test_fulfillment_status_mapping(shipment_status, status, expected):
    body = payload("fulfillments/update")
    body.update(shipment_status=shipment_status, status=status)
    [(topic, data)] = shopify.to_events("fulfillments/update", body)
    assert (topic, data["status"]) == ("fulfillment.updated", expected)


def test_fulfillment_maps_tracking_and_the_estimated_delivery_as_window_end():
    body = payload("fulfillments/update")
    body["shipment_status"] = "in_transit"
    body["estimated_delivery_at"] = "2026-03-07T18:00:00-05:00"
    [(_, data)] = shopify.to_events("fulfillments/update", body)
    assert data == {
        "id": "255858046",
        "order_id": ORDER_ID,
        "status": "shipped",
        "occurred_at": "2026-03-06T13:47:20-05:00",
        "carrier": "UPS",
        "tracking_number": "1Z2345",
        "tracking_url": "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z2345",
        "estimated_delivery": {"end": "2026-03-07T18:00:00-05:00"},
        "message": "Shopify: in_transit",
    }


def test_refund_amount_falls_back_to_refunded_lines_with_tax():
    body = payload("refunds/create")
    body["transactions"] = []
    [(_, data)] = shopify.to_events("refunds/create", body)
    assert data["refund_amount"] == "192.60"


@pytest.mark.parametrize("topic", ["orders/paid", "order.created", "", "ORDERS/CREATE"])
def test_unknown_topic_is_refused_clearly(topic):
    with pytest.raises(InvalidInput) as exc:
        shopify.to_events(topic, payload("orders/create"))
    assert exc.value.code == "unknown_topic"
    assert "orders/create" in exc.value.fields["topic"][0]


@pytest.mark.parametrize(
    ("topic", "remove", "field"),
    [
        ("orders/create", "id", "id"),
        ("orders/create", "created_at", "created_at"),
        ("fulfillments/create", "order_id", "order_id"),
        ("refunds/create", "order_id", "order_id"),
        ("refunds/create", "id", "id"),
        ("customers/update", "id", "id"),
        ("checkouts/update", "token", "token"),
    ],
)
def test_a_body_missing_what_the_mapping_needs_is_refused_with_field_errors(topic, remove, field):
    body = payload(topic)
    body[remove] = None
    if topic == "orders/create":
        body["processed_at"] = None
    if topic == "checkouts/update":
        body["id"] = None
    with pytest.raises(InvalidInput) as exc:
        shopify.to_events(topic, body)
    assert field in exc.value.fields
    assert topic in exc.value.message


def test_an_order_with_nobody_to_attach_it_to_is_refused():
    body = payload("orders/create")
    body.update(customer=None, email=None, contact_email=None, phone=None)
    with pytest.raises(InvalidInput) as exc:
        shopify.to_events("orders/create", body)
    assert list(exc.value.fields) == ["customer"]


def test_bad_values_are_refused_with_the_schema_field_errors():
    body = payload("orders/create")
    body["total_price"] = "lots"
    body["line_items"][0]["quantity"] = 0
    with pytest.raises(InvalidInput) as exc:
        shopify.to_events("orders/create", body)
    fields = exc.value.fields["data"]
    assert set(fields) == {"total", "lines"}


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidInput):
        shopify.to_events("orders/create", [payload("orders/create")])
    body = payload("orders/create")
    body["line_items"] = ["a string"]
    with pytest.raises(InvalidInput) as exc:
        shopify.to_events("orders/create", body)
    assert "line_items" in exc.value.fields


# --- applying -------------------------------------------------------------------


def test_orders_create_creates_customer_order_lines_and_consent(tenant, other_tenant):
    [(order, created)] = deliver(tenant, "orders/create")

    assert created
    customer = order.customer
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "john@example.com",
        "+16135550135",
        "John",
        "Smith",
    )
    assert set(
        CustomerIdentity.objects.for_tenant(tenant).values_list("kind", "source", "value")
    ) == {
        ("external", "shopify", SHOPIFY_CUSTOMER_ID),
        ("email", "", "john@example.com"),
        ("phone", "", "+16135550135"),
    }
    assert (order.source, order.external_id, order.number, order.status, order.currency) == (
        "shopify",
        ORDER_ID,
        "#9999",
        "paid",
        "USD",
    )
    assert order.placed_at == datetime(2026, 3, 3, 14, 21, 7, tzinfo=EST)
    assert (
        order.subtotal,
        order.discount_total,
        order.shipping_total,
        order.tax_total,
        order.fee_total,
        order.total,
    ) == (
        Decimal("398.00"),
        Decimal("20.00"),
        Decimal("10.00"),
        Decimal("30.24"),
        Decimal("0.00"),
        Decimal("418.24"),
    )
    lines = list(
        OrderLine.objects.for_tenant(tenant)
        .filter(order=order)
        .order_by("sku")
        .values_list("sku", "name", "quantity", "unit_price", "discount", "total", "family__name")
    )
    assert lines == [
        (
            "IPOD2008BLACK",
            "IPod Nano - 8GB",
            1,
            Decimal("199.00"),
            Decimal("20.00"),
            Decimal("179.00"),
            None,
        ),
        (
            "IPOD2008PINK",
            "IPod Nano - 8GB",
            1,
            Decimal("199.00"),
            Decimal("0.00"),
            Decimal("199.00"),
            "Apple",
        ),
    ]
    consents = dict(ChannelConsent.objects.for_tenant(tenant).values_list("channel", "status"))
    assert consents == {"email": "opted_in", "sms": "opted_out"}
    assert ChannelConsent.objects.for_tenant(tenant).get(channel="email").source == "shopify"
    assert Touchpoint.objects.for_tenant(tenant).get().kind == "order.placed"
    assert all(rows == [] for rows in snapshot(other_tenant).values())


@pytest.mark.parametrize(
    ("topics", "replayed"),
    [
        (["orders/create"], "orders/create"),
        (["orders/create", "orders/updated"], "orders/updated"),
        (["orders/create", "orders/cancelled"], "orders/cancelled"),
        (["orders/create", "fulfillments/create"], "fulfillments/create"),
        (["orders/create", "fulfillments/create", "fulfillments/update"], "fulfillments/update"),
        (["checkouts/create"], "checkouts/create"),
        (["orders/create", "checkouts/update"], "checkouts/update"),
        (["customers/create"], "customers/create"),
        (["customers/create", "customers/update"], "customers/update"),
        (["orders/create", "refunds/create"], "refunds/create"),
    ],
)
def test_the_same_payload_applied_twice_changes_nothing(tenant, topics, replayed):
    for topic in topics:
        deliver(tenant, topic)
    before = snapshot(tenant)

    deliver(tenant, replayed)

    assert snapshot(tenant) == before


def test_orders_updated_moves_the_order_on_without_a_second_order(tenant):
    deliver(tenant, "orders/create")
    [(order, created)] = deliver(tenant, "orders/updated")
    assert not created
    assert order.status == "fulfilled"
    assert Order.objects.for_tenant(tenant).count() == 1
    assert OrderLine.objects.for_tenant(tenant).count() == 2


def test_orders_cancelled_cancels_the_order(tenant):
    deliver(tenant, "orders/create")
    deliver(tenant, "orders/cancelled")
    order = Order.objects.for_tenant(tenant).get()
    assert order.status == "cancelled"
    assert order.cancelled_at is not None
    assert order.total == Decimal("418.24")


def test_orders_cancelled_without_orders_create_still_records_the_cancelled_order(tenant):
    [(order, created), cancelled] = deliver(tenant, "orders/cancelled")
    assert created
    assert cancelled.pk == order.pk
    order.refresh_from_db()
    assert (order.external_id, order.number, order.status) == (ORDER_ID, "#9999", "cancelled")
    assert order.cancelled_at is not None
    assert order.total == Decimal("418.24")


def test_fulfillments_create_then_update_ships_and_delivers(tenant):
    deliver(tenant, "orders/create")
    [fulfillment] = deliver(tenant, "fulfillments/create")
    assert (fulfillment.status, fulfillment.carrier, fulfillment.tracking_number) == (
        "shipped",
        "UPS",
        "1Z2345",
    )
    assert fulfillment.shipped_at == datetime(2026, 3, 4, 9, 15, tzinfo=EST)
    assert fulfillment.order.external_id == ORDER_ID

    [fulfillment] = deliver(tenant, "fulfillments/update")
    assert fulfillment.status == "delivered"
    assert fulfillment.delivered_at == datetime(2026, 3, 6, 13, 47, 20, tzinfo=EST)

    deliver(tenant, "fulfillments/create")  # a late replay never moves it back
    fulfillment.refresh_from_db()
    assert fulfillment.status == "delivered"
    assert Fulfillment.objects.for_tenant(tenant).count() == 1
    assert list(
        DeliveryEvent.objects.for_tenant(tenant).order_by("at").values_list("status", flat=True)
    ) == ["shipped", "delivered"]


def test_a_fulfilment_for_an_unknown_order_waits_for_the_order(tenant):
    with pytest.raises(NotYetKnown):
        deliver(tenant, "fulfillments/create")
    assert Fulfillment.objects.for_tenant(tenant).count() == 0


def test_checkouts_create_then_update_builds_the_cart(tenant):
    [cart] = deliver(tenant, "checkouts/create")
    assert (cart.external_id, cart.customer, cart.total, cart.status) == (
        "a7c1f3e2d4b59688e77665544332211f",
        None,
        Decimal("199.00"),
        "active",
    )

    [cart] = deliver(tenant, "checkouts/update")
    cart.refresh_from_db()
    assert cart.customer.email == "john@example.com"
    assert cart.total == Decimal("498.00")
    assert cart.items == [
        {"quantity": 1, "sku": "IPOD2008PINK", "name": "IPod Nano - 8GB", "unit_price": "199.00"},
        {"quantity": 2, "sku": "IPOD2009BLACK", "name": "IPod Touch 8GB", "unit_price": "149.50"},
    ]
    assert cart.recovery_url == (
        "https://jsmith.myshopify.com/548380009/checkouts/"
        "a7c1f3e2d4b59688e77665544332211f/recover?key=ex4mpl3s3cr3t"
    )
    assert cart.updated_at == datetime(2026, 3, 10, 11, 6, 31, tzinfo=EST)
    assert Cart.objects.for_tenant(tenant).count() == 1


def test_an_order_and_a_later_checkout_with_the_same_email_are_one_customer(tenant):
    [(order, _)] = deliver(tenant, "orders/create")
    [cart] = deliver(tenant, "checkouts/update")  # another Shopify customer id, same email

    assert live(tenant).count() == 1
    assert cart.customer_id == order.customer_id
    assert set(
        CustomerIdentity.objects.for_tenant(tenant)
        .filter(customer=order.customer, kind="external")
        .values_list("source", "value")
    ) == {("shopify", SHOPIFY_CUSTOMER_ID), ("shopify", "207119551")}


def test_the_order_converts_its_checkout(tenant):
    body = payload("checkouts/update")
    body["token"] = payload("orders/create")["checkout_token"]
    deliver(tenant, "checkouts/update", body)
    [(order, _)] = deliver(tenant, "orders/create")
    cart = Cart.objects.for_tenant(tenant).get()
    assert (cart.status, cart.order_id) == (CartStatus.CONVERTED, order.pk)


def test_customers_create_and_update_keep_profile_and_consent(tenant):
    [customer] = deliver(tenant, "customers/create")
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == (
        "bob.norman@mail.example.com",
        "+16135550142",
        "Bob",
        "Norman",
    )
    consents = ChannelConsent.objects.for_tenant(tenant).filter(customer=customer)
    assert dict(consents.values_list("channel", "status")) == {
        "email": "opted_out",
        "sms": "opted_in",
    }

    [same] = deliver(tenant, "customers/update")
    assert same.pk == customer.pk
    same.refresh_from_db()
    assert same.last_name == "Norman-Biller"
    assert set(consents.values_list("channel", "status", "at")) == {
        ("email", "opted_in", datetime(2026, 3, 20, 17, 45, 3, tzinfo=EDT)),
        ("sms", "opted_out", datetime(2026, 3, 20, 17, 45, 3, tzinfo=EDT)),
    }

    deliver(tenant, "customers/create")  # an older body does not undo newer consent
    assert set(consents.values_list("channel", "status")) == {
        ("email", "opted_in"),
        ("sms", "opted_out"),
    }
    assert live(tenant).count() == 1


def test_refunds_create_records_the_return(tenant):
    deliver(tenant, "orders/create")
    [ret] = deliver(tenant, "refunds/create")
    assert (ret.source, ret.external_id, ret.reason, ret.refund_amount) == (
        "shopify",
        "509562969",
        "Item arrived scratched",
        Decimal("192.60"),
    )
    assert ret.lines == [{"sku": "IPOD2008BLACK", "quantity": 1}]
    assert ret.created_at == datetime(2026, 3, 8, 12, 30, 11, tzinfo=EST)
    assert ret.order.external_id == ORDER_ID
    assert Order.objects.for_tenant(tenant).get().status == "paid"  # partly refunded


def test_a_refund_of_the_whole_order_marks_it_refunded(tenant):
    deliver(tenant, "orders/create")
    body = payload("refunds/create")
    body["transactions"][1]["amount"] = "418.24"
    deliver(tenant, "refunds/create", body)
    assert Order.objects.for_tenant(tenant).get().status == "refunded"


def test_a_refund_for_an_unknown_order_waits_for_the_order(tenant):
    with pytest.raises(NotYetKnown):
        deliver(tenant, "refunds/create")
    assert Return.objects.for_tenant(tenant).count() == 0


def test_every_topic_for_one_tenant_leaves_the_other_tenant_untouched(tenant, other_tenant):
    deliver(other_tenant, "customers/create")
    theirs = snapshot(other_tenant)

    for topic in (
        "customers/create",
        "customers/update",
        "checkouts/create",
        "orders/create",
        "checkouts/update",
        "fulfillments/create",
        "fulfillments/update",
        "refunds/create",
        "orders/updated",
        "orders/cancelled",
    ):
        deliver(tenant, topic)

    assert snapshot(other_tenant) == theirs
    assert live(tenant).count() == 2  # John and Bob
    # Bob exists in both tenants as separate people.
    bob_here = live(tenant).get(email="bob.norman@mail.example.com")
    bob_there = live(other_tenant).get(email="bob.norman@mail.example.com")
    assert bob_here.pk != bob_there.pk


def test_the_same_shopify_order_in_two_tenants_is_two_orders(tenant, other_tenant):
    [(mine, _)] = deliver(tenant, "orders/create")
    [(theirs, _)] = deliver(other_tenant, "orders/create")
    assert mine.pk != theirs.pk
    assert mine.customer.tenant_id == tenant.pk
    assert theirs.customer.tenant_id == other_tenant.pk


# --- the secret ----------------------------------------------------------------


def test_create_tenant_stores_the_shopify_secret(db):
    out = StringIO()
    call_command("create_tenant", "shop-one", "--shopify-secret", SECRET, stdout=out)
    call_command("create_tenant", "shop-two", stdout=StringIO())
    one = Tenant.objects.get(slug="shop-one")
    two = Tenant.objects.get(slug="shop-two")

    assert shopify.shopify_secret(tenant=one) == SECRET
    assert CommerceSettings.objects.for_tenant(one).get().shopify_webhook_secret == SECRET
    assert shopify.shopify_secret(tenant=two) == ""
    assert "/hooks/shop-one/shopify/" in out.getvalue()
    assert SECRET not in out.getvalue()
    body = raw("orders/create")
    assert shopify.verify(shopify.shopify_secret(tenant=one), body, shopify.sign(SECRET, body))
    assert not shopify.verify(shopify.shopify_secret(tenant=two), body, shopify.sign(SECRET, body))


def test_shopify_secret_set_updates_one_row_and_refuses_an_overlong_secret(tenant, other_tenant):
    shopify.shopify_secret_set(tenant=tenant, secret="  first  ")
    shopify.shopify_secret_set(tenant=tenant, secret="second")
    assert CommerceSettings.objects.for_tenant(tenant).count() == 1
    assert shopify.shopify_secret(tenant=tenant) == "second"
    assert shopify.shopify_secret(tenant=other_tenant) == ""
    with pytest.raises(InvalidInput):
        shopify.shopify_secret_set(tenant=tenant, secret="x" * 201)
    assert shopify.shopify_secret(tenant=tenant) == "second"
