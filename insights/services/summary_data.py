"""What goes into a weekly summary: plain data (JSON-able) for one tenant and
one Monday-to-Sunday week in the store's timezone, read from the rollup tables
and a few small tables of other apps. Nothing here writes, except that the KPI
targets are made with their defaults on first use (``kpi_targets``).

Definitions (the same ratios as the dashboard, ``insights/kpis.py``):

- **Retention metric.** Of the first-time buyers whose first order fell in the
  week that ends ``window_days`` days before the summarised week ends (so every
  one of their windows has closed by then), the share who ordered again within
  ``window_days``: sum(returned) / sum(first_buyers) of ``RetentionDaily`` over
  those 7 days (rows computed for another window do not count). The week
  before is the same one week earlier; the target is the tenant's
  ``retention_target``. Green at or above the target, amber within a tenth of
  it below, red further below.
- **KPIs** from ``MessageDaily`` (messages by the day they were queued):
  delivery = delivered / sent, open = opened / delivered, click-through =
  clicked / delivered, conversion = converted / sent, unsubscribes =
  unsubscribed / sent; each a ratio of the week's sums, ``None`` over nothing.
  Conversion of messages from the last days of the week is still counting when
  the summary is built (their window runs into the next week).
- **What moved**: per journey, the open, click-through and conversion rates of
  the week against the week before, where both weeks have at least
  ``MIN_SENT`` in the rate's denominator; the ``MOVED_LIMIT`` largest changes
  (in absolute percentage points).
- **Top and bottom journeys**: by conversion rate among journeys with at least
  ``MIN_SENT`` messages sent in the week; the bottom list leaves out journeys
  already on the top list.
- **Callback SLA**: callbacks whose first-contact deadline (``due_by``) fell in
  the week, cancelled ones left out; met when first contact (or resolving
  without a call) came at or before the deadline, missed otherwise.
- **Alerts**: rising-interest alerts raised on a day of the week.
- **Experiments**: experiments that were running at some time in the week.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from experiments.models import Experiment, ExperimentStatus
from feedback.models import Callback, CallbackStatus
from insights.models import Kpi, MessageDaily, RetentionDaily
from insights.services.setup import insights_settings, kpi_targets, rag, target_for
from journeys.models import Journey
from retention import clock
from retention.models import Tenant
from segments.models import RisingInterestAlert

DATA_VERSION = 1
MIN_SENT = 20
MOVED_LIMIT = 5
TOP_N = 3
# Amber: below the retention target by at most this share of the target.
RETENTION_AMBER = 0.10

COUNTS = ("sent", "delivered", "opened", "clicked", "converted", "unsubscribed")
# kpi: (numerator, denominator), as the dashboard's insights/kpis.py.
RATIOS: dict[str, tuple[str, str]] = {
    Kpi.DELIVERY: ("delivered", "sent"),
    Kpi.OPEN: ("opened", "delivered"),
    Kpi.CLICK: ("clicked", "delivered"),
    Kpi.CONVERSION: ("converted", "sent"),
    Kpi.UNSUBSCRIBE: ("unsubscribed", "sent"),
}
MOVED_KPIS = (Kpi.OPEN, Kpi.CLICK, Kpi.CONVERSION)
KPI_LABELS = dict(Kpi.choices)


def tenant_zone(tenant: Tenant) -> ZoneInfo:
    try:
        return ZoneInfo(tenant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant ``day`` starts in ``tz`` (a midnight the clock skips is read
    with the offset from before the jump: the first instant of the day)."""
    return datetime.combine(day, time(0), tzinfo=tz)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _change(value: float | None, previous: float | None) -> float | None:
    return None if value is None or previous is None else round(value - previous, 6)


