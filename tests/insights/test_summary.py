"""The weekly summary: which week, when it is due, the email through the
outbox (once per recipient and week, to opted-in owners and marketers only),
its content against hand-made rollup rows, the printable page and the
insights admin screens."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from commerce.models import Touchpoint
from experiments.models import Experiment, ExperimentKind, ExperimentStatus
from feedback.models import Callback, CallbackStatus
from insights.models import (
    InsightsSettings,
    KpiTarget,
    MessageDaily,
    RetentionDaily,
    SummarySubscription,
    WeeklySummary,
)
from insights.services.setup import insights_settings
from insights.services.summary import (
    summaries_due,
    summary_build,
    summary_make,
    summary_send,
    summary_subscribe,
    summary_week,
)
from messaging.models import Category, Message, Status
from messaging.services.outbox import messaging_settings
from messaging.services.send import send_batch
from retention import clock
from retention.errors import Forbidden, InvalidInput
from retention.models import Membership, Role, Tenant
from retention.services import tenant_create
from segments.models import RisingInterestAlert, Segment
from tests.conftest import login_as
from tests.factories import CustomerFactory, JourneyFactory, MembershipFactory, UserFactory
from tests.fake_provider import FakeProvider

WEEK = date(2026, 6, 1)  # a Monday
PREVIOUS = date(2026, 5, 25)
# Monday 8 June 2026, 08:00 in Berlin (the fixtures' timezone, CEST = UTC+2).
NOW = datetime(2026, 6, 8, 6, 0, tzinfo=UTC)
PLATFORM_FROM = "Retention platform <alerts@retention.example.com>"


@pytest.fixture(autouse=True)
def _frozen_clock():
    clock.set_now(NOW)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The people made here never sign in with a password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def provider(fake_provider, settings) -> FakeProvider:
    """The fake SendGrid on 127.0.0.1; the store has no sender of its own."""
    settings.MESSAGING_FROM_EMAIL = ""
    settings.DEFAULT_FROM_EMAIL = PLATFORM_FROM
    return fake_provider


def member(tenant: Tenant, role: str, email: str, *, subscribed: bool = True):
    user = UserFactory(email=email)
    MembershipFactory(tenant=tenant, user=user, role=role)
    if subscribed:
        SummarySubscription.objects.create(tenant=tenant, user=user)
    return user


def summary_messages(tenant: Tenant) -> list[Message]:
    return list(Message.objects.for_tenant(tenant).filter(source="insights").order_by("to_address"))


# --- which week -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "week"),
    [
        # Berlin, summer (UTC+2): Monday 08:00 covers the week before.
        ("Europe/Berlin", datetime(2026, 6, 8, 6, 0, tzinfo=UTC), date(2026, 6, 1)),
        # Sunday 23:59 local: that week is not over yet.
        ("Europe/Berlin", datetime(2026, 6, 7, 21, 59, tzinfo=UTC), date(2026, 5, 25)),
        ("Europe/Berlin", datetime(2026, 6, 7, 22, 0, tzinfo=UTC), date(2026, 6, 1)),
        # Monday morning in UTC is still Sunday evening in Los Angeles ...
        ("America/Los_Angeles", datetime(2026, 6, 8, 6, 59, tzinfo=UTC), date(2026, 5, 25)),
        ("America/Los_Angeles", datetime(2026, 6, 8, 7, 0, tzinfo=UTC), date(2026, 6, 1)),
        # ... and Sunday noon in UTC is already Monday in Auckland.
        ("Pacific/Auckland", datetime(2026, 6, 7, 12, 0, tzinfo=UTC), date(2026, 6, 1)),
        # The week the clocks go forward (Sunday 29 March 2026 in Berlin): it
        # ends at Sunday 24:00 CEST, 22:00 UTC, not 23:00.
        ("Europe/Berlin", datetime(2026, 3, 29, 21, 59, tzinfo=UTC), date(2026, 3, 16)),
        ("Europe/Berlin", datetime(2026, 3, 29, 22, 0, tzinfo=UTC), date(2026, 3, 23)),
        # The week the clocks go back (Sunday 25 October 2026): ends at 23:00 UTC.
        ("Europe/Berlin", datetime(2026, 10, 25, 22, 59, tzinfo=UTC), date(2026, 10, 12)),
        ("Europe/Berlin", datetime(2026, 10, 25, 23, 0, tzinfo=UTC), date(2026, 10, 19)),
        # New York goes forward on 8 March 2026.
        ("America/New_York", datetime(2026, 3, 9, 3, 59, tzinfo=UTC), date(2026, 2, 23)),
        ("America/New_York", datetime(2026, 3, 9, 4, 0, tzinfo=UTC), date(2026, 3, 2)),
    ],
)
def test_the_summary_covers_the_last_full_week_in_the_store_timezone(zone, now, week):
    assert summary_week(Tenant(slug="x", timezone=zone), now) == week


# --- when it is due ---------------------------------------------------------------------------


def test_a_store_is_due_from_its_local_monday_0800_and_never_twice(tenant, other_tenant):
    other_tenant.timezone = "America/Los_Angeles"
    other_tenant.save()
    member(tenant, Role.MARKETER, "mia@alpha.example")
    member(other_tenant, Role.OWNER, "otto@bravo.example")
    # Los Angeles got the week before's summary the Monday before.
    summary_send(tenant=other_tenant, week_start=PREVIOUS)

    def due(at: datetime) -> list[tuple[int, date]]:
        clock.set_now(at)
        return summaries_due(at)

    assert due(datetime(2026, 6, 8, 5, 59, tzinfo=UTC)) == []  # 07:59 in Berlin
    assert due(datetime(2026, 6, 8, 6, 0, tzinfo=UTC)) == [(tenant.pk, WEEK)]
    assert summary_send(tenant=tenant, week_start=WEEK) == ["mia@alpha.example"]
    assert due(datetime(2026, 6, 8, 6, 15, tzinfo=UTC)) == []
    # 08:00 on Monday in Los Angeles is 15:00 UTC.
    assert due(datetime(2026, 6, 8, 14, 59, tzinfo=UTC)) == []
    assert due(datetime(2026, 6, 8, 15, 0, tzinfo=UTC)) == [(other_tenant.pk, WEEK)]
    assert summary_send(tenant=other_tenant, week_start=WEEK) == ["otto@bravo.example"]
    assert due(datetime(2026, 6, 10, 12, 0, tzinfo=UTC)) == []
    # The next Monday, the next week.
    assert due(datetime(2026, 6, 15, 6, 0, tzinfo=UTC)) == [(tenant.pk, date(2026, 6, 8))]
    assert due(datetime(2026, 6, 15, 15, 0, tzinfo=UTC)) == [
        (tenant.pk, date(2026, 6, 8)),
        (other_tenant.pk, date(2026, 6, 8)),
    ]


def test_the_summary_slot_follows_the_store_settings(tenant):
    member(tenant, Role.OWNER, "olga@alpha.example")
    config = insights_settings(tenant)
    config.summary_weekday, config.summary_hour = 2, 17  # Wednesdays at 17:00
    config.save()

    assert summaries_due(datetime(2026, 6, 8, 6, 0, tzinfo=UTC)) == []
    assert summaries_due(datetime(2026, 6, 10, 14, 59, tzinfo=UTC)) == []
    assert summaries_due(datetime(2026, 6, 10, 15, 0, tzinfo=UTC)) == [(tenant.pk, WEEK)]


def test_a_store_without_recipients_is_never_due_and_a_late_subscriber_is(tenant):
    member(tenant, Role.OWNER, "olga@alpha.example", subscribed=False)
    assert summaries_due(NOW) == []

    mia = member(tenant, Role.MARKETER, "mia@alpha.example")
    assert summaries_due(NOW) == [(tenant.pk, WEEK)]
    summary_send(tenant=tenant, week_start=WEEK)
    assert summaries_due(NOW) == []

    # Someone who opts in on Tuesday gets that week's summary, once.
    tom = member(tenant, Role.OWNER, "tom@alpha.example")
    assert summaries_due(NOW + timedelta(days=1)) == [(tenant.pk, WEEK)]
    assert summary_send(tenant=tenant, week_start=WEEK) == [
        "mia@alpha.example",
        "tom@alpha.example",
    ]
    assert summaries_due(NOW + timedelta(days=1)) == []
    keys = [m.idempotency_key for m in summary_messages(tenant)]
    assert keys == [f"summary:2026-06-01:{mia.pk}", f"summary:2026-06-01:{tom.pk}"]


def test_an_inactive_store_is_never_due(tenant):
    member(tenant, Role.OWNER, "olga@alpha.example")
    tenant.is_active = False
    tenant.save()
    assert summaries_due(NOW) == []


# --- the email -----------------------------------------------------------------------------


def test_the_email_goes_through_the_outbox_once_per_recipient_and_week(tenant, provider):
    olga = member(tenant, Role.OWNER, "olga@alpha.example")
    member(tenant, Role.MARKETER, "mia@alpha.example")

    first = summary_send(tenant=tenant, week_start=WEEK)
    again = summary_send(tenant=tenant, week_start=WEEK)

    assert first == again == ["mia@alpha.example", "olga@alpha.example"]
    messages = summary_messages(tenant)
    assert [(m.to_address, m.category, m.customer_id, m.channel) for m in messages] == [
        ("mia@alpha.example", Category.STAFF, None, "email"),
        ("olga@alpha.example", Category.STAFF, None, "email"),
    ]
    assert messages[1].idempotency_key == f"summary:2026-06-01:{olga.pk}"
    assert messages[0].subject == (
        "Alpha Store: weekly summary 1\u20137 June 2026, retention \u2013 (target 30%)"
    )
    assert WeeklySummary.objects.for_tenant(tenant).get().sent_to == [
        "mia@alpha.example",
        "olga@alpha.example",
    ]

    # The send path takes a staff email with no customer and no store sender.
    assert send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in messages]) == {"sent": 2}
    assert send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in messages]) == {}
    for m in messages:
        m.refresh_from_db()
        assert m.status == Status.SENT
        (call,) = provider.calls_for(m.pk)
        assert call.to == m.to_address
        assert call.body["from"] == {
            "email": "alerts@retention.example.com",
            "name": "Retention platform",
        }
    assert Touchpoint.objects.for_tenant(tenant).count() == 0


def test_a_staff_summary_ignores_quiet_hours_and_goes_from_the_store_sender(tenant, provider):
    ms = messaging_settings(tenant)
    ms.from_email, ms.from_name, ms.quiet_hours_enabled = "shop@alpha.example", "Alpha", True
    ms.save()
    member(tenant, Role.OWNER, "olga@alpha.example")
    night = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)  # 03:00 in Berlin
    clock.set_now(night)

    summary_send(tenant=tenant, week_start=WEEK)
    (message,) = summary_messages(tenant)

    assert send_batch(tenant_id=tenant.pk, message_ids=[message.pk]) == {"sent": 1}
    (call,) = provider.calls_for(message.pk)
    assert call.body["from"] == {"email": "shop@alpha.example", "name": "Alpha"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_make_one_summary_and_one_message_per_recipient(eager_tasks):
    tenant = tenant_create(slug="gamma", name="Gamma", timezone="Europe/Berlin").tenant
    member(tenant, Role.OWNER, "olga@gamma.example")
    member(tenant, Role.MARKETER, "mia@gamma.example")
    barrier = threading.Barrier(3)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(summary_send(tenant=tenant, week_start=WEEK))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert results == [["mia@gamma.example", "olga@gamma.example"]] * 3
    assert WeeklySummary.objects.for_tenant(tenant).count() == 1
    assert [m.to_address for m in summary_messages(tenant)] == [
        "mia@gamma.example",
        "olga@gamma.example",
    ]


def test_only_opted_in_owners_and_marketers_get_it(tenant, other_tenant):
    member(tenant, Role.OWNER, "olga@alpha.example")
    member(tenant, Role.MARKETER, "mia@alpha.example")
    member(tenant, Role.MARKETER, "quiet@alpha.example", subscribed=False)
    agent = member(tenant, Role.AGENT, "ada@alpha.example")  # subscribed before the rule
    member(tenant, Role.VIEWER, "vic@alpha.example")
    removed = member(tenant, Role.MARKETER, "gone@alpha.example")
    Membership.objects.for_tenant(tenant).filter(user=removed).delete()
    demoted = member(tenant, Role.OWNER, "demoted@alpha.example")
    Membership.objects.for_tenant(tenant).filter(user=demoted).update(role=Role.VIEWER)
    inactive = member(tenant, Role.OWNER, "left@alpha.example")
    inactive.is_active = False
    inactive.save()
    # Subscribed in another store only.
    member(other_tenant, Role.OWNER, "otto@bravo.example")
    MembershipFactory(tenant=tenant, user=UserFactory(email="otto2@x.example"), role=Role.OWNER)

    assert summary_send(tenant=tenant, week_start=WEEK) == [
        "mia@alpha.example",
        "olga@alpha.example",
    ]
    assert [m.to_address for m in summary_messages(tenant)] == [
        "mia@alpha.example",
        "olga@alpha.example",
    ]
    assert summary_messages(other_tenant) == []
    assert SummarySubscription.objects.for_tenant(tenant).filter(user=agent).exists()


def test_only_owners_and_marketers_may_subscribe(tenant, other_tenant):
    agent = member(tenant, Role.AGENT, "ada@alpha.example", subscribed=False)
    marketer = member(tenant, Role.MARKETER, "mia@alpha.example", subscribed=False)
    stranger = member(other_tenant, Role.OWNER, "otto@bravo.example", subscribed=False)

    with pytest.raises(Forbidden, match="Only owners and marketers of Alpha Store"):
        summary_subscribe(tenant=tenant, user=agent)
    with pytest.raises(Forbidden, match="not a member"):
        summary_subscribe(tenant=tenant, user=stranger)
    summary_subscribe(tenant=tenant, user=marketer)
    summary_subscribe(tenant=tenant, user=marketer)

    assert list(
        SummarySubscription.objects.for_tenant(tenant).values_list("user__email", flat=True)
    ) == ["mia@alpha.example"]


def test_a_summary_is_made_once_and_only_for_a_week_that_is_over(tenant):
    made = summary_make(tenant=tenant, week_start=WEEK)
    clock.set_now(NOW + timedelta(days=3))
    assert summary_make(tenant=tenant, week_start=WEEK).data == made.data

    with pytest.raises(InvalidInput, match="not over yet"):
        summary_make(tenant=tenant, week_start=date(2026, 6, 8))
    with pytest.raises(InvalidInput, match="Monday"):
        summary_make(tenant=tenant, week_start=date(2026, 6, 2))
    assert WeeklySummary.objects.for_tenant(tenant).count() == 1


# --- the content --------------------------------------------------------------------------


def _messages(tenant, day, journey_id, *, channel="email", **counts):
    MessageDaily.objects.create(
        tenant=tenant, day=day, journey_id=journey_id, channel=channel, **counts
    )


def _counts(sent, delivered, opened, clicked, converted, unsubscribed=0):
    return dict(
        messages=sent,
        sent=sent,
        delivered=delivered,
        opened=opened,
        clicked=clicked,
        converted=converted,
        unsubscribed=unsubscribed,
    )


def _callback(tenant, customer, key, due_by, **fields):
    return Callback.objects.create(
        tenant=tenant,
        customer=customer,
        reason="unhappy",
        source="survey",
        due_by=due_by,
        idempotency_key=key,
        **fields,
    )


def _utc(day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def week_rows(tenant, other_tenant):
    """A small week of rollup rows (and callbacks, alerts and experiments),
    with rows just outside the week and the other store's rows on the same days."""
    # Retention: the summarised week's cohort is 3-9 March (90 days before),
    # the week before's 24 February - 2 March.
    for day, window, buyers, returned in [
        (date(2026, 3, 3), 90, 10, 4),
        (date(2026, 3, 9), 90, 10, 2),
        (date(2026, 3, 10), 90, 100, 100),  # the next cohort
        (date(2026, 3, 2), 90, 20, 5),
        (date(2026, 2, 24), 60, 50, 50),  # another window: does not count
    ]:
        RetentionDaily.objects.create(
            tenant=tenant, day=day, window_days=window, first_buyers=buyers, returned=returned
        )
    RetentionDaily.objects.create(
        tenant=other_tenant, day=date(2026, 3, 4), window_days=90, first_buyers=99, returned=99
    )

    welcome = JourneyFactory(tenant=tenant, name="Welcome")
    winback = JourneyFactory(tenant=tenant, name="Winback")
    reorder = JourneyFactory(tenant=tenant, name="Reorder")
    small = JourneyFactory(tenant=tenant, name="Small")
    survey = JourneyFactory(tenant=tenant, name="Survey")
    cart = JourneyFactory(tenant=tenant, name="Cart")
    theirs = JourneyFactory(tenant=other_tenant, name="BRAVO-SECRET-JOURNEY")
    # This week.
    _messages(tenant, date(2026, 6, 1), welcome.pk, **_counts(60, 60, 30, 6, 6))
    _messages(tenant, date(2026, 6, 7), welcome.pk, channel="sms", **_counts(40, 40, 0, 0, 4))
    _messages(tenant, date(2026, 6, 3), winback.pk, **_counts(50, 45, 9, 1, 1, 2))
    _messages(tenant, date(2026, 6, 5), reorder.pk, **_counts(20, 20, 10, 4, 4))
    _messages(tenant, date(2026, 6, 2), small.pk, **_counts(10, 10, 10, 10, 10))
    _messages(tenant, date(2026, 6, 2), survey.pk, **_counts(40, 40, 4, 0, 0))
    _messages(tenant, date(2026, 6, 6), cart.pk, **_counts(25, 25, 5, 2, 1))
    _messages(tenant, date(2026, 6, 4), 0, **_counts(20, 20, 1, 0, 0))
    # The week before.
    _messages(tenant, date(2026, 5, 25), welcome.pk, **_counts(100, 100, 50, 5, 5))
    _messages(tenant, date(2026, 5, 31), winback.pk, **_counts(50, 50, 10, 1, 2))
    # Outside both weeks, and another store's.
    _messages(tenant, date(2026, 6, 8), welcome.pk, **_counts(900, 900, 900, 900, 900))
    _messages(tenant, date(2026, 5, 24), welcome.pk, **_counts(900, 900, 0, 0, 0))
    _messages(other_tenant, date(2026, 6, 2), theirs.pk, **_counts(500, 500, 500, 500, 500))

    # Callbacks: Berlin's week runs 31 May 22:00 UTC to 7 June 22:00 UTC.
    customer = CustomerFactory(tenant=tenant)
    _callback(tenant, customer, "met", _utc(2, 10), first_contact_at=_utc(2, 9))
    _callback(tenant, customer, "late", _utc(3, 10), first_contact_at=_utc(3, 11))
    _callback(
        tenant,
        customer,
        "resolved",
        _utc(4, 10),
        status=CallbackStatus.DONE,
        done_at=_utc(4, 9, 59),
    )
    _callback(tenant, customer, "missed", _utc(5, 10))
    _callback(tenant, customer, "cancelled", _utc(6, 10), status=CallbackStatus.CANCELLED)
    _callback(tenant, customer, "week-before", _utc(31, 21, 59, month=5))
    _callback(tenant, customer, "sunday-night", _utc(7, 21, 59), first_contact_at=_utc(7, 21))
    _callback(tenant, customer, "next-week", _utc(7, 22))
    _callback(other_tenant, CustomerFactory(tenant=other_tenant), "theirs", _utc(3, 10))

    segment = Segment.objects.create(tenant=tenant, name="Coffee lovers", slug="coffee")
    their_segment = Segment.objects.create(
        tenant=other_tenant, name="BRAVO-SECRET-SEGMENT", slug="secret"
    )
    for seg, day, rise, baseline_zero in [
        (segment, date(2026, 6, 2), 62.5, False),
        (segment, date(2026, 6, 7), 0.0, True),
        (segment, date(2026, 5, 31), 80.0, False),
        (segment, date(2026, 6, 8), 90.0, False),
        (their_segment, date(2026, 6, 3), 70.0, False),
    ]:
        RisingInterestAlert.objects.create(
            tenant=seg.tenant,
            segment=seg,
            day=day,
            members=40,
            current_per_member=1.3,
            baseline_per_member=0.8,
            rise_pct=rise,
            breakdown={"baseline_zero": baseline_zero},
        )

    for name, status, started, stopped in [
        ("Welcome holdout", ExperimentStatus.RUNNING, _utc(20, 8, month=5), None),
        ("Subject test", ExperimentStatus.STOPPED, _utc(3, 8), _utc(9, 8)),
        ("Old test", ExperimentStatus.STOPPED, _utc(1, 8, month=5), _utc(30, 8, month=5)),
        ("Draft", ExperimentStatus.DRAFT, None, None),
    ]:
        Experiment.objects.create(
            tenant=tenant,
            name=name,
            kind=ExperimentKind.HOLDOUT,
            hypothesis="h",
            journey=welcome,
            status=status,
            started_at=started,
            stopped_at=stopped,
        )
    Experiment.objects.create(
        tenant=other_tenant,
        name="BRAVO-SECRET-EXPERIMENT",
        kind=ExperimentKind.HOLDOUT,
        hypothesis="h",
        journey=theirs,
        status=ExperimentStatus.RUNNING,
        started_at=_utc(20, 8, month=5),
    )
    return {"welcome": welcome, "winback": winback, "reorder": reorder, "cart": cart}


