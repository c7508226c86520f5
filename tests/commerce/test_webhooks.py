"""Storefront webhooks end to end: signature, answers, the inbox, processing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce import shopify, signing
from commerce.models import (
    Cart,
    CartStatus,
    CommerceSettings,
    Customer,
    Fulfillment,
    InboxEntry,
    InboxStatus,
    Order,
    OrderLine,
    Return,
    Touchpoint,
)
from commerce.services.inbox import MAX_ATTEMPTS, inbox_process, inbox_retry
from commerce.tasks import process_inbox_entry, sweep_inbox
from retention import clock
from retention.models import WebhookSecret
from retention.services import webhook_secret_rotate

ORDER = {
    "id": "1001",
    "number": "#1001",
    "placed_at": "2026-11-20T10:00:00Z",
    "currency": "EUR",
    "customer": {"id": "c-1", "email": "Ann@Example.com", "first_name": "Ann"},
    "lines": [
        {
            "sku": "BEAN-1",
            "name": "Beans",
            "product_family": "Coffee",
            "quantity": 2,
            "unit_price": "12.50",
        }
    ],
    "shipping_total": "4.90",
}


pytestmark = pytest.mark.usefixtures("eager_tasks")


def signed_headers(secret: str, body: bytes, *, msg_id: str | None = None, at=None) -> dict:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int((at or clock.now()).timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.sign(secret=secret, msg_id=msg_id, timestamp=ts, body=body),
    }


def post(tenant, payload, *, secret=None, msg_id=None, at=None, headers=None, slug=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    hdrs = signed_headers(secret or tenant.webhook_secret, body, msg_id=msg_id, at=at)
    hdrs.update(headers or {})
    return Client().post(
        f"/hooks/{slug or tenant.slug}/", body, content_type="application/json", headers=hdrs
    )


@pytest.fixture
def send(tenant, django_capture_on_commit_callbacks):
    """Post a signed event and run what it enqueued (the processing task)."""

    def _send(topic: str, data: dict, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            return post(tenant, {"type": topic, "data": data}, **kw)

    return _send


def _entry(resp) -> InboxEntry:
    return InboxEntry.objects.unscoped().get(pk=resp.json()["id"])


def _counts(tenant) -> dict:
    return {
        model.__name__: model.objects.for_tenant(tenant).count()
        for model in (Order, OrderLine, Touchpoint, Customer, InboxEntry)
    }


# --- accepted and processed ------------------------------------------------------------


def test_signed_order_created_is_accepted_and_processed(tenant, send):
    # when
    resp = send("order.created", ORDER, msg_id="msg_order_1")
    # then
    assert resp.status_code == 202
    entry = _entry(resp)
    assert resp.json() == {"id": entry.pk, "status": "accepted"}
    assert (entry.tenant_id, entry.channel, entry.webhook_id, entry.topic) == (
        tenant.pk,
        "standard",
        "msg_order_1",
        "order.created",
    )
    assert json.loads(entry.body) == {"type": "order.created", "data": ORDER}
    assert entry.headers["webhook-id"] == "msg_order_1"
    assert (entry.status, entry.attempts, entry.error) == ("processed", 1, "")
    order = Order.objects.for_tenant(tenant).get(external_id="1001")
    assert order.source == "storefront"
    assert order.total == Decimal("29.90")
    assert order.customer.email == "ann@example.com"
    assert [(line.sku, line.quantity) for line in order.lines.all()] == [("BEAN-1", 2)]


def test_replayed_webhook_is_processed_once(tenant, send):
    # given
    first = send("order.created", ORDER, msg_id="msg_dup")
    before = _counts(tenant)
    # when the storefront sends the same webhook again (even with another body)
    again = send("order.created", {**ORDER, "number": "#changed"}, msg_id="msg_dup")
    # then
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}
    assert _counts(tenant) == before
    assert Order.objects.for_tenant(tenant).get().number == "#1001"
    assert _entry(first).attempts == 1


def test_same_webhook_id_for_two_tenants_is_two_entries(tenant, other_tenant, send):
    send("order.created", ORDER, msg_id="msg_shared")
    resp = post(other_tenant, {"type": "order.created", "data": ORDER}, msg_id="msg_shared")
    assert resp.status_code == 202
    assert InboxEntry.objects.for_tenant(other_tenant).count() == 1


def test_replaying_the_task_of_a_processed_entry_does_nothing(tenant, send):
    entry = _entry(send("order.created", ORDER))
    before = _counts(tenant)
    assert process_inbox_entry.delay(tenant.pk, entry.pk).get() == "skipped"
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == ("processed", 1)
    assert _counts(tenant) == before


# --- signatures ------------------------------------------------------------------------


def test_webhook_signed_with_other_tenants_secret_is_rejected(tenant, other_tenant):
    resp = post(
        tenant, {"type": "order.created", "data": ORDER}, secret=other_tenant.webhook_secret
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "bad_signature"
    assert InboxEntry.objects.for_tenant(tenant).count() == 0


def test_missing_signature_is_401(tenant):
    resp = Client().post(f"/hooks/{tenant.slug}/", b"{}", content_type="application/json")
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "code": "missing_signature",
            "message": "Missing webhook-id, webhook-timestamp or webhook-signature header.",
            "fields": {},
        }
    }


def test_both_active_secrets_accepted_during_rotation_and_expired_refused(tenant):
    # given a rotation: the old secret stays valid for 7 days
    new = webhook_secret_rotate(tenant=tenant)
    payload = {"type": "order.created", "data": ORDER}
    # then both verify now
    assert post(tenant, payload, secret=tenant.webhook_secret).status_code == 202
    assert post(tenant, payload, secret=new.secret).status_code == 202
    # when the overlap is over
    later = clock.now() + timedelta(days=8)
    clock.set_now(later)
    # then only the new one verifies
    old = post(tenant, payload, secret=tenant.webhook_secret, at=later)
    assert old.status_code == 401
    assert old.json()["error"]["code"] == "bad_signature"
    assert post(tenant, payload, secret=new.secret, at=later).status_code == 202
    assert WebhookSecret.objects.for_tenant(tenant).count() == 2


def test_stale_timestamp_is_401_and_says_so(tenant):
    resp = post(
        tenant, {"type": "order.created", "data": ORDER}, at=clock.now() - timedelta(minutes=6)
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "stale_timestamp"
    assert "more than 5 minutes old" in resp.json()["error"]["message"]


def test_future_timestamp_is_401(tenant):
    resp = post(
        tenant, {"type": "order.created", "data": ORDER}, at=clock.now() + timedelta(minutes=6)
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "future_timestamp"


# --- bad input -------------------------------------------------------------------------


def test_unknown_tenant_is_404(tenant):
    resp = post(tenant, {"type": "order.created", "data": ORDER}, slug="no-such-store")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "unknown_tenant"


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe{}", b"", b"[" * 100_000]
)
def test_body_not_a_json_object_is_400(tenant, body):
    resp = post(tenant, body)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "not_json"
    assert InboxEntry.objects.for_tenant(tenant).count() == 0


def test_schema_violation_is_422_with_field_paths(tenant):
    data = {**ORDER, "placed_at": "yesterday", "lines": [{"quantity": 0}]}
    resp = post(tenant, {"type": "order.created", "data": data})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["data"]["placed_at"] == [
        "Datetime has wrong format. Use one of these formats instead: "
        "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
    ]
    assert error["fields"]["data"]["lines"] == {
        "0": {"quantity": ["Ensure this value is greater than or equal to 1."]}
    }
    assert InboxEntry.objects.for_tenant(tenant).count() == 0


def test_envelope_without_data_is_422(tenant):
    resp = post(tenant, {"type": "order.created"})
    assert resp.status_code == 422
    assert resp.json()["error"]["fields"] == {"data": ["This field is required."]}


def test_unknown_event_type_is_422(tenant):
    resp = post(tenant, {"type": "order.exploded", "data": {}})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "unknown_type"
    assert list(resp.json()["error"]["fields"]) == ["type"]


def test_body_over_one_mib_is_413(tenant):
    body = json.dumps({"type": "event.tracked", "data": {"pad": "x" * (1024 * 1024)}}).encode()
    resp = post(tenant, body)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_large"
    assert InboxEntry.objects.for_tenant(tenant).count() == 0


def test_get_is_not_allowed(tenant):
    resp = Client().get(f"/hooks/{tenant.slug}/")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


# --- every event type ----------------------------------------------------------------


def test_every_event_type_end_to_end(tenant, send):
    def ok(topic, data):
        resp = send(topic, data)
        assert resp.status_code == 202, resp.content
        entry = _entry(resp)
        assert (entry.status, entry.error) == ("processed", "")

    ok("order.created", ORDER)
    ok("order.updated", {**ORDER, "number": "#1001-B", "status": "paid"})
    order = Order.objects.for_tenant(tenant).get(external_id="1001")
    assert order.number == "#1001-B"

    parcel = {"id": "f-1", "order_id": "1001", "carrier": "DHL"}
    ok("fulfillment.updated", {**parcel, "status": "shipped", "occurred_at": "2026-11-21T08:00Z"})
    ok("fulfillment.updated", {**parcel, "status": "delivered", "occurred_at": "2026-11-22T08:00Z"})
    # a late "shipped" never moves a delivered parcel backwards
    ok("fulfillment.updated", {**parcel, "status": "shipped", "occurred_at": "2026-11-21T09:00Z"})
    fulfillment = Fulfillment.objects.for_tenant(tenant).get(external_id="f-1")
    assert fulfillment.status == "delivered"
    assert fulfillment.events.count() == 3

    ok(
        "cart.updated",
        {
            "id": "cart-9",
            "customer": {"email": "bob@example.com"},
            "items": [{"sku": "BEAN-1", "quantity": 1, "unit_price": "12.50"}],
        },
    )
    cart = Cart.objects.for_tenant(tenant).get(external_id="cart-9")
    assert (cart.status, cart.total) == (CartStatus.ACTIVE, Decimal("12.50"))

    ok("customer.updated", {"id": "c-1", "first_name": "Annie", "locale": "de-DE"})
    customer = Customer.objects.for_tenant(tenant).get(pk=order.customer_id)
    assert (customer.first_name, customer.locale) == ("Annie", "de-DE")

    ok("return.created", {"id": "r-1", "order_id": "1001", "refund_amount": "12.50"})
    assert Return.objects.for_tenant(tenant).get().refund_amount == Decimal("12.50")

    ok(
        "event.tracked",
        {
            "id": "ev-1",
            "customer": {"id": "c-1"},
            "category": "product",
            "kind": "onboarding.completed",
            "properties": {"step": 3},
        },
    )
    assert Touchpoint.objects.for_tenant(tenant).filter(kind="onboarding.completed").count() == 1

    ok("order.cancelled", {"id": "1001"})
    order.refresh_from_db()
    assert order.status == "cancelled"


# --- out of order, failures, retries ------------------------------------------------


def test_fulfillment_before_its_order_waits_then_is_processed(tenant, send):
    # given a fulfilment that arrives before its order
    parcel = {"id": "f-7", "order_id": "1001", "status": "shipped"}
    entry = _entry(send("fulfillment.updated", parcel))
    # then it waits, pending, with the reason
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert entry.error == "Order '1001' is not known yet. (attempt 1)"
    assert Fulfillment.objects.for_tenant(tenant).count() == 0
    # when the order arrives and the sweeper runs two minutes later
    send("order.created", ORDER)
    clock.set_now(clock.now() + timedelta(minutes=3))
    assert sweep_inbox.delay().get() == 1
    # then the fulfilment is applied, once
    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.error) == ("processed", 2, "")
    assert Fulfillment.objects.for_tenant(tenant).get().status == "shipped"
    assert sweep_inbox.delay().get() == 0


def test_sweeper_leaves_recent_pending_entries_alone(tenant, send):
    send("fulfillment.updated", {"id": "f-7", "order_id": "404", "status": "shipped"})
    assert sweep_inbox.delay().get() == 0


def test_out_of_order_event_fails_after_bounded_attempts_and_admin_retry_applies_it(
    tenant, send, django_capture_on_commit_callbacks
):
    entry = _entry(send("order.cancelled", {"id": "1001"}))
    for _ in range(MAX_ATTEMPTS - 1):
        process_inbox_entry.delay(tenant.pk, entry.pk)
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == ("failed", MAX_ATTEMPTS)
    assert entry.error == f"Order '1001' is not known yet. (attempt {MAX_ATTEMPTS})"
    # a failed entry is not swept again by itself
    clock.set_now(clock.now() + timedelta(minutes=3))
    assert sweep_inbox.delay().get() == 0
    # when the order arrives and someone retries from the admin
    send("order.created", ORDER)
    with django_capture_on_commit_callbacks(execute=True):
        assert inbox_retry(entry=entry) is True
    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.error) == ("processed", 1, "")
    assert Order.objects.for_tenant(tenant).get().status == "cancelled"
    assert inbox_retry(entry=entry) is False


def test_processing_failure_is_recorded(tenant):
    entry = InboxEntry.objects.create(
        tenant=tenant, channel="standard", webhook_id="broken", topic="order.created", body="{"
    )
    assert inbox_process(entry=entry) == "failed"
    entry.refresh_from_db()
    assert entry.status == InboxStatus.FAILED
    assert entry.attempts == 1
    assert entry.error.startswith("The stored body is not JSON: Expecting property name")


def test_new_tenant_gets_commerce_settings(tenant):
    assert CommerceSettings.objects.for_tenant(tenant).count() == 1


# --- hostile input never gives a 5xx and stores nothing when refused --------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
TOPIC_NAMES = st.sampled_from(
    [
        "order.created",
        "order.updated",
        "order.cancelled",
        "fulfillment.updated",
        "cart.updated",
        "customer.updated",
        "return.created",
        "event.tracked",
        "nope",
    ]
)
FIELDS = st.sampled_from(
    ["id", "order_id", "placed_at", "customer", "lines", "status", "items", "kind", "category"]
)
HYPO = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _assert_answer(tenant, resp, stored_before):
    assert resp.status_code < 500, resp.content
    assert resp["Content-Type"] == "application/json"
    body = resp.json()
    stored = InboxEntry.objects.for_tenant(tenant).count()
    if resp.status_code in (200, 202):
        assert body["status"] in ("accepted", "duplicate")
    else:
        assert set(body["error"]) == {"code", "message", "fields"}
        assert stored == stored_before


@HYPO
@given(body=st.binary(max_size=300))
def test_random_signed_bytes_never_5xx(tenant, body):
    before = InboxEntry.objects.for_tenant(tenant).count()
    _assert_answer(tenant, post(tenant, body), before)


@HYPO
@given(topic=TOPIC_NAMES, data=st.dictionaries(FIELDS, json_values, max_size=6))
def test_hostile_signed_payloads_never_5xx(tenant, topic, data, django_capture_on_commit_callbacks):
    before = InboxEntry.objects.for_tenant(tenant).count()
    with django_capture_on_commit_callbacks(execute=True):
        resp = post(tenant, {"type": topic, "data": {**ORDER, **data}})
    _assert_answer(tenant, resp, before)


@HYPO
@given(
    msg_id=st.text(max_size=250),
    timestamp=st.text(max_size=30) | st.integers(min_value=-(10**30), max_value=10**30).map(str),
    signature=st.text(max_size=200),
)
def test_hostile_headers_never_5xx(tenant, msg_id, timestamp, signature):
    before = InboxEntry.objects.for_tenant(tenant).count()
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    resp = Client().post(
        f"/hooks/{tenant.slug}/", b"{}", content_type="application/json", headers=headers
    )
    assert resp.status_code == 401
    _assert_answer(tenant, resp, before)


@pytest.mark.parametrize(
    "data",
    [
        {"deep": json.loads("[" * 900 + "]" * 900)},
        {"customer": {"id": "x" * 10_000}},
        {"placed_at": "99999-01-01T00:00:00Z"},
        {"lines": [{"unit_price": "1e999999"}]},
        {"lines": [{"unit_price": 10**400}]},
        {"lines": [{"quantity": 10**30}]},
        {"customer": {"id": "nul\u0000byte"}},
        {"customer": {"email": "ünï@éxample.com", "phone": "☎️"}},
        {"lines": "not a list"},
        {"lines": [None, 1, "x"]},
    ],
)
def test_known_hostile_payloads_never_5xx(tenant, data, django_capture_on_commit_callbacks):
    before = InboxEntry.objects.for_tenant(tenant).count()
    with django_capture_on_commit_callbacks(execute=True):
        resp = post(tenant, {"type": "order.created", "data": {**ORDER, **data}})
    _assert_answer(tenant, resp, before)
    assert resp.status_code in (400, 422)


def test_non_ascii_headers_are_refused_with_401(tenant):
    body = json.dumps({"type": "order.created", "data": ORDER}).encode()
    resp = post(tenant, body, headers={"webhook-id": "ïd", "webhook-timestamp": "\uff11\uff17"})
    assert resp.status_code == 401


# --- Shopify -------------------------------------------------------------------------

SHOPIFY_SECRET = base64.b64encode(b"shopify-app-secret").decode()
SHOPIFY_ORDER = {
    "id": 820982911946154508,
    "email": "jon@example.com",
    "created_at": "2026-11-20T10:00:00-05:00",
    "updated_at": "2026-11-20T10:00:00-05:00",
    "name": "#9999",
    "order_number": 1234,
    "currency": "USD",
    "total_price": "403.00",
    "subtotal_price": "393.00",
    "total_tax": "0.00",
    "total_discounts": "5.00",
    "financial_status": "paid",
    "fulfillment_status": None,
    "cancelled_at": None,
    "line_items": [
        {
            "id": 866550311766439020,
            "sku": "IPOD2008BLACK",
            "title": "IPod Nano - 8GB",
            "quantity": 1,
            "price": "199.00",
            "total_discount": "0.00",
        },
        {
            "id": 141249953214522974,
            "sku": "IPOD2008BLACK",
            "title": "IPod Nano - 8GB",
            "quantity": 1,
            "price": "199.00",
            "total_discount": "5.00",
        },
    ],
    "shipping_lines": [{"price": "10.00", "title": "Generic Shipping"}],
    "customer": {
        "id": 115310627314723954,
        "email": "john@example.com",
        "first_name": "John",
        "last_name": "Smith",
    },
}


@pytest.fixture
def shopify_tenant(tenant):
    shopify.shopify_secret_set(tenant=tenant, secret=SHOPIFY_SECRET)
    return tenant


def post_shopify(tenant, payload, *, topic="orders/create", webhook_id=None, secret=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(secret or SHOPIFY_SECRET, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Shop-Domain": "alpha.myshopify.com",
    }
    return Client().post(
        f"/hooks/{tenant.slug}/shopify/", body, content_type="application/json", headers=headers
    )


def test_shopify_order_is_accepted_and_processed(
    shopify_tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        resp = post_shopify(shopify_tenant, SHOPIFY_ORDER, webhook_id="b54557e4-bdd9")
    assert resp.status_code == 202
    entry = _entry(resp)
    assert (entry.channel, entry.webhook_id, entry.topic) == (
        "shopify",
        "b54557e4-bdd9",
        "orders/create",
    )
    assert (entry.status, entry.error) == ("processed", "")
    order = Order.objects.for_tenant(shopify_tenant).get()
    assert (order.source, order.external_id, order.number) == (
        "shopify",
        "820982911946154508",
        "#9999",
    )
    assert order.total == Decimal("403.00")


def test_shopify_replay_is_a_duplicate(shopify_tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_shopify(shopify_tenant, SHOPIFY_ORDER, webhook_id="same")
        again = post_shopify(shopify_tenant, SHOPIFY_ORDER, webhook_id="same")
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}
    assert Order.objects.for_tenant(shopify_tenant).count() == 1


def test_shopify_bad_hmac_is_401(shopify_tenant):
    resp = post_shopify(shopify_tenant, SHOPIFY_ORDER, secret="d3Jvbmc=")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "bad_signature"


def test_shopify_without_configured_secret_is_401(tenant):
    resp = post_shopify(tenant, SHOPIFY_ORDER)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "no_secret"


def test_shopify_garbage_hmac_header_is_401(shopify_tenant):
    body = json.dumps(SHOPIFY_ORDER).encode()
    resp = Client().post(
        f"/hooks/{shopify_tenant.slug}/shopify/",
        body,
        content_type="application/json",
        headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "ÿ%%%"},
    )
    assert resp.status_code == 401


def test_shopify_unsupported_topic_is_422(shopify_tenant):
    resp = post_shopify(shopify_tenant, SHOPIFY_ORDER, topic="app/uninstalled")
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "unsupported_topic"
    assert InboxEntry.objects.for_tenant(shopify_tenant).count() == 0


def test_shopify_unmappable_payload_is_422(shopify_tenant):
    resp = post_shopify(shopify_tenant, {"note": "no id, no customer"})
    assert resp.status_code == 422
    assert "id" in resp.json()["error"]["fields"]
    assert InboxEntry.objects.for_tenant(shopify_tenant).count() == 0


def test_shopify_unknown_tenant_is_404(tenant):
    resp = Client().post("/hooks/nobody/shopify/", b"{}", content_type="application/json")
    assert resp.status_code == 404