def summary_build(*, tenant: Tenant, week_start: date) -> dict:
    """The week's summary as plain data (see the module docstring)."""
    tz = tenant_zone(tenant)
    end = week_start + timedelta(days=7)
    start_at, end_at = local_midnight(week_start, tz), local_midnight(end, tz)
    config = insights_settings(tenant)
    targets = kpi_targets(tenant)
    counts = _message_counts(tenant, week_start - timedelta(days=7), end)
    journey_names = _journey_names(tenant, {j for (j, _) in counts if j})
    return {
        "version": DATA_VERSION,
        "store": tenant.name,
        "timezone": tz.key,
        "week": {"start": week_start.isoformat(), "end": (end - timedelta(days=1)).isoformat()},
        "built_at": clock.now().isoformat(),
        "retention": _retention(
            tenant, week_start, config.retention_window_days, config.retention_target
        ),
        "kpis": _kpis(counts, week_start, targets),
        "moved": _moved(counts, week_start, journey_names),
        "journeys": _top_bottom(counts, week_start, journey_names, targets),
        "callbacks": _callbacks(tenant, start_at, end_at),
        "alerts": _alerts(tenant, week_start, end),
        "experiments": _experiments(tenant, start_at, end_at),
    }


# --- the retention metric ----------------------------------------------------------------


def _cohort(tenant: Tenant, first: date, window_days: int) -> dict:
    totals = (
        RetentionDaily.objects.for_tenant(tenant)
        .filter(day__gte=first, day__lt=first + timedelta(days=7), window_days=window_days)
        .aggregate(buyers=Sum("first_buyers"), returned=Sum("returned"))
    )
    buyers, returned = totals["buyers"] or 0, totals["returned"] or 0
    return {
        "cohort_start": first.isoformat(),
        "cohort_end": (first + timedelta(days=6)).isoformat(),
        "first_buyers": buyers,
        "returned": returned,
        "rate": _ratio(returned, buyers),
    }


def _retention(tenant: Tenant, week_start: date, window_days: int, target: float) -> dict:
    first = week_start - timedelta(days=window_days)
    this = _cohort(tenant, first, window_days)
    before = _cohort(tenant, first - timedelta(days=7), window_days)
    return this | {
        "window_days": window_days,
        "previous": before,
        "change": _change(this["rate"], before["rate"]),
        "target": target,
        "rag": retention_rag(this["rate"], target),
    }


def retention_rag(rate: float | None, target: float | None) -> str:
    if rate is None or target is None:
        return ""
    if rate >= target:
        return "green"
    return "amber" if rate >= target * (1 - RETENTION_AMBER) else "red"


# --- messages ----------------------------------------------------------------------------


