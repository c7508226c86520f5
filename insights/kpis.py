"""The dashboard's arithmetic on plain values, no database: KPI rates from
summed rollup counts with their targets and colours, the weekly retention
metric from daily first-buyer counts, and its trend.

Every rate is a ratio of two sums (never an average of daily rates), and a
ratio over nothing is ``None`` ("no data"), never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from insights.models import Kpi
from insights.services.setup import rag, target_for

# The summed columns of MessageDaily / SegmentMessageDaily the KPIs read.
COUNT_FIELDS = (
    "messages",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "suppressed",
    "unsubscribed",
    "converted",
    "responded",
    "next_action",
    "next_action_seconds",
)

# kpi: (numerator, denominator)
KPI_RATIOS: dict[str, tuple[str, str]] = {
    Kpi.DELIVERY: ("delivered", "sent"),
    Kpi.OPEN: ("opened", "delivered"),
    Kpi.CLICK: ("clicked", "delivered"),
    Kpi.CONVERSION: ("converted", "sent"),
    Kpi.RESPONSE: ("responded", "sent"),
    Kpi.UNSUBSCRIBE: ("unsubscribed", "sent"),
}
KPI_ORDER = tuple(KPI_RATIOS)
KPI_LABELS = {k: label for k, label in Kpi.choices}
# What a channel cannot measure: an SMS is never seen "opened" (a tracked
# click marks it opened too), so its open rate would be the click rate judged
# against an email target. Shown as "—", uncoloured.
UNMEASURED: dict[str, tuple[str, ...]] = {"sms": (Kpi.OPEN,)}

WEEKS = 26
# Last 4 weeks against the 4 before: a move smaller than this is "flat".
TREND_FLAT = 0.005


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def empty_counts() -> dict[str, float]:
    return dict.fromkeys(COUNT_FIELDS, 0)


def add_counts(into: dict[str, float], row: Mapping[str, float | None]) -> dict[str, float]:
    for field in COUNT_FIELDS:
        into[field] += row.get(field) or 0
    return into


def kpi_row(
    *,
    key: str,
    label: str,
    counts: Mapping[str, float],
    targets: dict[tuple[str, str], tuple[float, float]],
    tier: str = "",
    unmeasured: Iterable[str] = (),
) -> dict:
    """One table row: each KPI's value, the target range for ``tier`` (the
    all-customer range where the tier has none) and its colour; the average
    time to next action (seconds, no target). KPIs in ``unmeasured`` have no
    value."""
    cells = []
    for kpi in KPI_ORDER:
        numerator, denominator = KPI_RATIOS[kpi]
        value = None if kpi in unmeasured else ratio(counts[numerator], counts[denominator])
        target = target_for(targets, tier, kpi)
        cells.append(
            {
                "kpi": str(kpi),
                "label": KPI_LABELS[kpi],
                "value": value,
                "low": target[0] if target else None,
                "high": target[1] if target else None,
                "rag": rag(value, target, kpi),
            }
        )
    return {
        "key": key,
        "label": label,
        "tier": tier,
        "counts": {f: counts[f] for f in COUNT_FIELDS},
        "kpis": cells,
        "avg_next_action_seconds": ratio(counts["next_action_seconds"], counts["next_action"]),
    }


# --- the retention metric ---------------------------------------------------------------


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def last_full_week_end(end: date) -> date:
    """The Sunday on or before ``end``: the newest week whose every day has passed."""
    return end - timedelta(days=(end.weekday() + 1) % 7)


@dataclass(frozen=True)
class RetentionWeek:
    """The metric for the Monday-Sunday week ``start``..``end``: of the
    customers whose first order fell on ``cohort_start``..``cohort_end`` (the
    week that ends ``window_days`` before this one ends, so every one of their
    windows had closed by ``end``), ``returned`` ordered again within the window."""

    start: date
    end: date
    cohort_start: date
    cohort_end: date
    first_buyers: int
    returned: int

    @property
    def value(self) -> float | None:
        return ratio(self.returned, self.first_buyers)


def retention_weeks(
    *, days: Mapping[date, tuple[int, int]], end: date, window_days: int, weeks: int = WEEKS
) -> list[RetentionWeek]:
    """``days``: first-order day → (first_buyers, returned). The ``weeks``
    full weeks up to the Sunday on or before ``end``, oldest first."""
    last_end = last_full_week_end(end)
    out = []
    for back in range(weeks - 1, -1, -1):
        week_end = last_end - timedelta(weeks=back)
        cohort_end = week_end - timedelta(days=window_days)
        cohort_start = cohort_end - timedelta(days=6)
        buyers = returned = 0
        for offset in range(7):
            b, r = days.get(cohort_start + timedelta(days=offset), (0, 0))
            buyers, returned = buyers + b, returned + r
        out.append(
            RetentionWeek(
                start=week_end - timedelta(days=6),
                end=week_end,
                cohort_start=cohort_start,
                cohort_end=cohort_end,
                first_buyers=buyers,
                returned=returned,
            )
        )
    return out


def retention_cohort_span(*, end: date, window_days: int, weeks: int = WEEKS) -> tuple[date, date]:
    """The first-order days the weekly metric reads, for the query."""
    last_end = last_full_week_end(end)
    first_end = last_end - timedelta(weeks=weeks - 1)
    return (
        first_end - timedelta(days=window_days + 6),
        last_end - timedelta(days=window_days),
    )


def slope(values: Iterable[tuple[int, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than two x values."""
    points = list(values)
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx


def _pooled(weeks: list[RetentionWeek]) -> float | None:
    return ratio(sum(w.returned for w in weeks), sum(w.first_buyers for w in weeks))


def retention_trend(weeks: list[RetentionWeek]) -> dict:
    """The slope of the weekly values (share per week) and the last 4 weeks
    against the 4 before them (pooled: returned / first buyers over the 4
    weeks), with the direction that comparison gives."""
    last4, prev4 = _pooled(weeks[-4:]), _pooled(weeks[-8:-4])
    direction = ""
    if last4 is not None and prev4 is not None:
        moved = last4 - prev4
        direction = "up" if moved > TREND_FLAT else "down" if moved < -TREND_FLAT else "flat"
    return {
        "slope_per_week": slope((i, w.value) for i, w in enumerate(weeks) if w.value is not None),
        "last4": last4,
        "prev4": prev4,
        "direction": direction,
    }
