"""RFM scores and tiers: the full recompute and the per-customer refresh.

Definitions (the README repeats them for marketers):

- Counted orders are those not cancelled or refunded.
- Recency is the time of the last counted order (``last_order_at``; "days since
  last order" is read against the clock, so it never goes stale). Frequency and
  monetary value count orders placed in the tenant's window (default 365 days).
- Scores 1-5 by quintile within the tenant, ties sharing a score:
  ``score = min(5, 1 + 5 * (rank - 1) // (n - 1))`` where ``rank`` is the SQL
  ``RANK()`` of the value among the ``n`` buyers (1 = lowest; for recency, the
  oldest last order). A value earns at least score s exactly when more than
  ``k_s = ceil((s - 1) * (n - 1) / 5)`` values are below it, i.e. when it is
  above the k_s-th smallest value. The full recompute stores those k-th values
  per measure (the *edges*); a per-customer refresh scores against them, which
  gives exactly the score the full recompute gave any value it saw. The nightly
  recompute re-ranks everyone and moves the edges.
- Tier: ``frequency >= repeat_min_orders`` and ``m_score >=
  high_value_min_monetary_score`` is high-value repeat; ``frequency >=
  repeat_min_orders`` otherwise is mid-value repeat; everyone else with a
  counted order (including buyers whose orders all predate the window) is
  one-time.

The full recompute is one set-based statement on PostgreSQL (aggregate once,
one sort per measure for the edges, score and diff) and then writes of only the
rows that changed, with a transition for every tier move;
other databases (the embedded SQLite default) use ``_recompute_python``, which
implements the same definitions and is checked against the SQL path in tests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils.dateparse import parse_datetime

from commerce.models import Order, OrderStatus
from retention import clock
from retention.models import Tenant
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentSettings,
    SegmentTransition,
    Tier,
    TransitionKind,
)
from segments.services.families import families_rebuild
from segments.services.locks import lock_customer, lock_tenant
from segments.services.setup import segment_settings, tier_segments

logger = logging.getLogger(__name__)

UNCOUNTED_STATUSES = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
MEASURES = ("recency", "frequency", "monetary")
RFM_FIELDS = (
    "first_order_at",
    "last_order_at",
    "orders_total",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "tier",
)


# --- definitions ----------------------------------------------------------------


def quintile(rank: int, n: int) -> int:
    """The score of a value of ``rank`` (1-based SQL RANK) among ``n`` values."""
    return min(5, 1 + 5 * (rank - 1) // max(n - 1, 1))


def score(value, edges: list | None) -> int:
    """Score a value against the edges of the last full recompute: one more for
    each edge it is above (``None``: a score nobody could reach)."""
    return 1 + sum(1 for edge in edges or () if edge is not None and value > edge)


def tier_for(frequency: int, m_score: int, settings: SegmentSettings) -> str:
    if frequency >= settings.repeat_min_orders:
        if m_score >= settings.high_value_min_monetary_score:
            return Tier.HIGH_VALUE_REPEAT
        return Tier.MID_VALUE_REPEAT
    return Tier.ONE_TIME


def window_start(settings: SegmentSettings, as_of: datetime) -> datetime:
    return as_of - timedelta(days=settings.window_days)


@dataclass(frozen=True)
class Edges:
    """Per measure, the values a value must be above to earn scores 2, 3, 4, 5
    (the k-th smallest values of the last full recompute)."""

    recency: list = field(default_factory=list)
    frequency: list = field(default_factory=list)
    monetary: list = field(default_factory=list)

    @classmethod
    def load(cls, data: dict) -> Edges:
        def parse(kind, values):
            if kind == "recency":
                return [parse_datetime(v) if v else None for v in values]
            if kind == "monetary":
                return [Decimal(v) if v is not None else None for v in values]
            return list(values)

        return cls(**{k: parse(k, data.get(k) or []) for k in MEASURES})

    def dump(self) -> dict:
        def fmt(v):
            if v is None:
                return None
            if isinstance(v, datetime):
                return v.isoformat()
            if isinstance(v, Decimal):
                return str(v)
            return v

        return {k: [fmt(v) for v in getattr(self, k)] for k in MEASURES}

    def scores(self, last_order_at, frequency, monetary) -> tuple[int, int, int]:
        return (
            score(last_order_at, self.recency),
            score(frequency, self.frequency),
            score(monetary, self.monetary),
        )


@dataclass
class RecomputeResult:
    tenant_id: int
    buyers: int
    changed: int
    removed: int
    transitions: int
    seconds: float
    engine: str


# --- full recompute ---------------------------------------------------------------

# The SQL engine runs one statement that builds a temporary table of what
# changed: aggregate every buyer (the orders scan runs in parallel, sorted by
# customer, so the merge with the stored rows needs no hash), find the quintile
# edges from that (one sort per measure), score, and keep the rows that differ
# from the stored ones. Then the writes read that small table. One statement,
# because parallel workers cannot read a temporary table: materialising the
# aggregate first (the previous design) made every later step serial, 2.3x the
# bare aggregate at a million buyers against 1.8x now (bench/segments.py).

_DIFF_SQL = """
CREATE TEMPORARY TABLE segments_rfm_diff ON COMMIT DROP AS
WITH joined AS MATERIALIZED (
    SELECT coalesce(a.customer_id, c.customer_id) AS id,
           a.first_order_at, a.last_order_at, a.orders_total, a.frequency, a.monetary,
           c.customer_id IS NULL AS is_new, a.customer_id IS NULL AS is_gone,
           (c.first_order_at, c.last_order_at, c.orders_total, c.frequency, c.monetary)
               IS NOT DISTINCT FROM
               (a.first_order_at, a.last_order_at, a.orders_total, a.frequency, a.monetary)
               AS same_measures,
           c.r_score AS old_r_score, c.f_score AS old_f_score, c.m_score AS old_m_score,
           c.tier AS old_tier
    FROM (
        SELECT customer_id,
               min(placed_at) AS first_order_at,
               max(placed_at) AS last_order_at,
               count(*) AS orders_total,
               count(*) FILTER (WHERE placed_at >= %(start)s) AS frequency,
               coalesce(sum(total) FILTER (WHERE placed_at >= %(start)s), 0.00) AS monetary
        FROM commerce_order
        WHERE tenant_id = %(tenant)s AND status NOT IN ('cancelled', 'refunded')
        GROUP BY customer_id
    ) a
    FULL JOIN (
        SELECT customer_id, first_order_at, last_order_at, orders_total, frequency, monetary,
               r_score, f_score, m_score, tier
        FROM segments_customerrfm WHERE tenant_id = %(tenant)s
    ) c ON c.customer_id = a.customer_id
),
buyers AS (SELECT count(*) AS n FROM joined WHERE NOT is_gone),
-- For scores 2..5, the position k = ceil((s - 1) * (n - 1) / 5) as a fraction
-- for percentile_disc, whose value at fraction f is the one at position
-- ceil(f * n): half a position below k keeps float rounding off k + 1. A score
-- nobody can reach (k >= n) gets a NULL fraction, hence a NULL edge.
fractions AS (
    SELECT array_agg(CASE WHEN k < n THEN (k - 0.5) / n END ORDER BY s) AS f
    FROM buyers,
         LATERAL (SELECT s, ceil((s - 1) * greatest(n - 1, 1) / 5.0) AS k
                  FROM generate_series(2, 5) s) AS ks
),
-- The k-th smallest value of each measure: a value scores at least s exactly
-- when it is above the edge for s.
edges AS (
    SELECT percentile_disc((SELECT f FROM fractions)) WITHIN GROUP (ORDER BY last_order_at) AS r,
           percentile_disc((SELECT f FROM fractions)) WITHIN GROUP (ORDER BY frequency) AS f,
           -- In cents: an integer sorts faster than a numeric, and is exact.
           percentile_disc((SELECT f FROM fractions))
               WITHIN GROUP (ORDER BY (monetary * 100)::bigint) AS m
    FROM joined WHERE NOT is_gone
),
-- The edges as scalars, monetary back in currency units; materialised, or the
-- planner inlines the subscripts into every comparison of every row (0.4 s
-- more at a million buyers).
e AS MATERIALIZED (
    SELECT r[1] AS r2, r[2] AS r3, r[3] AS r4, r[4] AS r5,
           f[1] AS f2, f[2] AS f3, f[3] AS f4, f[4] AS f5,
           m[1] / 100.0 AS m2, m[2] / 100.0 AS m3, m[3] / 100.0 AS m4, m[4] / 100.0 AS m5
    FROM edges
),
scored AS (
    SELECT j.*, {r_score} AS r_score, {f_score} AS f_score, {m_score} AS m_score
    FROM joined j CROSS JOIN e
),
tiered AS (
    SELECT scored.*, CASE WHEN NOT is_gone THEN {tier} END AS tier FROM scored
)
SELECT id, first_order_at, last_order_at, orders_total, frequency, monetary,
       r_score, f_score, m_score, tier, old_tier, is_new, is_gone,
       NULL::timestamptz[] AS edge_r, NULL::bigint[] AS edge_f, NULL::bigint[] AS edge_m,
       NULL::bigint AS buyers