def _message_counts(
    tenant: Tenant, first: date, end: date
) -> dict[tuple[int, date], dict[str, int]]:
    """(journey id, week start) -> summed counts, for the weeks in [first, end)."""
    rows = (
        MessageDaily.objects.for_tenant(tenant)
        .filter(day__gte=first, day__lt=end)
        .values("journey_id", "day")
        .annotate(**{name: Sum(name) for name in COUNTS})
    )
    out: dict[tuple[int, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for row in rows:
        week = row["day"] - timedelta(days=row["day"].weekday())
        into = out[(row["journey_id"], week)]
        for name in COUNTS:
            into[name] += row[name] or 0
    return out


def _sum(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNTS, 0)
    for part in parts:
        for name in COUNTS:
            total[name] += part[name]
    return total


def _rate(counts: dict[str, int] | None, kpi: str) -> float | None:
    if counts is None:
        return None
    numerator, denominator = RATIOS[kpi]
    return _ratio(counts[numerator], counts[denominator])


def _kpis(counts: dict, week_start: date, targets: dict) -> list[dict]:
    previous_week = week_start - timedelta(days=7)
    this = _sum(c for (_, w), c in counts.items() if w == week_start)
    before = _sum(c for (_, w), c in counts.items() if w == previous_week)
    rows = []
    for kpi in RATIOS:
        value, previous = _rate(this, kpi), _rate(before, kpi)
        target = target_for(targets, "", kpi)
        rows.append(
            {
                "kpi": str(kpi),
                "label": KPI_LABELS[kpi],
                "value": value,
                "previous": previous,
                "change": _change(value, previous),
                "low": target[0] if target else None,
                "high": target[1] if target else None,
                "rag": rag(value, target, kpi),
            }
        )
    return rows


def _journey_names(tenant: Tenant, ids: set[int]) -> dict[int, str]:
    names = dict(Journey.objects.for_tenant(tenant).filter(pk__in=ids).values_list("pk", "name"))
    return {pk: names.get(pk, f"Journey {pk} (deleted)") for pk in ids}


def _moved(counts: dict, week_start: date, names: dict[int, str]) -> list[dict]:
    previous_week = week_start - timedelta(days=7)
    moves = []
    for journey_id, name in names.items():
        this, before = counts.get((journey_id, week_start)), counts.get((journey_id, previous_week))
        if this is None or before is None:
            continue
        for kpi in MOVED_KPIS:
            denominator = RATIOS[kpi][1]
            if this[denominator] < MIN_SENT or before[denominator] < MIN_SENT:
                continue
            value, previous = _rate(this, kpi), _rate(before, kpi)
            change = _change(value, previous)
            if not change:
                continue
            moves.append(
                {
                    "journey_id": journey_id,
                    "journey": name,
                    "kpi": str(kpi),
                    "label": KPI_LABELS[kpi],
                    "value": value,
                    "previous": previous,
                    "change": change,
                }
            )
    moves.sort(key=lambda m: (-abs(m["change"]), m["journey"], m["journey_id"], m["kpi"]))
    return moves[:MOVED_LIMIT]


def _top_bottom(counts: dict, week_start: date, names: dict[int, str], targets: dict) -> dict:
    target = target_for(targets, "", Kpi.CONVERSION)
    ranked = []
    for journey_id, name in names.items():
        this = counts.get((journey_id, week_start))
        if this is None or this["sent"] < MIN_SENT:
            continue
        rate = _rate(this, Kpi.CONVERSION)
        ranked.append(
            {
                "journey_id": journey_id,
                "journey": name,
                "sent": this["sent"],
                "converted": this["converted"],
                "conversion_rate": rate,
                "rag": rag(rate, target, Kpi.CONVERSION),
            }
        )
    ranked.sort(key=lambda r: (-r["conversion_rate"], r["journey"], r["journey_id"]))
    top = ranked[:TOP_N]
    rest = ranked[len(top) :]
    bottom = sorted(rest, key=lambda r: (r["conversion_rate"], r["journey"], r["journey_id"]))
    return {"min_sent": MIN_SENT, "top": top, "bottom": bottom[:TOP_N]}


# --- support, alerts, experiments ------------------------------------------------------


def _callbacks(tenant: Tenant, start: datetime, end: datetime) -> dict:
    """The callback SLA of the week (read straight from the feedback app's
    table: its selectors count by queueing time, the summary by deadline)."""
    totals = (
        Callback.objects.for_tenant(tenant)
        .filter(due_by__gte=start, due_by__lt=end)
        .exclude(status=CallbackStatus.CANCELLED)
        .annotate(answered_at=Coalesce("first_contact_at", "done_at"))
        .aggregate(
            due=Count("id"),
            met=Count("id", filter=Q(answered_at__lte=F("due_by"))),
        )
    )
    due, met = totals["due"] or 0, totals["met"] or 0
    return {"due": due, "met": met, "missed": due - met, "met_rate": _ratio(met, due)}


def _alerts(tenant: Tenant, start: date, end: date) -> list[dict]:
    alerts = (
        RisingInterestAlert.objects.for_tenant(tenant)
        .filter(day__gte=start, day__lt=end)
        .select_related("segment")
        .order_by("day", "pk")
    )
    return [
        {
            "segment_id": a.segment_id,
            "segment": a.segment.name,
            "day": a.day.isoformat(),
            "members": a.members,
            "rise_pct": round(a.rise_pct, 1),
            "new": bool(a.breakdown.get("baseline_zero")),
        }
        for a in alerts
    ]


def _experiments(tenant: Tenant, start: datetime, end: datetime) -> list[dict]:
    running = (
        Experiment.objects.for_tenant(tenant)
        .exclude(status=ExperimentStatus.DRAFT)
        .filter(started_at__isnull=False, started_at__lt=end)
        .filter(Q(stopped_at__isnull=True) | Q(stopped_at__gte=start))
        .filter(Q(concluded_at__isnull=True) | Q(concluded_at__gte=start))
        .select_related("journey")
        .order_by("started_at", "pk")
    )
    return [
        {
            "id": e.pk,
            "name": e.name,
            "kind": e.get_kind_display(),
            "journey": e.journey.name,
            "started": e.started_at.astimezone(tenant_zone(tenant)).date().isoformat(),
            "status": e.get_status_display(),
        }
        for e in running
    ]
