"""Reads for feedback: the agents' callback queue and customer panel, and the
metrics the dashboard shows (survey response rate, time to respond, class mix,
first-contact time and SLA, callbacks resolved, detractor recovery).

Every metric takes the tenant and a half-open range ``[start, end)`` of
aware datetimes, and is one or a few set-based queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    When,
)
from django.db.models.functions import Coalesce

from commerce.models import Customer, FulfillmentStatus
from feedback.models import (
    Callback,
    CallbackContact,
    CallbackStatus,
    SurveyChannel,
    SurveyClass,
    SurveyInvitation,
    SurveyResponse,
)
from feedback.services.callbacks import CALLBACK_ROLES, REACHED_OUTCOMES
from retention import clock
from retention.models import Membership, Tenant, User

QUEUE_LIMIT = 200
RECOVERY_DAYS = 90


def _tenant_id(tenant: Tenant | int) -> int:
    return getattr(tenant, "pk", tenant)


# --- the queue ------------------------------------------------------------------------------

QUEUE_SHOWS = ("all", "mine", "unclaimed")


def _deadline() -> Case:
    """The next time something is owed: the follow-up when one is set, else the
    first-contact deadline until the first contact, else nothing."""
    return Case(
        When(follow_up_at__isnull=False, then=F("follow_up_at")),
        When(first_contact_at__isnull=True, then=F("due_by")),
        default=None,
        output_field=DateTimeField(),
    )


def callback_deadline(callback: Callback) -> datetime | None:
    """The same rule as the queue's ``deadline`` for one loaded callback."""
    if callback.status in (CallbackStatus.DONE, CallbackStatus.CANCELLED):
        return None
    if callback.follow_up_at is not None:
        return callback.follow_up_at
    return callback.due_by if callback.first_contact_at is None else None


def _in_queue(now: datetime) -> Q:
    """Open and claimed callbacks, and scheduled ones whose follow-up is due."""
    return Q(status__in=[CallbackStatus.OPEN, CallbackStatus.CLAIMED]) | Q(
        status=CallbackStatus.SCHEDULED, follow_up_at__lte=now
    )