def test_the_summary_content_against_hand_computed_rows(tenant, week_rows):
    data = summary_build(tenant=tenant, week_start=WEEK)
    welcome, winback = week_rows["welcome"].pk, week_rows["winback"].pk
    reorder, cart = week_rows["reorder"].pk, week_rows["cart"].pk
    survey = next(j for j in data["journeys"]["bottom"] if j["journey"] == "Survey")["journey_id"]

    assert data["week"] == {"start": "2026-06-01", "end": "2026-06-07"}
    assert data["retention"] == {
        "cohort_start": "2026-03-03",
        "cohort_end": "2026-03-09",
        "first_buyers": 20,
        "returned": 6,
        "rate": 0.3,
        "window_days": 90,
        "previous": {
            "cohort_start": "2026-02-24",
            "cohort_end": "2026-03-02",
            "first_buyers": 20,
            "returned": 5,
            "rate": 0.25,
        },
        "change": 0.05,
        "target": 0.3,
        "rag": "green",
    }
    # This week: sent 265, delivered 260, opened 69, clicked 23, converted 26,
    # unsubscribed 2. The week before: 150, 150, 60, 6, 7, 0.
    assert [(k["kpi"], k["value"], k["previous"], k["change"], k["rag"]) for k in data["kpis"]] == [
        ("delivery_rate", 0.981132, 1.0, -0.018868, "green"),
        ("open_rate", 0.265385, 0.4, -0.134615, "green"),
        ("click_rate", 0.088462, 0.04, 0.048462, "green"),
        ("conversion_rate", 0.098113, 0.046667, 0.051446, "green"),
        ("unsubscribe_rate", 0.007547, 0.0, 0.007547, "red"),
    ]
    assert [(m["journey_id"], m["kpi"], m["previous"], m["value"]) for m in data["moved"]] == [
        (welcome, "open_rate", 0.5, 0.3),
        (welcome, "conversion_rate", 0.05, 0.1),
        (winback, "conversion_rate", 0.04, 0.02),
        (welcome, "click_rate", 0.05, 0.06),
        (winback, "click_rate", 0.02, 0.022222),
    ]
    assert [m["change"] for m in data["moved"]] == [-0.2, 0.05, -0.02, 0.01, 0.002222]
    assert data["journeys"] == {
        "min_sent": 20,
        "top": [
            {"journey_id": reorder, "journey": "Reorder", "sent": 20, "converted": 4,
             "conversion_rate": 0.2, "rag": "green"},
            {"journey_id": welcome, "journey": "Welcome", "sent": 100, "converted": 10,
             "conversion_rate": 0.1, "rag": "green"},
            {"journey_id": cart, "journey": "Cart", "sent": 25, "converted": 1,
             "conversion_rate": 0.04, "rag": "green"},
        ],
        "bottom": [
            {"journey_id": survey, "journey": "Survey", "sent": 40, "converted": 0,
             "conversion_rate": 0.0, "rag": "red"},
            {"journey_id": winback, "journey": "Winback", "sent": 50, "converted": 1,
             "conversion_rate": 0.02, "rag": "green"},
        ],
    }  # fmt: skip
    assert data["callbacks"] == {"due": 5, "met": 3, "missed": 2, "met_rate": 0.6}
    assert [(a["segment"], a["day"], a["rise_pct"], a["new"]) for a in data["alerts"]] == [
        ("Coffee lovers", "2026-06-02", 62.5, False),
        ("Coffee lovers", "2026-06-07", 0.0, True),
    ]
    assert [(e["name"], e["journey"], e["started"]) for e in data["experiments"]] == [
        ("Welcome holdout", "Welcome", "2026-05-20"),
        ("Subject test", "Welcome", "2026-06-03"),
    ]


