"""The admin customer page shows the customer's RFM, segments and segment history,
scoped to the page's tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

# The panels register when this module is imported; segments/admin.py imports it
# so the admin's autodiscovery loads it. Imported here too so these tests do not
# depend on that line.
import segments.customer_admin
from commerce.admin import CUSTOMER_PANELS
from retention import clock
from segments import selectors
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
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


def _page(client, customer) -> str:
    resp = client.get(reverse("admin:commerce_customer_change", args=[customer.pk]))
    assert resp.status_code == 200
    return resp.content.decode()


def _move(segment, customer, kind, at, cause=""):
    return SegmentTransition.objects.create(
        tenant_id=segment.tenant_id,
        segment=segment,
        customer=customer,
        kind=kind,
        at=at,
        cause=cause,
    )


@pytest.fixture
def ann(tenant):
    customer = CustomerFactory(tenant=tenant, email="ann@example.com", first_name="Ann")
    tiers = tier_segments(tenant)
    grinders = ProductFamilyFactory(tenant=tenant, name="Grinders", slug="grinders")
    CustomerRFM.objects.create(
        tenant=tenant,
        customer=customer,
        first_order_at=NOW - timedelta(days=300),
        last_order_at=NOW - timedelta(days=9),
        orders_total=5,
        frequency=3,
        monetary=Decimal("318.40"),
        r_score=4,
        f_score=3,
        m_score=5,
        tier=Tier.HIGH_VALUE_REPEAT,
        top_families=[grinders.pk],
        price_tier="premium",
    )
    rule = Segment.objects.create(
        tenant=tenant, name="Espresso fans", slug="espresso-fans", kind=SegmentKind.RULE
    )
    SegmentMembership.objects.create(
        tenant=tenant, segment=rule, customer=customer, since=NOW - timedelta(days=2)
    )
    _move(tiers[Tier.ONE_TIME], customer, TransitionKind.ENTERED, NOW - timedelta(days=300))
    _move(tiers[Tier.ONE_TIME], customer, TransitionKind.LEFT, NOW - timedelta(days=40), "order")
    _move(
        tiers[Tier.HIGH_VALUE_REPEAT],
        customer,
        TransitionKind.ENTERED,
        NOW - timedelta(days=40),
        "order",
    )
    _move(rule, customer, TransitionKind.ENTERED, NOW - timedelta(days=2), "refresh")
    return customer


def test_customer_page_shows_rfm_and_current_segments(marketer_client, ann):
    body = _page(marketer_client, ann)
    assert "RFM and segments" in body
    assert "4 / 3 / 5" in body
    assert "High-value repeat" in body
    assert "<td>9</td>" in body  # days since the last order
    assert "318.40" in body
    assert "Grinders" in body
    assert "premium" in body
    assert "Espresso fans" in body


def test_customer_page_shows_segment_history_newest_first(viewer_client, ann):
    body = _page(viewer_client, ann)
    assert "Segment history" in body
    history = body[body.index("Segment history") :]
    rows = [
        history.index(text)
        for text in ("refresh", "High-value repeat", "One-time</td><td>Tier</td><td>Left")
    ]
    assert rows == sorted(rows)
    assert "One-time</td><td>Tier</td><td>Entered" in history
    assert "Espresso fans</td><td>Rule segment</td><td>Entered</td><td>refresh" in history


def test_recency_on_the_page_follows_the_clock(marketer_client, ann):
    clock.set_now(NOW + timedelta(days=5))
    assert "<td>14</td>" in _page(marketer_client, ann)


def test_customer_without_orders_or_history_says_so(marketer_client, tenant):
    bob = CustomerFactory(tenant=tenant)
    body = _page(marketer_client, bob)
    assert "No counted order yet" in body
    assert "In no segment." in body
    assert "No segment entries or exits yet." in body


def test_another_tenants_customer_page_is_404(marketer_client, other_tenant):
    theirs = CustomerFactory(tenant=other_tenant)
    segment = tier_segments(other_tenant)[Tier.ONE_TIME]
    _move(segment, theirs, TransitionKind.ENTERED, NOW)
    resp = marketer_client.get(reverse("admin:commerce_customer_change", args=[theirs.pk]))
    assert resp.status_code == 404


def test_the_page_reads_only_its_own_tenants_rows(marketer_client, tenant, other_tenant):
    """Rows of another tenant that name this customer's id stay out of the page."""
    bob = CustomerFactory(tenant=tenant)
    theirs = Segment.objects.create(
        tenant=other_tenant, name="Their secret segment", slug="theirs", kind=SegmentKind.RULE
    )
    SegmentMembership.objects.create(tenant=other_tenant, segment=theirs, customer=bob)
    _move(theirs, bob, TransitionKind.ENTERED, NOW)
    body = _page(marketer_client, bob)
    assert "Their secret segment" not in body


def test_the_add_page_has_no_panels(owner_client):
    resp = owner_client.get(reverse("admin:commerce_customer_add"))
    assert resp.status_code == 200
    assert "Segment history" not in resp.content.decode()


def test_saving_the_customer_page_still_works(marketer_client, ann):
    url = reverse("admin:commerce_customer_change", args=[ann.pk])
    resp = marketer_client.post(
        url,
        {
            "email": "ann@new.example",
            "phone": "",
            "first_name": "Ann",
            "last_name": "Lee",
            "timezone": "",
            "locale": "",
            "preferred_channel": "",
            "updated_at_0": "2026-03-02",
            "updated_at_1": "09:30:00",
            **{
                f"{prefix}-{key}": value
                for prefix in ("identities", "consents", "touchpoints", "orders")
                for key, value in (
                    ("TOTAL_FORMS", "0"),
                    ("INITIAL_FORMS", "0"),
                    ("MIN_NUM_FORMS", "0"),
                    ("MAX_NUM_FORMS", "1000"),
                )
            },
        },
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    ann.refresh_from_db()
    assert (ann.email, ann.last_name) == ("ann@new.example", "Lee")


def test_panels_register_once():
    import importlib

    importlib.reload(segments.customer_admin)
    titles = [panel.title for panel in CUSTOMER_PANELS]
    assert titles.count("RFM and segments") == 1
    assert titles.count(f"Segment history (last {selectors.TRANSITIONS_SHOWN})") == 1


def test_page_query_count_does_not_grow_with_the_history(marketer_client, ann):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            _page(marketer_client, ann)
        return len(captured)

    before = queries()
    mid = tier_segments(ann.tenant_id)[Tier.MID_VALUE_REPEAT]
    for i in range(60):
        _move(mid, ann, TransitionKind.ENTERED, NOW - timedelta(minutes=i))
    assert queries() == before
    body = _page(marketer_client, ann)
    assert body.count("Mid-value repeat</td><td>Tier</td><td>Entered") == 50
