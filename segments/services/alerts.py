"""Rising-interest alerts: a segment whose engagement per member jumps.

Engagement is what a segment's current members did: counted orders (not
cancelled or refunded), clicks on our messages (``message.clicked``) and visits
(``VISIT_KINDS`` touchpoints). The check compares the last 7 days
``[as_of - 7d, as_of)`` with the weekly average of the 4 weeks before
``[as_of - 35d, as_of - 7d)``, both per member, and raises an alert when

- the baseline is above zero and current >= baseline * (1 + threshold% / 100), or
- the baseline is zero and current >= ``ZERO_BASELINE_FLOOR`` events per member
  (nothing at all for four weeks, then at least one event per 20 members).

Segments with fewer members than the tenant's ``rising_min_members`` never
alert. The comparison is exact (integer arithmetic), so a rise of exactly the
threshold alerts. One statement computes every segment of a tenant; at most one
alert per segment per tenant-local day (a unique constraint), so a re-run the
same day raises nothing new. New alerts are emailed after commit to the owners
who opted in and are still owners when the email goes out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from commerce.models import Customer, Order, OrderStatus, Touchpoint
from retention import clock
from retention.errors import Forbidden
from retention.models import Capability, Membership, Role, Tenant, User
from retention.services import audit_record
from segments.models import (
    AlertSubscription,
    CustomerRFM,
    RisingInterestAlert,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
)
from segments.services.setup import segment_settings

logger = logging.getLogger(__name__)

CURRENT_DAYS = 7
BASELINE_WEEKS = 4
CLICK_KIND = "message.clicked"
VISIT_KINDS = ("page.viewed", "product.viewed", "session.started")
UNCOUNTED_ORDER_STATUSES = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
#: With no engagement at all in the baseline weeks, a segment alerts once its
#: members reach this many events each in the last 7 days (1 per 20 members):
#: enough to say "something started" without alerting on a single stray click.
ZERO_BASELINE_FLOOR = Fraction(1, 20)
EMAIL_TEMPLATE = "segments/rising_interest_email.txt"

EVENT_KINDS = ("orders", "clicks", "visits")


@dataclass(frozen=True)
class SegmentEngagement:
    """Event totals of one segment's members: last 7 days and the 4 weeks before."""

    segment_id: int
    members: int
    current: dict[str, int]
    baseline: dict[str, int]

    @property
    def current_events(self) -> int:
        return sum(self.current.values())

    @property
    def baseline_events(self) -> int:
        return sum(self.baseline.values())

    @property
    def current_per_member(self) -> Fraction:
        return Fraction(self.current_events, self.members)

    @property
    def baseline_per_member(self) -> Fraction:
        """Average events per member per week over the baseline weeks."""
        return Fraction(self.baseline_events, self.members * BASELINE_WEEKS)


def is_rising(engagement: SegmentEngagement, *, threshold_pct: int) -> bool:
    """The alert rule, exact: Fractions, so the threshold itself counts as a rise."""
    if engagement.members <= 0 or engagement.current_events == 0:
        return False
    baseline = engagement.baseline_per_member
    if baseline == 0:
        return engagement.current_per_member >= ZERO_BASELINE_FLOOR
    return engagement.current_per_member >= baseline * (1 + Fraction(threshold_pct, 100))


def rise_pct(engagement: SegmentEngagement) -> float:
    """Percent above the baseline. With a zero baseline the floor stands in for
    it (so a segment exactly at the floor shows +0%); ``breakdown.baseline_zero``
    says so."""
    baseline = engagement.baseline_per_member or ZERO_BASELINE_FLOOR
    return float((engagement.current_per_member / baseline - 1) * 100)


# --- the check --------------------------------------------------------------------


