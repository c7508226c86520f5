"""The advisory locks every segment writer takes (PostgreSQL; SQLite has one
writer at a time anyway).

Whole-tenant work (the full recompute, a rule segment's refresh) holds the
tenant exclusively; per-customer refreshes share it and take turns per customer,
so two orders of one buyer committing at once are applied one after the other.
All are transaction-scoped and re-entrant within a session.
"""

from __future__ import annotations

from django.db import connection

_TENANT = "SELECT {fn}(hashtextextended('segments.tenant:' || %s, 0))"
_CUSTOMER = "SELECT pg_advisory_xact_lock(hashtextextended('segments.customer:' || %s, 0))"


def _lock(sql: str, value: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(sql, [value])


def lock_tenant(tenant_id: int, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    _lock(_TENANT.format(fn=fn), tenant_id)


def lock_customer(customer_id: int) -> None:
    _lock(_CUSTOMER, customer_id)