def test_the_email_says_what_the_rows_say(tenant, week_rows):
    member(tenant, Role.OWNER, "olga@alpha.example")
    summary_send(tenant=tenant, week_start=WEEK)
    (message,) = summary_messages(tenant)

    assert message.subject == (
        "Alpha Store: weekly summary 1\u20137 June 2026, retention 30.0% (target 30%)"
    )
    text = message.body_text
    assert (
        "30.0% of first-time buyers ordered again within 90 days "
        "(6 of 20; first orders 3\u20139 March 2026)."
    ) in text
    assert "Week before: 25.0% (+5.0 pts). Target: 30%, on target." in text
    assert "Welcome, open rate: 50.0% -> 30.0% (\u221220.0 pts)" in text
    assert "1. Reorder: 20.0% (4 of 20)" in text
    assert "1. Survey: 0.0% (0 of 40)" in text
    assert "3 of 5 callbacks due this week had their first contact in time (60.0%)" in text
    assert "Tue 2 Jun: Coffee lovers (40 members), +62%" in text
    assert "Sun 7 Jun: Coffee lovers (40 members), new activity" in text
    assert "Welcome holdout (Welcome, since 2026-05-20, running)" in text
    assert "Printable page: http://127.0.0.1:8000/dashboard/summary/2026-06-01/?store=alpha" in (
        text
    )
    assert 'href="http://127.0.0.1:8000/dashboard/summary/2026-06-01/?store=alpha"' in (
        message.body_html
    )
    for marker in ("BRAVO", "Bravo Store"):
        assert marker not in text
        assert marker not in message.body_html