def rising_interest_check(
    tenant: Tenant | int, *, as_of: datetime | None = None
) -> list[RisingInterestAlert]:
    """Raise today's rising-interest alerts of ``tenant`` (or its id, as a task
    passes it); returns the new ones.

    A segment already alerted on this tenant-local day is skipped, so the check
    can run as often as wanted. Emails go out after the surrounding transaction
    commits."""
    if not isinstance(tenant, Tenant):
        tenant = Tenant.objects.get(pk=tenant)
    as_of = as_of or clock.now()
    if as_of.tzinfo is None:
        raise ValueError("rising_interest_check needs a timezone-aware as_of")
    config = segment_settings(tenant)
    day = as_of.astimezone(tenant.tzinfo).date()
    rising = [
        e
        for e in segment_engagement(
            tenant=tenant, as_of=as_of, min_members=config.rising_min_members
        )
        if is_rising(e, threshold_pct=config.rising_threshold_pct)
    ]
    if not rising:
        return []

    already = set(
        RisingInterestAlert.objects.for_tenant(tenant)
        .filter(day=day, segment_id__in=[e.segment_id for e in rising])
        .values_list("segment_id", flat=True)
    )
    created: list[RisingInterestAlert] = []
    with transaction.atomic():
        for engagement in rising:
            if engagement.segment_id in already:
                continue
            alert, is_new = _alert_create(tenant=tenant, day=day, engagement=engagement)
            if is_new:
                created.append(alert)
        if created:
            transaction.on_commit(
                partial(_alerts_email, tenant_id=tenant.pk, alert_ids=[a.pk for a in created])
            )
    for alert in created:
        logger.info(
            "segments.rising_interest_raised tenant_id=%s segment_id=%s alert_id=%s "
            "members=%s rise_pct=%.1f",
            tenant.pk,
            alert.segment_id,
            alert.pk,
            alert.members,
            alert.rise_pct,
        )
    return created


def _alert_create(
    *, tenant: Tenant, day: date, engagement: SegmentEngagement
) -> tuple[RisingInterestAlert, bool]:
    # get_or_create on the (tenant, segment, day) constraint: a concurrent run
    # that got there first wins and this one raises nothing.
    return RisingInterestAlert.objects.for_tenant(tenant).get_or_create(
        tenant=tenant,
        segment_id=engagement.segment_id,
        day=day,
        defaults={
            "members": engagement.members,
            "current_per_member": float(engagement.current_per_member),
            "baseline_per_member": float(engagement.baseline_per_member),
            "rise_pct": rise_pct(engagement),
            "breakdown": {
                "current": dict(engagement.current),
                "baseline": dict(engagement.baseline),
                "current_days": CURRENT_DAYS,
                "baseline_weeks": BASELINE_WEEKS,
                "baseline_zero": engagement.baseline_events == 0,
            },
        },
    )


