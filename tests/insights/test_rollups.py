"""The dashboard's rollups against hand-computed fixtures, against a plain-Python
computation over random data, re-runs and day ranges, and tenant isolation.

The tenants live in Europe/Berlin (UTC+1 until 29 March 2026, UTC+2 after):
23:30 UTC is already the next local day."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.models import Order, OrderLine, OrderStatus, Touchpoint
from feedback.models import Callback, SurveyInvitation, SurveyResponse
from insights.kpis import COUNT_FIELDS
from insights.models import (
    CohortMonthly,
    FamilyDaily,
    InsightsSettings,
    MessageDaily,
    RetentionDaily,
    SegmentMessageDaily,
    Snapshot,
)
from insights.services.rollups import (
    rollups_backfill,
    rollups_refresh,
    rollups_refresh_recent,
)
from insights.services.setup import insights_settings
from journeys.models import Journey
from messaging.models import Message
from retention import clock
from scoring.models import ChurnScore
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentMembership,
    SegmentTransition,
    Tier,
)
from segments.services.setup import tier_segments
from tests.factories import CustomerFactory, ProductFamilyFactory, make_order

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday 2 March, 11:00 in Berlin
DAY = timedelta(days=1)
MAR2, MAR3 = date(2026, 3, 2), date(2026, 3, 3)
COUNTS = COUNT_FIELDS  # the columns the dashboard reads
_keys = count()


def _message(customer, created_at, *, status="sent", journey=0, step=0, **fields):
    fields.setdefault("channel", "email")
    fields.setdefault("category", "marketing")
    if status not in ("queued", "suppressed", "failed"):
        fields.setdefault("sent_at", created_at)
    context = {"journey_id": journey, "step_id": step} if journey else {}
    return Message.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        idempotency_key=f"test:{next(_keys)}",
        status=status,
        context=context,
        created_at=created_at,
        **fields,
    )


def _touch(customer, kind, at, category="marketing"):
    return Touchpoint.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        category=category,
        kind=kind,
        source="test",
        occurred_at=at,
    )


def _rfm(customer, tier, monetary="100.00"):
    return CustomerRFM.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        first_order_at=T0 - 100 * DAY,
        last_order_at=T0 - DAY,
        orders_total=2,
        frequency=2,
        monetary=Decimal(monetary),
        r_score=3,
        f_score=3,
        m_score=3,
        tier=tier,
    )


def _segment(tenant, slug, kind="rule", status="active"):
    return Segment.objects.create(tenant=tenant, name=slug, slug=slug, kind=kind, status=status)


def _member(segment, *customers):
    for c in customers:
        SegmentMembership.objects.create(tenant=segment.tenant, segment=segment, customer=c)


def _counts(row) -> dict:
    return {c: getattr(row, c) for c in COUNTS}


def _expect(**given) -> dict:
    return {c: given.get(c, 0) for c in COUNTS}


def _settings(tenant, **fields) -> None:
    insights_settings(tenant)
    InsightsSettings.objects.for_tenant(tenant).update(**fields)


def _journey(tenant, key):
    return Journey.objects.for_tenant(tenant).get(key=key).pk


# --- messages ---------------------------------------------------------------------------


@pytest.fixture
def messages(tenant):
    """Four customers: a (high-value repeat), b (one-time), c and d (no tier).
    Rule segment S = {a, b}, list segment L = {c}, archived segment X = {a}."""
    w = _journey(tenant, "welcome-series")
    a, b, c, d = (CustomerFactory(tenant=tenant) for _ in range(4))
    _rfm(a, Tier.HIGH_VALUE_REPEAT)
    _rfm(b, Tier.ONE_TIME)
    s, lst, x = _segment(tenant, "s"), _segment(tenant, "l", "list"), _segment(tenant, "x")
    x.status = "archived"
    x.save()
    _member(s, a, b)
    _member(lst, c)
    _member(x, a)
    # a: clicked; ordered 2 days later (converts, next action), then a product event.
    _message(a, T0, status="clicked", journey=w, step=11, delivered_at=T0, opened_at=T0,
             clicked_at=T0)  # fmt: skip
    make_order(a, T0 + 2 * DAY)
    _touch(a, "feature.activated", T0 + 3 * DAY, "product")
    # b: delivered; a product event an hour later; unsubscribed 6 days later;
    # ordered after 8 days (outside the 7-day conversion window).
    _message(b, T0, status="delivered", journey=w, step=11, delivered_at=T0)
    _touch(b, "feature.activated", T0 + timedelta(hours=1), "product")
    _touch(b, "message.unsubscribed", T0 + 6 * DAY)
    make_order(b, T0 + 8 * DAY)
    # b again, no journey, queued at 23:30 UTC on 1 March = 00:30 on 2 March in
    # Berlin; "opened" by status only (delivered and opened).
    m7_at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    _message(b, m7_at, status="opened")
    # c: a bounced transactional send (sent) answered a survey the next day;
    # a cancelled order (never a conversion or a next action).
    _message(c, T0, status="bounced", category="transactional")
    _touch(c, "survey.answered", T0 + DAY)
    make_order(c, T0 + DAY, status=OrderStatus.CANCELLED)
    # c again at 23:30 UTC on 2 March = 3 March in Berlin.
    _message(c, datetime(2026, 3, 2, 23, 30, tzinfo=UTC), journey=w, step=11)
    # d: suppressed (never sent): the order a day later is not its conversion.
    _message(d, T0, status="suppressed", channel="sms", journey=w, step=12)
    make_order(d, T0 + DAY)
    # Staff and test sends never count.
    _message(a, T0, category="test")
    _message(a, T0, category="staff")
    return {"w": w, "s": s, "l": lst, "x": x, "m7_at": m7_at}


def test_message_counts_against_hand_computed_fixture(tenant, messages):
    w, m7_at = messages["w"], messages["m7_at"]

    counts = rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR3)

    rows = {
        (r.day, r.journey_id, r.step_id, r.channel, r.tier): _counts(r)
        for r in MessageDaily.objects.for_tenant(tenant)
    }
    assert counts["message_daily"] == 6
    assert rows == {
        # a: clicked, so delivered, opened, responded; the order 2 days on
        # converts and is the next action (before the product event).
        (MAR2, w, 11, "email", "high_value_repeat"): _expect(
            messages=1, sent=1, delivered=1, opened=1, clicked=1, converted=1, responded=1,
            next_action=1, next_action_seconds=2 * 86400.0,
        ),
        # b: unsubscribed within 7 days; next action the product event an hour on.
        (MAR2, w, 11, "email", "one_time"): _expect(
            messages=1, sent=1, delivered=1, unsubscribed=1, next_action=1,
            next_action_seconds=3600.0,
        ),
        # b's send at 00:30 local: the unsubscribe 6 days 10.5 h later counts; the
        # product event 11.5 h after it is its next action; the order 8 days
        # 10.5 h later is outside the conversion window.
        (MAR2, 0, 0, "email", "one_time"): _expect(
            messages=1, sent=1, delivered=1, opened=1, unsubscribed=1, next_action=1,
            next_action_seconds=(T0 + timedelta(hours=1) - m7_at).total_seconds(),
        ),
        # c: bounced still went out; the survey answer is a response.
        (MAR2, 0, 0, "email", ""): _expect(messages=1, sent=1, bounced=1, responded=1),
        # d: suppressed, nothing else.
        (MAR2, w, 12, "sms", ""): _expect(messages=1, suppressed=1),
        # c's 3 March send: the survey answer 10.5 h later is a response.
        (MAR3, w, 11, "email", ""): _expect(messages=1, sent=1, responded=1),
    }  # fmt: skip


def test_segment_message_counts_per_rule_and_list_segment(tenant, messages):
    s, lst = messages["s"], messages["l"]

    rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR3)

    rows = {
        (r.day, r.segment_id, r.channel): _counts(r)
        for r in SegmentMessageDaily.objects.for_tenant(tenant)
    }
    # S = a + b: the three sends of a and b on 2 March, summed; the archived
    # segment and the tier segments have no rows.
    assert rows == {
        (MAR2, s.pk, "email"): _expect(
            messages=3, sent=3, delivered=3, opened=2, clicked=1, unsubscribed=2, converted=1,
            responded=1, next_action=3,
            next_action_seconds=2 * 86400.0 + 3600.0
            + (T0 + timedelta(hours=1) - messages["m7_at"]).total_seconds(),
        ),
        (MAR2, lst.pk, "email"): _expect(messages=1, sent=1, bounced=1, responded=1),
        (MAR3, lst.pk, "email"): _expect(messages=1, sent=1, responded=1),
    }  # fmt: skip


def test_conversion_window_follows_the_settings(tenant, messages):
    _settings(tenant, conversion_days=10)
    w = messages["w"]

    rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR2)

    # b's order 8 days after both of b's sends now converts them.
    row = MessageDaily.objects.for_tenant(tenant).get(day=MAR2, journey_id=w, tier="one_time")
    assert row.converted == 1
    assert MessageDaily.objects.for_tenant(tenant).get(journey_id=0, tier="one_time").converted == 1


def test_next_action_counts_for_30_days_whatever_the_conversion_window(tenant):
    _settings(tenant, conversion_days=45)
    x, y = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    # x: a product event after 31 days and an order after 40: converted (45-day
    # window), but no next action within 30 days.
    _message(x, T0, channel="sms")
    _touch(x, "feature.activated", T0 + 31 * DAY, "product")
    make_order(x, T0 + 40 * DAY)
    # y: an order exactly 30 days later: converted and the next action.
    _message(y, T0)
    make_order(y, T0 + 30 * DAY)

    rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR2)

    rows = {r.channel: _counts(r) for r in MessageDaily.objects.for_tenant(tenant)}
    assert rows == {
        "sms": _expect(messages=1, sent=1, converted=1),
        "email": _expect(
            messages=1, sent=1, converted=1, next_action=1, next_action_seconds=30 * 86400.0
        ),
    }


# --- retention and cohorts ----------------------------------------------------------------


def test_retention_daily_against_hand_computed_fixture_with_window_boundary(tenant):
    _settings(tenant, retention_window_days=30)
    p, q, r, s, t = (CustomerFactory(tenant=tenant) for _ in range(5))
    # p: back exactly 30 days later: returned (the window's end counts).
    make_order(p, T0)
    make_order(p, T0 + 30 * DAY)
    # q: back 30 days and a second later: not returned.
    make_order(q, T0 + timedelta(hours=10))
    make_order(q, T0 + timedelta(hours=10) + 30 * DAY + timedelta(seconds=1))
    # r: first order 23:30 UTC on 2 March = 3 March in Berlin; came back with
    # an order that was cancelled: not returned.
    make_order(r, datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    make_order(r, T0 + 5 * DAY, status=OrderStatus.CANCELLED)
    # s: a cancelled order before the first counted one (3 March), back in 10 days.
    make_order(s, T0 - 10 * DAY, status=OrderStatus.CANCELLED)
    make_order(s, T0 + DAY)
    make_order(s, T0 + 11 * DAY)
    # t: first order in February (outside the range), again on 2 March: not a first buyer.
    make_order(t, T0 - 30 * DAY)
    make_order(t, T0)

    counts = rollups_refresh(tenant_id=tenant.pk, start=date(2026, 3, 1), end=date(2026, 3, 31))

    rows = {
        r.day: (r.first_buyers, r.returned, r.window_days)
        for r in RetentionDaily.objects.for_tenant(tenant)
    }
    assert rows == {MAR2: (2, 1, 30), MAR3: (2, 1, 30)}
    assert counts["retention_daily"] == 2


def test_cohorts_against_hand_computed_fixture(tenant):
    u, v, w, x = (CustomerFactory(tenant=tenant) for _ in range(4))
    at = lambda m, d, h=12: datetime(2026, m, d, h, tzinfo=UTC)  # noqa: E731
    # Cohort January: u (again in March: k=2), w (a cancelled February order
    # does not count; again in April: k=3).
    for when in (at(1, 10), at(1, 20), at(3, 5)):
        make_order(u, when)
    make_order(w, at(1, 5))
    make_order(w, at(2, 5), status=OrderStatus.CANCELLED)
    make_order(w, at(4, 1))
    # Cohort February: v's first order is 23:30 UTC on 31 January, 1 February in
    # Berlin; x orders in February, March and April (k=0, 1, 2).
    make_order(v, datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    make_order(v, at(2, 15))
    for when in (at(2, 10), at(3, 10), at(4, 10)):
        make_order(x, when)

    with clock.travel_to(at(4, 15)):
        rollups_refresh(tenant_id=tenant.pk, start=date(2026, 4, 15), end=date(2026, 4, 15))

    rows = {
        (r.cohort, r.months): (r.size, r.active) for r in CohortMonthly.objects.for_tenant(tenant)
    }
    # Every month up to April, zeros included.
    assert rows == {
        (date(2026, 1, 1), 0): (2, 2),
        (date(2026, 1, 1), 1): (2, 0),
        (date(2026, 1, 1), 2): (2, 1),
        (date(2026, 1, 1), 3): (2, 1),
        (date(2026, 2, 1), 0): (2, 2),
        (date(2026, 2, 1), 1): (2, 1),
        (date(2026, 2, 1), 2): (2, 1),
    }


# --- families -----------------------------------------------------------------------------


def test_family_daily_against_hand_computed_fixture(tenant):
    upsell = _journey(tenant, "upsell")
    other = _journey(tenant, "reorder")
    f, g = ProductFamilyFactory(tenant=tenant), ProductFamilyFactory(tenant=tenant)
    e, k, m, h = (CustomerFactory(tenant=tenant) for _ in range(4))
    mar = lambda d: datetime(2026, 3, d, 10, tzinfo=UTC)  # noqa: E731
    # e bought F on 1 March, then F and G on 5 March: a reorder of F, not of G.
    make_order(e, mar(1), "30.00", families=(f,))
    make_order(e, mar(5), "60.00", families=(f, g))
    # k got the upsell journey's email on 3 March and bought G for 40 on the
    # 5th (upsold), and G again on the 12th (a reorder, 9 days after the email).
    _message(k, mar(3), journey=upsell, step=1)
    make_order(k, mar(5), "40.00", families=(g,))
    make_order(k, mar(12), "40.00", families=(g,))
    # m: a cancelled F order before is no reorder; another journey's email no upsell.
    make_order(m, mar(1), families=(f,), status=OrderStatus.CANCELLED)
    _message(m, mar(4), journey=other, step=1)
    make_order(m, mar(5), "20.00", families=(f,))
    # h: the upsell email was suppressed (never sent): no upsell.
    _message(h, mar(4), status="suppressed", journey=upsell, step=1)
    make_order(h, mar(5), "20.00", families=(f,))

    rollups_refresh(tenant_id=tenant.pk, start=date(2026, 3, 1), end=date(2026, 3, 31))

    rows = {
        (r.day, r.family_id): (r.orders, r.reorders, r.buyers, r.upsell_orders, r.upsell_revenue)
        for r in FamilyDaily.objects.for_tenant(tenant)
    }
    assert rows == {
        (date(2026, 3, 1), f.pk): (1, 0, 1, 0, Decimal("0.00")),
        (date(2026, 3, 5), f.pk): (3, 1, 3, 0, Decimal("0.00")),
        (date(2026, 3, 5), g.pk): (2, 0, 2, 1, Decimal("40.00")),
        (date(2026, 3, 12), g.pk): (1, 1, 1, 0, Decimal("0.00")),
    }


# --- snapshots ----------------------------------------------------------------------------


def test_snapshots_of_tiers_churn_and_feedback(tenant):
    now = datetime(2026, 3, 30, 8, tzinfo=UTC)
    tiers = tier_segments(tenant)
    people = [CustomerFactory(tenant=tenant, email=f"p{i}@shop.example") for i in range(5)]
    for person, tier, spend in zip(
        people,
        [Tier.HIGH_VALUE_REPEAT, Tier.HIGH_VALUE_REPEAT, Tier.MID_VALUE_REPEAT, Tier.ONE_TIME],
        ["900.00", "50.00", "300.00", "20.00"],
        strict=False,
    ):
        _rfm(person, tier, spend)

    def move(person, old, new, at):
        for kind, tier in (("left", old), ("entered", new)):
            if tier:
                SegmentTransition.objects.create(
                    tenant=tenant, segment=tiers[tier], customer=person, kind=kind, at=at
                )

    # Two one-time -> mid moves and a new buyer in the last 28 days; a move 29
    # days ago is outside.
    move(people[0], Tier.ONE_TIME, Tier.MID_VALUE_REPEAT, now - 3 * DAY)
    move(people[1], Tier.ONE_TIME, Tier.MID_VALUE_REPEAT, now - 5 * DAY)
    move(people[2], "", Tier.ONE_TIME, now - DAY)
    move(people[3], Tier.MID_VALUE_REPEAT, Tier.HIGH_VALUE_REPEAT, now - 29 * DAY)
    # Churn: three high (people 0-2, ordered by spend 900, 300, 50), one medium,
    # one low (p_churn 0.95, 0.91, 0.7, 0.35, 0.05).
    for person, p, band in zip(
        people, [0.95, 0.7, 0.91, 0.35, 0.05], ["high", "high", "high", "medium", "low"],
        strict=True,
    ):  # fmt: skip
        ChurnScore.objects.create(
            tenant=tenant, customer=person, p_churn=p, expected_orders=1.0, band=band,
            next_action="call", as_of=now, band_since=now,
        )  # fmt: skip
    # Feedback: 3 invitations in the window (2 answered: promoter, detractor),
    # one 30 days ago (answered, outside); callbacks due in the window: one met
    # the deadline, one late, one not called yet, one cancelled uncalled (not due),
    # one due tomorrow (not yet).
    for i, (days_ago, cls) in enumerate(
        [(2, "promoter"), (3, "detractor"), (4, None), (30, "neutral")]
    ):
        inv = SurveyInvitation.objects.create(
            tenant=tenant, customer=people[i], channel="email",
            created_at=now - days_ago * DAY, expires_at=now + DAY,
        )  # fmt: skip
        if cls:
            SurveyResponse.objects.create(
                tenant=tenant, invitation=inv, customer=people[i], rating=5,
                classification=cls, channel="web", answered_at=now - DAY,
            )  # fmt: skip
    for i, (due, contact, status) in enumerate(
        [
            (now - DAY, now - 2 * DAY, "done"),
            (now - DAY, now, "done"),
            (now - 2 * DAY, None, "open"),
            (now - 2 * DAY, None, "cancelled"),
            (now + DAY, None, "open"),
        ]
    ):
        Callback.objects.create(
            tenant=tenant, customer=people[i], reason="r", source="test", due_by=due,
            first_contact_at=contact, status=status, idempotency_key=f"cb{i}",
        )  # fmt: skip

    with clock.travel_to(now):
        counts = rollups_refresh_recent(tenant_id=tenant.pk)

    assert counts["snapshot"] == 3
    snap = {s.kind: s.data for s in Snapshot.objects.for_tenant(tenant).filter(day=now.date())}
    assert snap["tiers"] == {
        "sizes": {"high_value_repeat": 2, "mid_value_repeat": 1, "one_time": 1},
        "flow": [
            {"from": "one_time", "to": "mid_value_repeat", "n": 2},
            {"from": "", "to": "one_time", "n": 1},
        ],
    }
    assert snap["churn"] == {
        "bands": {"low": 1, "medium": 1, "high": 3},
        "histogram": [1, 0, 0, 1, 0, 0, 0, 1, 0, 2],
        "at_risk": [
            {"id": people[0].pk, "email": "p0@shop.example", "p_churn": 0.95, "value": 900.0},
            {"id": people[2].pk, "email": "p2@shop.example", "p_churn": 0.91, "value": 300.0},
            {"id": people[1].pk, "email": "p1@shop.example", "p_churn": 0.7, "value": 50.0},
        ],
    }
    assert snap["feedback"] == {
        "invited": 3,
        "answered": 2,
        "response_rate": 2 / 3,
        "classes": {"promoter": 1, "neutral": 0, "detractor": 1},
        "callbacks_due": 3,
        "callbacks_met_sla": 1,
        "sla_met_rate": 1 / 3,
    }


# --- re-runs, ranges, tenants -------------------------------------------------------------


def _all_rows(tenant) -> dict[str, list]:
    drop = {"id", "tenant_id"}

    def rows(model):
        values = model.objects.for_tenant(tenant).values()
        return sorted(
            (tuple(sorted((k, v) for k, v in row.items() if k not in drop)) for row in values),
            key=repr,
        )

    return {
        m.__name__: rows(m)
        for m in (
            MessageDaily,
            SegmentMessageDaily,
            RetentionDaily,
            CohortMonthly,
            FamilyDaily,
            Snapshot,
        )
    }


def test_refreshing_twice_gives_the_same_rows(tenant, messages):
    with clock.travel_to(T0 + 10 * DAY):
        first = rollups_refresh_recent(tenant_id=tenant.pk)
        before = _all_rows(tenant)
        second = rollups_refresh_recent(tenant_id=tenant.pk)

    assert first == second
    assert _all_rows(tenant) == before
    assert before["MessageDaily"] and before["RetentionDaily"] and before["CohortMonthly"]


def test_refreshing_a_range_leaves_other_days_alone(tenant, messages):
    rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR3)
    mar3 = MessageDaily.objects.for_tenant(tenant).get(day=MAR3)
    # New sends on both days; only 2 March is refreshed.
    customer = CustomerFactory(tenant=tenant)
    _message(customer, T0)
    _message(customer, datetime(2026, 3, 3, 12, tzinfo=UTC))

    counts = rollups_refresh(tenant_id=tenant.pk, start=MAR2, end=MAR2)

    # The new 2 March send joins c's row (no journey, email, no tier).
    assert counts["message_daily"] == 5
    rows = MessageDaily.objects.for_tenant(tenant)
    assert sum(r.messages for r in rows.filter(day=MAR2)) == 6
    assert list(rows.filter(day=MAR3).values_list("id", "messages")) == [(mar3.pk, 1)]


def test_rows_of_one_tenant_never_count_for_another(tenant, other_tenant, messages):
    # The other tenant: one customer in tenant's rule segment (by id) with a
    # send, an order and an unsubscribe; tenant's customers' rows stay as they were.
    stranger = CustomerFactory(tenant=other_tenant)
    SegmentMembership.objects.create(tenant=other_tenant, segment=messages["s"], customer=stranger)
    _message(stranger, T0, journey=_journey(other_tenant, "welcome-series"))
    make_order(stranger, T0 + DAY)
    _touch(stranger, "message.unsubscribed", T0 + DAY)
    with clock.travel_to(T0 + 10 * DAY):
        rollups_refresh_recent(tenant_id=tenant.pk)
        before = _all_rows(tenant)
        assert not any(_all_rows(other_tenant).values())

        rollups_refresh_recent(tenant_id=other_tenant.pk)

    assert _all_rows(tenant) == before
    theirs = list(MessageDaily.objects.for_tenant(other_tenant))
    assert [(r.messages, r.converted, r.unsubscribed) for r in theirs] == [(1, 1, 1)]
    assert not SegmentMessageDaily.objects.for_tenant(other_tenant).exists()
    assert RetentionDaily.objects.for_tenant(other_tenant).get().first_buyers == 1
    assert sum(r.first_buyers for r in RetentionDaily.objects.for_tenant(tenant)) == 3


def test_nightly_refresh_reaches_back_as_far_as_figures_can_change(tenant):
    """Conversion window 7 days: families of the last 14 days, but messages of
    the last 31 (a next action counts for 30 days); first buyers of the last
    91 (the 90-day retention window)."""
    now = T0 + 25 * DAY
    customer = CustomerFactory(tenant=tenant)
    _message(customer, T0)
    _touch(customer, "feature.activated", T0 + 20 * DAY, "product")
    recent, old = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    make_order(recent, now - 85 * DAY)
    make_order(old, now - 120 * DAY)
    make_order(old, now - 35 * DAY)

    with clock.travel_to(now):
        rollups_refresh_recent(tenant_id=tenant.pk)

    row = MessageDaily.objects.for_tenant(tenant).get()
    assert (row.day, row.next_action, row.next_action_seconds) == (MAR2, 1, 20 * 86400.0)
    # Only the first buyer of 85 days ago is still inside the nightly range.
    rows = RetentionDaily.objects.for_tenant(tenant)
    assert [(r.day, r.first_buyers, r.returned) for r in rows] == [((now - 85 * DAY).date(), 1, 0)]
    with clock.travel_to(now):
        rollups_refresh(tenant_id=tenant.pk, start=(now - 130 * DAY).date(), end=now.date())
    assert {r.day: r.returned for r in rows.all()} == {
        (now - 85 * DAY).date(): 0,
        (now - 120 * DAY).date(): 1,
    }


def test_backfill_writes_every_day_with_data(tenant, messages):
    with clock.travel_to(T0 + 10 * DAY):
        counts = rollups_backfill(tenant_id=tenant.pk, days=60)
        assert _all_rows(tenant)["MessageDaily"]
    assert counts["message_daily"] == 6
    assert MessageDaily.objects.for_tenant(tenant).count() == 6


# --- property: the rollups equal a direct computation -------------------------------------

BASE = datetime(2026, 3, 10, tzinfo=UTC)  # the window crosses the DST change of 29 March
START, END = date(2026, 3, 12), date(2026, 4, 8)
NOW = datetime(2026, 4, 20, 9, tzinfo=UTC)
MINUTES = 60 * 24 * 45
SENT = {"sent", "delivered", "opened", "clicked", "bounced"}
COUNTED = {"open", "paid", "fulfilled"}

MESSAGE_STATUSES = [
    "queued", "sent", "delivered", "opened", "clicked", "bounced", "suppressed", "failed",
    "unknown",
]  # fmt: skip
TOUCH_KINDS = [
    ("marketing", "message.unsubscribed"), ("marketing", "message.replied"),
    ("commerce", "survey.answered"), ("product", "feature.activated"),
    ("marketing", "message.opened"),
]  # fmt: skip

ORDER_STATUSES = ["paid", "paid", "fulfilled", "open", "cancelled", "refunded"]


@st.composite
def datasets(draw):
    """A few customers with a few dozen orders, messages and touchpoints at
    uniformly random minutes (Hypothesis's own integers crowd at the edges;
    its seeded Random keeps an example reproducible)."""
    rnd = draw(st.randoms(use_true_random=True))
    n = draw(st.integers(3, 6))

    def minute() -> int:
        return rnd.randrange(MINUTES)

    people = [
        (rnd.choice(["", *Tier.values]), {k for k in "slx" if rnd.random() < 0.4}) for _ in range(n)
    ]
    orders = [
        (rnd.randrange(n), minute(), rnd.choice(ORDER_STATUSES),
         set(rnd.sample(range(3), rnd.randint(0, 2))))
        for _ in range(draw(st.integers(5, 30)))
    ]  # fmt: skip
    messages = [
        (
            rnd.randrange(n), minute(),
            rnd.choice(["marketing", "marketing", "transactional", "test"]),
            rnd.choice(["email", "sms"]), rnd.choice(MESSAGE_STATUSES),
            rnd.choice([None, rnd.randrange(60 * 48)]),  # sent this many minutes later
            rnd.choice(["", "upsell", "upsell", "other"]), rnd.randrange(3),
            (rnd.random() < 0.5, rnd.random() < 0.3, rnd.random() < 0.1),  # *_at set
        )
        for _ in range(draw(st.integers(5, 30)))
    ]  # fmt: skip
    touches = [
        (rnd.randrange(n), minute(), rnd.choice(TOUCH_KINDS))
        for _ in range(draw(st.integers(0, 25)))
    ]
    return people, orders, messages, touches


def _at(minutes: int) -> datetime:
    return BASE - 5 * DAY + timedelta(minutes=minutes)


def _local(at: datetime) -> date:
    return at.astimezone(BERLIN).date()


def _within(later, earlier, days) -> bool:
    return earlier < later <= earlier + timedelta(days=days)


def _write(tenant, families, people, orders, messages, touches, journeys):
    segs = {
        "s": _segment(tenant, "prop-s"),
        "l": _segment(tenant, "prop-l", "list"),
        "x": _segment(tenant, "prop-x", status="archived"),
    }
    made = []
    for tier, member_of in people:
        c = CustomerFactory(tenant=tenant)
        if tier:
            _rfm(c, tier)
        for key in member_of:
            _member(segs[key], c)
        made.append(c)
    order_rows = []
    for i, (who, minute, status, fams) in enumerate(orders):
        c = made[who % len(made)]
        o = Order.objects.create(
            tenant=tenant, customer=c, external_id=f"p{i}", currency="EUR", subtotal=10,
            total=10 * max(len(fams), 1), status=status, placed_at=_at(minute),
        )  # fmt: skip
        lines = []
        for f in sorted(fams):
            amount = Decimal(f + 1) * 10
            OrderLine.objects.create(
                tenant=tenant, order=o, family=families[f], unit_price=amount, total=amount
            )
            lines.append((families[f].pk, amount))
        order_rows.append((c.pk, o.placed_at, status, lines))
    message_rows = []
    for who, minute, category, channel, status, sent_after, journey, step, ts in messages:
        c = made[who % len(made)]
        created = _at(minute)
        sent_at = None if sent_after is None else created + timedelta(minutes=sent_after)
        jid = journeys.get(journey, 0)
        stamps = [created + timedelta(minutes=5) if flag else None for flag in ts]
        Message.objects.create(
            tenant=tenant, customer=c, idempotency_key=f"p:{next(_keys)}", channel=channel,
            category=category, status=status, created_at=created, sent_at=sent_at,
            context={"journey_id": jid, "step_id": step} if jid else {},
            delivered_at=stamps[0], opened_at=stamps[1], clicked_at=stamps[2],
        )  # fmt: skip
        message_rows.append((c.pk, created, category, channel, status, sent_at, jid, step, stamps))
    touch_rows = []
    for who, minute, (category, kind) in touches:
        c = made[who % len(made)]
        _touch(c, kind, _at(minute), category)
        touch_rows.append((c.pk, _at(minute), category, kind))
    rfm = {c.pk: tier for c, (tier, _) in zip(made, people, strict=True)}
    members = {
        c.pk: {segs[k].pk for k in m if k != "x"} for c, (_, m) in zip(made, people, strict=True)
    }
    return order_rows, message_rows, touch_rows, rfm, members


def _expected_messages(orders, messages, touches, rfm, members, conv):
    daily = defaultdict(lambda: defaultdict(float))
    segment = defaultdict(lambda: defaultdict(float))
    for cid, created, category, channel, status, sent_at, jid, step, stamps in messages:
        day = _local(created)
        if category not in ("marketing", "transactional") or not START <= day <= END:
            continue
        delivered_at, opened_at, clicked_at = stamps
        sent = status in SENT or sent_at is not None
        t0 = sent_at or created
        row = {
            "messages": 1,
            "sent": sent,
            "delivered": delivered_at is not None or status in ("delivered", "opened", "clicked"),
            "opened": opened_at is not None or status in ("opened", "clicked"),
            "clicked": clicked_at is not None or status == "clicked",
            "bounced": status == "bounced",
            "suppressed": status == "suppressed",
        }
        mine = [t for t in touches if t[0] == cid and _within(t[1], t0, 7)]
        orders_after = sorted(
            at for c, at, st_, _ in orders if c == cid and st_ in COUNTED and at > t0
        )
        actions = sorted(
            at for c, at, cat, _ in touches if c == cid and cat == "product" and at > t0
        )
        nxt = min([*orders_after[:1], *actions[:1]], default=None)
        if nxt is not None and nxt > t0 + timedelta(days=30):
            nxt = None
        if sent:
            row["unsubscribed"] = any(t[3] == "message.unsubscribed" for t in mine)
            row["converted"] = any(_within(at, t0, conv) for at in orders_after)
            row["responded"] = row["clicked"] or any(
                t[3] in ("message.replied", "survey.answered") for t in mine
            )
            row["next_action"] = nxt is not None
            row["next_action_seconds"] = (nxt - t0).total_seconds() if nxt else 0.0
        key = (day, jid, step if jid else 0, channel, rfm.get(cid, ""))
        for name, value in row.items():
            daily[key][name] += float(value)
            for seg in members[cid]:
                segment[(day, seg, channel)][name] += float(value)
    return daily, segment


def _expected_retention(orders, window):
    out = defaultdict(lambda: [0, 0])
    by_customer = defaultdict(list)
    for cid, at, status, _ in orders:
        if status in COUNTED:
            by_customer[cid].append(at)
    for times in by_customer.values():
        first = min(times)
        if START <= _local(first) <= END:
            out[_local(first)][0] += 1
            out[_local(first)][1] += any(_within(t, first, window) for t in times)
    return {day: tuple(v) for day, v in out.items()}


def _expected_cohorts(orders):
    months = defaultdict(set)
    for cid, at, status, _ in orders:
        if status in COUNTED:
            d = _local(at)
            months[cid].add(d.year * 12 + d.month - 1)
    today = _local(NOW)
    today_mi = today.year * 12 + today.month - 1
    out = {}
    for mine in months.values():
        cohort = min(mine)
        for k in range(today_mi - cohort + 1):
            key = (date(cohort // 12, cohort % 12 + 1, 1), k)
            size, active = out.get(key, (0, 0))
            out[key] = (size + 1, active + (cohort + k in mine))
    return out


def _expected_families(orders, messages, upsell, conv):
    lo = datetime.combine(START, datetime.min.time(), tzinfo=BERLIN)
    sends = [
        (cid, sent_at or created)
        for cid, created, category, _, status, sent_at, jid, _, _ in messages
        if jid == upsell and upsell and category in ("marketing", "transactional")
        and (status in SENT or sent_at is not None)
        and created >= lo - timedelta(days=conv + 7)
    ]  # fmt: skip
    out = defaultdict(lambda: [0, 0, set(), 0, Decimal("0")])
    for cid, at, status, lines in orders:
        if status not in COUNTED or not START <= _local(at) <= END:
            continue
        for family, amount in lines:
            row = out[(_local(at), family)]
            row[0] += 1
            row[1] += any(
                c == cid and s in COUNTED and a < at and family in {f for f, _ in ls}
                for c, a, s, ls in orders
            )
            row[2].add(cid)
            if any(c == cid and _within(at, t0, conv) for c, t0 in sends):
                row[3] += 1
                row[4] += amount
    return {k: (o, r, len(b), u, rev) for k, (o, r, b, u, rev) in out.items()}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=datasets(), conv=st.sampled_from([3, 7, 45]), window=st.sampled_from([7, 30]))
def test_rollups_equal_a_direct_computation(tenant, data, conv, window):
    people, orders, messages, touches = data
    sid = transaction.savepoint()
    try:
        _settings(tenant, conversion_days=conv, retention_window_days=window)
        families = [ProductFamilyFactory(tenant=tenant) for _ in range(3)]
        journeys = {"upsell": _journey(tenant, "upsell"), "other": _journey(tenant, "reorder")}
        order_rows, message_rows, touch_rows, rfm, members = _write(
            tenant, families, people, orders, messages, touches, journeys
        )

        with clock.travel_to(NOW):
            rollups_refresh(tenant_id=tenant.pk, start=START, end=END)

        daily, segment = _expected_messages(
            order_rows, message_rows, touch_rows, rfm, members, conv
        )
        got = {
            (r.day, r.journey_id, r.step_id, r.channel, r.tier): _counts(r)
            for r in MessageDaily.objects.for_tenant(tenant)
        }
        assert got.keys() == daily.keys()
        for key, row in daily.items():
            assert got[key] == pytest.approx(_expect(**row)), key
        got = {
            (r.day, r.segment_id, r.channel): _counts(r)
            for r in SegmentMessageDaily.objects.for_tenant(tenant)
        }
        assert got.keys() == segment.keys()
        for key, row in segment.items():
            assert got[key] == pytest.approx(_expect(**row)), key
        assert {
            r.day: (r.first_buyers, r.returned) for r in RetentionDaily.objects.for_tenant(tenant)
        } == _expected_retention(order_rows, window)
        assert {
            (r.cohort, r.months): (r.size, r.active)
            for r in CohortMonthly.objects.for_tenant(tenant)
        } == _expected_cohorts(order_rows)
        assert {
            (r.day, r.family_id): (
                r.orders, r.reorders, r.buyers, r.upsell_orders, r.upsell_revenue
            )
            for r in FamilyDaily.objects.for_tenant(tenant)
        } == _expected_families(order_rows, message_rows, journeys["upsell"], conv)  # fmt: skip
    finally:
        transaction.savepoint_rollback(sid)
