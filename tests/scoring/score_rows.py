"""Hand-made scoring rows for the admin, selector and callback tests: model
versions, current scores, history and chosen actions, written straight to the
tables (the training and scoring pipeline is tested on its own)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from commerce.models import Customer
from retention import clock
from retention.models import Tenant
from scoring.models import (
    ChosenAction,
    ChurnScore,
    ChurnScoreHistory,
    ModelKind,
    ModelVersion,
    NextAction,
    RiskBand,
)

METRICS: dict[str, Any] = {
    "backtest": {
        "as_of": "2026-02-01T00:00:00+00:00",
        "horizon_days": 90,
        "n": 1234,
        "model": {
            "roc_auc": 0.812,
            "pr_auc": 0.7,
            "brier": 0.15,
            "log_loss": 0.451,
            "top_decile_lift": 1.6,
            "predicted_orders": 1000.0,
            "actual_orders": 980,
            "calibration": [
                {"decile": 1, "n": 123, "predicted": 0.05, "actual": 0.06},
                {"decile": 10, "n": 124, "predicted": 0.91, "actual": 0.88},
            ],
        },
        "recency": {"roc_auc": 0.701, "log_loss": 0.55, "brier": 0.2},
        "btyd": {"roc_auc": 0.744, "log_loss": 0.52, "brier": 0.18},
    },
    "selection": {
        "gbm": {"log_loss": 0.44, "roc_auc": 0.81},
        "logit": {"log_loss": 0.47, "roc_auc": 0.78},
        "chosen": "gbm",
    },
}


def version(
    tenant: Tenant,
    number: int,
    *,
    active: bool = False,
    kind: str = ModelKind.GBM,
    metrics: dict | None = None,
    importances: dict | None = None,
    artifact: bytes = b"",
    notes: str = "",
) -> ModelVersion:
    now = clock.now()
    return ModelVersion.objects.create(
        tenant=tenant,
        version=number,
        kind=kind,
        is_active=active,
        trained_at=now,
        train_as_of=now - timedelta(days=90),
        label_end=now,
        horizon_days=90,
        n_train=500 + number,
        n_buyers=300,
        base_rate=0.4,
        metrics=METRICS if metrics is None else metrics,
        importances=importances or {},
        notes=notes,
        artifact=artifact,
    )


def score(
    customer: Customer,
    p_churn: float,
    *,
    band: str = RiskBand.HIGH,
    reasons: list[str] | None = None,
    next_action: str = NextAction.CALL,
    model_version: ModelVersion | None = None,
    tenant_id: int | None = None,
    as_of: datetime | None = None,
) -> ChurnScore:
    as_of = as_of or clock.now()
    return ChurnScore.objects.create(
        tenant_id=tenant_id or customer.tenant_id,
        customer_id=customer.pk,
        p_churn=p_churn,
        expected_orders=round(1 - p_churn, 2),
        band=band,
        reasons=reasons or [],
        next_action=next_action,
        model_version=model_version,
        as_of=as_of,
        band_since=as_of - timedelta(days=3),
    )


def history(
    customer: Customer, as_of: datetime, p_churn: float, *, band: str = RiskBand.MEDIUM
) -> ChurnScoreHistory:
    return ChurnScoreHistory.objects.create(
        tenant_id=customer.tenant_id,
        customer_id=customer.pk,
        as_of=as_of,
        p_churn=p_churn,
        expected_orders=1.0,
        band=band,
    )


def chosen(
    customer: Customer,
    as_of: datetime,
    *,
    action: str = NextAction.CALL,
    band: str = RiskBand.HIGH,
    ordered: bool | None = None,
) -> ChosenAction:
    return ChosenAction.objects.create(
        tenant_id=customer.tenant_id,
        customer_id=customer.pk,
        action=action,
        band=band,
        tier="high_value_repeat",
        recently_contacted=False,
        p_churn=0.8,
        expected_orders=0.2,
        as_of=as_of,
        chosen_at=as_of,
        horizon_end=as_of + timedelta(days=90),
        ordered=ordered,
    )