# --- the printable page -------------------------------------------------------------------

PAGE = "/dashboard/summary/2026-06-01/"


def test_anyone_in_the_store_may_read_the_page(tenant, week_rows):
    for role in (Role.OWNER, Role.MARKETER, Role.AGENT, Role.VIEWER):
        page = login_as(tenant, role).get(PAGE)
        assert page.status_code == 200, role
        assert "Alpha Store: weekly summary" in page.content.decode()
    assert reverse("dashboard-summary-week", args=["2026-06-01"]) == PAGE


def test_the_page_shows_the_summary_and_nothing_of_another_store(tenant, week_rows):
    page = login_as(tenant, Role.VIEWER).get(PAGE)
    html = page.content.decode()

    assert "1\u20137 June 2026" in html
    assert "30.0%" in html and "Coffee lovers" in html and "Reorder" in html
    assert "@media print" in html
    for marker in ("BRAVO", "Bravo Store", "bravo"):
        assert marker not in html
    # Built on the first view, a past week only.
    assert WeeklySummary.objects.for_tenant(tenant).filter(week_start=WEEK).count() == 1


def test_anonymous_people_go_to_the_login(tenant):
    page = Client().get(PAGE)
    assert page.status_code == 302
    assert page["Location"] == f"/admin/login/?next={PAGE}"
    assert WeeklySummary.objects.for_tenant(tenant).count() == 0


