"""Category flags: what each customer bought per product family (all time,
``CustomerFamily``), and on their RFM row the top families by spend and the
price tier that carries most of it.

Kept current per customer by the RFM engine's refresh after each order; the
tenant-wide rebuild runs after bulk loads and nightly (it reads every order line).
"""

from __future__ import annotations

from django.db import connection, transaction

from retention.models import Tenant
from segments.models import CustomerFamily
from segments.services.locks import lock_tenant

TOP_FAMILIES = 3

_FAMILIES_SQL = """
INSERT INTO segments_customerfamily (
    tenant_id, customer_id, family_id, orders, spend, expensive_spend, first_at, last_at)
SELECT o.tenant_id, o.customer_id, l.family_id,
       count(DISTINCT o.id), sum(l.total),
       coalesce(sum(l.total) FILTER (WHERE l.price_tier = 'expensive'), 0),
       min(o.placed_at), max(o.placed_at)
FROM commerce_order o
JOIN commerce_orderline l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
WHERE o.tenant_id = %(tenant)s AND o.status NOT IN ('cancelled', 'refunded')
  AND l.family_id IS NOT NULL {customer_filter}
GROUP BY o.tenant_id, o.customer_id, l.family_id
"""

# Other databases (the embedded SQLite): correlated, every row of the scope.
_FLAGS_SQL = """
UPDATE segments_customerrfm SET
    top_families = coalesce((
        SELECT {json_agg} FROM (
            SELECT family_id, spend FROM segments_customerfamily f
            WHERE f.tenant_id = segments_customerrfm.tenant_id
              AND f.customer_id = segments_customerrfm.customer_id
            ORDER BY spend DESC, family_id LIMIT {top}) t), {empty}),
    price_tier = coalesce((
        SELECT CASE WHEN sum(expensive_spend) * 2 > sum(spend) THEN 'expensive'
                    ELSE 'standard' END
        FROM segments_customerfamily f
        WHERE f.tenant_id = segments_customerrfm.tenant_id
          AND f.customer_id = segments_customerrfm.customer_id
        HAVING count(*) > 0), '')
WHERE tenant_id = %(tenant)s {customer_filter}
"""


# PostgreSQL: set-based, and only rows whose flags changed are written (the
# nightly rebuild would otherwise rewrite every buyer's row).
_FLAGS_PG = (
    """
    WITH ranked AS (
        SELECT customer_id, family_id, spend, expensive_spend,
               row_number() OVER (PARTITION BY customer_id ORDER BY spend DESC, family_id) AS rn
        FROM segments_customerfamily
        WHERE tenant_id = %(tenant)s {customer_filter}
    ),
    flags AS (
        SELECT customer_id,
               jsonb_agg(family_id ORDER BY spend DESC, family_id)
                   FILTER (WHERE rn <= {top}) AS top,
               CASE WHEN sum(expensive_spend) * 2 > sum(spend) THEN 'expensive'
                    ELSE 'standard' END AS tier
        FROM ranked GROUP BY customer_id
    )
    UPDATE segments_customerrfm r SET top_families = f.top, price_tier = f.tier
    FROM flags f
    WHERE r.tenant_id = %(tenant)s AND r.customer_id = f.customer_id
      AND (r.top_families, r.price_tier) IS DISTINCT FROM (f.top, f.tier)
    """,
    """
    UPDATE segments_customerrfm r SET top_families = '[]'::jsonb, price_tier = ''
    WHERE r.tenant_id = %(tenant)s {customer_filter}
      AND (r.top_families <> '[]'::jsonb OR r.price_tier <> '')
      AND NOT EXISTS (SELECT 1 FROM segments_customerfamily f
                      WHERE f.tenant_id = r.tenant_id AND f.customer_id = r.customer_id)
    """,
)


def _flags_statements(one_customer: bool) -> list[str]:
    customer_filter = "AND customer_id = %(customer)s" if one_customer else ""
    if connection.vendor == "postgresql":
        return [
            _FLAGS_PG[0].format(customer_filter=customer_filter, top=TOP_FAMILIES),
            _FLAGS_PG[1].format(
                customer_filter="AND r.customer_id = %(customer)s" if one_customer else ""
            ),
        ]
    return [
        _FLAGS_SQL.format(
            json_agg="json_group_array(family_id)",
            empty="'[]'",
            top=TOP_FAMILIES,
            customer_filter=customer_filter,
        )
    ]


def families_rebuild(tenant: Tenant | int, *, customer_id: int | None = None) -> int:
    """Rebuild what customers bought per product family (all time) from the
    order lines, and their category flags (top families by spend, price tier:
    ``expensive`` when most of their spend is on expensive-tier lines).

    For one customer this is a few indexed queries; for a whole tenant it
    reads every order line, so it runs after bulk loads and nightly, not per order.
    """
    tenant_id = getattr(tenant, "pk", tenant)
    params = {"tenant": tenant_id, "customer": customer_id}
    one = "AND o.customer_id = %(customer)s" if customer_id is not None else ""
    with transaction.atomic(), connection.cursor() as cur:
        if customer_id is None:  # per-customer rebuilds hold the tenant shared
            lock_tenant(tenant_id, shared=False)
        rows = CustomerFamily.objects.for_tenant(tenant_id)
        if customer_id is not None:
            rows = rows.filter(customer_id=customer_id)
        rows.delete()
        cur.execute(_FAMILIES_SQL.format(customer_filter=one), params)
        written = cur.rowcount
        for statement in _flags_statements(customer_id is not None):
            cur.execute(statement, params)
    return written
