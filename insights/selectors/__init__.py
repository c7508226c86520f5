"""What the dashboard reads: sums over the daily rollups (``insights.models``)
and a few tiny reads (names, running experiments, open alerts).

Nothing here scans orders, messages or customers: every query is a range of a
rollup table on its ``(tenant, day, …)`` key, a handful of rows by primary
key, or the latest snapshot of a kind, so the page costs the same for a store
with a thousand customers and one with a million.

``tables`` sums the daily rollups (retention metric, KPIs, product families,
cohorts); ``snapshots`` reads the latest snapshots, alerts and experiments.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Max

from insights.models import MessageDaily
from insights.selectors.snapshots import (
    churn_snapshot,
    feedback_snapshot,
    open_alerts,
    running_experiments,
    tier_snapshot,
)
from insights.selectors.tables import cohort_table, family_table, kpi_tables, retention_metric
from insights.services.setup import insights_settings, kpi_targets
from retention import clock
from retention.models import Tenant
from segments.models import Segment

DEFAULT_DAYS = 28
MAX_AHEAD_DAYS = 60  # how far past today the default range may follow the data


def tenant_today(tenant: Tenant) -> date:
    return clock.now().astimezone(tenant.tzinfo).date()


def default_range(tenant: Tenant) -> tuple[date, date]:
    """The last 28 days, today included (the store's timezone), or up to the
    latest day with figures when that is later: a store whose data runs ahead
    of the clock (the demo's simulated days) opens on its data, not on an
    empty month."""
    end = tenant_today(tenant)
    latest = (
        MessageDaily.objects.for_tenant(tenant).filter(day__gt=end).aggregate(d=Max("day"))["d"]
    )
    if latest is not None:
        end = min(latest, end + timedelta(days=MAX_AHEAD_DAYS))
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def filter_segments(*, tenant: Tenant) -> list[tuple[int, str]]:
    """The segments the dashboard can be filtered by (this store's only)."""
    rows = Segment.objects.for_tenant(tenant).order_by("kind", "name").values_list("pk", "name")
    return list(rows)


def dashboard_data(
    *,
    tenant: Tenant,
    start: date,
    end: date,
    segment_id: int | None,
    channel: str | None,
) -> dict:
    """Everything ``/dashboard/`` shows for ``start``..``end`` (tenant-local
    days, both included). ``segment_id`` narrows the KPI tables to that
    segment's members (SegmentMessageDaily: by segment and channel only, so
    the journey and step tables stay whole); ``channel`` narrows every KPI
    table. The retention metric, cohorts and snapshots ignore the filters
    except ``end``, which they are read up to."""
    settings = insights_settings(tenant)
    targets = kpi_targets(tenant)
    segment_name = ""
    if segment_id is not None:
        segment_name = (
            Segment.objects.for_tenant(tenant)
            .filter(pk=segment_id)
            .values_list("name", flat=True)
            .first()
        ) or ""
    return {
        "filters": {
            "start": start,
            "end": end,
            "segment_id": segment_id,
            "segment_name": segment_name,
            "channel": channel or "",
        },
        "retention": retention_metric(
            tenant=tenant,
            end=end,
            window_days=settings.retention_window_days,
            target=settings.retention_target,
        ),
        "kpis": kpi_tables(
            tenant=tenant,
            start=start,
            end=end,
            segment_id=segment_id,
            channel=channel,
            targets=targets,
        ),
        "families": family_table(tenant=tenant, start=start, end=end),
        "cohorts": cohort_table(tenant=tenant, end=end),
        "tiers": tier_snapshot(tenant=tenant, end=end),
        "churn": churn_snapshot(tenant=tenant, end=end),
        "feedback": feedback_snapshot(tenant=tenant, end=end),
        "alerts": open_alerts(tenant=tenant),
        "experiments": running_experiments(tenant=tenant),
    }