def callback_queue(
    *,
    tenant: Tenant | int,
    agent: User,
    show: str = "all",
    overdue_only: bool = False,
    now: datetime | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[Callback]:
    """The queue, most urgent first (priority, then deadline; none last). Each
    row has ``deadline``. ``show``: ``mine`` (held by ``agent``), ``unclaimed``
    or ``all``; ``overdue_only``: past their deadline."""
    now = now or clock.now()
    queryset = (
        Callback.objects.for_tenant(_tenant_id(tenant))
        .filter(_in_queue(now))
        .annotate(deadline=_deadline())
        .select_related("customer", "claimed_by")
    )
    if show == "mine":
        queryset = queryset.filter(claimed_by=agent)
    elif show == "unclaimed":
        queryset = queryset.filter(claimed_by__isnull=True)
    if overdue_only:
        queryset = queryset.filter(deadline__lt=now)
    return list(queryset.order_by("-priority", F("deadline").asc(nulls_last=True), "id")[:limit])


def callback_queue_counts(
    *, tenant: Tenant | int, agent: User, now: datetime | None = None
) -> dict[str, int]:
    """How many callbacks each filter shows, and how many are overdue: one query."""
    now = now or clock.now()
    return (
        Callback.objects.for_tenant(_tenant_id(tenant))
        .filter(_in_queue(now))
        .annotate(deadline=_deadline())
        .aggregate(
            all=Count("id"),
            mine=Count("id", filter=Q(claimed_by=agent)),
            unclaimed=Count("id", filter=Q(claimed_by__isnull=True)),
            overdue=Count("id", filter=Q(deadline__lt=now)),
        )
    )


def callback_upcoming(
    *, tenant: Tenant | int, agent: User, now: datetime | None = None, limit: int = 50
) -> list[Callback]:
    """The agent's follow-ups that are not due yet, soonest first."""
    now = now or clock.now()
    return list(
        Callback.objects.for_tenant(_tenant_id(tenant))
        .filter(status=CallbackStatus.SCHEDULED, follow_up_at__gt=now, claimed_by=agent)
        .select_related("customer")
        .order_by("follow_up_at", "id")[:limit]
    )


def callback_get(*, tenant: Tenant | int, callback_id: int) -> Callback | None:
    """One callback of this tenant (another tenant's id is None, like a missing one)."""
    return (
        Callback.objects.for_tenant(_tenant_id(tenant))
        .filter(pk=callback_id)
        .select_related("customer", "claimed_by", "survey_response")
        .first()
    )


def callback_contacts(callback: Callback) -> list[CallbackContact]:
    return list(
        CallbackContact.objects.for_tenant(callback.tenant_id)
        .filter(callback=callback)
        .select_related("agent")
        .order_by("-at", "-id")
    )


def callback_agents(*, tenant: Tenant | int) -> list[User]:
    """Members who may work callbacks (and so be handed one), by email."""
    return [
        m.user
        for m in Membership.objects.for_tenant(_tenant_id(tenant))
        .filter(role__in=CALLBACK_ROLES, user__is_active=True)
        .select_related("user")
        .order_by("user__email")
    ]


# --- the customer panel ---------------------------------------------------------------------


@dataclass
class CustomerPanel:
    """What an agent sees about the customer before calling."""

    customer: Customer
    order_count: int
    total_spent: Decimal
    orders: list[Any]  # commerce Orders, each with ``deliveries`` (fulfilment, delay note)
    late_deliveries: int
    rfm: Any  # segments CustomerRFM or None
    segments: list[Any]
    survey_responses: list[SurveyResponse]
    messages: list[Any]
    other_callbacks: list[Callback]
    churn_probability: float | None = None  # None until the customer is scored
    churn_reasons: list[str] = field(default_factory=list)


def delay_note(fulfillment: Any, now: datetime) -> str:
    """A short note on a delivery's delay, or "" when it is on time."""
    statuses = {event.status for event in fulfillment.events.all()}
    expected = fulfillment.estimated_delivery_end
    if fulfillment.status == FulfillmentStatus.FAILED:
        return "Delivery failed"
    if fulfillment.delivered_at and expected and fulfillment.delivered_at > expected:
        days = (fulfillment.delivered_at - expected).days
        return f"Delivered {days} day{'s' if days != 1 else ''} late" if days else "Delivered late"
    if fulfillment.status != FulfillmentStatus.DELIVERED and expected and now > expected:
        return "Late: not delivered yet"
    if FulfillmentStatus.DELAYED in statuses or fulfillment.status == FulfillmentStatus.DELAYED:
        return "Delayed on the way"
    return ""


def customer_panel(
    *, tenant: Tenant, customer: Customer, callback: Callback | None = None, orders: int = 5
) -> CustomerPanel:
    """Orders, deliveries and delays, surveys, messages, tier and segments, churn
    risk and its reasons, other callbacks: read through each app's selectors."""
    from commerce.selectors import customer_stats, order_queryset
    from messaging.selectors import customer_messages
    from scoring.selectors import customer_score
    from segments.selectors import customer_rfm, customer_segments

    now = clock.now()
    stats = customer_stats(tenant=tenant, customer_ids=[customer.pk])[customer.pk]
    recent = list(
        order_queryset(tenant=tenant)
        .filter(customer=customer)
        .order_by("-placed_at", "-id")[:orders]
    )
    late = 0
    for order in recent:
        order.deliveries = [(f, delay_note(f, now)) for f in order.fulfillments.all()]
        late += sum(1 for _, note in order.deliveries if note)
    others = Callback.objects.for_tenant(tenant).filter(customer=customer)
    if callback is not None:
        others = others.exclude(pk=callback.pk)
    score = customer_score(tenant, customer.pk)
    return CustomerPanel(
        customer=customer,
        order_count=stats["order_count"],
        total_spent=stats["total_spent"],
        orders=recent,
        late_deliveries=late,
        rfm=customer_rfm(tenant, customer.pk),
        segments=customer_segments(tenant, customer.pk),
        survey_responses=list(
            SurveyResponse.objects.for_tenant(tenant)
            .filter(customer=customer)
            .order_by("-answered_at", "-id")[:5]
        ),
        messages=list(customer_messages(customer=customer).order_by("-created_at", "-id")[:10]),
        other_callbacks=list(others.order_by("-created_at", "-id")[:5]),
        churn_probability=score.p_churn if score is not None else None,
        churn_reasons=[str(r) for r in score.reasons or []] if score is not None else [],
    )


# --- metrics --------------------------------------------------------------------------------


class _PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any):
        super().__init__(expression, fraction=float(fraction), **extra)


def _seconds(later: str, earlier: str) -> Func:
    return Func(
        F(later) - F(earlier),
        template="EXTRACT(EPOCH FROM %(expressions)s)",
        output_field=FloatField(),
    )