FROM tiered
WHERE is_new OR is_gone OR NOT same_measures
   OR (old_r_score, old_f_score, old_m_score, old_tier)
      IS DISTINCT FROM (r_score, f_score, m_score, tier)
-- One more row, with no id (so no write below matches it): the edges and the
-- number of buyers, for the per-customer refresh until the next recompute.
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, false,
       e.r, e.f, e.m, (SELECT n FROM buyers)
FROM edges e
"""

# Highest edge passed first; an unreachable (NULL) edge never matches; a
# customer who is gone has no scores.
_SCORE = "(CASE WHEN is_gone THEN NULL {terms} ELSE 1 END)"
_TERM = "WHEN {column} > e.{letter}{level} THEN {level}"

_TIER_SQL = """
CASE WHEN frequency >= %(repeat)s AND {m_score} >= %(high)s THEN 'high_value_repeat'
     WHEN frequency >= %(repeat)s THEN 'mid_value_repeat'
     ELSE 'one_time' END
"""

# The diff is small on a normal night; each write joins it by customer id.
_WRITES = (
    """
    UPDATE segments_customerrfm r SET
        first_order_at = d.first_order_at, last_order_at = d.last_order_at,
        orders_total = d.orders_total, frequency = d.frequency, monetary = d.monetary,
        r_score = d.r_score, f_score = d.f_score, m_score = d.m_score, tier = d.tier,
        computed_at = %(now)s
    FROM segments_rfm_diff d
    WHERE r.tenant_id = %(tenant)s AND r.customer_id = d.id AND NOT d.is_new AND NOT d.is_gone
    """,
    """
    INSERT INTO segments_customerrfm (
        tenant_id, customer_id, first_order_at, last_order_at, orders_total, frequency,
        monetary, r_score, f_score, m_score, tier, top_families, price_tier, computed_at)
    SELECT %(tenant)s, id, first_order_at, last_order_at, orders_total, frequency,
           monetary, r_score, f_score, m_score, tier, '[]'::jsonb, '', %(now)s
    FROM segments_rfm_diff WHERE is_new
    """,
    """
    DELETE FROM segments_customerrfm r USING segments_rfm_diff d
    WHERE r.tenant_id = %(tenant)s AND r.customer_id = d.id AND d.is_gone
    """,
    """
    INSERT INTO segments_segmenttransition (tenant_id, segment_id, customer_id, kind, at, cause)
    SELECT %(tenant)s, s.id, d.id, x.kind, %(now)s, %(cause)s
    FROM segments_rfm_diff d
    CROSS JOIN (VALUES ('left'), ('entered')) AS x(kind)
    JOIN segments_segment s
      ON s.tenant_id = %(tenant)s AND s.kind = 'tier'
     AND s.tier = CASE x.kind WHEN 'left' THEN d.old_tier ELSE d.tier END
    WHERE d.old_tier IS DISTINCT FROM d.tier
    ORDER BY d.id, x.kind DESC  -- 'left' before 'entered', as the history reads
    """,
)


def kth_positions(n: int) -> list[int]:
    """For scores 2..5, how many values a value must exceed (see ``quintile``)."""
    return [-(-(s - 1) * max(n - 1, 1) // 5) for s in range(2, 6)]


def rfm_recompute(
    tenant: Tenant | int,
    *,
    as_of: datetime | None = None,
    engine: str | None = None,
    only_if_never: bool = False,
    cause: str = "recompute",
) -> RecomputeResult | None:
    """Re-rank every buyer of the tenant: scores, tiers, quintile edges, and a
    transition for every tier change. Rows are only written when they changed.
    ``only_if_never``: do nothing (return None) if a recompute has run, checked
    under the lock, so a new tenant's first orders rank it once, not once each.
    ``cause`` goes on the transitions: ``import`` after a bulk load of history,
    which journeys do not treat as anything happening now."""
    tenant_id = getattr(tenant, "pk", tenant)
    as_of = as_of or clock.now()
    engine = engine or ("sql" if connection.vendor == "postgresql" else "python")
    tier_segments(tenant_id)
    started = time.perf_counter()
    with transaction.atomic():
        lock_tenant(tenant_id, shared=False)
        settings = SegmentSettings.objects.for_tenant(tenant_id).select_for_update().first()
        settings = settings or segment_settings(tenant_id)
        if only_if_never and settings.last_full_at is not None:
            return None
        run = _recompute_sql if engine == "sql" else _recompute_python
        result = run(tenant_id, settings, as_of, cause)
        result.seconds = time.perf_counter() - started
        settings.last_full_at = as_of
        settings.last_full_seconds = result.seconds
        settings.save(update_fields=["boundaries", "last_full_at", "last_full_seconds"])
    logger.info(
        "segments.rfm_recompute tenant_id=%s buyers=%s changed=%s transitions=%s seconds=%.2f",
        tenant_id,
        result.buyers,
        result.changed,
        result.transitions,
        result.seconds,
    )
    return result


def _recompute_sql(
    tenant_id: int, settings: SegmentSettings, as_of: datetime, cause: str
) -> RecomputeResult:
    params = {
        "tenant": tenant_id,
        "cause": cause,
        "start": window_start(settings, as_of),
        "now": as_of,
        "repeat": settings.repeat_min_orders,
        "high": settings.high_value_min_monetary_score,
    }
    with connection.cursor() as cur:
        # Jit: compiling these expressions costs more than running them. The
        # planner prices gathering the workers' 900,000 partial groups above a
        # serial scan, which measures slower (1.2 s against 1.4 s): a cheaper
        # tuple transfer lets it choose the parallel plan. Sorted aggregation
        # and a merge with the stored rows (both in customer order) beat the
        # hash plans a large work_mem tempts it into. The work_mem holds the
        # joined rows of a million buyers (130 MB; spilled, 0.1 s more) and
        # the edge sorts.
        cur.execute(
            "SET LOCAL jit = off; SET LOCAL enable_hashagg = off;"
            " SET LOCAL enable_hashjoin = off; SET LOCAL parallel_tuple_cost = 0.01;"
            " SET LOCAL work_mem = '256MB'"
        )
        cur.execute("DROP TABLE IF EXISTS segments_rfm_diff")
        cur.execute(_diff_sql(), params)
        cur.execute(
            "RESET jit; RESET enable_hashagg; RESET enable_hashjoin; RESET parallel_tuple_cost;"
            " RESET work_mem"
        )
        cur.execute("SELECT edge_r, edge_f, edge_m, buyers FROM segments_rfm_diff WHERE id IS NULL")
        recency, frequency, cents, buyers = cur.fetchone()
        rowcounts = []
        for statement in _WRITES:
            cur.execute(statement, params)
            rowcounts.append(cur.rowcount)
        updated, inserted, removed, transitions = rowcounts
        changed = updated + inserted
        cur.execute("DROP TABLE segments_rfm_diff")
    edges = Edges(
        recency=list(recency or [None] * 4),
        frequency=list(frequency or [None] * 4),
        monetary=[None if c is None else Decimal(c).scaleb(-2) for c in cents or [None] * 4],
    )
    settings.boundaries = edges.dump()
    return RecomputeResult(
        tenant_id=tenant_id,
        buyers=buyers,
        changed=changed,
        removed=removed,
        transitions=transitions,
        seconds=0.0,
        engine="sql",
    )


def tier_counts(tenant: Tenant | int) -> dict[str, int]:
    """Buyers per tier (an index-only count)."""
    tenant_id = getattr(tenant, "pk", tenant)
    counts = dict.fromkeys(Tier.values, 0)
    counts.update(
        CustomerRFM.objects.for_tenant(tenant_id)
        .order_by()
        .values_list("tier")
        .annotate(n=Count("id"))
    )
    return counts


def tier_counts_store(tenant: Tenant | int) -> dict[str, int]:
    """Count buyers per tier and keep the counts on the tier segments (what
    lists show; per-order moves do not touch these shared rows)."""
    tenant_id = getattr(tenant, "pk", tenant)
    counts = tier_counts(tenant_id)
    now = clock.now()
    for tier, segment in tier_segments(tenant_id).items():
        Segment.objects.for_tenant(tenant_id).filter(pk=segment.pk).update(
            member_count=counts[tier], counted_at=now
        )
    return counts


def _score_sql(letter: str, column: str) -> str:
    terms = " ".join(
        _TERM.format(column=column, letter=letter, level=level) for level in range(5, 1, -1)
    )
    return _SCORE.format(terms=terms)


def _diff_sql() -> str:
    return _DIFF_SQL.format(
        r_score=_score_sql("r", "j.last_order_at"),
        f_score=_score_sql("f", "j.frequency"),
        m_score=_score_sql("m", "j.monetary"),
        tier=_TIER_SQL.format(m_score="m_score"),
    )


def _aggregate(tenant_id: int, start: datetime, customer_id: int | None = None):
    qs = Order.objects.for_tenant(tenant_id).exclude(status__in=UNCOUNTED_STATUSES)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    in_window = Q(placed_at__gte=start)
    return (
        qs.order_by()
        .values("customer_id")
        .annotate(
            first_order_at=Min("placed_at"),
            last_order_at=Max("placed_at"),
            orders_total=Count("id"),
            frequency=Count("id", filter=in_window),
            monetary=Sum("total", filter=in_window),
        )
    )


def _kth(ordered: list) -> list:
    n = len(ordered)
    return [ordered[k - 1] if k < n else None for k in kth_positions(n)]


def _ranks(values: list) -> dict:
    """SQL RANK(): 1 + how many values are smaller."""
    ranks: dict = {}
    for i, value in enumerate(sorted(values)):
        ranks.setdefault(value, i + 1)
    return ranks


def _recompute_python(
    tenant_id: int, settings: SegmentSettings, as_of: datetime, cause: str
) -> RecomputeResult:
    """The same definitions as the SQL statement, for databases without it."""
    rows = list(_aggregate(tenant_id, window_start(settings, as_of)))
    for row in rows:
        row["monetary"] = row["monetary"] or Decimal("0.00")
    n = len(rows)
    ranks = {
        "recency": _ranks([r["last_order_at"] for r in rows]),
        "frequency": _ranks([r["frequency"] for r in rows]),
        "monetary": _ranks([r["monetary"] for r in rows]),
    }
    columns = ("last_order_at", "frequency", "monetary")
    edges = {
        measure: _kth(sorted(r[column] for r in rows))
        for measure, column in zip(MEASURES, columns, strict=True)
    }
    targets = {}
    for row in rows:
        r, f, m = (
            quintile(ranks[measure][row[column]], n)
            for measure, column in zip(MEASURES, columns, strict=True)
        )
        targets[row["customer_id"]] = {
            "first_order_at": row["first_order_at"],
            "last_order_at": row["last_order_at"],
            "orders_total": row["orders_total"],
            "frequency": row["frequency"],
            "monetary": row["monetary"],
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "tier": tier_for(row["frequency"], m, settings),
        }
    settings.boundaries = Edges(**edges).dump()
    changed, removed, moves = _write_rows(tenant_id, targets, as_of)
    transitions = _record_tier_moves(tenant_id, moves, as_of, cause=cause)
    return RecomputeResult(
        tenant_id=tenant_id,
        buyers=n,
        changed=changed,
        removed=removed,
        transitions=transitions,
        seconds=0.0,
        engine="python",
    )


def _write_rows(tenant_id: int, targets: dict, as_of: datetime):
    existing = {r.customer_id: r for r in CustomerRFM.objects.for_tenant(tenant_id)}
    moves: list[tuple[int, str | None, str | None]] = []
    create, update = [], []
    for customer_id, values in targets.items():
        row = existing.pop(customer_id, None)
        if row is None:
            create.append(
                CustomerRFM(
                    tenant_id=tenant_id, customer_id=customer_id, computed_at=as_of, **values
                )
            )
            moves.append((customer_id, None, values["tier"]))
            continue
        if all(getattr(row, k) == v for k, v in values.items()):
            continue
        if row.tier != values["tier"]:
            moves.append((customer_id, row.tier, values["tier"]))
        for k, v in values.items():
            setattr(row, k, v)
        row.computed_at = as_of
        update.append(row)
    CustomerRFM.objects.bulk_create(create, batch_size=1000)
    CustomerRFM.objects.for_tenant(tenant_id).bulk_update(
        update, [*RFM_FIELDS, "computed_at"], batch_size=1000
    )
    for customer_id, row in existing.items():
        moves.append((customer_id, row.tier, None))
    CustomerRFM.objects.for_tenant(tenant_id).filter(customer_id__in=list(existing)).delete()
    return len(create) + len(update), len(existing), moves


def _record_tier_moves(tenant_id: int, moves, at: datetime, *, cause: str) -> int:
    segments = tier_segments(tenant_id)
    rows = []
    for customer_id, old, new in moves:
        if old == new:
            continue
        if old:
            rows.append((segments[old], customer_id, TransitionKind.LEFT))
        if new:
            rows.append((segments[new], customer_id, TransitionKind.ENTERED))
    SegmentTransition.objects.bulk_create(
        [
            SegmentTransition(
                tenant_id=tenant_id, segment=s, customer_id=c, kind=k, at=at, cause=cause
            )
            for s, c, k in rows
        ],
        batch_size=1000,
    )
    return len(rows)


# --- one customer -------------------------------------------------------------------


@dataclass
class CustomerRefresh:
    customer_id: int
    rfm: CustomerRFM | None
    transitions: list = field(default_factory=list)


def customer_refresh(
    tenant: Tenant | int, customer_id: int, *, cause: str = "order", as_of: datetime | None = None
) -> CustomerRefresh:
    """Bring one customer's RFM, tier, category flags and rule segments up to
    date after an order (or a merge, a cancellation): a handful of indexed
    queries, scored against the edges of the last full recompute."""
    from segments.services.memberships import segments_refresh_customer

    tenant_id = getattr(tenant, "pk", tenant)
    as_of = as_of or clock.now()
    if segment_settings(tenant_id).last_full_at is None:
        # No edges to score against yet (a new tenant): rank everyone once.
        rfm_recompute(tenant_id, as_of=as_of, only_if_never=True)
    with transaction.atomic():
        lock_tenant(tenant_id, shared=True)
        lock_customer(customer_id)
        settings = segment_settings(tenant_id)
        row = _refresh_rfm(tenant_id, customer_id, settings, as_of, cause)
        families_rebuild(tenant_id, customer_id=customer_id)
        if row is not None:
            row.refresh_from_db(fields=["top_families", "price_tier"])
        moves = segments_refresh_customer(tenant_id, customer_id, cause=cause)
    return CustomerRefresh(customer_id=customer_id, rfm=row, transitions=list(moves))


def _refresh_rfm(
    tenant_id: int, customer_id: int, settings: SegmentSettings, as_of: datetime, cause: str
) -> CustomerRFM | None:
    values = next(iter(_aggregate(tenant_id, window_start(settings, as_of), customer_id)), None)
    row = (
        CustomerRFM.objects.for_tenant(tenant_id)
        .select_for_update()
        .filter(customer_id=customer_id)
        .first()
    )
    old_tier = row.tier if row else None
    if values is None:
        if row is not None:
            row.delete()
            _record_tier_moves(tenant_id, [(customer_id, old_tier, None)], as_of, cause=cause)
        return None
    values.pop("customer_id")
    values["monetary"] = values["monetary"] or Decimal("0.00")
    r, f, m = Edges.load(settings.boundaries).scores(
        values["last_order_at"], values["frequency"], values["monetary"]
    )
    values.update(r_score=r, f_score=f, m_score=m, tier=tier_for(values["frequency"], m, settings))
    if row is None:
        row = CustomerRFM(tenant_id=tenant_id, customer_id=customer_id)
    elif all(getattr(row, k) == v for k, v in values.items()):
        return row
    for k, v in values.items():
        setattr(row, k, v)
    row.computed_at = as_of
    row.save()
    _record_tier_moves(tenant_id, [(customer_id, old_tier, values["tier"])], as_of, cause=cause)
    return row


__all__ = [
    "Edges",
    "RecomputeResult",
    "customer_refresh",
    "quintile",
    "rfm_recompute",
    "score",
    "tier_counts",
    "tier_counts_store",
    "tier_for",
]
