"""Sums over the daily rollups: the weekly retention metric, the KPI tables
against targets, product families and the cohort table. Each is one grouped
query over a range of its table's ``(tenant, day, …)`` key, plus names read
by primary key."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db.models import Sum

from commerce.models import Channel, ProductFamily
from insights.kpis import (
    COUNT_FIELDS,
    KPI_LABELS,
    KPI_ORDER,
    UNMEASURED,
    add_counts,
    empty_counts,
    kpi_row,
    ratio,
    retention_cohort_span,
    retention_trend,
    retention_weeks,
)
from insights.models import (
    CohortMonthly,
    FamilyDaily,
    MessageDaily,
    RetentionDaily,
    SegmentMessageDaily,
)
from journeys.models import Journey, JourneyStep
from retention.models import Tenant
from segments.models import Segment, SegmentKind, Tier

COHORT_MONTHS = 12  # cohorts shown, and months since first order
TIER_LABELS = {"": "No tier", **dict(Tier.choices)}
TIER_ORDER = [t for t, _ in Tier.choices]
CHANNEL_LABELS = dict(Channel.choices)


# --- the retention metric ---------------------------------------------------------------


def retention_metric(*, tenant: Tenant, end: date, window_days: int, target: float) -> dict:
    """The 26 full Monday-Sunday weeks up to the Sunday on or before ``end``.
    A week's value is returned / first_buyers summed over the RetentionDaily
    days of the cohort whose windows all closed by that Sunday: first orders
    from ``window_days + 6`` to ``window_days`` days before it. Only rows
    computed with the tenant's current window count."""
    low, high = retention_cohort_span(end=end, window_days=window_days)
    rows = (
        RetentionDaily.objects.for_tenant(tenant)
        .filter(day__range=(low, high), window_days=window_days)
        .values_list("day", "first_buyers", "returned")
    )
    weeks = retention_weeks(
        days={day: (buyers, returned) for day, buyers, returned in rows},
        end=end,
        window_days=window_days,
    )
    current, previous = weeks[-1].value, weeks[-2].value
    change = current - previous if current is not None and previous is not None else None
    return {
        "window_days": window_days,
        "target": target,
        "weeks": [
            {
                "week_start": w.start,
                "week_end": w.end,
                "cohort_start": w.cohort_start,
                "cohort_end": w.cohort_end,
                "first_buyers": w.first_buyers,
                "returned": w.returned,
                "value": w.value,
            }
            for w in weeks
        ],
        "current_week_start": weeks[-1].start,
        "current": current,
        "previous": previous,
        "change": change,
        "trend": retention_trend(weeks),
    }


# --- KPIs against targets ---------------------------------------------------------------


def _sums(qs, *dims: str) -> list[dict]:
    return list(qs.values(*dims).annotate(**{f: Sum(f) for f in COUNT_FIELDS}).order_by(*dims))


def kpi_tables(
    *,
    tenant: Tenant,
    start: date,
    end: date,
    segment_id: int | None,
    channel: str | None,
    targets: dict[tuple[str, str], tuple[float, float]],
) -> dict:
    """Rows per journey (each with its per-tier rows), per step, per segment
    and per channel, and the total; see ``insights.kpis.kpi_row``."""
    messages = MessageDaily.objects.for_tenant(tenant).filter(day__range=(start, end))
    by_segment = SegmentMessageDaily.objects.for_tenant(tenant).filter(day__range=(start, end))
    if channel:
        messages = messages.filter(channel=channel)
        by_segment = by_segment.filter(channel=channel)
    if segment_id is not None:
        by_segment = by_segment.filter(segment_id=segment_id)

    # One grouped read of MessageDaily (a few hundred rows), rolled up here.
    journeys: dict[int, dict] = defaultdict(empty_counts)
    journey_tiers: dict[tuple[int, str], dict] = defaultdict(empty_counts)
    steps: dict[tuple[int, int], dict] = defaultdict(empty_counts)
    channels: dict[str, dict] = defaultdict(empty_counts)
    total = empty_counts()
    for row in _sums(messages, "journey_id", "step_id", "channel", "tier"):
        add_counts(journeys[row["journey_id"]], row)
        add_counts(journey_tiers[(row["journey_id"], row["tier"])], row)
        if row["journey_id"]:
            add_counts(steps[(row["journey_id"], row["step_id"])], row)
        if segment_id is None:
            add_counts(channels[row["channel"]], row)
            add_counts(total, row)

    segments: dict[int, dict] = defaultdict(empty_counts)
    for row in _sums(by_segment, "segment_id", "channel"):
        add_counts(segments[row["segment_id"]], row)
        if segment_id is not None:
            add_counts(channels[row["channel"]], row)
            add_counts(total, row)

    journey_names = dict(
        Journey.objects.for_tenant(tenant)
        .filter(pk__in=[j for j in journeys if j])
        .values_list("pk", "name")
    )
    step_names = {
        s.pk: f"v{s.version.number} · {s.position}. {s.name}"
        for s in JourneyStep.objects.for_tenant(tenant)
        .filter(pk__in=[s for _, s in steps])
        .select_related("version")
    }
    segment_rows = {
        pk: (name, tier if kind == SegmentKind.TIER else "")
        for pk, name, kind, tier in Segment.objects.for_tenant(tenant)
        .filter(pk__in=list(segments))
        .values_list("pk", "name", "kind", "tier")
    }

    # With the SMS filter on, every table is SMS only: no open rate anywhere.
    row_of = functools.partial(
        kpi_row, targets=targets, unmeasured=UNMEASURED.get(channel or "", ())
    )

    def journey_label(pk: int) -> str:
        return journey_names.get(pk, f"Journey #{pk}") if pk else "Not from a journey"

    journey_table = []
    for pk in sorted(journeys, key=lambda j: (j == 0, journey_label(j).lower())):
        row = row_of(key=str(pk), label=journey_label(pk), counts=journeys[pk])
        row["journey_id"] = pk
        row["tiers"] = [
            row_of(
                key=f"{pk}:{tier}",
                label=TIER_LABELS.get(tier, tier),
                counts=journey_tiers[(pk, tier)],
                tier=tier,
            )
            for tier in sorted(
                (t for (j, t) in journey_tiers if j == pk),
                key=lambda t: TIER_ORDER.index(t) if t in TIER_ORDER else len(TIER_ORDER),
            )
        ]
        journey_table.append(row)

    step_table = []
    for (journey_pk, step_pk), counts in sorted(
        steps.items(), key=lambda item: (journey_label(item[0][0]).lower(), item[0][1])
    ):
        label = step_names.get(step_pk, f"Step #{step_pk}")
        row = row_of(key=str(step_pk), label=label, counts=counts)
        row.update(journey_id=journey_pk, journey=journey_label(journey_pk), step_id=step_pk)
        step_table.append(row)

    segment_table = []
    for pk, counts in segments.items():
        if pk not in segment_rows:  # deleted since the rollup ran
            continue
        name, tier = segment_rows[pk]
        row = row_of(key=str(pk), label=name, counts=counts, tier=tier)
        row["segment_id"] = pk
        segment_table.append(row)
    segment_table.sort(key=lambda r: r["label"].lower())

    channel_table = [
        kpi_row(
            key=c,
            label=CHANNEL_LABELS.get(c, c),
            counts=channels[c],
            targets=targets,
            unmeasured=UNMEASURED.get(c, ()),
        )
        for c in sorted(
            channels, key=lambda c: list(CHANNEL_LABELS).index(c) if c in CHANNEL_LABELS else 9
        )
    ]
    return {
        "kpis": [{"kpi": str(k), "label": KPI_LABELS[k]} for k in KPI_ORDER],
        "total": row_of(key="total", label="All messages", counts=total),
        "journeys": journey_table,
        "steps": step_table,
        "segments": segment_table,
        "channels": channel_table,
        "segment_filtered": segment_id is not None,
    }