def test_a_person_in_no_store_is_refused(tenant):
    client = Client()
    client.force_login(UserFactory(email="nobody@example.com"))
    assert client.get(PAGE).status_code == 403
    assert client.get("/dashboard/summary/").status_code == 403
    assert WeeklySummary.objects.for_tenant(tenant).count() == 0


def test_another_stores_summary_is_a_404(tenant, other_tenant):
    client = login_as(tenant, Role.OWNER)
    # Bravo's summary of a week that is not over for anyone yet.
    WeeklySummary.objects.create(
        tenant=other_tenant, week_start=date(2026, 6, 8), data={"store": "Bravo Store"}
    )
    assert client.get("/dashboard/summary/2026-06-08/").status_code == 404
    assert client.get(f"{PAGE}?store=bravo").status_code == 404
    assert client.get(f"{PAGE}?store=no-such-store").status_code == 404
    assert WeeklySummary.objects.for_tenant(tenant).count() == 0


def test_a_week_that_is_not_a_past_monday_is_a_404(tenant):
    client = login_as(tenant, Role.OWNER)
    for url in (
        "/dashboard/summary/2026-06-02/",  # a Tuesday
        "/dashboard/summary/2026-02-30/",  # no such day
        "/dashboard/summary/2026-06-08/",  # this week
        "/dashboard/summary/2024-01-01/",  # too long ago to build now
    ):
        assert client.get(url).status_code == 404, url
    assert WeeklySummary.objects.for_tenant(tenant).count() == 0


