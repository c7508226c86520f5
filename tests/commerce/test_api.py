"""REST API for commerce: customers, orders, events; tenancy, scopes, schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from commerce.models import (
    ChannelConsent,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    Fulfillment,
    Order,
    OrderLine,
    Touchpoint,
)
from commerce.schemas import OrderPayload
from commerce.services.customers import CustomerRef, customer_merge, customer_resolve
from commerce.services.orders import fulfillment_update, order_upsert
from commerce.services.touchpoints import touchpoint_record
from retention import clock
from retention.models import ApiKey, AuditEntry

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
NOW_S = "2026-03-02T09:30:00Z"


@pytest.fixture(autouse=True)
def _frozen(db):
    clock.set_now(NOW)


def post(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def _error(resp) -> dict:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def _counts(tenant) -> dict:
    return {
        model.__name__: model.objects.for_tenant(tenant).count()
        for model in (Customer, CustomerIdentity, ChannelConsent, Order, OrderLine, Touchpoint)
    }


ORDER = {
    "id": "1001",
    "number": "#1001",
    "placed_at": "2026-03-01T10:00:00Z",
    "currency": "eur",
    "customer": {"id": "c-1", "email": "Ann@Example.com", "first_name": "Ann"},
    "lines": [
        {"sku": "BEAN-1", "name": "Beans", "product_family": "Coffee", "unit_price": "12.50"},
        {"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "8.00", "discount": "1.00"},
    ],
    "shipping_total": "4.90",
}


def _customer(tenant, **kw):
    return customer_resolve(tenant=tenant, ref=CustomerRef(**kw))


def _order(tenant, order_id="1001", **kw):
    payload = OrderPayload(data={**ORDER, "id": order_id, **kw})
    payload.is_valid(raise_exception=True)
    return order_upsert(tenant=tenant, data=payload.validated_data, source="storefront")[0]


# --- customers ----------------------------------------------------------------


def test_create_customer_then_match_by_identity(api_client, tenant):
    resp = post(
        api_client,
        "/api/v1/customers/",
        {
            "id": "c-1",
            "email": " Ann@Example.COM ",
            "phone": "(415) 555-2671",
            "first_name": "Ann",
            "timezone": "Europe/Berlin",
            "accepts_email": True,
        },
    )
    assert resp.status_code == 201, resp.content
    customer = Customer.objects.for_tenant(tenant).get()
    assert resp.json() == {
        "id": customer.pk,
        "email": "ann@example.com",
        "phone": "+14155552671",
        "first_name": "Ann",
        "last_name": "",
        "timezone": "Europe/Berlin",
        "locale": "",
        "preferred_channel": "",
        "created_at": NOW_S,
        "updated_at": NOW_S,
        "identities": [
            {"kind": "email", "source": "", "value": "ann@example.com", "created_at": NOW_S},
            {"kind": "external", "source": "storefront", "value": "c-1", "created_at": NOW_S},
            {"kind": "phone", "source": "", "value": "+14155552671", "created_at": NOW_S},
        ],
        "consent": [
            {"channel": "email", "status": "opted_in", "source": "storefront", "at": NOW_S}
        ],
        "order_count": 0,
        "total_spent": "0.00",
        "merged_from": [],
    }

    # The same person by email only, in another case: 200, the same customer.
    again = post(api_client, "/api/v1/customers/", {"email": "ANN@example.com", "last_name": "Lee"})
    assert again.status_code == 200
    assert again.json()["id"] == customer.pk
    assert again.json()["last_name"] == "Lee"
    assert Customer.objects.for_tenant(tenant).count() == 1

    key = ApiKey.objects.for_tenant(tenant).get()
    audit = list(AuditEntry.objects.for_tenant(tenant).order_by("id"))
    assert [(a.action, a.object_id, a.actor_api_key_id) for a in audit] == [
        ("create", str(customer.pk), key.pk),
        ("update", str(customer.pk), key.pk),
    ]
    assert audit[0].changes["email"] == [None, "ann@example.com"]
    assert audit[1].changes == {"last_name": ["", "Lee"]}


def test_create_customer_unchanged_is_200_without_audit(api_client, tenant):
    body = {"id": "c-1", "email": "ann@example.com"}
    assert post(api_client, "/api/v1/customers/", body).status_code == 201
    assert post(api_client, "/api/v1/customers/", body).status_code == 200
    assert AuditEntry.objects.for_tenant(tenant).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "id"),
        ({"email": "not an email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"email": "a@example.com", "timezone": "Mars/Base"}, "timezone"),
        ({"email": "a@example.com", "preferred_channel": "pigeon"}, "preferred_channel"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_create_customer_invalid_is_422(api_client, tenant, body, field):
    resp = post(api_client, "/api/v1/customers/", body)
    assert resp.status_code == 422
    err = _error(resp)
    assert err["code"] == "invalid"
    assert field in err["fields"]
    assert Customer.objects.for_tenant(tenant).count() == 0


def test_source_query_parameter(api_client, tenant):
    resp = post(api_client, "/api/v1/customers/?source=pos-2", {"id": "77"})
    assert resp.status_code == 201
    assert resp.json()["identities"][0]["source"] == "pos-2"
    bad = post(api_client, "/api/v1/customers/?source=Bad%20Source", {"id": "77"})
    assert bad.status_code == 422
    assert "source" in _error(bad)["fields"]


def test_patch_customer(api_client, tenant):
    customer = _customer(tenant, external_id="c-1", email="ann@example.com")
    resp = patch(
        api_client,
        f"/api/v1/customers/{customer.pk}/",
        {
            "email": "ANN.LEE@example.com",
            "phone": "+49 151 12345678",
            "last_name": "Lee",
            "locale": "de-DE",
            "accepts_sms": False,
        },
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["email"] == "ann.lee@example.com"
    assert body["phone"] == "+4915112345678"
    assert (body["last_name"], body["locale"]) == ("Lee", "de-DE")
    assert body["consent"] == [
        {"channel": "sms", "status": "opted_out", "source": "storefront", "at": NOW_S}
    ]
    # The old email still leads to the customer.
    assert {i["value"] for i in body["identities"]} == {
        "c-1",
        "ann@example.com",
        "ann.lee@example.com",
        "+4915112345678",
    }
    entry = AuditEntry.objects.for_tenant(tenant).get()
    assert entry.action == "update"
    assert entry.actor_api_key == ApiKey.objects.for_tenant(tenant).get()
    assert entry.changes == {
        "consent.sms": [None, "opted_out"],
        "email": ["ann@example.com", "ann.lee@example.com"],
        "last_name": ["", "Lee"],
        "locale": ["", "de-DE"],
        "phone": ["", "+4915112345678"],
    }


def test_patch_customer_errors(api_client, tenant):
    ann = _customer(tenant, email="ann@example.com")
    _customer(tenant, email="bob@example.com")
    url = f"/api/v1/customers/{ann.pk}/"
    conflict = patch(api_client, url, {"email": "Bob@example.com"})
    assert conflict.status_code == 409
    assert _error(conflict)["code"] == "conflict"
    invalid = patch(api_client, url, {"email": "nope", "phone": "x"})
    assert invalid.status_code == 422
    assert set(_error(invalid)["fields"]) == {"email", "phone"}
    ann.refresh_from_db()
    assert ann.email == "ann@example.com"
    assert AuditEntry.objects.for_tenant(tenant).count() == 0
    assert patch(api_client, "/api/v1/customers/999999/", {"locale": "de"}).status_code == 404


def test_get_customer_with_orders_and_merge(api_client, tenant):
    _order(tenant, "1001")
    _order(tenant, "1002", total="10.00")
    _order(tenant, "1003", status="cancelled", total="99.00")
    ann = Customer.objects.for_tenant(tenant).get()
    other = _customer(tenant, email="ann.other@example.com")
    customer_merge(survivor=ann, merged=other, reason="test")

    resp = api_client.get(f"/api/v1/customers/{ann.pk}/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == ann.pk
    assert body["order_count"] == 2
    assert body["total_spent"] == "42.40"  # 12.50 + 2 x 8.00 - 1.00 + 4.90, plus 10.00
    assert body["merged_from"] == [other.pk]
    # The merged id answers with the survivor.
    assert api_client.get(f"/api/v1/customers/{other.pk}/").json() == body


# --- customer lists and lookups ---------------------------------------------------


def test_lookup_by_email_phone_and_storefront_id(api_client, tenant):
    ann = _customer(tenant, external_id="c-1", email="ann@example.com", phone="+14155552671")
    _customer(tenant, external_id="c-2", email="bob@example.com")

    def ids(query):
        resp = api_client.get("/api/v1/customers/", query)
        assert resp.status_code == 200, resp.content
        return [c["id"] for c in resp.json()["results"]]

    assert ids({"email": "ANN@Example.com"}) == [ann.pk]
    assert ids({"email": " ann@example.com "}) == [ann.pk]
    assert ids({"phone": "(415) 555-2671"}) == [ann.pk]
    assert ids({"phone": "+1 415 555 2671"}) == [ann.pk]
    assert ids({"external_id": "c-1"}) == [ann.pk]
    assert ids({"external_id": "c-1", "source": "storefront"}) == [ann.pk]
    assert ids({"external_id": "c-1", "source": "shopify"}) == []
    assert ids({"email": "ann@example.com", "external_id": "c-2"}) == []
    assert ids({"email": "nobody@example.com"}) == []

    bad = api_client.get("/api/v1/customers/", {"email": "not-an-email"})
    assert bad.status_code == 422
    assert "email" in _error(bad)["fields"]


def test_customer_list_cursor_walks_every_row_once(api_client, tenant):
    made = [_customer(tenant, email=f"c{i}@example.com").pk for i in range(7)]
    merged = _customer(tenant, email="gone@example.com")
    customer_merge(
        survivor=Customer.objects.for_tenant(tenant).get(pk=made[0]), merged=merged, reason="t"
    )
    seen, url, pages = [], "/api/v1/customers/?limit=3", 0
    while url:
        resp = api_client.get(url)
        assert resp.status_code == 200
        seen += [c["id"] for c in resp.json()["results"]]
        url = resp.json()["next"]
        pages += 1
    assert seen == sorted(made, reverse=True)  # newest first, each once, no tombstones
    assert pages == 3


# --- timeline -------------------------------------------------------------------


def test_timeline_newest_first_with_filters_and_pages(api_client, tenant):
    ann = _customer(tenant, email="ann@example.com")
    for days, category, kind in [
        (3, "product", "onboarding.completed"),
        (1, "marketing", "message.opened"),
        (2, "support", "ticket.opened"),
        (0, "marketing", "message.clicked"),
    ]:
        touchpoint_record(
            tenant=tenant,
            customer=ann,
            category=category,
            kind=kind,
            source="storefront",
            occurred_at=NOW - timedelta(days=days),
        )
    url = f"/api/v1/customers/{ann.pk}/timeline/"
    body = api_client.get(url).json()
    assert [t["kind"] for t in body["results"]] == [
        "message.clicked",
        "message.opened",
        "ticket.opened",
        "onboarding.completed",
    ]
    assert set(body["results"][0]) == {
        "id",
        "category",
        "kind",
        "source",
        "occurred_at",
        "properties",
        "external_id",
        "created_at",
    }
    marketing = api_client.get(url, {"category": "marketing"}).json()["results"]
    assert [t["kind"] for t in marketing] == ["message.clicked", "message.opened"]
    assert [
        t["kind"] for t in api_client.get(url, {"kind": "ticket.opened"}).json()["results"]
    ] == ["ticket.opened"]
    assert api_client.get(url, {"category": "nonsense"}).status_code == 422

    seen, next_url = [], f"{url}?limit=3"
    while next_url:
        page = api_client.get(next_url).json()
        seen += [t["kind"] for t in page["results"]]
        next_url = page["next"]
    assert seen == [t["kind"] for t in body["results"]]


# --- orders ---------------------------------------------------------------------


def test_create_order_then_same_again(api_client, tenant):
    resp = post(api_client, "/api/v1/orders/", ORDER)
    assert resp.status_code == 201, resp.content
    order = Order.objects.for_tenant(tenant).get()
    body = resp.json()
    lines = body.pop("lines")
    assert body == {
        "id": order.pk,
        "external_id": "1001",
        "source": "storefront",
        "number": "#1001",
        "status": "paid",
        "customer": order.customer_id,
        "currency": "EUR",
        "subtotal": "27.50",
        "discount_total": "0.00",
        "shipping_total": "4.90",
        "tax_total": "0.00",
        "fee_total": "0.00",
        "total": "32.40",
        "placed_at": "2026-03-01T10:00:00Z",
        "cancelled_at": None,
        "created_at": NOW_S,
        "updated_at": NOW_S,
        "fulfillments": [],
    }
    assert [{k: v for k, v in line.items() if k != "id"} for line in lines] == [
        {
            "sku": "BEAN-1",
            "name": "Beans",
            "family": "coffee",
            "quantity": 1,
            "unit_price": "12.50",
            "discount": "0.00",
            "total": "12.50",
            "price_tier": "standard",
        },
        {
            "sku": "MUG",
            "name": "Mug",
            "family": None,
            "quantity": 2,
            "unit_price": "8.00",
            "discount": "1.00",
            "total": "15.00",
            "price_tier": "standard",
        },
    ]
    before = _counts(tenant)
    again = post(api_client, "/api/v1/orders/", ORDER)
    assert again.status_code == 200
    assert again.json()["id"] == order.pk
    assert _counts(tenant) == before
    # Orders are data, not configuration: no audit rows.
    assert AuditEntry.objects.for_tenant(tenant).count() == 0


def test_order_from_another_source_is_another_order(api_client, tenant):
    assert post(api_client, "/api/v1/orders/", ORDER).status_code == 201
    resp = post(api_client, "/api/v1/orders/?source=pos", ORDER)
    assert resp.status_code == 201
    assert resp.json()["source"] == "pos"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"placed_at": "yesterday"}, "placed_at"),
        ({"customer": {}}, "customer"),
        ({"lines": [{"quantity": 0}]}, "lines"),
        ({"currency": "EURO"}, "currency"),
        ({"lines": [{"unit_price": "999999999999.99", "quantity": 1000}]}, "lines"),
        ({"total": None, "shipping_total": "999999999999.99", "tax_total": "1"}, "shipping_total"),
        ({"placed_at": "0001-01-01T00:00:00Z"}, "placed_at"),
        ({"customer": {"email": "x@"}}, "customer"),
    ],
)
def test_create_order_invalid_is_422_and_stores_nothing(api_client, tenant, change, field):
    resp = post(api_client, "/api/v1/orders/", {**ORDER, **change})
    assert resp.status_code == 422, resp.content
    assert field in _error(resp)["fields"]
    assert set(_counts(tenant).values()) == {0}


def test_long_order_id_without_number(api_client, tenant):
    resp = post(api_client, "/api/v1/orders/", {**ORDER, "id": "x" * 100, "number": ""})
    assert resp.status_code == 201
    assert resp.json()["number"] == "x" * 50


def test_get_order_with_lines_and_fulfilments(api_client, tenant):
    order = _order(tenant)
    fulfillment_update(
        tenant=tenant,
        data={
            "id": "f-1",
            "order_id": "1001",
            "status": "shipped",
            "occurred_at": NOW - timedelta(hours=5),
            "carrier": "DHL",
            "estimated_delivery": {"start": NOW, "end": NOW + timedelta(days=1)},
        },
        source="storefront",
    )
    fulfillment_update(
        tenant=tenant,
        data={"id": "f-1", "order_id": "1001", "status": "delivered", "occurred_at": NOW},
        source="storefront",
    )
    resp = api_client.get(f"/api/v1/orders/{order.pk}/")
    assert resp.status_code == 200
    body = resp.json()
    assert [line["sku"] for line in body["lines"]] == ["BEAN-1", "MUG"]
    fulfillment = Fulfillment.objects.for_tenant(tenant).get()
    assert body["fulfillments"] == [
        {
            "id": fulfillment.pk,
            "external_id": "f-1",
            "status": "delivered",
            "carrier": "DHL",
            "tracking_number": "",
            "tracking_url": "",
            "estimated_delivery_start": NOW_S,
            "estimated_delivery_end": "2026-03-03T09:30:00Z",
            "shipped_at": "2026-03-02T04:30:00Z",
            "delivered_at": NOW_S,
            "updated_at": NOW_S,
            "events": [
                {"status": "shipped", "at": "2026-03-02T04:30:00Z", "message": ""},
                {"status": "delivered", "at": NOW_S, "message": ""},
            ],
        }
    ]
    assert DeliveryEvent.objects.for_tenant(tenant).count() == 2


def test_get_order_query_count(api_client, tenant, django_assert_max_num_queries):
    order = _order(tenant)
    with django_assert_max_num_queries(8):  # auth (2) + order, lines, fulfilments, events
        assert api_client.get(f"/api/v1/orders/{order.pk}/").status_code == 200


def test_order_list_filters_and_pages(api_client, tenant):
    a = [_order(tenant, f"a{i}", placed_at=(NOW - timedelta(days=i)).isoformat()) for i in range(5)]
    b = _order(
        tenant,
        "b1",
        placed_at=(NOW - timedelta(days=10)).isoformat(),
        customer={"email": "bob@example.com"},
    )

    def ids(query):
        resp = api_client.get("/api/v1/orders/", query)
        assert resp.status_code == 200, resp.content
        return [o["id"] for o in resp.json()["results"]]

    assert ids({}) == [o.pk for o in a] + [b.pk]
    assert ids({"customer": b.customer_id}) == [b.pk]
    assert ids({"placed_after": "2026-02-28T09:30:00Z"}) == [o.pk for o in a[:3]]
    assert ids({"placed_before": "2026-02-28T09:30:00Z"}) == [o.pk for o in a[3:]] + [b.pk]
    assert ids({"customer": 99999999}) == []
    assert api_client.get("/api/v1/orders/", {"placed_after": "soon"}).status_code == 422
    assert api_client.get("/api/v1/orders/", {"customer": "x"}).status_code == 422

    seen, url = [], "/api/v1/orders/?limit=4"
    while url:
        page = api_client.get(url).json()
        seen += [o["id"] for o in page["results"]]
        url = page["next"]
    assert seen == [o.pk for o in a] + [b.pk]


# --- events ---------------------------------------------------------------------


def _event(i, **kw):
    return {
        "id": f"e-{i}",
        "customer": {"email": "ann@example.com"},
        "category": "product",
        "kind": "feature.activated",
        "occurred_at": "2026-03-01T08:00:00Z",
        "properties": {"feature": f"f{i}"},
        **kw,
    }


def test_single_event(api_client, tenant):
    resp = post(api_client, "/api/v1/events/", _event(1))
    assert resp.status_code == 202
    assert resp.json() == {"received": 1, "created": 1, "duplicates": 0}
    touchpoint = Touchpoint.objects.for_tenant(tenant).get()
    assert (touchpoint.kind, touchpoint.external_id, touchpoint.source) == (
        "feature.activated",
        "e-1",
        "storefront",
    )
    assert touchpoint.customer.email == "ann@example.com"
    again = post(api_client, "/api/v1/events/", _event(1))
    assert again.json() == {"received": 1, "created": 0, "duplicates": 1}
    assert AuditEntry.objects.for_tenant(tenant).count() == 0


def test_event_batch_counts_duplicates(api_client, tenant):
    post(api_client, "/api/v1/events/", _event(0))
    events = [_event(i) for i in range(5)] + [_event(4), _event(9, id="")]
    resp = post(api_client, "/api/v1/events/", {"events": events})
    assert resp.status_code == 202
    assert resp.json() == {"received": 7, "created": 5, "duplicates": 2}
    assert Touchpoint.objects.for_tenant(tenant).count() == 6
    assert Customer.objects.for_tenant(tenant).count() == 1


def test_event_batch_with_one_invalid_item_stores_nothing(api_client, tenant):
    events = [_event(i) for i in range(5)]
    events[1] = _event(1, customer={"email": "ben@example.com"})
    events[3] = _event(3, kind="Not A Kind")
    events[4] = _event(4, customer={"phone": "nope"})
    resp = post(api_client, "/api/v1/events/", {"events": events})
    assert resp.status_code == 422
    err = _error(resp)
    assert set(err["fields"]["events"]) == {"3", "4"}
    assert "kind" in err["fields"]["events"]["3"]
    assert "customer" in err["fields"]["events"]["4"]
    assert set(_counts(tenant).values()) == {0}


@pytest.mark.parametrize(
    "body",
    [
        {"events": "nope"},
        {"events": []},
        {"events": [1]},
        [_event(1)],
        _event(1, properties={"a": "nul\u0000"}),
        _event(1, occurred_at="0001-01-01T00:00:00Z"),
    ],
)
def test_bad_event_bodies_are_422(api_client, tenant, body):
    resp = post(api_client, "/api/v1/events/", body)
    assert resp.status_code == 422, resp.content
    assert _error(resp)["code"] == "invalid"
    assert set(_counts(tenant).values()) == {0}


def test_1001_events_are_refused(api_client, tenant):
    resp = post(api_client, "/api/v1/events/", {"events": [_event(i) for i in range(1001)]})
    assert resp.status_code == 413
    err = _error(resp)
    assert err["code"] == "too_many_events"
    assert "1000" in err["message"]
    assert Touchpoint.objects.for_tenant(tenant).count() == 0


def test_1000_events_are_accepted(api_client, tenant):
    resp = post(api_client, "/api/v1/events/", {"events": [_event(i) for i in range(1000)]})
    assert resp.status_code == 202
    assert resp.json() == {"received": 1000, "created": 1000, "duplicates": 0}


def test_malformed_json_is_400(api_client):
    resp = api_client.post("/api/v1/events/", "{not json", content_type="application/json")
    assert resp.status_code == 400
    assert _error(resp)["code"] == "malformed"
    deep = api_client.post("/api/v1/events/", "[" * 100_000, content_type="application/json")
    assert deep.status_code == 400


# --- tenancy, keys and scopes ----------------------------------------------------------


def test_other_tenants_ids_are_404(api_client, tenant, other_tenant):
    theirs = _order(other_tenant, "B-1", customer={"email": "bravo-marker@example.com"})
    touchpoint_record(
        tenant=other_tenant,
        customer=theirs.customer,
        category="support",
        kind="ticket.opened",
        source="storefront",
        properties={"note": "Bravo marker"},
    )
    for url in [
        f"/api/v1/customers/{theirs.customer_id}/",
        f"/api/v1/customers/{theirs.customer_id}/timeline/",
        f"/api/v1/orders/{theirs.pk}/",
        "/api/v1/orders/99999999/",
        "/api/v1/customers/99999999999999999999999/",
    ]:
        resp = api_client.get(url)
        assert resp.status_code == 404, url
        assert _error(resp)["code"] == "not_found"
        assert "bravo" not in resp.content.decode().lower()
    resp = patch(api_client, f"/api/v1/customers/{theirs.customer_id}/", {"first_name": "X"})
    assert resp.status_code == 404
    assert "bravo" not in resp.content.decode().lower()
    listed = api_client.get("/api/v1/customers/", {"email": "bravo-marker@example.com"})
    assert listed.json()["results"] == []
    assert api_client.get("/api/v1/orders/").json()["results"] == []
    assert (
        api_client.get("/api/v1/orders/", {"customer": theirs.customer_id}).json()["results"] == []
    )
    # Writing the same ids in tenant A makes A's own rows, never touches B's.
    assert post(api_client, "/api/v1/orders/", {**ORDER, "id": "B-1"}).status_code == 201
    theirs.refresh_from_db()
    assert theirs.tenant_id == other_tenant.pk
    assert Order.objects.for_tenant(other_tenant).count() == 1


def test_read_only_key_cannot_post(db, tenant, read_only_key):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {read_only_key}")
    assert client.get("/api/v1/customers/").status_code == 200
    for url, body in [
        ("/api/v1/customers/", {"email": "a@example.com"}),
        ("/api/v1/orders/", ORDER),
        ("/api/v1/events/", _event(1)),
    ]:
        resp = post(client, url, body)
        assert resp.status_code == 403
        assert _error(resp)["code"] == "forbidden"
    assert set(_counts(tenant).values()) == {0}


@pytest.mark.parametrize(
    "url", ["/api/v1/customers/", "/api/v1/orders/", "/api/v1/customers/1/timeline/"]
)
def test_missing_key_is_401(db, url):
    resp = Client().get(url)
    assert resp.status_code == 401
    assert _error(resp)["code"] == "unauthorized"
    assert post(Client(), "/api/v1/events/", _event(1)).status_code == 401


# --- hostile input ----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
customer_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(max_size=120),
        "email": json_values | st.emails(),
        "phone": json_values | st.from_regex(r"\+?[0-9 ()-]{0,20}", fullmatch=True),
        "timezone": json_values | st.sampled_from(["UTC", "Europe/Berlin"]),
        "preferred_channel": json_values | st.sampled_from(["email", "sms"]),
        "accepts_email": json_values,
        "updated_at": json_values | st.datetimes(timezones=st.just(UTC)).map(str),
    },
)
money = (
    json_values
    | st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)
    | st.integers(min_value=0, max_value=10**16)
)
order_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(min_size=1, max_size=120),
        "placed_at": json_values
        | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        "customer": customer_like | json_values,
        "lines": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "sku": json_values | st.text(max_size=5),
                    "quantity": json_values | st.integers(),
                    "unit_price": money,
                    "discount": money,
                    "total": money,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "total": money,
        "shipping_total": money,
        "number": json_values,
        "currency": json_values | st.sampled_from(["EUR", "usd"]),
    },
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "customer": customer_like | json_values,
        "category": json_values | st.sampled_from(["product", "support"]),
        "kind": json_values | st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,5})?", fullmatch=True),
        "occurred_at": json_values | st.datetimes(timezones=st.just(UTC)).map(str),
        "properties": json_values,
    },
)
VALID_BODIES = {
    "/api/v1/customers/": {"id": "c-9", "email": "zoe@example.com", "accepts_sms": True},
    "/api/v1/orders/": ORDER,
    "/api/v1/events/": {
        "id": "e-9",
        "customer": {"email": "zoe@example.com"},
        "category": "support",
        "kind": "ticket.opened",
        "properties": {"a": 1},
    },
}


@st.composite
def mutated_valid_body(draw):
    """A valid body with one field (or one nested customer field) replaced."""
    url = draw(st.sampled_from(sorted(VALID_BODIES)))
    body = json.loads(json.dumps(VALID_BODIES[url]))
    value = draw(json_values | money)
    if "customer" in body and draw(st.booleans()):
        body["customer"][draw(st.sampled_from(sorted(CUSTOMER_KEYS)))] = value
    else:
        body[draw(st.sampled_from(sorted({*body, "total", "lines", "placed_at"})))] = value
    if url.endswith("events/") and draw(st.booleans()):
        body = {"events": [body, VALID_BODIES[url]]}
    return url, body


CUSTOMER_KEYS = {"id", "email", "phone", "timezone", "accepts_email", "updated_at", "locale"}
hostile_posts = st.one_of(
    mutated_valid_body(),
    st.tuples(st.just("/api/v1/customers/"), customer_like | json_values),
    st.tuples(st.just("/api/v1/orders/"), order_like | json_values),
    st.tuples(
        st.just("/api/v1/events/"),
        event_like
        | json_values
        | st.fixed_dictionaries({"events": st.lists(event_like, max_size=3)}),
    ),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile_posts)
def test_hostile_posts_never_5xx_and_store_nothing_on_4xx(api_client, tenant, case):
    url, body = case
    before = _counts(tenant)
    resp = post(api_client, url, body)
    event(f"{url} {resp.status_code}")
    assert resp.status_code < 500, (resp.status_code, resp.content)
    if resp.status_code >= 400:
        _error(resp)
        assert _counts(tenant) == before


# --- the schema -----------------------------------------------------------------


def test_schema_lists_every_commerce_path_with_error_responses(db):
    resp = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    expected = {
        "/api/v1/customers/": {"get", "post"},
        "/api/v1/customers/{id}/": {"get", "patch"},
        "/api/v1/customers/{id}/timeline/": {"get"},
        "/api/v1/orders/": {"get", "post"},
        "/api/v1/orders/{id}/": {"get"},
        "/api/v1/events/": {"post"},
    }
    for path, methods in expected.items():
        ops = {m: op for m, op in paths[path].items() if m in {"get", "post", "patch", "put"}}
        assert set(ops) == methods, path
        codes = set()
        for method, op in ops.items():
            assert {"401", "403", "404"} <= set(op["responses"]), (path, method)
            codes |= set(op["responses"])
            if method != "get":
                assert "requestBody" in op
                assert {"400", "422"} <= set(op["responses"])
        assert "422" in codes or path == "/api/v1/orders/{id}/", path
    assert "413" in paths["/api/v1/events/"]["post"]["responses"]
    assert {"200", "201"} <= set(paths["/api/v1/orders/"]["post"]["responses"])
    assert {"200", "201"} <= set(paths["/api/v1/customers/"]["post"]["responses"])
    assert "202" in paths["/api/v1/events/"]["post"]["responses"]


def test_customer_list_query_count_does_not_grow(api_client, tenant, django_assert_max_num_queries):
    for i in range(20):
        _order(tenant, f"q{i}", customer={"id": f"c{i}", "email": f"c{i}@example.com"})
    # auth (2), customers, identities, consents, order stats, merged ids
    with django_assert_max_num_queries(8):
        resp = api_client.get("/api/v1/customers/")
    assert len(resp.json()["results"]) == 20
    assert {c["order_count"] for c in resp.json()["results"]} == {1}