# --- product families -------------------------------------------------------------------


def family_table(*, tenant: Tenant, start: date, end: date) -> list[dict]:
    """Per product family over the range: reorder rate (reorders / orders),
    upsell orders and their average value (upsell revenue / upsell orders)."""
    sums = list(
        FamilyDaily.objects.for_tenant(tenant)
        .filter(day__range=(start, end))
        .values("family_id")
        .annotate(
            orders=Sum("orders"),
            reorders=Sum("reorders"),
            buyers=Sum("buyers"),
            upsell_orders=Sum("upsell_orders"),
            upsell_revenue=Sum("upsell_revenue"),
        )
        .order_by("family_id")
    )
    names = dict(
        ProductFamily.objects.for_tenant(tenant)
        .filter(pk__in=[r["family_id"] for r in sums])
        .values_list("pk", "name")
    )
    table = []
    for r in sums:
        revenue = r["upsell_revenue"] or Decimal(0)
        aov = revenue / r["upsell_orders"] if r["upsell_orders"] else None
        table.append(
            {
                "family_id": r["family_id"],
                "name": names.get(r["family_id"], f"Family #{r['family_id']}"),
                "orders": r["orders"],
                "reorders": r["reorders"],
                "reorder_rate": ratio(r["reorders"], r["orders"]),
                "upsell_orders": r["upsell_orders"],
                "upsell_revenue": revenue,
                "upsell_aov": aov.quantize(Decimal("0.01")) if aov is not None else None,
            }
        )
    table.sort(key=lambda r: r["name"].lower())
    return table


# --- cohorts ----------------------------------------------------------------------------


def _month_back(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def cohort_table(*, tenant: Tenant, end: date) -> dict:
    """The 12 monthly cohorts up to ``end``'s month (rows, oldest first) by
    months since first order 0..12 (columns): active / size, ``None`` where
    that month has not been reached or computed; ``scale`` is the largest
    share after month 0 (for the heatmap's shades)."""
    last = end.replace(day=1)
    first = _month_back(last, COHORT_MONTHS - 1)
    cells: dict[date, dict[int, tuple[int, int]]] = defaultdict(dict)
    for cohort, months, size, active in (
        CohortMonthly.objects.for_tenant(tenant)
        .filter(cohort__range=(first, last), months__lte=COHORT_MONTHS)
        .values_list("cohort", "months", "size", "active")
    ):
        cells[cohort][months] = (size, active)
    columns = list(range(COHORT_MONTHS + 1))
    rows = []
    for cohort in sorted(cells):
        sizes = [size for size, _ in cells[cohort].values()]
        row_cells = []
        for m in columns:
            size, active = cells[cohort].get(m, (0, None))
            value = ratio(active, size) if active is not None else None
            row_cells.append({"months": m, "active": active, "value": value})
        rows.append({"cohort": cohort, "size": max(sizes), "cells": row_cells})
    later = [c["value"] for r in rows for c in r["cells"][1:] if c["value"] is not None]
    # Month 0 is everyone; shades are scaled to the later months so they differ.
    return {"months": columns, "rows": rows, "scale": max(later, default=0) or 1.0}
