"""REST API for segments: the list, one segment with counts, its members, and a
customer's RFM, segments and history; auth, scopes, tenancy and the schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from commerce.models import Customer
from commerce.services.customers import customer_merge
from retention import clock
from segments import selectors
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    SegmentTransition,
    Tier,
    TransitionKind,
)
from segments.services.setup import tier_segments
from tests.factories import CustomerFactory, ProductFamilyFactory

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen(db):
    clock.set_now(NOW)


def _error(resp) -> dict:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def _rfm(customer: Customer, tier: str = Tier.ONE_TIME, **kw) -> CustomerRFM:
    fields = {
        "first_order_at": NOW - timedelta(days=100),
        "last_order_at": NOW - timedelta(days=10),
        "orders_total": 1,
        "frequency": 1,
        "monetary": Decimal("50.00"),
        "r_score": 3,
        "f_score": 1,
        "m_score": 2,
        "computed_at": NOW - timedelta(hours=1),
        **kw,
    }
    return CustomerRFM.objects.create(
        tenant_id=customer.tenant_id, customer=customer, tier=tier, **fields
    )


def _rule(tenant, slug: str = "coffee-lovers", **kw) -> Segment:
    return Segment.objects.create(
        tenant=tenant,
        name=kw.pop("name", slug.replace("-", " ").title()),
        slug=slug,
        kind=SegmentKind.RULE,
        conditions=kw.pop("conditions", [{"field": "orders", "op": "gte", "value": 2}]),
        **kw,
    )


def _join(segment: Segment, customer: Customer, since: datetime) -> SegmentMembership:
    return SegmentMembership.objects.create(
        tenant_id=segment.tenant_id, segment=segment, customer=customer, since=since
    )


def _move(segment: Segment, customer: Customer, kind: str, at: datetime, cause: str = "order"):
    return SegmentTransition.objects.create(
        tenant_id=segment.tenant_id,
        segment=segment,
        customer=customer,
        kind=kind,
        at=at,
        cause=cause,
    )


def _all_pages(client: Client, url: str) -> list[dict]:
    results, pages = [], 0
    while url:
        resp = client.get(url)
        assert resp.status_code == 200, resp.content
        body = resp.json()
        assert set(body) == {"next", "previous", "results"}
        results += body["results"]
        url = body["next"]
        pages += 1
    return results


@pytest.fixture
def tiers(tenant) -> dict[str, Segment]:
    return tier_segments(tenant)


@pytest.fixture
def other_tiers(other_tenant) -> dict[str, Segment]:
    return tier_segments(other_tenant)


# --- the list ----------------------------------------------------------------------


def test_every_tenant_starts_with_three_tier_segments(api_client, tiers):
    resp = api_client.get("/api/v1/segments/")
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [(s["kind"], s["tier"], s["slug"]) for s in results] == [
        ("tier", "high_value_repeat", "high-value-repeat"),
        ("tier", "mid_value_repeat", "mid-value-repeat"),
        ("tier", "one_time", "one-time"),
    ]


def test_list_shows_tiers_and_rule_segments_with_their_fields(api_client, tenant, tiers):
    rule = _rule(tenant, match="any")
    Segment.objects.for_tenant(tenant).filter(pk=rule.pk).update(member_count=7, counted_at=NOW)
    resp = api_client.get("/api/v1/segments/")
    by_slug = {s["slug"]: s for s in resp.json()["results"]}
    assert by_slug["coffee-lovers"] == {
        "id": rule.pk,
        "name": "Coffee Lovers",
        "slug": "coffee-lovers",
        "kind": "rule",
        "tier": None,
        "match": "any",
        "conditions": [{"field": "orders", "op": "gte", "value": 2}],
        "status": "active",
        "member_count": 7,
        "counted_at": "2026-03-02T09:30:00Z",
    }
    one_time = by_slug["one-time"]
    assert one_time["id"] == tiers[Tier.ONE_TIME].pk
    assert (one_time["kind"], one_time["tier"], one_time["conditions"]) == ("tier", "one_time", [])
    assert one_time["counted_at"] is None


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("tier", {"high-value-repeat", "mid-value-repeat", "one-time"}),
        ("rule", {"coffee-lovers", "lapsed"}),
    ],
)
def test_list_filters_by_kind(api_client, tenant, tiers, kind, expected):
    _rule(tenant)
    _rule(tenant, "lapsed", status=SegmentStatus.ARCHIVED)
    resp = api_client.get("/api/v1/segments/", {"kind": kind})
    assert resp.status_code == 200
    assert {s["slug"] for s in resp.json()["results"]} == expected


def test_unknown_kind_filter_is_422(api_client, tiers):
    resp = api_client.get("/api/v1/segments/", {"kind": "vip"})
    assert resp.status_code == 422
    error = _error(resp)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"kind"}


def test_list_pages_with_a_cursor(api_client, tenant, tiers):
    rules = [_rule(tenant, f"rule-{i}") for i in range(4)]
    first = api_client.get("/api/v1/segments/", {"limit": 3}).json()
    assert len(first["results"]) == 3
    assert first["next"] is not None
    assert "cursor=" in first["next"]
    seen = _all_pages(api_client, "/api/v1/segments/?limit=3")
    assert [s["id"] for s in seen] == sorted(
        [*(s.pk for s in tiers.values()), *(r.pk for r in rules)]
    )


def test_list_never_shows_another_tenants_segments(api_client, tenant, other_tenant, tiers):
    _rule(other_tenant, "theirs")
    other_ids = set(Segment.objects.for_tenant(other_tenant).values_list("pk", flat=True))
    assert len(other_ids) == 4
    listed = {s["id"] for s in _all_pages(api_client, "/api/v1/segments/?limit=2")}
    assert listed == {s.pk for s in tiers.values()}
    assert not listed & other_ids


# --- one segment ---------------------------------------------------------------------


def test_segment_detail_counts_members_and_recent_moves(api_client, tenant, tiers):
    one_time = tiers[Tier.ONE_TIME]
    ann, bob, cat = CustomerFactory.create_batch(3, tenant=tenant)
    for customer in (ann, bob):
        _rfm(customer, Tier.ONE_TIME)
    _rfm(cat, Tier.HIGH_VALUE_REPEAT)
    _move(one_time, ann, TransitionKind.ENTERED, NOW - timedelta(days=2))
    _move(one_time, bob, TransitionKind.ENTERED, NOW - timedelta(days=7))  # exactly 7 days: out
    _move(one_time, cat, TransitionKind.ENTERED, NOW - timedelta(days=20))
    _move(one_time, cat, TransitionKind.LEFT, NOW - timedelta(days=1), cause="recompute")
    _move(one_time, cat, TransitionKind.LEFT, NOW - timedelta(days=31))  # too old
    _move(one_time, ann, TransitionKind.LEFT, NOW + timedelta(minutes=1))  # not yet
    _move(tiers[Tier.HIGH_VALUE_REPEAT], cat, TransitionKind.ENTERED, NOW - timedelta(days=1))

    resp = api_client.get(f"/api/v1/segments/{one_time.pk}/")

    assert resp.status_code == 200
    body = resp.json()
    assert body["counts"] == {
        "members": 2,
        "entered_7d": 1,
        "left_7d": 1,
        "entered_30d": 3,
        "left_30d": 1,
    }
    assert body["id"] == one_time.pk
    assert body["kind"] == "tier"
    assert body["tier"] == "one_time"
    assert body["description"] == one_time.description
    assert set(body) == {
        "id",
        "name",
        "slug",
        "kind",
        "tier",
        "match",
        "conditions",
        "status",
        "member_count",
        "counted_at",
        "description",
        "created_at",
        "updated_at",
        "counts",
    }


def test_rule_segment_counts_its_memberships(api_client, tenant, tiers):
    rule = _rule(tenant)
    other_rule = _rule(tenant, "other")
    ann, bob, cat = CustomerFactory.create_batch(3, tenant=tenant)
    _join(rule, ann, NOW - timedelta(days=3))
    _join(rule, bob, NOW - timedelta(days=40))
    _join(other_rule, cat, NOW)
    _move(rule, ann, TransitionKind.ENTERED, NOW - timedelta(days=3))
    _move(rule, cat, TransitionKind.LEFT, NOW - timedelta(days=12))
    counts = api_client.get(f"/api/v1/segments/{rule.pk}/").json()["counts"]
    assert counts == {
        "members": 2,
        "entered_7d": 1,
        "left_7d": 0,
        "entered_30d": 1,
        "left_30d": 1,
    }


def test_another_tenants_segment_is_404_like_a_missing_one(api_client, other_tiers):
    theirs = other_tiers[Tier.ONE_TIME]
    for url in (
        f"/api/v1/segments/{theirs.pk}/",
        f"/api/v1/segments/{theirs.pk}/members/",
        "/api/v1/segments/999999999/",
        "/api/v1/segments/999999999/members/",
        "/api/v1/segments/99999999999999999999999/",
        "/api/v1/segments/99999999999999999999999/members/",
    ):
        resp = api_client.get(url)
        assert resp.status_code == 404, url
        assert _error(resp)["code"] == "not_found"


# --- members -----------------------------------------------------------------------


def test_tier_members_are_the_rfm_rows_of_that_tier_with_their_entry_time(
    api_client, tenant, tiers
):
    one_time = tiers[Tier.ONE_TIME]
    ann = CustomerFactory(tenant=tenant, email="ann@example.com", first_name="Ann", last_name="Lee")
    bob = CustomerFactory(tenant=tenant, email="", phone="+4915112345678")
    vip = CustomerFactory(tenant=tenant)
    CustomerFactory(tenant=tenant)  # no counted order: in no tier
    _rfm(ann, Tier.ONE_TIME)
    _rfm(bob, Tier.ONE_TIME)
    _rfm(vip, Tier.HIGH_VALUE_REPEAT)
    _move(one_time, ann, TransitionKind.ENTERED, NOW - timedelta(days=30))
    _move(one_time, ann, TransitionKind.LEFT, NOW - timedelta(days=20))
    _move(one_time, ann, TransitionKind.ENTERED, NOW - timedelta(days=5))
    _move(tiers[Tier.MID_VALUE_REPEAT], ann, TransitionKind.ENTERED, NOW - timedelta(days=1))

    resp = api_client.get(f"/api/v1/segments/{one_time.pk}/members/")

    assert resp.status_code == 200
    assert resp.json()["results"] == [
        {
            "id": bob.pk,
            "email": "",
            "phone": "+4915112345678",
            "first_name": "",
            "last_name": "",
            "since": None,
        },
        {
            "id": ann.pk,
            "email": "ann@example.com",
            "phone": "",
            "first_name": "Ann",
            "last_name": "Lee",
            "since": "2026-02-25T09:30:00Z",
        },
    ]


def test_rule_members_are_the_memberships_with_their_since(api_client, tenant, tiers):
    rule = _rule(tenant)
    ann, bob, cat = CustomerFactory.create_batch(3, tenant=tenant)
    _join(rule, ann, NOW - timedelta(days=3))
    _join(rule, cat, NOW - timedelta(hours=2))
    _join(_rule(tenant, "other"), bob, NOW)
    results = api_client.get(f"/api/v1/segments/{rule.pk}/members/").json()["results"]
    assert [(m["id"], m["since"]) for m in results] == [
        (cat.pk, "2026-03-02T07:30:00Z"),
        (ann.pk, "2026-02-27T09:30:00Z"),
    ]


@pytest.mark.parametrize("kind", ["tier", "rule"])
def test_members_page_by_customer_id_without_counting(api_client, tenant, tiers, kind):
    segment = tiers[Tier.MID_VALUE_REPEAT] if kind == "tier" else _rule(tenant)
    customers = CustomerFactory.create_batch(7, tenant=tenant)
    for customer in customers:
        if kind == "tier":
            _rfm(customer, Tier.MID_VALUE_REPEAT)
        else:
            _join(segment, customer, NOW)
    url = f"/api/v1/segments/{segment.pk}/members/?limit=3"

    with CaptureQueriesContext(connection) as queries:
        first = api_client.get(url).json()
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert len(first["results"]) == 3

    members = _all_pages(api_client, url)
    assert [m["id"] for m in members] == sorted((c.pk for c in customers), reverse=True)


@pytest.mark.parametrize("kind", ["tier", "rule"])
def test_members_query_count_does_not_grow_with_the_page(
    api_client, tenant, tiers, kind, django_assert_max_num_queries
):
    segment = tiers[Tier.ONE_TIME] if kind == "tier" else _rule(tenant)
    for customer in CustomerFactory.create_batch(25, tenant=tenant):
        if kind == "tier":
            _rfm(customer)
            _move(segment, customer, TransitionKind.ENTERED, NOW)
        else:
            _join(segment, customer, NOW)
    # auth (2), the segment, the page of rows, the customers, (a tier) their entry times
    with django_assert_max_num_queries(6):
        resp = api_client.get(f"/api/v1/segments/{segment.pk}/members/")
    assert len(resp.json()["results"]) == 25
    assert {m["since"] for m in resp.json()["results"]} == {"2026-03-02T09:30:00Z"}


def test_members_never_include_another_tenants_customers(
    api_client, tenant, other_tenant, tiers, other_tiers
):
    mine = CustomerFactory(tenant=tenant)
    theirs = CustomerFactory(tenant=other_tenant)
    _rfm(mine, Tier.ONE_TIME)
    _rfm(theirs, Tier.ONE_TIME)
    _move(other_tiers[Tier.ONE_TIME], theirs, TransitionKind.ENTERED, NOW)
    members = _all_pages(api_client, f"/api/v1/segments/{tiers[Tier.ONE_TIME].pk}/members/")
    assert [m["id"] for m in members] == [mine.pk]
    counts = api_client.get(f"/api/v1/segments/{tiers[Tier.ONE_TIME].pk}/").json()["counts"]
    assert counts["members"] == 1
    assert counts["entered_7d"] == 0


def test_segment_members_selector_gives_customers_of_a_tier_or_rule(tenant, other_tenant, tiers):
    ann, bob, cat = CustomerFactory.create_batch(3, tenant=tenant)
    theirs = CustomerFactory(tenant=other_tenant)
    _rfm(ann, Tier.ONE_TIME)
    _rfm(bob, Tier.MID_VALUE_REPEAT)
    _rfm(theirs, Tier.ONE_TIME)
    rule = _rule(tenant)
    _join(rule, bob, NOW)
    _join(rule, cat, NOW)
    assert set(selectors.segment_members(tiers[Tier.ONE_TIME])) == {ann}
    assert set(selectors.segment_members(tiers[Tier.HIGH_VALUE_REPEAT])) == set()
    assert set(selectors.segment_members(rule)) == {bob, cat}


# --- one customer ------------------------------------------------------------------


def test_customer_segments_show_rfm_segments_and_history(api_client, tenant, tiers):
    coffee = ProductFamilyFactory(tenant=tenant, name="Coffee", slug="coffee")
    tea = ProductFamilyFactory(tenant=tenant, name="Tea", slug="tea")
    ann = CustomerFactory(tenant=tenant)
    _rfm(
        ann,
        Tier.HIGH_VALUE_REPEAT,
        first_order_at=NOW - timedelta(days=200),
        last_order_at=NOW - timedelta(days=12, hours=23),
        orders_total=6,
        frequency=4,
        monetary=Decimal("412.50"),
        r_score=4,
        f_score=5,
        m_score=5,
        top_families=[tea.pk, 999999, coffee.pk],
        price_tier="premium",
    )
    rule = _rule(tenant, "coffee-lovers", name="Coffee lovers")
    archived = _rule(tenant, "archived", name="Archived one", status=SegmentStatus.ARCHIVED)
    _join(rule, ann, NOW - timedelta(days=4))
    _join(archived, ann, NOW - timedelta(days=50))
    high = tiers[Tier.HIGH_VALUE_REPEAT]
    _move(tiers[Tier.ONE_TIME], ann, TransitionKind.ENTERED, NOW - timedelta(days=200))
    _move(tiers[Tier.ONE_TIME], ann, TransitionKind.LEFT, NOW - timedelta(days=30))
    _move(high, ann, TransitionKind.ENTERED, NOW - timedelta(days=30), cause="recompute")
    _move(rule, ann, TransitionKind.ENTERED, NOW - timedelta(days=4), cause="refresh")

    resp = api_client.get(f"/api/v1/customers/{ann.pk}/segments/")

    assert resp.status_code == 200
    body = resp.json()
    assert body["customer"] == ann.pk
    assert body["rfm"] == {
        "recency_days": 12,
        "last_order_at": "2026-02-17T10:30:00Z",
        "first_order_at": "2025-08-14T09:30:00Z",
        "orders_total": 6,
        "frequency": 4,
        "monetary": "412.50",
        "r_score": 4,
        "f_score": 5,
        "m_score": 5,
        "tier": "high_value_repeat",
        "top_families": [
            {"id": tea.pk, "slug": "tea", "name": "Tea"},
            {"id": coffee.pk, "slug": "coffee", "name": "Coffee"},
        ],
        "price_tier": "premium",
        "computed_at": "2026-03-02T08:30:00Z",
    }
    assert body["segments"] == [
        {
            "id": high.pk,
            "name": "High-value repeat",
            "slug": "high-value-repeat",
            "kind": "tier",
            "tier": "high_value_repeat",
            "status": "active",
            "since": "2026-01-31T09:30:00Z",
        },
        {
            "id": archived.pk,
            "name": "Archived one",
            "slug": "archived",
            "kind": "rule",
            "tier": None,
            "status": "archived",
            "since": "2026-01-11T09:30:00Z",
        },
        {
            "id": rule.pk,
            "name": "Coffee lovers",
            "slug": "coffee-lovers",
            "kind": "rule",
            "tier": None,
            "status": "active",
            "since": "2026-02-26T09:30:00Z",
        },
    ]
    assert body["transitions"][0] == {
        "segment": {"id": rule.pk, "name": "Coffee lovers", "kind": "rule"},
        "kind": "entered",
        "at": "2026-02-26T09:30:00Z",
        "cause": "refresh",
    }
    assert [(t["segment"]["id"], t["kind"]) for t in body["transitions"]] == [
        (rule.pk, "entered"),
        (high.pk, "entered"),  # same time as the exit below, recorded later
        (tiers[Tier.ONE_TIME].pk, "left"),
        (tiers[Tier.ONE_TIME].pk, "entered"),
    ]


def test_recency_days_follow_the_clock(api_client, tenant, tiers):
    ann = CustomerFactory(tenant=tenant)
    _rfm(ann, last_order_at=NOW - timedelta(days=3))
    url = f"/api/v1/customers/{ann.pk}/segments/"
    assert api_client.get(url).json()["rfm"]["recency_days"] == 3
    clock.set_now(NOW + timedelta(days=10, hours=23))
    assert api_client.get(url).json()["rfm"]["recency_days"] == 13
    clock.set_now(NOW - timedelta(days=5))  # an order "in the future" is 0 days ago
    assert api_client.get(url).json()["rfm"]["recency_days"] == 0


def test_customer_without_a_counted_order_has_no_rfm(api_client, tenant, tiers):
    ann = CustomerFactory(tenant=tenant)
    resp = api_client.get(f"/api/v1/customers/{ann.pk}/segments/")
    assert resp.status_code == 200
    assert resp.json() == {"customer": ann.pk, "rfm": None, "segments": [], "transitions": []}


def test_customer_history_shows_the_latest_50_newest_first(api_client, tenant, tiers):
    ann = CustomerFactory(tenant=tenant)
    segment = tiers[Tier.ONE_TIME]
    for i in range(60):
        kind = TransitionKind.ENTERED if i % 2 == 0 else TransitionKind.LEFT
        _move(segment, ann, kind, NOW - timedelta(days=60 - i))
    transitions = api_client.get(f"/api/v1/customers/{ann.pk}/segments/").json()["transitions"]
    assert len(transitions) == 50
    assert transitions[0]["at"] == "2026-03-01T09:30:00Z"
    assert transitions[-1]["at"] == "2026-01-11T09:30:00Z"
    assert [t["at"] for t in transitions] == sorted((t["at"] for t in transitions), reverse=True)


def test_merged_customer_answers_with_the_survivor(api_client, tenant, tiers):
    survivor = CustomerFactory(tenant=tenant)
    merged = CustomerFactory(tenant=tenant)
    customer_merge(survivor=survivor, merged=merged, reason="same person")
    _rfm(survivor, Tier.ONE_TIME)
    resp = api_client.get(f"/api/v1/customers/{merged.pk}/segments/")
    assert resp.status_code == 200
    assert resp.json()["customer"] == survivor.pk
    assert resp.json()["rfm"]["tier"] == "one_time"


def test_another_tenants_customer_is_404(api_client, tenant, other_tenant, other_tiers):
    theirs = CustomerFactory(tenant=other_tenant)
    _rfm(theirs, Tier.ONE_TIME)
    _move(other_tiers[Tier.ONE_TIME], theirs, TransitionKind.ENTERED, NOW)
    for url in (
        f"/api/v1/customers/{theirs.pk}/segments/",
        "/api/v1/customers/999999999/segments/",
        "/api/v1/customers/99999999999999999999999/segments/",
    ):
        resp = api_client.get(url)
        assert resp.status_code == 404, url
        assert _error(resp)["code"] == "not_found"


def test_another_tenants_rows_never_leak_into_a_customer(api_client, tenant, other_tenant, tiers):
    """Rows of the other tenant pointing at this tenant's customer id are not read."""
    ann = CustomerFactory(tenant=tenant)
    theirs = _rule(other_tenant, "theirs")
    _join(theirs, ann, NOW)  # corrupt on purpose: the scope, not the data, keeps it out
    _move(theirs, ann, TransitionKind.ENTERED, NOW)
    body = api_client.get(f"/api/v1/customers/{ann.pk}/segments/").json()
    assert body["segments"] == []
    assert body["transitions"] == []