def test_the_latest_page_is_the_last_full_week(tenant):
    client = login_as(tenant, Role.VIEWER)
    page = client.get("/dashboard/summary/")
    assert (page.status_code, page["Location"]) == (302, PAGE)


def test_the_email_link_opens_the_named_store_for_a_person_in_two(tenant, other_tenant):
    user = UserFactory(email="both@example.com")
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)
    MembershipFactory(tenant=other_tenant, user=user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    session = client.session
    session["tenant_id"] = tenant.pk
    session.save()

    html = client.get(f"{PAGE}?store=bravo").content.decode()
    assert "Bravo Store: weekly summary" in html
    assert "Alpha Store" not in html
    assert client.get(PAGE).content.decode().count("Alpha Store: weekly summary") == 1


# --- the admin --------------------------------------------------------------------------


def test_the_settings_screen_goes_to_the_store_row_and_saves_percent(tenant):
    client = login_as(tenant, Role.MARKETER)
    page = client.get(reverse("admin:insights_insightssettings_changelist"))
    row = InsightsSettings.objects.for_tenant(tenant).get()
    url = reverse("admin:insights_insightssettings_change", args=[row.pk])
    assert (page.status_code, page["Location"]) == (302, url)
    form = client.get(url)
    assert form.status_code == 200 and 'value="30"' in form.content.decode()

    saved = client.post(
        url,
        {
            "retention_window_days": "60",
            "retention_target": "35",
            "conversion_days": "7",
            "summary_weekday": "2",
            "summary_hour": "17",
        },
    )
    assert saved.status_code == 302
    row.refresh_from_db()
    assert (row.retention_window_days, row.retention_target) == (60, 0.35)
    assert (row.summary_weekday, row.summary_hour) == (2, 17)


def test_kpi_targets_are_listed_with_the_defaults_and_edited_in_the_list(tenant):
    client = login_as(tenant, Role.MARKETER)
    url = reverse("admin:insights_kpitarget_changelist")
    page = client.get(url)
    assert page.status_code == 200
    targets = KpiTarget.objects.for_tenant(tenant)
    assert targets.count() == 15
    target = targets.get(tier="", kpi="open_rate")

    def edit(low: str, high: str):
        return client.post(
            url,
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-MIN_NUM_FORMS": "0",
                "form-MAX_NUM_FORMS": "1000",
                "form-0-id": str(target.pk),
                "form-0-low": low,
                "form-0-high": high,
                "_save": "Save",
            },
        )

    refused = edit("40", "25")
    assert refused.status_code == 200
    assert (
        "The low end of the range (40%) is above its high end (25%): "
        "the low end must be at most the high end."
    ) in refused.content.decode()
    target.refresh_from_db()
    assert (target.low, target.high) == (0.15, 0.30)

    assert edit("20", "35").status_code == 302
    target.refresh_from_db()
    assert (target.low, target.high) == (0.2, 0.35)


