"""Rising-interest alerts: the rule, once a day, emails to opted-in owners,
tenant isolation and the admin screens."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import segments.alerts_admin  # noqa: F401  (registers the screens until segments/admin.py lands)
from commerce.models import Customer, OrderStatus, Touchpoint
from retention import clock
from retention.errors import Forbidden
from retention.models import AuditEntry, Membership, Role
from segments.models import (
    AlertSubscription,
    CustomerRFM,
    RisingInterestAlert,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    Tier,
)
from segments.services.alerts import (
    alert_acknowledge,
    alert_subscribe,
    alert_unsubscribe,
    rising_interest_check,
    segment_engagement,
)
from segments.services.setup import segment_settings, tier_segments
from tests.conftest import login_as
from tests.factories import CustomerFactory, UserFactory, make_order

# 10:00 in Berlin (the fixtures' timezone): tenant-local day 2026-03-10.
AS_OF = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
CURRENT = (AS_OF - timedelta(days=7), AS_OF)
BASELINE = (AS_OF - timedelta(days=35), AS_OF - timedelta(days=7))


@pytest.fixture(autouse=True)
def _frozen_clock():
    clock.set_now(AS_OF)


def _settings(tenant, *, threshold_pct=50, min_members=5):
    config = segment_settings(tenant)
    config.rising_threshold_pct = threshold_pct
    config.rising_min_members = min_members
    config.save()
    return config


def _rule_segment(tenant, members: int, slug: str = "runners") -> tuple[Segment, list[Customer]]:
    segment = Segment.objects.create(
        tenant=tenant, name=slug.title(), slug=slug, kind=SegmentKind.RULE
    )
    customers = CustomerFactory.create_batch(members, tenant=tenant)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(tenant=tenant, segment=segment, customer=c) for c in customers
    )
    return segment, customers


def _tier_members(tenant, members: int, tier: str = Tier.HIGH_VALUE_REPEAT) -> list[Customer]:
    customers = CustomerFactory.create_batch(members, tenant=tenant)
    CustomerRFM.objects.bulk_create(
        CustomerRFM(
            tenant=tenant,
            customer=c,
            first_order_at=AS_OF - timedelta(days=200),
            last_order_at=AS_OF - timedelta(days=40),
            orders_total=3,
            frequency=3,
            monetary=Decimal("300.00"),
            r_score=3,
            f_score=4,
            m_score=5,
            tier=tier,
        )
        for c in customers
    )
    return customers


def _touch(customers, count: int, period, *, kind="page.viewed", tenant_id=None) -> None:
    """``count`` touchpoints spread evenly over ``period``, round-robin over customers."""
    if not count:
        return
    start, end = period
    step = (end - start) / count
    Touchpoint.objects.bulk_create(
        Touchpoint(
            tenant_id=tenant_id or customers[0].tenant_id,
            customer=customers[i % len(customers)],
            category="marketing" if kind.startswith("message.") else "product",
            kind=kind,
            occurred_at=start + step * i,
        )
        for i in range(count)
    )


def _visits(customers, *, current: int, baseline: int) -> None:
    _touch(customers, baseline, BASELINE)
    _touch(customers, current, CURRENT)


# --- the rule ---------------------------------------------------------------------


def test_rise_above_threshold_raises_exactly_one_alert(tenant):
    _settings(tenant, threshold_pct=50)
    segment, people = _rule_segment(tenant, 10)
    # Baseline: 40 events in 4 weeks = 1.0 per member per week; now 2.0 (+100%).
    for i in range(10):
        make_order(people[i], BASELINE[0] + timedelta(days=1 + i))
        make_order(people[i], CURRENT[0] + timedelta(hours=1 + i))
    _touch(people, 10, BASELINE, kind="message.clicked")
    _touch(people, 5, CURRENT, kind="message.clicked")
    _touch(people, 20, BASELINE, kind="product.viewed")
    _touch(people, 5, CURRENT, kind="session.started")
    # Not engagement: cancelled and refunded orders, other touchpoint kinds.
    make_order(people[0], CURRENT[0] + timedelta(days=1), status=OrderStatus.CANCELLED)
    make_order(people[1], CURRENT[0] + timedelta(days=1), status=OrderStatus.REFUNDED)
    _touch(people, 30, CURRENT, kind="message.opened")

    alerts = rising_interest_check(tenant)

    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.segment == segment
    assert alert.day == datetime(2026, 3, 10).date()
    assert alert.members == 10
    assert alert.current_per_member == 2.0
    assert alert.baseline_per_member == 1.0
    assert alert.rise_pct == 100.0
    assert alert.breakdown == {
        "current": {"orders": 10, "clicks": 5, "visits": 5},
        "baseline": {"orders": 10, "clicks": 10, "visits": 20},
        "current_days": 7,
        "baseline_weeks": 4,
        "baseline_zero": False,
    }
    assert RisingInterestAlert.objects.for_tenant(tenant).count() == 1


def test_just_below_the_threshold_raises_nothing(tenant):
    _settings(tenant, threshold_pct=50)
    _, people = _rule_segment(tenant, 10)
    _visits(people, current=14, baseline=40)  # 1.4 per member vs 1.0: +40%

    assert rising_interest_check(tenant) == []
    assert not RisingInterestAlert.objects.for_tenant(tenant).exists()


def test_a_rise_of_exactly_the_threshold_raises_an_alert(tenant):
    _settings(tenant, threshold_pct=50)
    _, people = _rule_segment(tenant, 10)
    _visits(people, current=15, baseline=40)  # 1.5 vs 1.0: exactly +50%

    [alert] = rising_interest_check(tenant)
    assert alert.rise_pct == pytest.approx(50.0)


def test_the_threshold_is_the_tenants(tenant):
    _settings(tenant, threshold_pct=200)
    _, people = _rule_segment(tenant, 10)
    _visits(people, current=20, baseline=40)  # +100%, the tenant wants +200%

    assert rising_interest_check(tenant) == []


def test_periods_are_half_open(tenant):
    """[as_of-35d, as_of-7d) is the baseline, [as_of-7d, as_of) the current week."""
    _settings(tenant)
    segment, people = _rule_segment(tenant, 10)
    _touch(people, 1, (BASELINE[0], BASELINE[0] + timedelta(seconds=1)))  # baseline
    _touch(people, 1, (BASELINE[0] - timedelta(seconds=1), BASELINE[0]))  # too old
    _touch(people, 1, (CURRENT[0], CURRENT[0] + timedelta(seconds=1)))  # current
    _touch(people, 1, (AS_OF, AS_OF + timedelta(seconds=1)))  # the future

    [engagement] = segment_engagement(tenant=tenant, as_of=AS_OF)
    assert engagement.segment_id == segment.pk
    assert engagement.current == {"orders": 0, "clicks": 0, "visits": 1}
    assert engagement.baseline == {"orders": 0, "clicks": 0, "visits": 1}


def test_zero_baseline_alerts_only_from_the_floor_of_one_event_per_20_members(tenant):
    _settings(tenant, min_members=5)
    _, people = _rule_segment(tenant, 40)
    _visits(people, current=1, baseline=0)  # 0.025 per member

    assert rising_interest_check(tenant) == []

    _touch(people, 1, CURRENT, kind="message.clicked")  # 2 / 40 = 0.05
    [alert] = rising_interest_check(tenant)
    assert alert.baseline_per_member == 0.0
    assert alert.current_per_member == 0.05
    assert alert.breakdown["baseline_zero"] is True
    assert alert.rise_pct == pytest.approx(0.0)  # measured against the floor


def test_no_engagement_at_all_raises_nothing(tenant):
    _settings(tenant, min_members=1)
    _rule_segment(tenant, 10)

    assert rising_interest_check(tenant) == []


def test_segments_smaller_than_the_minimum_are_skipped(tenant):
    _settings(tenant, min_members=20)
    _, small = _rule_segment(tenant, 19, slug="small")
    _, large = _rule_segment(tenant, 20, slug="large")
    _visits(small, current=100, baseline=4)
    _visits(large, current=100, baseline=4)

    alerts = rising_interest_check(tenant)

    assert [a.segment.slug for a in alerts] == ["large"]
    assert alerts[0].members == 20


def test_tier_segments_use_rfm_rows_and_merged_customers_are_not_members(tenant):
    _settings(tenant, min_members=5)
    tiers = tier_segments(tenant)
    people = _tier_members(tenant, 10)
    _tier_members(tenant, 3, tier=Tier.ONE_TIME)  # too few to count
    merged = people[-1]
    merged.merged_into = people[0]
    merged.save()
    _visits(people[:9], current=18, baseline=36)  # 2.0 vs 1.0 per member of 9
    _touch([merged], 50, CURRENT)  # a tombstone's events are nobody's

    [alert] = rising_interest_check(tenant)

    assert alert.segment == tiers[Tier.HIGH_VALUE_REPEAT]
    assert alert.members == 9
    assert alert.current_per_member == 2.0
    assert alert.baseline_per_member == 1.0


def test_archived_segments_never_alert(tenant):
    _settings(tenant)
    segment, people = _rule_segment(tenant, 10)
    segment.status = SegmentStatus.ARCHIVED
    segment.save()
    _visits(people, current=40, baseline=4)

    assert rising_interest_check(tenant) == []


def test_all_segments_are_measured_in_one_statement(tenant):
    _settings(tenant, min_members=1)
    _tier_members(tenant, 5)
    for slug in ("a", "b", "c", "d"):
        _, people = _rule_segment(tenant, 5, slug=slug)
        _visits(people, current=2, baseline=1)

    with CaptureQueriesContext(connection) as queries:
        engagement = segment_engagement(tenant=tenant, as_of=AS_OF)

    assert len(engagement) == 5
    assert len(queries) == 1


# --- once a day ---------------------------------------------------------------------


def test_rerun_the_same_day_raises_nothing_new(tenant):
    _settings(tenant)
    _, people = _rule_segment(tenant, 10)
    _visits(people, current=30, baseline=40)
    [first] = rising_interest_check(tenant)

    assert rising_interest_check(tenant) == []
    assert rising_interest_check(tenant.pk) == []  # as the nightly task calls it
    # Later the same day in Berlin (23:30 local).
    assert rising_interest_check(tenant, as_of=AS_OF + timedelta(hours=13, minutes=30)) == []
    assert list(RisingInterestAlert.objects.for_tenant(tenant)) == [first]


def test_the_next_tenant_local_day_can_raise_again(tenant):
    _settings(tenant)
    segment, people = _rule_segment(tenant, 10)
    _visits(people, current=30, baseline=40)
    rising_interest_check(tenant, as_of=datetime(2026, 3, 9, 22, 30, tzinfo=UTC))  # 23:30 Berlin

    # 00:30 in Berlin is already the next day there, though still 9 March in UTC.
    [alert] = rising_interest_check(tenant, as_of=datetime(2026, 3, 9, 23, 30, tzinfo=UTC))

    assert alert.segment == segment
    days = RisingInterestAlert.objects.for_tenant(tenant).values_list("day", flat=True)
    assert sorted(str(d) for d in days) == ["2026-03-09", "2026-03-10"]


# --- email ------------------------------------------------------------------------


@pytest.fixture
def owners(tenant):
    """Two owners who opted in, one who did not, and a marketer."""
    people = {}
    for name, role in (
        ("ann", Role.OWNER),
        ("bea", Role.OWNER),
        ("cid", Role.OWNER),
        ("dan", Role.MARKETER),
    ):
        user = UserFactory(email=f"{name}@alpha.example")
        Membership.objects.create(tenant=tenant, user=user, role=role)
        people[name] = user
    alert_subscribe(tenant=tenant, user=people["ann"])
    alert_subscribe(tenant=tenant, user=people["bea"])
    return people


def _rising(tenant):
    _settings(tenant)
    segment, people = _rule_segment(tenant, 10)
    _visits(people, current=30, baseline=40)
    return segment


def test_opted_in_owners_get_one_email_after_commit(
    tenant, owners, django_capture_on_commit_callbacks
):
    segment = _rising(tenant)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [alert] = rising_interest_check(tenant)
    assert mail.outbox == []  # nothing goes out before the alert is committed
    for callback in callbacks:
        callback()

    assert sorted(m.to[0] for m in mail.outbox) == ["ann@alpha.example", "bea@alpha.example"]
    assert all(len(m.to) == 1 for m in mail.outbox)
    message = mail.outbox[0]
    assert message.subject == "[Alpha Store] Rising interest in Runners: +200%"
    assert "Members:    10" in message.body
    assert "3.00 events per member" in message.body
    assert "1.00 events per member" in message.body
    assert "+200%" in message.body
    assert f"http://127.0.0.1:8000/admin/segments/risinginterestalert/{alert.pk}/change/" in (
        message.body
    )
    assert segment.name in message.body
    alert.refresh_from_db()
    assert alert.emailed_to == ["ann@alpha.example", "bea@alpha.example"]


def test_an_owner_demoted_to_marketer_gets_no_email(
    tenant, owners, django_capture_on_commit_callbacks
):
    _rising(tenant)
    Membership.objects.for_tenant(tenant).filter(user=owners["bea"]).update(role=Role.MARKETER)

    with django_capture_on_commit_callbacks(execute=True):
        [alert] = rising_interest_check(tenant)

    assert [m.to for m in mail.outbox] == [["ann@alpha.example"]]
    alert.refresh_from_db()
    assert alert.emailed_to == ["ann@alpha.example"]


def test_no_subscribers_no_email(tenant, django_capture_on_commit_callbacks):
    _rising(tenant)
    login_as(tenant, Role.OWNER)

    with django_capture_on_commit_callbacks(execute=True):
        [alert] = rising_interest_check(tenant)

    assert mail.outbox == []
    alert.refresh_from_db()
    assert alert.emailed_to == []


def test_a_rerun_sends_no_second_email(tenant, owners, django_capture_on_commit_callbacks):
    _rising(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        rising_interest_check(tenant)
        rising_interest_check(tenant)

    assert len(mail.outbox) == 2  # ann and bea, once


class BrokenBackend(BaseEmailBackend):
    """An SMTP server that is down."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("smtp down")