# --- auth and scopes ---------------------------------------------------------------


def _urls(tenant, tiers) -> list[str]:
    customer = CustomerFactory(tenant=tenant)
    segment = tiers[Tier.ONE_TIME]
    return [
        "/api/v1/segments/",
        f"/api/v1/segments/{segment.pk}/",
        f"/api/v1/segments/{segment.pk}/members/",
        f"/api/v1/customers/{customer.pk}/segments/",
    ]


def test_every_endpoint_needs_an_api_key(tenant, tiers):
    for url in _urls(tenant, tiers):
        for client in (Client(), Client(HTTP_AUTHORIZATION="Bearer rk_wrong")):
            resp = client.get(url)
            assert resp.status_code == 401, url
            assert _error(resp)["code"] == "unauthorized"


def test_a_read_only_key_reads_every_endpoint(tenant, tiers, read_only_key):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {read_only_key}")
    for url in _urls(tenant, tiers):
        assert client.get(url).status_code == 200, url


def test_endpoints_are_read_only(api_client, tenant, tiers):
    for url in _urls(tenant, tiers):
        resp = api_client.post(url, "{}", content_type="application/json")
        assert resp.status_code == 405, url
        assert _error(resp)["code"] == "method_not_allowed"


# --- the schema -----------------------------------------------------------------


def test_schema_documents_every_segments_path_with_error_responses(db):
    resp = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert resp.status_code == 200
    schema = resp.json()
    paths = schema["paths"]
    expected = {
        "/api/v1/segments/": "PaginatedSegmentList",
        "/api/v1/segments/{id}/": "SegmentDetail",
        "/api/v1/segments/{id}/members/": "PaginatedSegmentMemberList",
        "/api/v1/customers/{id}/segments/": "CustomerSegments",
    }
    for path, component in expected.items():
        assert set(paths[path]) - {"parameters"} == {"get"}, path
        op = paths[path]["get"]
        assert {"200", "401", "403", "404"} <= set(op["responses"]), path
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{component}"
        assert op["security"] == [{"apiKey": []}]
    assert "422" in paths["/api/v1/segments/"]["get"]["responses"]
    components = schema["components"]["schemas"]
    assert set(components["SegmentCounts"]["properties"]) == {
        "members",
        "entered_7d",
        "left_7d",
        "entered_30d",
        "left_30d",
    }
    assert components["CustomerSegments"]["properties"]["rfm"]["nullable"] is True
