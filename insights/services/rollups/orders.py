"""RetentionDaily, CohortMonthly and FamilyDaily: set-based reads of the
orders (and, for upsells, the outbox)."""

# Statements are built from our own constants and vendor expressions;
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date, timedelta

from django.db import transaction

from insights.models import CohortMonthly, FamilyDaily, RetentionDaily
from insights.services.rollups.sql import (
    ANY_STATUS,
    COUNTED,
    CUSTOMER_CATEGORIES,
    SEND_TIME,
    SENT,
    Run,
    as_date,
    days,
    execute,
    json_id,
    local_day,
    local_month,
    lock,
    month_index,
    within,
)
from journeys.models import Journey

# A message leaves the outbox within hours of being queued (quiet hours defer it
# to the morning): upsell sends are looked for among messages queued this long
# before the conversion window, so the scan of the outbox stays bounded.
MAX_SEND_DELAY_DAYS = 7
UPSELL_JOURNEY_KEY = "upsell"


def _retention_sql() -> str:
    returned = (
        "SELECT 1 FROM commerce_order r WHERE r.tenant_id = %(tenant)s"
        f" AND r.customer_id = f.customer_id AND r.status IN {COUNTED}"
        f" AND {within('r.placed_at', 'f.first_at', 'window')}"
    )
    return f"""
    INSERT INTO insights_retentiondaily (tenant_id, day, window_days, first_buyers, returned)
    SELECT %(tenant)s, f.day, %(window_days)s, COUNT(*),
           SUM(CASE WHEN EXISTS ({returned}) THEN 1 ELSE 0 END)
    FROM (
        SELECT c.customer_id, c.first_at, {local_day("c.first_at")} AS day
        FROM (
            SELECT o.customer_id, MIN(o.placed_at) AS first_at
            FROM commerce_order o
            WHERE o.tenant_id = %(tenant)s AND o.status IN {COUNTED}
              AND o.placed_at >= %(lo)s AND o.placed_at < %(hi)s
            GROUP BY o.customer_id
        ) c
        WHERE NOT EXISTS (
            SELECT 1 FROM commerce_order p
            WHERE p.tenant_id = %(tenant)s AND p.customer_id = c.customer_id
              AND p.status IN {COUNTED} AND p.placed_at < c.first_at)
    ) f
    WHERE f.day BETWEEN %(start)s AND %(end)s
    GROUP BY f.day
    """


def refresh_retention(run: Run, start: date, end: date) -> int:
    params = run.params(start, end, window=days(run.window_days), window_days=run.window_days)
    with transaction.atomic():
        lock(run.tenant_id)
        RetentionDaily.objects.for_tenant(run.tenant_id).filter(day__range=(start, end)).delete()
        return execute(_retention_sql(), params)


# --- cohorts ------------------------------------------------------------------------------


def _cohort_sql() -> str:
    # Orders in (customer, time) order, the covering index's order (no sort):
    # the first row of each customer names the cohort, and a customer counts
    # once per month. The local month is computed once per order and kept as
    # a timestamp; month numbers only for the hundred-odd (cohort, month) pairs.
    return f"""
    WITH RECURSIVE
    months AS (
        SELECT x.m, FIRST_VALUE(x.m) OVER w AS cohort, LAG(x.m) OVER w AS prev
        FROM (
            SELECT o.customer_id, o.placed_at, {local_month("o.placed_at")} AS m
            FROM commerce_order o
            WHERE o.tenant_id = %(tenant)s AND o.status IN {COUNTED}
        ) x
        WINDOW w AS (PARTITION BY x.customer_id ORDER BY x.placed_at)
    ),
    pairs AS (
        SELECT cohort, m, COUNT(*) AS n FROM months
        WHERE prev IS NULL OR prev <> m
        GROUP BY cohort, m
    ),
    active AS (
        SELECT {as_date("cohort")} AS cohort, {month_index("cohort")} AS cohort_mi,
               {month_index("m")} - {month_index("cohort")} AS k, n
        FROM pairs
    ),
    ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE k < 1200)
    INSERT INTO insights_cohortmonthly (tenant_id, cohort, months, size, active)
    SELECT %(tenant)s, s.cohort, ks.k, s.n, COALESCE(a.n, 0)
    FROM active s
    JOIN ks ON s.cohort_mi + ks.k <= %(today_mi)s
    LEFT JOIN active a ON a.cohort_mi = s.cohort_mi AND a.k = ks.k
    WHERE s.k = 0
    """


