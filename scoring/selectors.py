"""Reads for scoring: a customer's current churn score and its history, the
store's active model version, and how the policy's chosen actions turned out.

Every function takes the tenant first and reads through the tenant-scoped
managers; an id of another tenant is treated exactly like a missing one. A
merged-away customer's id leads to the customer it was merged into (the merge
moves history and chosen actions to the survivor and drops the old score).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from commerce.models import Customer
from retention.models import Tenant
from scoring.models import (
    ChosenAction,
    ChurnScore,
    ChurnScoreHistory,
    ModelVersion,
    NextAction,
    RiskBand,
)

HISTORY_SHOWN = 30
_MAX_MERGE_HOPS = 20
# A model version's fitted model and its training record: never needed to show
# a score, and the artifact can run to megabytes.
VERSION_HEAVY_FIELDS = ("artifact", "features", "importances", "metrics", "btyd_params", "notes")


def _tenant_id(tenant: Tenant | int) -> int:
    return getattr(tenant, "pk", tenant)


def _survivor_id(tenant_id: int, customer_id: int) -> int:
    """The customer this id was merged into (itself when not merged, missing or
    another tenant's: the scoped reads that follow then find nothing)."""
    current = customer_id
    for _ in range(_MAX_MERGE_HOPS):
        merged_into = (
            Customer.objects.for_tenant(tenant_id)
            .filter(pk=current)
            .values_list("merged_into_id", flat=True)
            .first()
        )
        if not merged_into:
            return current
        current = merged_into
    return current


def _with_light_version(queryset: QuerySet) -> QuerySet:
    return queryset.select_related("model_version").defer(
        *(f"model_version__{name}" for name in VERSION_HEAVY_FIELDS)
    )


def customer_score(tenant_id: Tenant | int, customer_id: int) -> ChurnScore | None:
    """The customer's current score with its model version (without the heavy
    fields), or None when they have not been scored."""
    tenant_id = _tenant_id(tenant_id)
    scores = _with_light_version(ChurnScore.objects.for_tenant(tenant_id))
    score = scores.filter(customer_id=customer_id).first()
    if score is None:
        survivor = _survivor_id(tenant_id, customer_id)
        if survivor != customer_id:
            score = scores.filter(customer_id=survivor).first()
    return score


def customer_score_history(
    tenant_id: Tenant | int, customer_id: int, limit: int = HISTORY_SHOWN
) -> list[ChurnScoreHistory]:
    """The customer's scores by as-of date, newest first, each with its model
    version (without the heavy fields)."""
    tenant_id = _tenant_id(tenant_id)
    survivor = _survivor_id(tenant_id, customer_id)
    return list(
        _with_light_version(ChurnScoreHistory.objects.for_tenant(tenant_id))
        .filter(customer_id=survivor)
        .order_by("-as_of", "-id")[:limit]
    )


def churn_probability(tenant_id: Tenant | int, customer_id: int) -> float | None:
    """The customer's current churn probability (0-1), or None when not scored."""
    tenant_id = _tenant_id(tenant_id)
    scores = ChurnScore.objects.for_tenant(tenant_id)
    value = scores.filter(customer_id=customer_id).values_list("p_churn", flat=True).first()
    if value is None:
        survivor = _survivor_id(tenant_id, customer_id)
        if survivor != customer_id:
            value = scores.filter(customer_id=survivor).values_list("p_churn", flat=True).first()
    return value


def active_version(tenant_id: Tenant | int) -> ModelVersion | None:
    """The store's active model version, or None before the first training.
    The artifact is deferred: it loads when read."""
    return (
        ModelVersion.objects.for_tenant(_tenant_id(tenant_id))
        .filter(is_active=True)
        .defer("artifact")
        .first()
    )


# The policy's reading order: the most personal action first, the riskiest band first.
_ACTION_ORDER = [NextAction.CALL, NextAction.WINBACK, NextAction.NUDGE, NextAction.NONE]
_BAND_ORDER = [RiskBand.HIGH, RiskBand.MEDIUM, RiskBand.LOW]


def _rank(order: list[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def policy_outcomes(
    tenant_id: Tenant | int, *, since: datetime | None = None
) -> list[dict[str, Any]]:
    """How the policy's choices turned out, per action and risk band (one
    aggregate query): ``chosen`` times, ``judged`` (horizon passed, so whether
    they ordered is known), ``ordered`` and ``ordered_rate`` (ordered / judged,
    0-1; None while nothing is judged). ``since`` limits to choices made from
    then on. Actions in the policy's order (call first), bands high to low."""
    queryset = ChosenAction.objects.for_tenant(_tenant_id(tenant_id))
    if since is not None:
        queryset = queryset.filter(chosen_at__gte=since)
    rows = (
        queryset.order_by()
        .values("action", "band")
        .annotate(
            chosen=Count("id"),
            judged=Count("id", filter=Q(ordered__isnull=False)),
            ordered_count=Count("id", filter=Q(ordered=True)),
        )
    )
    actions, bands = dict(NextAction.choices), dict(RiskBand.choices)
    out = [
        {
            "action": row["action"],
            "action_label": actions.get(row["action"], row["action"]),
            "band": row["band"],
            "band_label": bands.get(row["band"], row["band"]),
            "chosen": row["chosen"],
            "judged": row["judged"],
            "ordered": row["ordered_count"],
            "ordered_rate": row["ordered_count"] / row["judged"] if row["judged"] else None,
        }
        for row in rows
    ]
    out.sort(key=lambda r: (_rank(_ACTION_ORDER, r["action"]), _rank(_BAND_ORDER, r["band"])))
    return out