def _percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, as ``percentile_cont``."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _duration_quantiles(
    queryset: QuerySet, later: str, earlier: str, fractions: tuple[float, ...]
) -> tuple[int, list[timedelta | None]]:
    """(count, quantiles) of ``later - earlier`` over rows where both are set."""
    queryset = queryset.filter(**{f"{later}__isnull": False, f"{earlier}__isnull": False})
    if connection.vendor == "postgresql":
        row = queryset.aggregate(
            n=Count("pk"),
            **{
                f"q{i}": _PercentileCont(_seconds(later, earlier), f)
                for i, f in enumerate(fractions)
            },
        )
        values = [row[f"q{i}"] for i in range(len(fractions))]
        return row["n"], [None if v is None else timedelta(seconds=v) for v in values]
    # SQLite (the embedded default): the durations are few enough to fetch.
    pairs = list(queryset.values_list(later, earlier))
    seconds = [(a - b).total_seconds() for a, b in pairs]
    if not seconds:
        return 0, [None for _ in fractions]
    return len(seconds), [timedelta(seconds=_percentile(seconds, f)) for f in fractions]


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class ChannelRate:
    invited: int
    responded: int
    rate_pct: float | None


def survey_response_rate_by_channel(
    *, tenant: Tenant | int, start: datetime, end: datetime
) -> dict[str, ChannelRate]:
    """Per channel, invitations sent in the range and how many got an answer
    (whenever it came). Every channel is present, zeros included."""
    tenant_id = _tenant_id(tenant)
    answered = SurveyResponse.objects.for_tenant(tenant_id).filter(invitation=OuterRef("pk"))
    rows = (
        SurveyInvitation.objects.for_tenant(tenant_id)
        .filter(created_at__gte=start, created_at__lt=end)
        .values("channel")
        .annotate(invited=Count("id"), responded=Count("id", filter=Q(Exists(answered))))
    )
    found = {row["channel"]: row for row in rows}
    out = {}
    for channel in SurveyChannel.values:
        row = found.get(channel, {"invited": 0, "responded": 0})
        out[channel] = ChannelRate(
            invited=row["invited"],
            responded=row["responded"],
            rate_pct=_rate(row["responded"], row["invited"]),
        )
    return out


@dataclass(frozen=True)
class DurationStats:
    count: int
    median: timedelta | None
    p90: timedelta | None


def survey_delivery_to_response(
    *, tenant: Tenant | int, start: datetime, end: datetime
) -> DurationStats:
    """Time from the delivery to the answer, for answers given in the range to
    invitations about a delivered fulfilment."""
    queryset = SurveyResponse.objects.for_tenant(_tenant_id(tenant)).filter(
        answered_at__gte=start, answered_at__lt=end
    )
    count, (median, p90) = _duration_quantiles(
        queryset, "answered_at", "invitation__fulfillment__delivered_at", (0.5, 0.9)
    )
    return DurationStats(count=count, median=median, p90=p90)


@dataclass(frozen=True)
class ClassMix:
    promoter: int
    neutral: int
    detractor: int

    @property
    def total(self) -> int:
        return self.promoter + self.neutral + self.detractor

    def share_pct(self, name: str) -> float | None:
        return _rate(getattr(self, name), self.total)


def survey_class_mix(*, tenant: Tenant | int, start: datetime, end: datetime) -> ClassMix:
    """Promoters, neutrals and detractors among the answers given in the range."""
    counts = (
        SurveyResponse.objects.for_tenant(_tenant_id(tenant))
        .filter(answered_at__gte=start, answered_at__lt=end)
        .aggregate(
            **{
                name: Count("id", filter=Q(classification=name))
                for name in (SurveyClass.PROMOTER, SurveyClass.NEUTRAL, SurveyClass.DETRACTOR)
            }
        )
    )
    return ClassMix(**counts)


@dataclass(frozen=True)
class FirstContactStats:
    """Callbacks queued in the range (cancelled ones left out).

    ``met``: answered by the deadline (the first logged contact, or resolving
    without a call, at or before ``due_by``); ``breached``: answered late, or
    not answered and past the deadline; ``pending``: not answered, deadline
    still ahead (left out of ``sla_met_pct``). ``median_first_contact``: wall
    time from queueing to the first contact, over those contacted."""

    created: int
    contacted: int
    met: int
    breached: int
    pending: int
    median_first_contact: timedelta | None

    @property
    def sla_met_pct(self) -> float | None:
        return _rate(self.met, self.met + self.breached)


