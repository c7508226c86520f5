"""Conditions compiled to the ORM: one tenant-scoped subquery per condition."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual

from commerce.models import ChannelConsent, ConsentStatus, Customer, Touchpoint
from retention import clock
from segments.models import CustomerFamily, CustomerRFM, Match
from segments.rules.registry import REGISTRY, CompileContext, Compiler
from segments.rules.validate import _each, _normalise_one, validate_match

# --- compilers ------------------------------------------------------------------------------


def _rfm(ctx: CompileContext, **lookups: Any) -> Q:
    return Q(
        Exists(
            CustomerRFM.objects.for_tenant(ctx.tenant_id).filter(customer=OuterRef("pk"), **lookups)
        )
    )


def _range_lookups(column: str, op: str, value: Any) -> dict[str, Any]:
    if op == "eq":
        return {column: value}
    if op == "gte":
        return {f"{column}__gte": value}
    if op == "lte":
        return {f"{column}__lte": value}
    low, high = value
    return {f"{column}__gte": low, f"{column}__lte": high}


def _holds_for_zero(op: str, value: Any) -> bool:
    low, high = value if op == "between" else (value, value)
    low, high = Decimal(str(low)), Decimal(str(high))
    return {
        "eq": low == 0,
        "gte": low <= 0,
        "lte": high >= 0,
        "between": low <= 0 <= high,
    }[op]


def rfm_column(column: str, *, zero_without_orders: bool = False, money: bool = False) -> Compiler:
    """A numeric CustomerRFM column; with ``zero_without_orders`` a customer
    without an RFM row counts as 0 (orders and spend, not scores)."""

    def compile(cond: dict, ctx: CompileContext) -> Q:
        value = cond["value"]
        typed = (
            ([Decimal(v) for v in value] if isinstance(value, list) else Decimal(value))
            if money
            else value
        )
        q = _rfm(ctx, **_range_lookups(column, cond["op"], typed))
        if zero_without_orders and _holds_for_zero(cond["op"], value):
            q |= ~_rfm(ctx)
        return q

    return compile


def _days_since_last_order(cond: dict, ctx: CompileContext) -> Q:
    op, value = cond["op"], cond["value"]
    low = value[0] if op == "between" else value if op == "gte" else None
    high = value[1] if op == "between" else value if op == "lte" else None
    lookups = {}
    if low is not None:  # at least `low` whole days have passed
        lookups["last_order_at__lte"] = ctx.now - timedelta(days=low)
    if high is not None:  # fewer than `high + 1` whole days have passed
        lookups["last_order_at__gt"] = ctx.now - timedelta(days=high + 1)
    return _rfm(ctx, **lookups)


def _tier(cond: dict, ctx: CompileContext) -> Q:
    return _rfm(ctx, tier__in=cond["value"])


def _price_tier(cond: dict, ctx: CompileContext) -> Q:
    return _rfm(ctx, price_tier=cond["value"])


def _family_q(value: int | str | list) -> Q:
    values = value if isinstance(value, list) else [value]
    ids = [v for v in values if isinstance(v, int)]
    slugs = [v for v in values if isinstance(v, str)]
    q = Q()
    if ids:
        q |= Q(family_id__in=ids)
    if slugs:  # only from conditions stored before validation resolved them
        q |= Q(family__slug__in=slugs)
    return q


def _family_bought(cond: dict, ctx: CompileContext) -> Q:
    rows = CustomerFamily.objects.for_tenant(ctx.tenant_id).filter(
        _family_q(cond["value"]), customer=OuterRef("pk")
    )
    if cond.get("within_days"):
        rows = rows.filter(
            last_at__gt=ctx.now - timedelta(days=cond["within_days"]), last_at__lte=ctx.now
        )
    return Q(Exists(rows))


def _family_not_bought(cond: dict, ctx: CompileContext) -> Q:
    return ~_family_bought(cond, ctx)


def _consent(cond: dict, ctx: CompileContext) -> Q:
    channel, status = cond["value"]["channel"], cond["value"]["status"]
    rows = ChannelConsent.objects.for_tenant(ctx.tenant_id).filter(
        customer=OuterRef("pk"), channel=channel
    )
    if status == ConsentStatus.UNKNOWN:
        # No consent row for the channel means we do not know either.
        return ~Q(Exists(rows.exclude(status=ConsentStatus.UNKNOWN)))
    return Q(Exists(rows.filter(status=status)))


def _touchpoint(cond: dict, ctx: CompileContext) -> Q:
    value = cond["value"]
    recent = Touchpoint.objects.for_tenant(ctx.tenant_id).filter(
        customer=OuterRef("pk"),
        kind=value["kind"],
        occurred_at__gt=ctx.now - timedelta(days=value["within_days"]),
        occurred_at__lte=ctx.now,
    )
    if value["min_count"] == 1:
        q = Q(Exists(recent))
    else:
        counted = recent.order_by().values("customer").annotate(n=Count("pk")).values("n")
        count = Coalesce(Subquery(counted, output_field=IntegerField()), 0)
        q = Q(GreaterThanOrEqual(count, value["min_count"]))
    return q if cond["op"] == "has" else ~q


# --- compilation ----------------------------------------------------------------------------


def conditions_q(
    tenant: Any, match: str, conditions: Any, *, now: datetime | None = None
) -> Q | None:
    """The segment's test on a customer row, or None when it matches nobody
    (no conditions). Checks shape and values without the database; stored
    conditions were resolved by :func:`validate_conditions` when saved."""
    validate_match(match)
    normalised = _each(conditions, lambda index, raw: _normalise_one(raw))
    if not normalised:
        return None
    ctx = CompileContext(tenant_id=getattr(tenant, "pk", tenant), now=now or clock.now())
    parts = [REGISTRY[c["field"]].compile(c, ctx) for c in normalised]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if match == Match.ALL else combined | part
    return combined


def members_queryset(
    tenant: Any, match: str, conditions: Any, *, now: datetime | None = None
) -> QuerySet:
    """The tenant's customers (never merged tombstones) matching the rule;
    an empty list of conditions matches nobody."""
    customers = Customer.objects.for_tenant(tenant).filter(merged_into__isnull=True)
    q = conditions_q(tenant, match, conditions, now=now)
    return customers.none() if q is None else customers.filter(q)
