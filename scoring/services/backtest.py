"""The backtest: train before a date, score as of it, compare with what happened.

``churn_backtest(tenant_id, as_of=DATE, horizon_days=N)``:

1. trains exactly as the weekly training would on ``DATE``: features as of
   ``DATE - N``, labels from ``[DATE - N, DATE)`` (``churn_fit``), so nothing at
   or after ``DATE`` is read;
2. scores every customer as of ``DATE``;
3. reads what really happened in ``[DATE, DATE + N)`` and evaluates the model
   and two baselines on the same customers:
   - *recency alone*: a logistic regression on days since the last order (and
     whether there is one), with a Poisson regression on the same input for
     the expected orders, trained on the same training rows as the model;
   - *buy-till-you-die alone*: BG/NBD fitted on everything before ``DATE``.

The model version is stored (not activated) with the figures in
``metrics["backtest"]``; the result is also returned for printing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, PoissonRegressor

from retention import clock
from retention.errors import InvalidInput
from scoring.data import history_load, labels_load
from scoring.evaluation import evaluate
from scoring.features import btyd_predict, features_build
from scoring.models import ModelVersion
from scoring.services.setup import scoring_settings
from scoring.services.train import btyd_fit_history, churn_fit, version_save


def _recency_inputs(X: pd.DataFrame) -> np.ndarray:
    recency = X["recency_days"].to_numpy(dtype="float64")
    never = np.isnan(recency)
    return np.column_stack([np.log1p(np.where(never, 0.0, recency)), never.astype("float64")])


def churn_backtest(
    tenant_id: int,
    *,
    as_of: datetime,
    horizon_days: int | None = None,
    save: bool = True,
) -> tuple[dict, ModelVersion | None]:
    settings = scoring_settings(tenant_id)
    horizon = horizon_days or settings.horizon_days
    if as_of + timedelta(days=horizon) > clock.now():
        raise InvalidInput(
            f"The horizon after {as_of:%Y-%m-%d} has not passed yet: pick an as-of date at "
            f"least {horizon} days ago.",
            fields={"as_of": "Too recent for its horizon."},
        )
    started = time.perf_counter()
    trained = churn_fit(
        tenant_id, label_end=as_of, horizon_days=horizon, min_buyers=settings.min_buyers_for_model
    )
    model = trained.model
    train_seconds = time.perf_counter() - started

    history = history_load(tenant_id, as_of)
    features = features_build(history, model.btyd, horizon)
    X = features.frame
    actual = labels_load(tenant_id, as_of, horizon).reindex(X.index, fill_value=0).to_numpy()
    churned = (actual == 0).astype(np.int8)
    results = {"model": evaluate(model.p_churn(X), churned, model.expected_orders(X), actual)}

    # Recency alone, trained on the model's own training rows.
    train_X = trained.X
    if trained.labels.any() and len(np.unique(trained.labels == 0)) == 2:
        train_in = _recency_inputs(train_X)
        train_y = trained.labels
        lr = LogisticRegression().fit(train_in, (train_y == 0).astype(int))
        poisson = PoissonRegressor(alpha=1e-4, max_iter=300).fit(train_in, train_y)
        test_in = _recency_inputs(X)
        results["recency"] = evaluate(
            lr.predict_proba(test_in)[:, 1], churned, poisson.predict(test_in), actual
        )

    # Buy-till-you-die alone, fitted on everything before the as-of date.
    params = btyd_fit_history(features)
    tenure = history.customers.set_index("customer_id")["age"]
    _, expected, p_none = btyd_predict(params, features.btyd_input, X.index, tenure, horizon)
    results["btyd"] = evaluate(p_none.to_numpy(), churned, expected.to_numpy(), actual)

    report = {
        "as_of": as_of.isoformat(),
        "train_as_of": trained.train_as_of.isoformat(),
        "horizon_days": horizon,
        "kind": model.kind,
        "n": len(X),
        "train_n": len(train_X),
        "seconds": {"train": round(train_seconds, 2), "total": 0.0},
        **results,
    }
    report["seconds"]["total"] = round(time.perf_counter() - started, 2)
    version = None
    if save:
        version = version_save(tenant_id, trained, activate=False, metrics={"backtest": report})
        report["model_version"] = version.version
    return report, version
