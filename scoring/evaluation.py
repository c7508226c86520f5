"""Backtest figures for churn probabilities and expected orders: pure functions.

``evaluate(p_churn, churned, expected_orders, actual_orders)`` returns ROC AUC,
PR AUC (average precision, churn as the positive class), the Brier score, log
loss, the calibration table by decile of predicted risk, lift in the top
decile (churn rate among the riskiest tenth over the overall rate) and the
predicted against actual total order days in the horizon.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

EPS = 1e-4


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Deciles of predicted risk (1 = lowest): size, mean predicted, actual rate."""
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, bins), start=1):
        if len(part) == 0:
            continue
        rows.append(
            {
                "decile": decile,
                "n": len(part),
                "predicted": round(float(p[part].mean()), 4),
                "actual": round(float(y[part].mean()), 4),
            }
        )
    return rows


def top_decile_lift(p: np.ndarray, y: np.ndarray) -> float | None:
    if len(p) < 10 or y.mean() == 0:
        return None
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean() / y.mean())


def evaluate(
    p_churn: np.ndarray,
    churned: np.ndarray,
    expected_orders: np.ndarray,
    actual_orders: np.ndarray,
) -> dict:
    p = np.clip(np.asarray(p_churn, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(churned, dtype=np.int8)
    both = len(np.unique(y)) == 2
    predicted_total = float(np.sum(expected_orders))
    actual_total = float(np.sum(actual_orders))
    return {
        "n": len(y),
        "churn_rate": round(float(y.mean()), 4) if len(y) else None,
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if both else None,
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both else None,
        "brier": round(float(brier_score_loss(y, p)), 4) if len(y) else None,
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4) if len(y) else None,
        "top_decile_lift": _round(top_decile_lift(p, y)),
        "predicted_orders": round(predicted_total, 1),
        "actual_orders": round(actual_total),
        "orders_error_pct": (
            round(100 * (predicted_total - actual_total) / actual_total, 2)
            if actual_total
            else None
        ),
        "calibration": calibration_table(p, y),
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