def test_a_mail_failure_keeps_the_alert_and_is_logged(
    tenant, owners, settings, caplog, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"
    _rising(tenant)

    with (
        caplog.at_level(logging.ERROR, logger="segments.services.alerts"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        [alert] = rising_interest_check(tenant)

    alert.refresh_from_db()
    assert alert.emailed_to == []
    assert RisingInterestAlert.objects.for_tenant(tenant).count() == 1
    assert [r.getMessage().split()[0] for r in caplog.records] == [
        "segments.rising_interest_email_failed",
        "segments.rising_interest_email_failed",
    ]


def test_only_owners_may_subscribe(tenant, owners):
    with pytest.raises(Forbidden, match="Only owners of Alpha Store"):
        alert_subscribe(tenant=tenant, user=owners["dan"])
    outsider = UserFactory(email="out@example.com")
    with pytest.raises(Forbidden):
        alert_subscribe(tenant=tenant, user=outsider)

    assert alert_unsubscribe(tenant=tenant, user=owners["ann"]) is True
    assert alert_unsubscribe(tenant=tenant, user=owners["ann"]) is False
    assert alert_subscribe(tenant=tenant, user=owners["cid"]) == alert_subscribe(
        tenant=tenant, user=owners["cid"]
    )
    subscribed = AlertSubscription.objects.for_tenant(tenant).values_list("user__email", flat=True)
    assert sorted(subscribed) == ["bea@alpha.example", "cid@alpha.example"]


def test_an_owner_of_another_tenant_cannot_subscribe_here(tenant, other_tenant):
    client = login_as(other_tenant, Role.OWNER)
    with pytest.raises(Forbidden):
        alert_subscribe(tenant=tenant, user=client.user)


def test_acknowledge_is_idempotent_and_audited(tenant, owners):
    _rising(tenant)
    [alert] = rising_interest_check(tenant)

    assert alert_acknowledge(alert, user=owners["dan"]) is True
    assert alert_acknowledge(alert, user=owners["ann"]) is False

    alert.refresh_from_db()
    assert alert.acknowledged_at == AS_OF
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="segments.risinginterestalert")
    assert entry.actor_user == owners["dan"]


def test_viewers_cannot_acknowledge(tenant):
    _rising(tenant)
    [alert] = rising_interest_check(tenant)
    viewer = login_as(tenant, Role.VIEWER).user

    with pytest.raises(Forbidden):
        alert_acknowledge(alert, user=viewer)
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


# --- tenant isolation -----------------------------------------------------------------


def test_events_of_one_tenant_never_count_for_the_other(tenant, other_tenant):
    _settings(tenant)
    _settings(other_tenant)
    _, ours = _rule_segment(tenant, 10)
    _, theirs = _rule_segment(other_tenant, 10)
    _visits(ours, current=10, baseline=40)  # flat
    _visits(theirs, current=40, baseline=40)  # rising
    # Even rows filed under the other tenant for our customers do not count here.
    _touch(ours, 100, CURRENT, tenant_id=other_tenant.pk)
    make_order(theirs[0], CURRENT[0] + timedelta(days=1))

    assert rising_interest_check(tenant) == []
    [alert] = rising_interest_check(other_tenant)
    assert alert.tenant_id == other_tenant.pk
    assert alert.members == 10
    assert alert.breakdown["current"] == {"orders": 1, "clicks": 0, "visits": 40}


def test_subscribers_of_another_tenant_get_no_email(
    tenant, other_tenant, django_capture_on_commit_callbacks
):
    their_owner = login_as(other_tenant, Role.OWNER, email="owner@bravo.example").user
    alert_subscribe(tenant=other_tenant, user=their_owner)
    _rising(tenant)

    with django_capture_on_commit_callbacks(execute=True):
        rising_interest_check(tenant)

    assert mail.outbox == []


# --- admin ------------------------------------------------------------------------------

CHANGELIST = "admin:segments_risinginterestalert_changelist"


def _alert_of(tenant, slug="runners") -> RisingInterestAlert:
    _settings(tenant)
    _, people = _rule_segment(tenant, 10, slug=slug)
    _visits(people, current=30, baseline=40)
    [alert] = rising_interest_check(tenant)
    return alert


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER, Role.AGENT, Role.VIEWER])
def test_every_member_sees_the_alert_list_of_their_tenant(tenant, other_tenant, role):
    alert = _alert_of(tenant, slug="runners")
    _alert_of(other_tenant, slug="cyclists")
    client = login_as(tenant, role)

    resp = client.get(reverse(CHANGELIST))

    assert resp.status_code == 200
    body = resp.content.decode()
    assert "Runners" in body
    assert "3.00 vs 1.00" in body
    assert "+200%" in body
    assert "Cyclists" not in body
    page = client.get(reverse("admin:segments_risinginterestalert_change", args=[alert.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def test_the_list_filters_by_acknowledged_day_and_segment(tenant, marketer_client):
    alert = _alert_of(tenant)

    def listed(**query) -> list[RisingInterestAlert]:
        resp = marketer_client.get(reverse(CHANGELIST), query)
        assert resp.status_code == 200
        return list(resp.context["cl"].result_list)

    assert listed(acknowledged="no") == [alert]
    assert listed(acknowledged="yes") == []
    assert listed(day__gte="2026-03-10", day__lt="2026-03-11") == [alert]
    assert listed(day__gte="2026-03-11") == []
    assert listed(segment=str(alert.segment_id)) == [alert]
    assert listed(segment=str(tier_segments(tenant)[Tier.ONE_TIME].pk)) == []


def test_alert_pages_of_another_tenant_are_404(tenant, other_tenant, owner_client):
    theirs = _alert_of(other_tenant)

    resp = owner_client.get(reverse("admin:segments_risinginterestalert_change", args=[theirs.pk]))
    assert resp.status_code == 404
    owner_client.post(
        reverse(CHANGELIST),
        {"action": "acknowledge_selected", "_selected_action": [theirs.pk]},
    )
    theirs.refresh_from_db()
    assert theirs.acknowledged_at is None


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER])
def test_owners_and_marketers_acknowledge_from_the_list(tenant, role):
    alert = _alert_of(tenant)
    client = login_as(tenant, role)

    resp = client.post(
        reverse(CHANGELIST), {"action": "acknowledge_selected", "_selected_action": [alert.pk]}
    )

    assert resp.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_at == AS_OF


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
def test_agents_and_viewers_cannot_acknowledge(tenant, role):
    alert = _alert_of(tenant)
    client = login_as(tenant, role)

    body = client.get(reverse(CHANGELIST)).content.decode()
    assert "acknowledge_selected" not in body
    client.post(
        reverse(CHANGELIST), {"action": "acknowledge_selected", "_selected_action": [alert.pk]}
    )
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_an_owner_opts_in_and_out_on_the_alert_list(tenant, owner_client):
    url = reverse(CHANGELIST)
    email_me = reverse("admin:segments_risinginterestalert_email_me")
    assert "Email me rising-interest alerts" in owner_client.get(url).content.decode()

    assert owner_client.post(email_me, {"subscribe": "1"}).status_code == 302
    assert AlertSubscription.objects.for_tenant(tenant).filter(user=owner_client.user).exists()
    assert "Stop emailing me" in owner_client.get(url).content.decode()

    assert owner_client.post(email_me, {"subscribe": "0"}).status_code == 302
    assert not AlertSubscription.objects.for_tenant(tenant).exists()
    assert owner_client.get(email_me).status_code == 405


@pytest.mark.parametrize("role", [Role.MARKETER, Role.AGENT, Role.VIEWER])
def test_only_owners_can_opt_in(tenant, role):
    client = login_as(tenant, role)

    assert "Email me rising-interest alerts" not in client.get(reverse(CHANGELIST)).content.decode()
    resp = client.post(reverse("admin:segments_risinginterestalert_email_me"), {"subscribe": "1"})
    assert resp.status_code == 403
    assert not AlertSubscription.objects.for_tenant(tenant).exists()


def test_owners_see_who_gets_the_emails(tenant, other_tenant, owners, owner_client):
    Membership.objects.for_tenant(tenant).filter(user=owners["bea"]).update(role=Role.MARKETER)
    their_owner = login_as(other_tenant, Role.OWNER, email="owner@bravo.example").user
    alert_subscribe(tenant=other_tenant, user=their_owner)

    resp = owner_client.get(reverse("admin:segments_alertsubscription_changelist"))

    assert resp.status_code == 200
    body = resp.content.decode()
    assert "ann@alpha.example" in body
    assert "bea@alpha.example" in body
    assert "owner@bravo.example" not in body
    assert body.count('alt="True"') == 1  # ann is still an owner, bea is not


@pytest.mark.parametrize("role", [Role.MARKETER, Role.VIEWER])
def test_only_owners_see_the_subscriber_list(tenant, role):
    client = login_as(tenant, role)
    resp = client.get(reverse("admin:segments_alertsubscription_changelist"))
    assert resp.status_code == 403