def test_a_new_kpi_target_is_validated(tenant):
    client = login_as(tenant, Role.OWNER)
    client.get(reverse("admin:insights_kpitarget_changelist"))
    KpiTarget.objects.for_tenant(tenant).filter(tier="one_time", kpi="open_rate").delete()
    add = reverse("admin:insights_kpitarget_add")

    refused = client.post(add, {"tier": "one_time", "kpi": "open_rate", "low": "9", "high": "3"})
    assert "The low end of the range (9%) is above its high end (3%)" in refused.content.decode()
    duplicate = client.post(add, {"tier": "", "kpi": "open_rate", "low": "1", "high": "3"})
    assert "There is already a target for Open rate (All customers)" in (duplicate.content.decode())
    made = client.post(add, {"tier": "one_time", "kpi": "open_rate", "low": "12", "high": "22"})
    assert made.status_code == 302
    target = KpiTarget.objects.for_tenant(tenant).get(tier="one_time", kpi="open_rate")
    assert (target.low, target.high) == (0.12, 0.22)


def test_a_viewer_reads_but_cannot_edit_kpi_targets(tenant):
    client = login_as(tenant, Role.VIEWER)
    page = client.get(reverse("admin:insights_kpitarget_changelist"))
    assert page.status_code == 200
    assert "form-0-low" not in page.content.decode()
    assert client.get(reverse("admin:insights_kpitarget_add")).status_code == 403


