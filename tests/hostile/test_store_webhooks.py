"""Hostile bodies to the storefront webhooks ``POST /hooks/<slug>/`` (Standard
Webhooks) and ``POST /hooks/<slug>/shopify/``, correctly signed so they get
past the signature: the answer is a 4xx JSON error (nothing stored) or 202
(stored in the inbox); processing a stored one then either applies it or
records a failure with its error on the inbox row, never half of it."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from commerce import shopify, signing
from commerce.models import InboxEntry, InboxStatus
from commerce.services.inbox import inbox_process
from retention import clock
from tests.hostile import corpus
from tests.hostile.conftest import HYPOTHESIS, HYPOTHESIS_WIDE, assert_json_error, counts

SHOPIFY_SECRET = "shpss_hostile_0123456789abcdef"

ORDER = {
    "id": "1001",
    "number": "#1001",
    "placed_at": "2026-11-20T10:00:00Z",
    "currency": "EUR",
    "customer": {"id": "c-1", "email": "ann@example.com", "phone": "+4915112345678"},
    "lines": [
        {"sku": "BEAN-1", "name": "Beans", "product_family": "Coffee", "unit_price": "12.50"}
    ],
    "shipping_total": "4.90",
}
VALID: dict[str, dict] = {
    "order.created": ORDER,
    "order.cancelled": {"id": "1001", "cancelled_at": "2026-11-21T10:00:00Z"},
    "fulfillment.updated": {
        "id": "f-1",
        "order_id": "1001",
        "status": "shipped",
        "tracking_url": "https://track.example/1",
        "estimated_delivery": {"start": "2026-11-22T08:00Z", "end": "2026-11-23T08:00Z"},
    },
    "cart.updated": {
        "id": "cart-1",
        "customer": {"email": "bob@example.com", "accepts_email": True},
        "items": [{"sku": "BEAN-1", "quantity": 1, "unit_price": "12.50"}],
        "recovery_url": "https://shop.example/cart/1",
    },
    "customer.updated": {"id": "c-1", "first_name": "Ann", "timezone": "Europe/Berlin"},
    "return.created": {"id": "r-1", "order_id": "1001", "refund_amount": "12.50"},
    "event.tracked": {
        "id": "ev-1",
        "customer": {"id": "c-1"},
        "category": "product",
        "kind": "onboarding.completed",
        "properties": {"step": 3, "tags": ["a"]},
    },
}
SHOPIFY_ORDER = {
    "id": 820982911946154508,
    "name": "#9999",
    "email": "jon@example.com",
    "created_at": "2026-11-20T10:00:00-05:00",
    "currency": "USD",
    "financial_status": "paid",
    "total_price": "403.00",
    "total_discounts": "5.00",
    "total_line_items_price": "398.00",
    "total_shipping_price_set": {"shop_money": {"amount": "10.00"}},
    "line_items": [
        {
            "sku": "IPOD",
            "title": "IPod Nano",
            "quantity": 1,
            "price": "199.00",
            "total_discount": "5.00",
            "discount_allocations": [{"amount": "5.00"}],
        }
    ],
    "shipping_lines": [{"price": "10.00"}],
    "customer": {"id": 115310627314723954, "email": "john@example.com", "first_name": "John"},
}
SHOPIFY_VALID: dict[str, dict] = {
    "orders/create": SHOPIFY_ORDER,
    "orders/cancelled": {**SHOPIFY_ORDER, "cancelled_at": "2026-11-21T10:00:00-05:00"},
    "fulfillments/create": {
        "id": 255858046,
        "order_id": 820982911946154508,
        "status": "success",
        "shipment_status": "in_transit",
        "tracking_company": "UPS",
        "tracking_numbers": ["1Z2345"],
        "tracking_urls": ["https://ups.example/1Z2345"],
        "estimated_delivery_at": "2026-11-23T10:00:00-05:00",
        "updated_at": "2026-11-21T10:00:00-05:00",
    },
    "checkouts/update": {
        "token": "tok-1",
        "email": "bob@example.com",
        "currency": "USD",
        "total_price": "12.50",
        "abandoned_checkout_url": "https://shop.example/recover/tok-1",
        "line_items": [{"sku": "IPOD", "title": "IPod", "quantity": 1, "price": "12.50"}],
        "updated_at": "2026-11-20T10:00:00-05:00",
    },
    "customers/update": {
        "id": 115310627314723954,
        "email": "john@example.com",
        "email_marketing_consent": {"state": "subscribed", "consent_updated_at": None},
    },
    "refunds/create": {
        "id": 509562969,
        "order_id": 820982911946154508,
        "note": "it broke",
        "transactions": [{"kind": "refund", "status": "success", "amount": "41.94"}],
        "refund_line_items": [
            {"quantity": 1, "line_item": {"sku": "IPOD"}, "subtotal": 195.0, "total_tax": 3.98}
        ],
    },
}


def _sign_standard(tenant, body: bytes) -> dict:
    msg_id = f"msg_{uuid.uuid4().hex}"
    ts = int(clock.now().timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.sign(
            secret=tenant.webhook_secret, msg_id=msg_id, timestamp=ts, body=body
        ),
    }


def post_standard(tenant, body: bytes, content_type: str = "application/json"):
    return Client().post(
        f"/hooks/{tenant.slug}/",
        body,
        content_type=content_type,
        headers=_sign_standard(tenant, body),
    )


def post_shopify(tenant, body: bytes, topic: str = "orders/create"):
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(SHOPIFY_SECRET, body),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
    }
    return Client().post(
        f"/hooks/{tenant.slug}/shopify/", body, content_type="application/json", headers=headers
    )


@pytest.fixture
def shopify_tenant(tenant):
    shopify.shopify_secret_set(tenant=tenant, secret=SHOPIFY_SECRET)
    return tenant


def check_answer_and_processing(response, before: dict) -> str:
    """The contract for one signed hostile webhook. Returns what happened."""
    if response.status_code != 202:
        if response.status_code == 200:  # a replay of a stored webhook id
            assert response.json()["status"] == "duplicate"
            return "duplicate"
        assert_json_error(response)
        assert counts() == before, "a refused webhook left rows behind"
        return "refused"
    entry = InboxEntry.objects.unscoped().get(pk=response.json()["id"])
    assert entry.status == InboxStatus.PENDING
    stored = counts()
    assert stored == {**before, "commerce.InboxEntry": before["commerce.InboxEntry"] + 1}
    outcome = inbox_process(entry=entry)
    entry.refresh_from_db()
    if outcome == "processed":
        assert (entry.status, entry.error) == (InboxStatus.PROCESSED, "")
        return "processed"
    # Failed or waiting for an earlier event: the row says why, and nothing of
    # the event was applied.
    assert outcome in ("failed", "waiting"), outcome
    assert entry.status in (InboxStatus.FAILED, InboxStatus.PENDING)
    assert entry.error.strip(), "a failed entry must record its error"
    assert counts() == stored, "a failed event left partial rows"
    return str(outcome)


# --- malformed bodies ------------------------------------------------------------------


@pytest.mark.parametrize("post", [post_standard, post_shopify], ids=["standard", "shopify"])
def test_malformed_bodies_are_a_4xx_json_error(shopify_tenant, post):
    before = counts()
    for name, body in corpus.MALFORMED_BODIES.items():
        response = post(shopify_tenant, body)
        assert_json_error(response, 400, 422)
        assert counts() == before, name


@pytest.mark.parametrize("post", [post_standard, post_shopify], ids=["standard", "shopify"])
def test_a_body_over_one_mib_is_413_and_just_under_is_judged_on_its_content(shopify_tenant, post):
    before = counts()
    over = post(shopify_tenant, corpus.huge_string_body(corpus.MIB + 1))
    assert assert_json_error(over, 413)["code"] == "too_large"
    # Just under the limit: a valid envelope carrying a ~1 MiB string is read
    # and refused for what it says (too long a field), not for its size.
    envelope = {"type": "event.tracked", "data": {**VALID["event.tracked"], "kind": ""}}
    envelope["data"]["properties"] = {"pad": ""}
    size = len(json.dumps(envelope))
    envelope["data"]["properties"]["pad"] = "x" * (corpus.MIB - size - 10)
    under = json.dumps(envelope).encode()
    assert len(under) < corpus.MIB
    assert assert_json_error(post(shopify_tenant, under), 422)
    assert counts() == before


def test_deeply_nested_valid_json_inside_the_data_is_refused(tenant):
    before = counts()
    data = {**VALID["event.tracked"], "properties": {"deep": json.loads(corpus.deep_list(500))}}
    response = post_standard(tenant, json.dumps({"type": "event.tracked", "data": data}).encode())
    assert_json_error(response, 400, 422)
    assert counts() == before


def test_wrong_content_type_is_judged_by_the_body_only(tenant):
    body = json.dumps({"type": "customer.updated", "data": VALID["customer.updated"]}).encode()
    before = counts()
    response = post_standard(tenant, body, content_type="text/plain")
    assert check_answer_and_processing(response, before) in ("processed", "refused")


# --- non-finite numbers and duplicate keys ---------------------------------------------------


@pytest.mark.parametrize("topic", sorted(VALID))
def test_nan_and_infinity_anywhere_are_refused(tenant, topic):
    for path in corpus.paths(VALID[topic]):
        for value in corpus.NON_FINITE:
            before = counts()
            data = corpus.replaced(VALID[topic], path, value)
            body = corpus.dumps_loose({"type": topic, "data": data})
            response = post_standard(tenant, body)
            assert check_answer_and_processing(response, before) == "refused", (path, value)


def test_huge_exponent_in_event_properties_is_refused(tenant):
    before = counts()
    body = json.dumps({"type": "event.tracked", "data": VALID["event.tracked"]}).replace(
        '"step": 3', '"step": 1e400'
    )
    response = post_standard(tenant, body.encode())
    assert_json_error(response, 400, 422)
    assert counts() == before


def test_duplicate_keys_keep_the_last_value_consistently(tenant):
    # The first "type" says event.tracked, the last says customer.updated: the
    # inbox row and the processing both read the last, as json.loads does.
    body = corpus.with_duplicate_key(
        {"type": "customer.updated", "data": VALID["customer.updated"]}, "type", "event.tracked"
    )
    before = counts()
    response = post_standard(tenant, body)
    assert check_answer_and_processing(response, before) == "processed"
    assert InboxEntry.objects.unscoped().get(pk=response.json()["id"]).topic == "customer.updated"


# --- every field of every topic, replaced by each nasty value -----------------------------------

HAND = [
    (topic, case_id, data)
    for topic in VALID
    for case_id, data in corpus.hand_mutations(VALID[topic])
]


@pytest.mark.parametrize("topic", sorted(VALID))
def test_nasty_values_in_every_field_of_a_standard_webhook(tenant, topic):
    outcomes = set()
    for _topic, case_id, data in (h for h in HAND if h[0] == topic):
        before = counts()
        body = json.dumps({"type": topic, "data": data}).encode()
        response = post_standard(tenant, body)
        outcomes.add(check_answer_and_processing(response, before))
        # NUL and lone surrogates can never be stored: they are refused up front.
        if corpus.unstorable(data):
            assert response.status_code == 422, (case_id, response.content[:300])
    assert "refused" in outcomes


@HYPOTHESIS_WIDE
@given(data=st.data())
def test_hypothesis_mutated_standard_webhooks(tenant, data):
    topic = data.draw(st.sampled_from(sorted(VALID)))
    payload = data.draw(corpus.mutated(VALID[topic]))
    envelope = data.draw(
        st.sampled_from(
            [
                {"type": topic, "data": payload},
                {"type": topic, "data": payload, "timestamp": data.draw(corpus.loose_json_values)},
                payload,
            ]
        )
    )
    before = counts()
    response = post_standard(tenant, corpus.dumps_loose(envelope))
    check_answer_and_processing(response, before)


@HYPOTHESIS
@given(body=corpus.loose_json_values)
def test_hypothesis_any_json_body_to_the_standard_webhook(tenant, body):
    before = counts()
    response = post_standard(tenant, corpus.dumps_loose(body))
    check_answer_and_processing(response, before)


@HYPOTHESIS
@given(body=st.binary(max_size=200))
def test_hypothesis_random_bytes_to_both_webhooks(shopify_tenant, body):
    before = counts()
    assert check_answer_and_processing(post_standard(shopify_tenant, body), before) == "refused"
    assert check_answer_and_processing(post_shopify(shopify_tenant, body), before) == "refused"


# --- Shopify ---------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(SHOPIFY_VALID))
def test_every_valid_shopify_sample_is_processed(shopify_tenant, topic):
    # The baseline the hostile variants start from is itself accepted.
    if topic not in ("orders/create", "orders/cancelled", "checkouts/update", "customers/update"):
        post_shopify(shopify_tenant, json.dumps(SHOPIFY_ORDER).encode())
        entry = InboxEntry.objects.unscoped().order_by("-pk").first()
        assert inbox_process(entry=entry) == "processed"
    before = counts()
    response = post_shopify(shopify_tenant, json.dumps(SHOPIFY_VALID[topic]).encode(), topic)
    assert check_answer_and_processing(response, before) == "processed"


# Type confusion is what breaks a mapper: each field gets these by hand (the
# rest of the corpus through hypothesis below).
SHOPIFY_NASTY = ["abc\x00def", [], {}, 10**400, float("nan"), "sNaN", "\ud800"]


@pytest.mark.parametrize("topic", sorted(SHOPIFY_VALID))
def test_nasty_values_in_every_field_of_a_shopify_webhook(shopify_tenant, topic):
    for case_id, data in corpus.hand_mutations(SHOPIFY_VALID[topic], SHOPIFY_NASTY):
        if topic == "orders/cancelled" and "." in case_id:
            continue  # the body of orders/create: its nested fields are covered there
        before = counts()
        response = post_shopify(shopify_tenant, corpus.dumps_loose(data), topic)
        try:
            check_answer_and_processing(response, before)
        except AssertionError as exc:
            raise AssertionError(f"{topic} {case_id}: {exc}") from exc


@HYPOTHESIS_WIDE
@given(data=st.data())
def test_hypothesis_mutated_shopify_webhooks(shopify_tenant, data):
    topic = data.draw(st.sampled_from(sorted(SHOPIFY_VALID)))
    payload = data.draw(corpus.mutated(SHOPIFY_VALID[topic]))
    before = counts()
    response = post_shopify(shopify_tenant, corpus.dumps_loose(payload), topic)
    check_answer_and_processing(response, before)


def test_hostile_shopify_topic_header_is_422(shopify_tenant):
    before = counts()
    body = json.dumps(SHOPIFY_ORDER).encode()
    for topic in ["", "orders/create\x00", "ORDERS/CREATE", "{{ x }}", "a" * 5000]:
        headers = {
            "X-Shopify-Hmac-Sha256": shopify.sign(SHOPIFY_SECRET, body),
            "X-Shopify-Webhook-Id": "w-1",
        }
        if topic:
            headers["X-Shopify-Topic"] = topic
        response = Client().post(
            f"/hooks/{shopify_tenant.slug}/shopify/",
            body,
            content_type="application/json",
            headers=headers,
        )
        assert_json_error(response, 422)
        assert counts() == before


def test_hostile_tenant_slugs_are_404(tenant):
    slugs = ["x" * 300, "alpha%00", "%00", "alpha'--", "{{ settings.SECRET_KEY }}", "%F0%9F%98%80"]
    for slug in slugs:
        for path in (f"/hooks/{slug}/", f"/hooks/{slug}/shopify/"):
            response = Client().post(path, b"{}", content_type="application/json")
            assert_json_error(response, 404)


HOSTILE_SIGNATURE_HEADERS = [
    {"webhook-id": "x" * 5000, "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id\u202e", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "١٧٦٧٢٢٥٦٠٠", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "-1", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "1e9", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "NaN", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "id", "webhook-timestamp": "1767225600", "webhook-signature": "v1," * 5000},
    {"webhook-id": "id", "webhook-timestamp": "1767225600", "webhook-signature": "v1,ÿÿÿ"},
    {"webhook-id": "id", "webhook-timestamp": "1767225600", "webhook-signature": "v1,%%%%"},
]


def test_hostile_signature_headers_are_401(tenant):
    before = counts()
    for headers in HOSTILE_SIGNATURE_HEADERS:
        response = Client().post(
            f"/hooks/{tenant.slug}/", b"{}", content_type="application/json", headers=headers
        )
        assert_json_error(response, 401)
        assert counts() == before
