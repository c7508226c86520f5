"""Segments stay fresh: an ingested order moves its buyer through a queued task
(in-process here, through Redis and a real worker in the last test), merges and
bulk loads are followed, and the nightly run comes once per tenant night."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce.models import Customer
from commerce.services.customers import consent_set, customer_merge
from commerce.services.orders import (
    order_cancel,
    order_upsert,
    orders_bulk_loaded,
    return_create,
)
from commerce.services.touchpoints import touchpoints_ingest
from retention import clock
from retention.celery import app as celery_app
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentTransition,
    Tier,
)
from segments.services.rfm import rfm_recompute
from segments.services.setup import segment_settings
from segments.tasks import night_start, nightly, schedule_nightly
from tests.commerce.test_webhooks import ORDER, post
from tests.factories import CustomerFactory, make_order
from tests.workers import celery_worker

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def order_data(order_id: str, customer_id: str, total: str = "30.00") -> dict:
    """An order payload as the webhook schema leaves it (validated, typed)."""
    total = Decimal(total)
    return {
        "id": order_id,
        "customer": {"id": customer_id, "email": f"{customer_id}@shop.example"},
        "placed_at": clock.now(),
        "total": total,
        "currency": "EUR",
        "lines": [{"sku": "A-1", "quantity": 1, "unit_price": total}],
    }


def tier_of(tenant, customer_id: int) -> str | None:
    row = CustomerRFM.objects.for_tenant(tenant).filter(customer_id=customer_id).first()
    return row.tier if row else None


def test_an_ingested_order_moves_its_buyer(tenant, eager_tasks, django_capture_on_commit_callbacks):
    clock.set_now(NOW)
    with django_capture_on_commit_callbacks(execute=True):
        order, _ = order_upsert(tenant=tenant, data=order_data("o-1", "c-1"), source="api")
    customer_id = order.customer_id
    assert tier_of(tenant, customer_id) == Tier.ONE_TIME

    with django_capture_on_commit_callbacks(execute=True):
        order_upsert(tenant=tenant, data=order_data("o-2", "c-1"), source="api")
    assert tier_of(tenant, customer_id) in (Tier.MID_VALUE_REPEAT, Tier.HIGH_VALUE_REPEAT)
    kinds = list(
        SegmentTransition.objects.for_tenant(tenant)
        .filter(customer_id=customer_id)
        .order_by("id")
        .values_list("kind", "cause")
    )
    assert kinds[-2:] == [("left", "order"), ("entered", "order")]

    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(tenant=tenant, data={"id": "o-2"}, source="api")
    assert tier_of(tenant, customer_id) == Tier.ONE_TIME


def test_a_full_refund_moves_its_buyer(tenant, eager_tasks, django_capture_on_commit_callbacks):
    clock.set_now(NOW)
    with django_capture_on_commit_callbacks(execute=True):
        order, _ = order_upsert(tenant=tenant, data=order_data("r-1", "c-r"), source="api")
    assert tier_of(tenant, order.customer_id) == Tier.ONE_TIME
    with django_capture_on_commit_callbacks(execute=True):
        return_create(
            tenant=tenant,
            data={"id": "ret-1", "order_id": "r-1", "refund_amount": Decimal("30.00")},
            source="api",
        )
    assert tier_of(tenant, order.customer_id) is None  # a refunded order does not count


def test_a_merge_keeps_history_on_the_survivor(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    clock.set_now(NOW)
    survivor, merged = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    make_order(survivor, NOW - timedelta(days=3))
    make_order(merged, NOW - timedelta(days=2))
    rfm_recompute(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        customer_merge(survivor=survivor, merged=merged, reason="same email")
    assert CustomerRFM.objects.for_tenant(tenant).filter(customer=merged).count() == 0
    # Two orders now, and more spend than any other buyer had at the last ranking.
    assert tier_of(tenant, survivor.pk) == Tier.HIGH_VALUE_REPEAT
    assert SegmentTransition.objects.for_tenant(tenant).filter(customer=merged).count() == 0
    # The merged customer's entry into one-time now reads on the survivor.
    assert SegmentTransition.objects.for_tenant(tenant).filter(customer=survivor).count() == 4


def test_a_bulk_load_recomputes_the_tenant_once_it_commits(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    clock.set_now(NOW)
    customers = [CustomerFactory(tenant=tenant) for _ in range(3)]
    for c in customers:
        make_order(c, NOW - timedelta(days=1))
    with django_capture_on_commit_callbacks() as callbacks:
        orders_bulk_loaded(tenant)
    assert CustomerRFM.objects.for_tenant(tenant).count() == 0  # not before the commit
    for callback in callbacks:
        callback()
    assert CustomerRFM.objects.for_tenant(tenant).count() == 3
    assert segment_settings(tenant).last_full_at == NOW


def test_the_nightly_run_is_queued_once_the_tenants_night_hour_comes(
    tenant, other_tenant, eager_tasks
):
    # Both stores are in Europe/Berlin (UTC+2 in June); the night hour is 03:00 local.
    bravo = segment_settings(other_tenant)
    bravo.last_nightly_at = datetime(2026, 6, 2, 0, 30, tzinfo=UTC)  # claimed since 03:00 yesterday
    bravo.save()
    clock.set_now(datetime(2026, 6, 2, 0, 59, tzinfo=UTC))  # 02:59 in Berlin
    assert schedule_nightly() == [tenant.pk]  # never ran: due since last night
    assert segment_settings(tenant).last_full_at == datetime(2026, 6, 2, 0, 59, tzinfo=UTC)
    assert schedule_nightly() == []

    clock.set_now(datetime(2026, 6, 2, 1, 5, tzinfo=UTC))  # 03:05 in Berlin: tonight
    assert sorted(schedule_nightly()) == sorted([tenant.pk, other_tenant.pk])
    assert schedule_nightly() == []


def test_a_recompute_during_the_night_does_not_cancel_the_nightly_run(tenant, eager_tasks):
    clock.set_now(datetime(2026, 6, 2, 1, 5, tzinfo=UTC))  # 03:05 in Berlin
    rfm_recompute(tenant)  # say a CSV import finished at 03:04
    assert schedule_nightly() == [tenant.pk]
    assert segment_settings(tenant).last_nightly_at == clock.now()


def test_a_repeated_nightly_task_does_nothing_the_second_time(tenant, eager_tasks):
    clock.set_now(datetime(2026, 6, 2, 1, 5, tzinfo=UTC))
    due = night_start(tenant, segment_settings(tenant), clock.now())
    assert due.hour == 3 and due.utcoffset() == timedelta(hours=2)
    assert "buyers" in nightly(tenant.pk, due.isoformat())
    assert nightly(tenant.pk, due.isoformat()) == {"skipped": "already ran tonight"}


@pytest.fixture
def worker(transactional_db):
    with celery_worker("ingest,segments") as proc:
        yield proc


def test_a_webhook_order_moves_its_buyer_through_a_real_worker(tenant, worker):
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        started = time.monotonic()
        customer = {"id": "rt-1", "email": "rt-1@shop.example"}
        for i in range(2):
            data = {**ORDER, "id": f"rt-{i}", "customer": customer}
            assert post(tenant, {"type": "order.created", "data": data}).status_code == 202
    finally:
        celery_app.conf.task_always_eager = before

    deadline = started + 60
    while True:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
        buyer = Customer.objects.for_tenant(tenant).filter(email="rt-1@shop.example").first()
        row = buyer and CustomerRFM.objects.for_tenant(tenant).filter(customer=buyer).first()
        if row and row.orders_total == 2:
            break
        assert time.monotonic() < deadline, "the buyer's RFM did not move"
        time.sleep(0.2)
    assert row.tier in (Tier.MID_VALUE_REPEAT, Tier.HIGH_VALUE_REPEAT)


def _rule(tenant, slug: str, condition: dict) -> Segment:
    return Segment.objects.create(
        tenant=tenant, kind=SegmentKind.RULE, name=slug, slug=slug, conditions=[condition]
    )


def _members(segment) -> set[int]:
    return set(
        SegmentMembership.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", flat=True)
    )


def test_a_consent_change_moves_segments_that_read_consent(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    emailable = _rule(
        tenant,
        "emailable",
        {"field": "consent", "op": "eq", "value": {"channel": "email", "status": "opted_in"}},
    )
    customer = CustomerFactory(tenant=tenant)
    with django_capture_on_commit_callbacks(execute=True):
        consent_set(customer=customer, channel="email", status="opted_in", source="api")
    assert _members(emailable) == {customer.pk}
    with django_capture_on_commit_callbacks(execute=True):
        consent_set(customer=customer, channel="email", status="opted_out", source="api")
    assert _members(emailable) == set()
    causes = SegmentTransition.objects.for_tenant(tenant).filter(segment=emailable)
    assert sorted(causes.values_list("kind", "cause")) == [
        ("entered", "consent"),
        ("left", "consent"),
    ]


def test_tracked_events_move_segments_that_read_touchpoints(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    clicked = _rule(
        tenant,
        "clickers",
        {
            "field": "touchpoint",
            "op": "has",
            "value": {"kind": "message.clicked", "within_days": 7},
        },
    )
    event = {
        "category": "marketing",
        "kind": "message.clicked",
        "customer": {"id": "tp-1", "email": "tp-1@shop.example"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        touchpoints_ingest(tenant=tenant, items=[event], source="api")
    buyer = Customer.objects.for_tenant(tenant).get(email="tp-1@shop.example")
    assert _members(clicked) == {buyer.pk}