def test_a_member_subscribes_themself_and_only_owners_and_marketers_may(tenant):
    email_me = reverse("admin:insights_summarysubscription_email_me")
    changelist = reverse("admin:insights_summarysubscription_changelist")
    marketer = login_as(tenant, Role.MARKETER)
    agent = login_as(tenant, Role.AGENT)

    assert "Email me the weekly summary" in marketer.get(changelist).content.decode()
    assert marketer.post(email_me, {"subscribe": "1"}).status_code == 302
    listed = marketer.get(changelist).content.decode()
    assert "marketer@alpha.example" in listed and "Stop emailing me" in listed

    agent_page = agent.get(changelist).content.decode()
    assert "Only owners and marketers can get the weekly summary" in agent_page
    refused = agent.post(email_me, {"subscribe": "1"}, follow=True)
    assert "Only owners and marketers of Alpha Store can get the weekly summary" in (
        refused.content.decode()
    )
    assert list(
        SummarySubscription.objects.for_tenant(tenant).values_list("user__email", flat=True)
    ) == ["marketer@alpha.example"]

    assert marketer.post(email_me, {"subscribe": "0"}).status_code == 302
    assert SummarySubscription.objects.for_tenant(tenant).count() == 0
    assert marketer.get(email_me).status_code == 405


def test_the_summaries_list_is_read_only_with_a_link_to_the_page(tenant, other_tenant):
    summary_make(tenant=tenant, week_start=WEEK)
    theirs = WeeklySummary.objects.create(
        tenant=other_tenant, week_start=PREVIOUS, data={"store": "Bravo Store"}
    )
    client = login_as(tenant, Role.VIEWER)
    page = client.get(reverse("admin:insights_weeklysummary_changelist"))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'href="{PAGE}?store=alpha"' in html
    assert "25\u201331 May 2026" not in html
    mine = WeeklySummary.objects.for_tenant(tenant).get()
    change = "admin:insights_weeklysummary_change"
    assert client.get(reverse(change, args=[mine.pk])).status_code == 200
    assert client.get(reverse(change, args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:insights_weeklysummary_add")).status_code == 403