def segment_engagement(
    *, tenant: Tenant, as_of: datetime, min_members: int = 0
) -> list[SegmentEngagement]:
    """Event totals per active segment of ``tenant`` (members >= ``min_members``)
    in one statement: tier members (RFM rows of the tier) and rule members
    (membership rows) UNION ALL, minus merged-away customers, joined to each
    customer's order and touchpoint counts in the 35 days before ``as_of``.

    Orders are read by (tenant, placed_at) / (tenant, customer, placed_at),
    touchpoints by (tenant, kind, occurred_at). Portable SQL: PostgreSQL and
    the embedded SQLite default."""
    qn = connection.ops.quote_name
    table = {
        "segment": qn(Segment._meta.db_table),
        "rfm": qn(CustomerRFM._meta.db_table),
        "membership": qn(SegmentMembership._meta.db_table),
        "customer": qn(Customer._meta.db_table),
        "order": qn(Order._meta.db_table),
        "touchpoint": qn(Touchpoint._meta.db_table),
    }
    current_start = as_of - timedelta(days=CURRENT_DAYS)
    baseline_start = current_start - timedelta(weeks=BASELINE_WEEKS)
    adapt = connection.ops.adapt_datetimefield_value
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "tier": SegmentKind.TIER.value,
        "rule": SegmentKind.RULE.value,
        "active": SegmentStatus.ACTIVE.value,
        "as_of": adapt(as_of),
        "cur_start": adapt(current_start),
        "base_start": adapt(baseline_start),
        "click": CLICK_KIND,
        "min_members": max(min_members, 1),
    }
    status_params = _named("status", [str(s) for s in UNCOUNTED_ORDER_STATUSES], params)
    visit_params = _named("visit", list(VISIT_KINDS), params)
    # Only table names (from model meta) and placeholder names are interpolated;
    # every value is a parameter.
    sql = f"""
        WITH members AS (
            SELECT s.id AS segment_id, r.customer_id AS customer_id
            FROM {table["segment"]} s
            JOIN {table["rfm"]} r ON r.tenant_id = s.tenant_id AND r.tier = s.tier
            WHERE s.tenant_id = %(tenant)s AND s.kind = %(tier)s AND s.status = %(active)s
            UNION ALL
            SELECT s.id AS segment_id, m.customer_id AS customer_id
            FROM {table["segment"]} s
            JOIN {table["membership"]} m ON m.tenant_id = s.tenant_id AND m.segment_id = s.id
            WHERE s.tenant_id = %(tenant)s AND s.kind = %(rule)s AND s.status = %(active)s
        ),
        events AS (
            SELECT customer_id,
                   SUM(cur_orders) AS cur_orders, SUM(base_orders) AS base_orders,
                   SUM(cur_clicks) AS cur_clicks, SUM(base_clicks) AS base_clicks,
                   SUM(cur_visits) AS cur_visits, SUM(base_visits) AS base_visits
            FROM (
                SELECT o.customer_id AS customer_id,
                       CASE WHEN o.placed_at >= %(cur_start)s THEN 1 ELSE 0 END AS cur_orders,
                       CASE WHEN o.placed_at < %(cur_start)s THEN 1 ELSE 0 END AS base_orders,
                       0 AS cur_clicks, 0 AS base_clicks, 0 AS cur_visits, 0 AS base_visits
                FROM {table["order"]} o
                WHERE o.tenant_id = %(tenant)s
                  AND o.placed_at >= %(base_start)s AND o.placed_at < %(as_of)s
                  AND o.status NOT IN ({status_params})
                UNION ALL
                SELECT t.customer_id AS customer_id, 0, 0,
                       CASE WHEN t.kind = %(click)s AND t.occurred_at >= %(cur_start)s
                            THEN 1 ELSE 0 END,
                       CASE WHEN t.kind = %(click)s AND t.occurred_at < %(cur_start)s
                            THEN 1 ELSE 0 END,
                       CASE WHEN t.kind <> %(click)s AND t.occurred_at >= %(cur_start)s
                            THEN 1 ELSE 0 END,
                       CASE WHEN t.kind <> %(click)s AND t.occurred_at < %(cur_start)s
                            THEN 1 ELSE 0 END
                FROM {table["touchpoint"]} t
                WHERE t.tenant_id = %(tenant)s
                  AND t.kind IN (%(click)s, {visit_params})
                  AND t.occurred_at >= %(base_start)s AND t.occurred_at < %(as_of)s
            ) e
            GROUP BY customer_id
        )
        SELECT m.segment_id, COUNT(*),
               COALESCE(SUM(ev.cur_orders), 0), COALESCE(SUM(ev.cur_clicks), 0),
               COALESCE(SUM(ev.cur_visits), 0), COALESCE(SUM(ev.base_orders), 0),
               COALESCE(SUM(ev.base_clicks), 0), COALESCE(SUM(ev.base_visits), 0)
        FROM members m
        JOIN {table["customer"]} c
          ON c.id = m.customer_id AND c.tenant_id = %(tenant)s AND c.merged_into_id IS NULL
        LEFT JOIN events ev ON ev.customer_id = m.customer_id
        GROUP BY m.segment_id
        HAVING COUNT(*) >= %(min_members)s
        ORDER BY m.segment_id
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        SegmentEngagement(
            segment_id=row[0],
            members=int(row[1]),
            current=dict(zip(EVENT_KINDS, (int(v) for v in row[2:5]), strict=True)),
            baseline=dict(zip(EVENT_KINDS, (int(v) for v in row[5:8]), strict=True)),
        )
        for row in rows
    ]


def _named(prefix: str, values: list[str], params: dict[str, Any]) -> str:
    """Add ``values`` to ``params`` as prefix_0, prefix_1, …; returns the placeholders."""
    names = []
    for i, value in enumerate(values):
        params[f"{prefix}_{i}"] = value
        names.append(f"%({prefix}_{i})s")
    return ", ".join(names)


# --- email ----------------------------------------------------------------------


def alert_recipients(*, tenant: Tenant | int) -> list[User]:
    """Users who opted in and are owners of the tenant right now."""
    tenant_id = getattr(tenant, "pk", tenant)
    subscribed = AlertSubscription.objects.for_tenant(tenant_id).values("user_id")
    return [
        m.user
        for m in Membership.objects.for_tenant(tenant_id)
        .filter(role=Role.OWNER, user_id__in=subscribed, user__is_active=True)
        .select_related("user")
        .order_by("user__email")
    ]


def alert_admin_url(alert: RisingInterestAlert) -> str:
    try:
        path = reverse("admin:segments_risinginterestalert_change", args=[alert.pk])
    except NoReverseMatch:  # the admin screens are not registered (a bare worker)
        path = f"/admin/segments/risinginterestalert/{alert.pk}/change/"
    base = getattr(settings, "PUBLIC_BASE_URL", "") or ""
    return f"{base.rstrip('/')}{path}"


def _alerts_email(*, tenant_id: int, alert_ids: list[int]) -> None:
    """Runs after commit: a mail failure is logged and never touches the alert."""
    alerts = (
        RisingInterestAlert.objects.for_tenant(tenant_id)
        .filter(pk__in=alert_ids)
        .select_related("segment", "tenant")
        .order_by("pk")
    )
    for alert in alerts:
        try:
            alert_email(alert)
        except Exception:
            logger.exception(
                "segments.rising_interest_email_failed tenant_id=%s alert_id=%s",
                tenant_id,
                alert.pk,
            )


def alert_email(alert: RisingInterestAlert) -> list[str]:
    """Email one alert to each opted-in owner (one message each, so one bad
    address does not stop the others); records and returns who got it."""
    recipients = alert_recipients(tenant=alert.tenant_id)
    if not recipients:
        return []
    tenant = alert.tenant
    subject = f"[{tenant.name}] Rising interest in {alert.segment.name}: " + (
        "new activity" if alert.breakdown.get("baseline_zero") else f"+{alert.rise_pct:.0f}%"
    )
    body = render_to_string(
        EMAIL_TEMPLATE,
        {
            "alert": alert,
            "tenant": tenant,
            "segment": alert.segment,
            "url": alert_admin_url(alert),
            "current": alert.breakdown.get("current", {}),
            "baseline": alert.breakdown.get("baseline", {}),
            "baseline_zero": alert.breakdown.get("baseline_zero", False),
        },
    )
    sent: list[str] = []
    for user in recipients:
        try:
            send_mail(subject, body, None, [user.email])
        except Exception:
            logger.exception(
                "segments.rising_interest_email_failed tenant_id=%s alert_id=%s user_id=%s",
                alert.tenant_id,
                alert.pk,
                user.pk,
            )
            continue
        sent.append(user.email)
    if sent:
        RisingInterestAlert.objects.for_tenant(alert.tenant_id).filter(pk=alert.pk).update(
            emailed_to=sent
        )
        alert.emailed_to = sent
        logger.info(
            "segments.rising_interest_emailed tenant_id=%s alert_id=%s recipients=%s",
            alert.tenant_id,
            alert.pk,
            len(sent),
        )
    return sent


# --- subscriptions and acknowledgement ---------------------------------------------


def _membership(tenant: Tenant | int, user: User) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.for_tenant(tenant).filter(user=user).first()


def is_owner(*, tenant: Tenant | int, user: User) -> bool:
    membership = _membership(tenant, user)
    return membership is not None and membership.role == Role.OWNER


def alert_subscribe(*, tenant: Tenant, user: User) -> AlertSubscription:
    """Email ``user`` the tenant's rising-interest alerts. Owners only."""
    if not is_owner(tenant=tenant, user=user):
        raise Forbidden(
            f"Only owners of {tenant.name} can receive rising-interest alerts by email.",
            code="owners_only",
        )
    subscription, _ = AlertSubscription.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, user=user
    )
    return subscription


def alert_unsubscribe(*, tenant: Tenant, user: User) -> bool:
    """Stop emailing ``user``; anyone may stop their own (a demoted owner too).
    Returns whether a subscription existed."""
    deleted, _ = AlertSubscription.objects.for_tenant(tenant).filter(user_id=user.pk).delete()
    return deleted > 0


def alert_acknowledge(alert: RisingInterestAlert, *, user: User) -> bool:
    """Mark the alert seen. Owners and marketers (``configure``); idempotent,
    returns whether this call acknowledged it."""
    if not user.is_superuser:
        membership = _membership(alert.tenant_id, user)
        if membership is None or not membership.can(Capability.CONFIGURE):
            raise Forbidden("Only owners and marketers can acknowledge alerts.")
    now = clock.now()
    updated = (
        RisingInterestAlert.objects.for_tenant(alert.tenant_id)
        .filter(pk=alert.pk, acknowledged_at__isnull=True)
        .update(acknowledged_at=now)
    )
    if not updated:
        return False
    alert.acknowledged_at = now
    audit_record(
        tenant=alert.tenant_id,
        action="action",
        obj=alert,
        user=user,
        changes={"acknowledged_at": [None, now.isoformat()]},
    )
    return True
