"""The feedback metrics the dashboard shows, on hand-made data in two stores:
each counts only its store and range, in one or two queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.models import OrderStatus
from feedback.models import Callback, CallbackStatus
from feedback.selectors import (
    _percentile,
    callback_first_contact,
    callbacks_resolved,
    detractor_recovery,
    survey_class_mix,
    survey_delivery_to_response,
    survey_response_rate_by_channel,
)
from feedback.services.callbacks import callback_log_contact, callback_resolve
from retention import clock
from retention.models import Role
from tests.factories import CustomerFactory, make_order
from tests.feedback.callback_factories import answer, delivered, invite, person, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin: due +15 min
START, END = NOW - timedelta(days=7), NOW + timedelta(days=1)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def _customer(tenant):
    return CustomerFactory(tenant=tenant)


# --- surveys -------------------------------------------------------------------------------


def test_response_rate_by_channel(tenant, other_tenant, django_assert_num_queries):
    emails = [
        invite(_customer(tenant), channel="email", at=NOW - timedelta(days=d)) for d in (1, 2, 3, 4)
    ]
    for invitation in emails[:2]:
        answer(invitation.customer, 4, invitation=invitation, at=NOW)
    late = emails[2]
    answer(late.customer, 5, invitation=late, at=END + timedelta(days=3))  # answered later
    texts = [invite(_customer(tenant), channel="sms", at=NOW - timedelta(days=1)) for _ in range(2)]
    answer(texts[0].customer, 2, invitation=texts[0], at=NOW)
    before = invite(_customer(tenant), channel="email", at=START - timedelta(seconds=1))
    answer(before.customer, 5, invitation=before, at=NOW)
    for _ in range(3):
        theirs = invite(_customer(other_tenant), channel="email", at=NOW)
        answer(theirs.customer, 5, invitation=theirs, at=NOW)

    with django_assert_num_queries(1):
        rates = survey_response_rate_by_channel(tenant=tenant, start=START, end=END)

    assert {k: (v.invited, v.responded, v.rate_pct) for k, v in rates.items()} == {
        "email": (4, 3, 75.0),
        "sms": (2, 1, 50.0),
        "in_app": (0, 0, None),
    }


def test_time_from_delivery_to_response_median_and_p90(
    tenant, other_tenant, django_assert_num_queries
):
    for hours in (1, 2, 3, 4, 10):
        customer = _customer(tenant)
        shipped = delivered(customer, NOW - timedelta(days=2))
        answer(
            customer,
            4,
            invitation=invite(customer, fulfillment=shipped, at=shipped.delivered_at),
            at=shipped.delivered_at + timedelta(hours=hours),
        )
    answer(_customer(tenant), 4, at=NOW)  # not about a delivery
    outside = _customer(tenant)
    old = delivered(outside, START - timedelta(days=5))
    answer(outside, 4, invitation=invite(outside, fulfillment=old), at=START - timedelta(days=1))
    theirs = _customer(other_tenant)
    their_delivery = delivered(theirs, NOW - timedelta(days=3))
    answer(theirs, 4, invitation=invite(theirs, fulfillment=their_delivery), at=NOW)

    with django_assert_num_queries(1):
        stats = survey_delivery_to_response(tenant=tenant, start=START, end=END)

    assert stats.count == 5
    assert stats.median == timedelta(hours=3)
    # percentile_cont: position 0.9 * 4 = 3.6, between 4 h and 10 h
    assert stats.p90 == timedelta(hours=7, minutes=36)


def test_no_answers_give_no_durations(tenant):
    stats = survey_delivery_to_response(tenant=tenant, start=START, end=END)

    assert (stats.count, stats.median, stats.p90) == (0, None, None)


def test_class_mix(tenant, other_tenant, django_assert_num_queries):
    for rating in (5, 5, 5, 4, 2, 1):
        answer(_customer(tenant), rating, at=NOW)
    answer(_customer(tenant), 1, at=START - timedelta(minutes=1))
    answer(_customer(other_tenant), 1, at=NOW)

    with django_assert_num_queries(1):
        mix = survey_class_mix(tenant=tenant, start=START, end=END)

    assert (mix.promoter, mix.neutral, mix.detractor, mix.total) == (3, 1, 2, 6)
    assert (mix.share_pct("promoter"), mix.share_pct("detractor")) == (50.0, 33.3)


# --- callbacks -----------------------------------------------------------------------------


def test_first_contact_time_and_sla_met(tenant, other_tenant, django_assert_num_queries):
    ann = person(tenant, Role.AGENT)
    met, late, _missed, waiting, closed, cancelled = (queue(tenant) for _ in range(6))
    clock.advance(minutes=10)
    callback_log_contact(callback=met, agent=ann, outcome="no_answer")
    callback_resolve(callback=closed, agent=ann)  # closed without a call, in time
    clock.advance(minutes=20)
    callback_log_contact(callback=late, agent=ann, outcome="reached")
    Callback.objects.for_tenant(tenant).filter(pk=cancelled.pk).update(
        status=CallbackStatus.CANCELLED
    )
    clock.advance(minutes=10)
    waiting_row = Callback.objects.for_tenant(tenant).filter(pk=waiting.pk)
    waiting_row.update(due_by=NOW + timedelta(hours=2))  # still inside its SLA
    queue(other_tenant)  # never contacted, overdue: another store's
    queue(tenant, idempotency_key="old")
    Callback.objects.for_tenant(tenant).filter(idempotency_key="old").update(
        created_at=START - timedelta(days=1)
    )

    with django_assert_num_queries(2):
        stats = callback_first_contact(tenant=tenant, start=START, end=END)

    assert (stats.created, stats.contacted, stats.met, stats.breached, stats.pending) == (
        5,
        2,
        2,  # met (contacted at +10 min) and closed (resolved at +10 min)
        2,  # late (contacted at +30 min) and missed (never, due at +15 min)
        1,  # waiting
    )
    assert stats.sla_met_pct == 50.0
    assert stats.median_first_contact == timedelta(minutes=20)  # of 10 and 30 minutes


def test_callbacks_resolved(tenant, other_tenant, django_assert_num_queries):
    ann = person(tenant, Role.AGENT)
    quick, slow, _still_open = queue(tenant), queue(tenant), queue(tenant)
    clock.advance(hours=1)
    callback_resolve(callback=quick, agent=ann)
    clock.advance(hours=2)
    callback_log_contact(callback=slow, agent=ann, outcome="resolved")
    theirs = queue(other_tenant)
    callback_resolve(callback=theirs, agent=person(other_tenant, Role.AGENT))

    with django_assert_num_queries(2):
        stats = callbacks_resolved(tenant=tenant, start=START, end=END)

    assert (stats.created, stats.resolved) == (3, 2)
    assert stats.median_time_to_resolve == timedelta(hours=2)  # of 1 h and 3 h


def test_detractor_recovery_compares_reached_and_not_reached(
    tenant, other_tenant, django_assert_num_queries
):
    ann = person(tenant, Role.AGENT)

    def detractor(days_ago: int, outcome: str | None, reorder_after: int | None, **kw):
        customer = _customer(tenant)
        answered = NOW - timedelta(days=days_ago)
        make_order(customer, answered - timedelta(days=20))  # the order they rated
        clock.set_now(answered)
        response = answer(customer, 2, at=answered)
        if outcome is not None:
            callback = queue(tenant, customer, survey_response=response)
            clock.advance(hours=1)
            callback_log_contact(callback=callback, agent=ann, outcome=outcome)
        if reorder_after is not None:
            make_order(customer, answered + timedelta(days=reorder_after), **kw)
        clock.set_now(NOW)
        return customer

    detractor(150, "reached", reorder_after=30)  # reached, came back
    detractor(150, "resolved", reorder_after=100)  # reached, came back too late
    detractor(120, "no_answer", reorder_after=10)  # called, never reached, came back
    detractor(120, None, reorder_after=20, status=OrderStatus.CANCELLED)  # never called
    detractor(30, "reached", reorder_after=5)  # still inside its 90 days
    answer(_customer(tenant), 5, at=NOW - timedelta(days=150))  # a promoter
    other = _customer(other_tenant)
    answer(other, 1, at=NOW - timedelta(days=150))
    make_order(other, NOW - timedelta(days=140))

    with django_assert_num_queries(1):
        recovery = detractor_recovery(tenant=tenant, start=NOW - timedelta(days=200), end=NOW)

    assert (recovery.reached.detractors, recovery.reached.reordered) == (2, 1)
    assert (recovery.not_reached.detractors, recovery.not_reached.reordered) == (2, 1)
    assert (recovery.reached.rate_pct, recovery.not_reached.rate_pct) == (50.0, 50.0)
    assert (recovery.maturing, recovery.days) == (1, 90)


def test_detractor_recovery_counts_from_the_range_only(tenant):
    answer(_customer(tenant), 1, at=NOW - timedelta(days=300))

    recovery = detractor_recovery(
        tenant=tenant, start=NOW - timedelta(days=200), end=NOW - timedelta(days=100)
    )

    assert (recovery.reached.detractors, recovery.not_reached.detractors, recovery.maturing) == (
        0,
        0,
        0,
    )
    assert recovery.reached.rate_pct is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([3.0], 0.5, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([4.0, 1.0, 10.0, 2.0, 3.0], 0.9, 7.6),
        ([1.0, 2.0], 0.0, 1.0),
        ([1.0, 2.0], 1.0, 2.0),
    ],
)
def test_the_embedded_database_percentile_matches_percentile_cont(values, fraction, expected):
    assert _percentile(values, fraction) == pytest.approx(expected)
