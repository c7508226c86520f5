"""The weekly summary: each Monday-to-Sunday week of a store (its timezone)
is summarised once (``WeeklySummary``, built from the rollups by
``insights.services.summary_data``), emailed to the owners and marketers who
opted in, and shown as a printable page at ``/dashboard/summary/<week>/``.

The email goes through the outbox as a ``staff`` message keyed
``summary:<week>:<user id>``: one message per recipient and week, however
often or concurrently ``summary_send`` runs. A beat task asks
``summaries_due`` every 15 minutes which stores' summaries are due (their
local summary weekday and hour has passed this week) and not yet sent to
everyone who should get them, and calls ``summary_send`` for each.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.urls import reverse

from insights.models import InsightsSettings, SummarySubscription, WeeklySummary
from insights.services.summary_data import local_midnight, summary_build, tenant_zone
from insights.summary_format import summary_context
from messaging.models import Category
from messaging.services.outbox import Content, message_enqueue
from retention import clock
from retention.errors import Forbidden, InvalidInput
from retention.models import Membership, Role, Tenant, User

__all__ = [
    "summaries_due",
    "summary_build",
    "summary_make",
    "summary_recipients",
    "summary_send",
    "summary_subscribe",
    "summary_unsubscribe",
    "summary_url",
    "summary_week",
]

logger = logging.getLogger(__name__)

# Who may get the summary by email.
SUMMARY_ROLES = (Role.OWNER, Role.MARKETER)
SOURCE = "insights"
TEXT_TEMPLATE = "insights/summary_email.txt"
HTML_TEMPLATE = "insights/summary_email.html"
DEFAULT_WEEKDAY, DEFAULT_HOUR = 0, 8  # the InsightsSettings defaults


# --- which week --------------------------------------------------------------------------


def summary_week(tenant: Tenant, now: datetime) -> date:
    """The Monday of the last full week in the store's timezone at ``now``:
    the week the summary covers."""
    today = now.astimezone(tenant_zone(tenant)).date()
    return today - timedelta(days=today.weekday() + 7)


def week_is_over(tenant: Tenant, week_start: date, now: datetime | None = None) -> bool:
    """Whether every day of the week has passed in the store's timezone."""
    end = local_midnight(week_start + timedelta(days=7), tenant_zone(tenant))
    return (now or clock.now()) >= end


def _check_week(tenant: Tenant, week_start: date) -> None:
    if week_start.weekday() != 0:
        raise InvalidInput(
            "A summary week starts on a Monday.",
            fields={"week_start": [f"{week_start.isoformat()} is not a Monday."]},
        )
    if not week_is_over(tenant, week_start):
        raise InvalidInput(
            "That week is not over yet in the store's timezone.",
            fields={"week_start": [f"The week of {week_start.isoformat()} has not ended."]},
        )


# --- make and send -------------------------------------------------------------------------


def summary_make(*, tenant: Tenant, week_start: date) -> WeeklySummary:
    """The week's summary, built and stored the first time it is asked for
    (only for a week that is over; its data never changes after)."""
    found = WeeklySummary.objects.for_tenant(tenant).filter(week_start=week_start).first()
    if found is not None:
        return found
    _check_week(tenant, week_start)
    data = summary_build(tenant=tenant, week_start=week_start)
    try:
        with transaction.atomic():
            made = WeeklySummary.objects.create(tenant=tenant, week_start=week_start, data=data)
    except IntegrityError:
        # Another worker or page view stored it since we looked: theirs stands.
        return WeeklySummary.objects.for_tenant(tenant).get(week_start=week_start)
    logger.info("insights.summary_made tenant_id=%s week=%s", tenant.pk, week_start)
    return made