def refresh_cohorts(run: Run) -> int:
    today = run.today
    params = run.params(today_mi=today.year * 12 + today.month)
    with transaction.atomic():
        lock(run.tenant_id)
        CohortMonthly.objects.for_tenant(run.tenant_id).delete()
        return execute(_cohort_sql(), params)


# --- families -----------------------------------------------------------------------------


def _families_sql() -> str:
    earlier = (
        "SELECT 1 FROM commerce_order p"
        " JOIN commerce_orderline pl ON pl.tenant_id = %(tenant)s AND pl.order_id = p.id"
        " WHERE p.tenant_id = %(tenant)s AND p.customer_id = fo.customer_id"
        f" AND p.status IN {COUNTED} AND p.placed_at < fo.placed_at"
        " AND pl.family_id = fo.family_id"
    )
    return f"""
    WITH fo AS (
        SELECT o.id AS order_id, o.customer_id, o.placed_at, l.family_id,
               SUM(l.total) AS amount
        FROM commerce_order o
        JOIN commerce_orderline l ON l.tenant_id = %(tenant)s AND l.order_id = o.id
        WHERE o.tenant_id = %(tenant)s AND o.status IN {COUNTED}
          AND o.placed_at >= %(lo)s AND o.placed_at < %(hi)s AND l.family_id IS NOT NULL
        GROUP BY o.id, o.customer_id, o.placed_at, l.family_id
    ),
    upsell AS (
        SELECT m.customer_id, {SEND_TIME} AS t0
        FROM messaging_message m
        WHERE m.tenant_id = %(tenant)s AND {ANY_STATUS}
          AND m.created_at >= %(upsell_lo)s AND m.created_at < %(hi)s
          AND m.category IN {CUSTOMER_CATEGORIES} AND {SENT}
          AND {json_id("m.context", "journey_id")} = %(upsell_journey)s
    ),
    upsold AS (
        SELECT DISTINCT fo.order_id
        FROM fo JOIN upsell u ON u.customer_id = fo.customer_id
        WHERE {within("fo.placed_at", "u.t0", "conv_days")}
    ),
    by_day AS (
        SELECT {local_day("fo.placed_at")} AS day, fo.family_id, fo.customer_id, fo.amount,
               CASE WHEN EXISTS ({earlier}) THEN 1 ELSE 0 END AS reorder,
               CASE WHEN u.order_id IS NULL THEN 0 ELSE 1 END AS upsold
        FROM fo LEFT JOIN upsold u ON u.order_id = fo.order_id
    )
    INSERT INTO insights_familydaily (
        tenant_id, day, family_id, orders, reorders, buyers, upsell_orders, upsell_revenue)
    SELECT %(tenant)s, day, family_id, COUNT(*), SUM(reorder), COUNT(DISTINCT customer_id),
           SUM(upsold), COALESCE(SUM(CASE WHEN upsold = 1 THEN amount END), 0)
    FROM by_day
    WHERE day BETWEEN %(start)s AND %(end)s
    GROUP BY day, family_id
    """


def refresh_families(run: Run, start: date, end: date) -> int:
    upsell = (
        Journey.objects.for_tenant(run.tenant_id)
        .filter(key=UPSELL_JOURNEY_KEY)
        .values_list("pk", flat=True)
        .first()
    )
    lo, _ = run.bounds(start, end)
    params = run.params(
        start,
        end,
        conv_days=days(run.conversion_days),
        upsell_journey=upsell or -1,
        upsell_lo=lo - timedelta(days=run.conversion_days + MAX_SEND_DELAY_DAYS),
    )
    with transaction.atomic():
        lock(run.tenant_id)
        FamilyDaily.objects.for_tenant(run.tenant_id).filter(day__range=(start, end)).delete()
        return execute(_families_sql(), params)
