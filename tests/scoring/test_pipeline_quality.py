"""The churn model on a demo-size store beats its baselines.

seed_demo's history carries real churn signal (buy-till-you-die customers whose
chance of leaving rises with late parcels, returns and slow support). A backtest
as of 90 days ago (trained only on what came before, judged on what came after)
must rank and calibrate better than recency alone and BG/NBD alone, and predict
the total orders of the next 90 days within 5%."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from scoring.models import ModelVersion
from scoring.services.backtest import churn_backtest

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("one_thread")


def figures(report: dict) -> str:
    keep = ("roc_auc", "log_loss", "brier", "predicted_orders", "actual_orders", "orders_error_pct")
    return json.dumps(
        {k: {f: report[k].get(f) for f in keep} for k in ("model", "recency", "btyd")}
    )


def test_the_model_beats_both_baselines_on_a_demo_store(tenant, seeded):
    seeded(tenant, at=NOW, customers=2000, days=365, seed=1)

    report, version = churn_backtest(tenant.pk, as_of=NOW - timedelta(days=90))

    model, recency, btyd = report["model"], report["recency"], report["btyd"]
    shown = figures(report)
    assert report["kind"] in ("gbm", "logit"), shown
    assert model["n"] == recency["n"] == btyd["n"] == report["n"] > 1000, shown
    assert model["roc_auc"] > max(recency["roc_auc"], btyd["roc_auc"]), shown
    assert model["log_loss"] < min(recency["log_loss"], btyd["log_loss"]), shown
    assert abs(model["orders_error_pct"]) <= 5.0, shown
    # Stored for the record, not put to work.
    stored = ModelVersion.objects.for_tenant(tenant).get()
    assert stored == version
    assert not stored.is_active
    assert stored.label_end == NOW - timedelta(days=90)
    assert stored.metrics["backtest"]["model"]["roc_auc"] == model["roc_auc"]