def summary_recipients(*, tenant: Tenant | int) -> list[User]:
    """Who gets the email now: opted in, still an owner or marketer of the
    store, active, with an address."""
    tenant_id = getattr(tenant, "pk", tenant)
    subscribed = SummarySubscription.objects.for_tenant(tenant_id).values("user_id")
    return [
        m.user
        for m in Membership.objects.for_tenant(tenant_id)
        .filter(role__in=SUMMARY_ROLES, user_id__in=subscribed, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("user__email")
    ]


def summary_send(*, tenant: Tenant, week_start: date) -> list[str]:
    """Queue the week's summary for every recipient (one outbox message per
    recipient and week: a second call, or a concurrent one, queues nothing
    new) and record them in ``sent_to``. Returns the addresses whose message
    for the week is in the outbox (queued now or before)."""
    summary = summary_make(tenant=tenant, week_start=week_start)
    recipients = summary_recipients(tenant=tenant)
    if not recipients:
        return []
    content = summary_content(summary=summary, tenant=tenant)
    sent: list[str] = []
    for user in recipients:
        try:
            message_enqueue(
                tenant=tenant,
                channel="email",
                category=Category.STAFF,
                idempotency_key=f"summary:{week_start.isoformat()}:{user.pk}",
                content=content,
                to_address=user.email,
                source=SOURCE,
                context={"week_start": week_start.isoformat(), "user_id": user.pk},
            )
        except InvalidInput:
            logger.exception(
                "insights.summary_not_queued tenant_id=%s week=%s user_id=%s",
                tenant.pk,
                week_start,
                user.pk,
            )
            continue
        sent.append(user.email)
    with transaction.atomic():
        row = WeeklySummary.objects.for_tenant(tenant).select_for_update().get(pk=summary.pk)
        merged = sorted({*row.sent_to, *sent})
        if merged != row.sent_to:
            row.sent_to = merged
            row.save(update_fields=["sent_to"])
    logger.info(
        "insights.summary_sent tenant_id=%s week=%s recipients=%s",
        tenant.pk,
        week_start,
        len(sent),
    )
    return sent


def summaries_due(now: datetime) -> list[tuple[int, date]]:
    """(tenant id, week start) of every active store whose summary slot this
    week (its local ``summary_weekday`` at ``summary_hour``) has passed and
    whose summary of the last full week has not yet gone to every current
    recipient. A store with no recipients is never due.

    Reads across tenants on purpose: the beat task that asks is the one place
    that looks at every store, and it answers with tenant ids."""
    slots = dict(
        (pk, (weekday, hour))
        for pk, weekday, hour in InsightsSettings.objects.unscoped().values_list(
            "tenant_id", "summary_weekday", "summary_hour"
        )
    )
    weeks: dict[int, date] = {}
    for tenant in Tenant.objects.filter(is_active=True).only("pk", "timezone"):
        weekday, hour = slots.get(tenant.pk, (DEFAULT_WEEKDAY, DEFAULT_HOUR))
        tz = tenant_zone(tenant)
        monday = now.astimezone(tz).date()
        monday -= timedelta(days=monday.weekday())
        slot = datetime.combine(monday + timedelta(days=weekday), time(hour), tzinfo=tz)
        if now >= slot:
            weeks[tenant.pk] = monday - timedelta(days=7)
    if not weeks:
        return []
    subscribed = SummarySubscription.objects.unscoped().filter(
        tenant_id=OuterRef("tenant_id"), user_id=OuterRef("user_id")
    )
    wanted: dict[int, set[str]] = {}
    for tenant_id, email in (
        Membership.objects.unscoped()
        .filter(tenant_id__in=weeks, role__in=SUMMARY_ROLES, user__is_active=True)
        .exclude(user__email="")
        .filter(Exists(subscribed))
        .values_list("tenant_id", "user__email")
    ):
        wanted.setdefault(tenant_id, set()).add(email)
    sent = {
        (tenant_id, week): set(sent_to)
        for tenant_id, week, sent_to in WeeklySummary.objects.unscoped()
        .filter(tenant_id__in=wanted, week_start__in=set(weeks.values()))
        .values_list("tenant_id", "week_start", "sent_to")
    }
    return sorted(
        (tenant_id, weeks[tenant_id])
        for tenant_id, emails in wanted.items()
        if emails - sent.get((tenant_id, weeks[tenant_id]), set())
    )


# --- subscriptions -----------------------------------------------------------------------


def summary_subscribe(*, tenant: Tenant, user: User) -> SummarySubscription:
    """Email ``user`` the weekly summary. Owners and marketers only."""
    membership = Membership.objects.for_tenant(tenant).filter(user_id=user.pk).first()
    if membership is None or membership.role not in SUMMARY_ROLES:
        role = membership.get_role_display().lower() if membership else "not a member"
        raise Forbidden(
            f"Only owners and marketers of {tenant.name} can get the weekly summary "
            f"by email ({user.email} is {'a ' if membership else ''}{role}).",
            code="owners_and_marketers_only",
        )
    subscription, _ = SummarySubscription.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, user=user
    )
    return subscription


def summary_unsubscribe(*, tenant: Tenant, user: User) -> bool:
    """Stop emailing ``user`` (anyone may stop their own). Returns whether a
    subscription existed."""
    deleted, _ = SummarySubscription.objects.for_tenant(tenant).filter(user_id=user.pk).delete()
    return deleted > 0


# --- content -----------------------------------------------------------------------------


def summary_url(*, tenant: Tenant, week_start: date) -> str:
    """The printable page of the week, absolute, naming the store (a person in
    several stores lands on this one's summary whichever store they last used)."""
    path = reverse("dashboard-summary-week", args=[week_start.isoformat()])
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}?store={tenant.slug}"


def summary_content(*, summary: WeeklySummary, tenant: Tenant) -> Content:
    context = summary_context(summary.data) | {
        "tenant": tenant,
        "url": summary_url(tenant=tenant, week_start=summary.week_start),
    }
    return Content(
        subject=context["subject"],
        text=render_to_string(TEXT_TEMPLATE, context),
        html=render_to_string(HTML_TEMPLATE, context),
    )
