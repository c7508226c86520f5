"""Hostile input to every REST API write under ``/api/v1/`` (customers create
and update, erase, orders, events single and batch, in-app inbox read) and to
the query parameters and path ids of the reads: a 4xx JSON error in the one
shape, or a success; never a 5xx, and a refused request writes nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from commerce.models import Customer
from tests.factories import CustomerFactory
from tests.hostile import corpus
from tests.hostile.conftest import (
    HYPOTHESIS,
    HYPOTHESIS_WIDE,
    assert_json_error,
    assert_no_5xx,
    counts,
)

CUSTOMER = {
    "id": "c-1",
    "email": "ann@example.com",
    "phone": "+4915112345678",
    "first_name": "Ann",
    "last_name": "Lee",
    "timezone": "Europe/Berlin",
    "locale": "de-DE",
    "preferred_channel": "email",
    "accepts_email": True,
    "accepts_sms": False,
    "updated_at": "2026-11-20T10:00:00Z",
}
ORDER = {
    "id": "1001",
    "number": "#1001",
    "status": "paid",
    "currency": "EUR",
    "placed_at": "2026-11-20T10:00:00Z",
    "customer": {"id": "c-1", "email": "ann@example.com"},
    "lines": [
        {
            "sku": "BEAN-1",
            "name": "Beans",
            "product_family": "Coffee",
            "quantity": 2,
            "unit_price": "12.50",
            "discount": "1.00",
            "price_tier": "standard",
        }
    ],
    "shipping_total": "4.90",
    "cart_id": "cart-1",
}
EVENT = {
    "id": "ev-1",
    "customer": {"id": "c-1", "email": "ann@example.com"},
    "category": "product",
    "kind": "onboarding.completed",
    "occurred_at": "2026-11-20T10:00:00Z",
    "properties": {"step": 3, "tags": ["a", "b"], "nested": {"x": 1.5}},
}
PATCH = {
    "email": "new@example.com",
    "phone": "+4915112345679",
    "first_name": "Annie",
    "timezone": "Europe/Paris",
    "accepts_sms": True,
}


@pytest.fixture
def api(tenant) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}", raise_request_exception=False)


def send(api: Client, method: str, path: str, body: bytes, content_type="application/json"):
    if method == "get":
        return api.get(path)
    # generic(): the body goes out as these bytes, whatever charset the type names.
    return api.generic(method.upper(), path, body, content_type=content_type)


def check(response, before: dict, *, refused: bool | None = None) -> None:
    """A 4xx JSON error that wrote nothing, or a 2xx."""
    assert_no_5xx(response)
    if response.status_code >= 400:
        assert_json_error(response)
        assert counts() == before, "a refused request left rows behind"
        assert refused is not False, response.content[:300]
    else:
        assert 200 <= response.status_code < 300, response.status_code
        assert refused is not True, response.content[:300]


@pytest.fixture
def customer(tenant) -> Customer:
    return CustomerFactory(tenant=tenant, email="zoe@example.com")


def targets(customer: Customer | None) -> list[tuple[str, str, dict]]:
    out = [
        ("post", "/api/v1/customers/", CUSTOMER),
        ("post", "/api/v1/orders/", ORDER),
        ("post", "/api/v1/events/", EVENT),
        ("post", "/api/v1/events/", {"events": [EVENT, {**EVENT, "id": "ev-2"}]}),
    ]
    if customer is not None:
        out.append(("patch", f"/api/v1/customers/{customer.pk}/", PATCH))
    return out


TARGET_IDS = ["customer-create", "order-create", "event", "event-batch", "customer-patch"]


# --- malformed bodies --------------------------------------------------------------------


def test_malformed_bodies_get_a_json_4xx(api, customer):
    for name, method, path in [
        (name, method, path)
        for name in corpus.MALFORMED_BODIES
        for method, path, _ in targets(customer)
    ]:
        before = counts()
        response = send(api, method, path, corpus.MALFORMED_BODIES[name])
        if method == "patch" and name == "empty":
            # No body is an update that changes nothing.
            assert response.status_code == 200, response.content[:300]
        else:
            assert_json_error(response, 400, 415, 422)
        assert counts() == before, (method, path)


WRONG_CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    "application/json; charset=bz2_codec",
]


def test_wrong_content_type_is_415(api, customer):
    for content_type, (method, path, body) in [
        (c, t) for c in WRONG_CONTENT_TYPES for t in targets(customer)
    ]:
        before = counts()
        response = send(api, method, path, json.dumps(body).encode(), content_type)
        assert_json_error(response, 400, 415)
        assert counts() == before


def test_body_over_one_mib_and_just_under_get_a_json_4xx(api, customer):
    for size in (corpus.MIB - 100, corpus.MIB + 100, 3 * corpus.MIB):
        for method, path, _ in targets(customer):
            before = counts()
            response = send(api, method, path, corpus.huge_string_body(size, key="first_name"))
            assert_json_error(response, 400, 413, 422)
            assert counts() == before


def test_a_huge_exponent_anywhere_is_refused(api, customer):
    for method, path, body in targets(customer):
        for field_path in corpus.paths(body):
            before = counts()
            text = json.dumps(corpus.replaced(body, field_path, "__HUGE__"))
            response = send(api, method, path, text.replace('"__HUGE__"', "1e400").encode())
            check(response, before, refused=True)


def test_nan_and_infinity_literals_are_refused(api, customer):
    for literal, (method, path, body) in [
        (lit, t) for lit in ("NaN", "Infinity", "-Infinity") for t in targets(customer)
    ]:
        before = counts()
        text = json.dumps(corpus.replaced(body, next(iter(corpus.paths(body))), "__X__"))
        response = send(api, method, path, text.replace('"__X__"', literal).encode())
        assert_json_error(response, 400, 422)
        assert counts() == before


def test_deep_nesting_is_refused(api, customer):
    for depth, (method, path, _) in [
        (d, t) for d in (33, 1000, 100_000) for t in targets(customer)
    ]:
        before = counts()
        body = b'{"properties": ' + corpus.deep_object(depth) + b"}"
        response = send(api, method, path, body)
        if method == "patch" and depth < 1000:
            # An unknown field of an update is ignored, however deep.
            assert response.status_code == 200
        else:
            assert_json_error(response, 400, 422)
        assert counts() == before


def test_duplicate_keys_are_read_as_the_last_value(api):
    before = counts()
    body = corpus.with_duplicate_key(CUSTOMER, "email", "first@example.com")
    response = send(api, "post", "/api/v1/customers/", body)
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "ann@example.com"
    assert counts()["commerce.Customer"] == before["commerce.Customer"] + 1


# --- each field replaced by each nasty value ---------------------------------------------------


@pytest.mark.parametrize("index", range(5), ids=TARGET_IDS)
def test_nasty_values_in_every_field(api, customer, index):
    method, path, base = targets(customer)[index]
    for case_id, data in corpus.hand_mutations(base):
        if index == 3 and not case_id.startswith("events.1"):
            continue  # the batch: the second event (the first is the single event's case)
        if index == 4:  # a PATCH that changes the contact must not collide with the last one
            customer.refresh_from_db()
        before = counts()
        response = send(api, method, path, corpus.dumps_loose(data))
        try:
            check(response, before, refused=True if corpus.unstorable(data) else None)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {case_id}: {exc}") from exc


@HYPOTHESIS_WIDE
@given(data=st.data())
def test_hypothesis_mutated_payloads(api, customer, data):
    index = data.draw(st.sampled_from(range(5)))
    method, path, base = targets(customer)[index]
    payload = data.draw(corpus.mutated(base))
    before = counts()
    response = send(api, method, path, corpus.dumps_loose(payload))
    check(response, before)


@HYPOTHESIS
@given(body=corpus.loose_json_values)
def test_hypothesis_any_json_to_every_write(api, customer, body):
    for method, path, _ in targets(customer):
        before = counts()
        check(send(api, method, path, corpus.dumps_loose(body)), before)


def test_an_event_batch_of_1000_is_taken_and_of_1001_refused(api):
    events = [{**EVENT, "id": f"ev-{i}"} for i in range(1001)]
    before = counts()
    too_many = send(api, "post", "/api/v1/events/", json.dumps({"events": events}).encode())
    assert assert_json_error(too_many, 413)["code"] == "too_many_events"
    assert counts() == before
    ok = send(api, "post", "/api/v1/events/", json.dumps({"events": events[:1000]}).encode())
    assert ok.status_code == 202, ok.content[:300]
    assert ok.json() == {"received": 1000, "created": 1000, "duplicates": 0}


def test_one_bad_event_in_a_batch_of_1000_stores_none(api):
    events = [{**EVENT, "id": f"ev-{i}"} for i in range(1000)]
    events[999] = {**EVENT, "id": "bad", "properties": {"note": "a\x00b"}}
    before = counts()
    response = send(api, "post", "/api/v1/events/", json.dumps({"events": events}).encode())
    error = assert_json_error(response, 422)
    assert list(error["fields"]["events"]) == ["999"]
    assert counts() == before


def test_events_that_are_not_a_list_of_objects_are_422(api):
    before = counts()
    for events in [None, "x", 5, {}, [], [None], [[EVENT]], ["ev"], {"0": EVENT}, [EVENT, 1]]:
        response = send(api, "post", "/api/v1/events/", json.dumps({"events": events}).encode())
        assert_json_error(response, 422)
        assert counts() == before


# --- query parameters and path ids -------------------------------------------------------------

HOSTILE_IDS = [
    "0",
    "-1",
    str(2**63),
    str(2**70),
    "1e400",
    "1.5",
    "١٢٣",
    "abc",
    "%00",
    "' OR 1=1 --",
    "{{ 1 }}",
    "x" * 300,
]


def test_hostile_path_ids_get_a_json_404_or_4xx(api, customer):
    before = counts()
    for value in HOSTILE_IDS:
        for method, path in _id_targets(value, customer):
            response = send(api, method, path, b"{}")
            assert_json_error(response, 404, 405, 422)
    assert counts() == before


def _id_targets(value: str, customer: Customer) -> list[tuple[str, str]]:
    return [
        ("get", f"/api/v1/customers/{value}/"),
        ("patch", f"/api/v1/customers/{value}/"),
        ("post", f"/api/v1/customers/{value}/erase/"),
        ("get", f"/api/v1/customers/{value}/timeline/"),
        ("get", f"/api/v1/customers/{value}/export/"),
        ("get", f"/api/v1/orders/{value}/"),
        ("get", f"/api/v1/segments/{value}/"),
        ("get", f"/api/v1/customers/{value}/segments/"),
        ("get", f"/api/v1/customers/{value}/inbox/"),
        ("post", f"/api/v1/customers/{value}/inbox/1/read/"),
        ("post", f"/api/v1/customers/{customer.pk}/inbox/{value}/read/"),
    ]


QUERY_ENDPOINTS = [
    ("/api/v1/customers/", ["email", "phone", "external_id", "source", "cursor", "page_size"]),
    ("/api/v1/orders/", ["customer", "placed_after", "placed_before", "cursor"]),
    ("/api/v1/segments/", ["kind", "status", "cursor"]),
    ("/api/v1/audit-log/", ["cursor", "action"]),
    ("/api/v1/customers/{pk}/timeline/", ["category", "kind", "cursor"]),
    ("/api/v1/customers/{pk}/inbox/", ["unread", "cursor"]),
]


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_hostile_query_parameters(api, customer, data):
    path, names = data.draw(st.sampled_from(QUERY_ENDPOINTS))
    params = data.draw(st.dictionaries(st.sampled_from(names), corpus.form_text, max_size=3))
    before = counts()
    response = api.get(path.format(pk=customer.pk), params)
    assert_no_5xx(response)
    if response.status_code >= 400:
        assert_json_error(response)
    else:
        assert response.status_code == 200
    assert counts()["commerce.Customer"] == before["commerce.Customer"]


def test_a_hostile_source_query_parameter_is_422(api, customer):
    for source, (method, path, body) in [
        (source, target)
        for source in ["UPPER", "a" * 51, "x\x00", "' OR 1=1", "{{ x }}", "é"]
        for target in targets(customer)
    ]:
        before = counts()
        response = send(api, method, f"{path}?source={source}", json.dumps(body).encode())
        assert_json_error(response, 422)
        assert counts() == before


HOSTILE_AUTHORIZATIONS = [
    "Bearer ",
    "Bearer \x00",
    "Bearer " + "x" * 10_000,
    "Bearer ' OR 1=1 --",
    "Basic Zm9vOmJhcg==",
    "Bearer \xe9",  # WSGI hands non-ASCII header bytes over as latin-1
    "bearer",
]


def test_hostile_api_keys_are_401(db):
    before = counts()
    for authorization in HOSTILE_AUTHORIZATIONS:
        client = Client(HTTP_AUTHORIZATION=authorization, raise_request_exception=False)
        response = client.post(
            "/api/v1/customers/", json.dumps(CUSTOMER), content_type="application/json"
        )
        assert_json_error(response, 401, 403)
        assert counts() == before