def callback_first_contact(
    *, tenant: Tenant | int, start: datetime, end: datetime, now: datetime | None = None
) -> FirstContactStats:
    now = now or clock.now()
    queryset = (
        Callback.objects.for_tenant(_tenant_id(tenant))
        .filter(created_at__gte=start, created_at__lt=end)
        .exclude(status=CallbackStatus.CANCELLED)
        .annotate(answered_at=Coalesce("first_contact_at", "done_at"))
    )
    counts = queryset.aggregate(
        created=Count("id"),
        contacted=Count("id", filter=Q(first_contact_at__isnull=False)),
        met=Count("id", filter=Q(answered_at__lte=F("due_by"))),
        breached=Count(
            "id",
            filter=Q(answered_at__gt=F("due_by")) | Q(answered_at__isnull=True, due_by__lt=now),
        ),
    )
    _, (median,) = _duration_quantiles(queryset, "first_contact_at", "created_at", (0.5,))
    return FirstContactStats(
        pending=counts["created"] - counts["met"] - counts["breached"],
        median_first_contact=median,
        **counts,
    )


@dataclass(frozen=True)
class ResolvedStats:
    """``created``: queued in the range; ``resolved``: resolved in the range
    (whenever queued), with the median time from queueing to resolution."""

    created: int
    resolved: int
    median_time_to_resolve: timedelta | None


def callbacks_resolved(*, tenant: Tenant | int, start: datetime, end: datetime) -> ResolvedStats:
    callbacks = Callback.objects.for_tenant(_tenant_id(tenant))
    created = callbacks.filter(created_at__gte=start, created_at__lt=end).count()
    resolved = callbacks.filter(status=CallbackStatus.DONE, done_at__gte=start, done_at__lt=end)
    count, (median,) = _duration_quantiles(resolved, "done_at", "created_at", (0.5,))
    return ResolvedStats(created=created, resolved=count, median_time_to_resolve=median)


@dataclass(frozen=True)
class RecoveryGroup:
    detractors: int
    reordered: int

    @property
    def rate_pct(self) -> float | None:
        return _rate(self.reordered, self.detractors)


@dataclass(frozen=True)
class DetractorRecovery:
    """Detractors who answered in the range and whose ``days`` have passed:
    those reached by a callback (a contact with a reached outcome on the
    callback queued from their answer) and those not reached (no callback, or
    never reached), and how many of each ordered again within ``days`` of
    answering. ``maturing``: detractors in the range still inside their days."""

    reached: RecoveryGroup
    not_reached: RecoveryGroup
    maturing: int
    days: int


def detractor_recovery(
    *,
    tenant: Tenant | int,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    days: int = RECOVERY_DAYS,
) -> DetractorRecovery:
    from commerce.selectors import COUNTED_ORDER_STATUSES, order_list

    tenant_id = _tenant_id(tenant)
    now = now or clock.now()
    window = timedelta(days=days)
    reached = CallbackContact.objects.for_tenant(tenant_id).filter(
        callback__survey_response=OuterRef("pk"), outcome__in=REACHED_OUTCOMES
    )
    reordered = order_list(tenant=tenant_id).filter(
        customer=OuterRef("customer"),
        status__in=COUNTED_ORDER_STATUSES,
        placed_at__gt=OuterRef("answered_at"),
        placed_at__lte=ExpressionWrapper(
            OuterRef("answered_at") + window, output_field=DateTimeField()
        ),
    )
    matured = Q(answered_at__lte=now - window)
    counts = (
        SurveyResponse.objects.for_tenant(tenant_id)
        .filter(classification=SurveyClass.DETRACTOR, answered_at__gte=start, answered_at__lt=end)
        .annotate(was_reached=Exists(reached), did_reorder=Exists(reordered))
        .aggregate(
            reached=Count("id", filter=matured & Q(was_reached=True)),
            reached_reordered=Count("id", filter=matured & Q(was_reached=True, did_reorder=True)),
            not_reached=Count("id", filter=matured & Q(was_reached=False)),
            not_reached_reordered=Count(
                "id", filter=matured & Q(was_reached=False, did_reorder=True)
            ),
            maturing=Count("id", filter=~matured),
        )
    )
    return DetractorRecovery(
        reached=RecoveryGroup(counts["reached"], counts["reached_reordered"]),
        not_reached=RecoveryGroup(counts["not_reached"], counts["not_reached_reordered"]),
        maturing=counts["maturing"],
        days=days,
    )
