"""Each score's top three reasons, in plain words, from per-feature contributions.

A customer riskier than the store's base rate gets the three features that
raise their risk most; a safer one the three that lower it most. Each reason
states the customer's own value of that feature ("no order for 84 days, 2.1x
their usual gap"), so it is true whatever the model's weights; the choice of
which three comes from the model (``ChurnModel.contributions``). Ties are
broken by feature order, so the same inputs always give the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

MIN_CONTRIBUTION = 0.02  # log-odds: smaller moves are not worth a reason
TOP = 3


def _n(v: float) -> int:
    return round(v)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _pct(v: float) -> str:
    return f"{round(100 * v)}%"


def _recency(r: _Row) -> str:
    if not np.isfinite(r.recency_days):
        return f"no order since signing up {_plural(_n(r.tenure_days), 'day')} ago"
    text = f"no order for {_plural(_n(r.recency_days), 'day')}"
    ratio = r.get("recency_ratio")
    if ratio is not None and np.isfinite(ratio) and r.get("ipt_mean", 0) > 0:
        if ratio >= 1.5:
            times = "twice" if round(ratio, 1) == 2.0 else f"{ratio:.1f}x"
            text += f", {times} their usual gap of {_plural(_n(r.ipt_mean), 'day')}"
        elif ratio < 0.8:
            text += f", within their usual gap of {_plural(_n(r.ipt_mean), 'day')}"
    return text


def _ratio(r: _Row) -> str:
    if r.recency_ratio >= 1:
        return (
            f"{r.recency_ratio:.1f}x their usual gap since the last order "
            f"({_n(r.recency_days)} days against {_n(r.ipt_mean)})"
        )
    return (
        f"last ordered {_n(r.recency_days)} days ago, within their usual {_n(r.ipt_mean)}-day gap"
    )


def _late(r: _Row) -> str:
    days = _n(r.last_late_days)
    if days >= 1:
        return f"last delivery arrived {_plural(days, 'day')} late"
    return "last delivery arrived on time"


def _trend(r: _Row) -> str:
    change = r.value_trend
    if change <= -0.05:
        return f"last order {_pct(-change)} smaller than their earlier ones"
    if change >= 0.05:
        return f"last order {_pct(change)} larger than their earlier ones"
    return "last order about the size of their earlier ones"


def _since_open(r: _Row) -> str:
    if not np.isfinite(r.days_since_open):
        return "never opened a message from the store"
    return f"last opened a message {_plural(_n(r.days_since_open), 'day')} ago"


def _survey_class(r: _Row) -> str:
    names = {0: "a detractor", 1: "neutral", 2: "a promoter"}
    return f"last survey answer classed {names.get(_n(r.survey_class_last), 'unknown')}"


def _cv(r: _Row) -> str:
    return "orders at irregular intervals" if r.ipt_cv >= 0.6 else "orders at a steady rhythm"


TEMPLATES: dict[str, Callable[[_Row], str]] = {
    "recency_days": _recency,
    "recency_ratio": _ratio,
    "tenure_days": lambda r: f"customer for {_plural(_n(r.tenure_days), 'day')}",
    "first_order_days": lambda r: f"first order {_plural(_n(r.first_order_days), 'day')} ago",
    "orders": lambda r: (
        "no order yet" if r.orders == 0 else f"{_plural(_n(r.orders), 'order')} so far"
    ),
    "order_days": lambda r: (
        "no order yet" if r.order_days == 0 else f"ordered on {_plural(_n(r.order_days), 'day')}"
    ),
    "orders_365": lambda r: f"{_plural(_n(r.orders_365), 'order')} in the last year",
    "spend_365": lambda r: f"spent {r.spend_365:,.0f} in the last year",
    "spend_total": lambda r: f"spent {r.spend_total:,.0f} in all",
    "aov": lambda r: f"average order {r.aov:,.2f}",
    "ipt_mean": lambda r: f"usually orders every {_plural(_n(r.ipt_mean), 'day')}",
    "ipt_cv": _cv,
    "value_trend": _trend,
    "discount_share": lambda r: f"{_pct(r.discount_share)} of orders used a discount",
    "discount_rate": lambda r: f"discounts were {_pct(r.discount_rate)} of what they spent",
    "n_families": lambda r: (
        f"buys from {_plural(_n(r.n_families), 'product family', 'product families')}"
    ),
    "expensive_share": lambda r: f"{_pct(r.expensive_share)} of spend on premium products",
    "returns": lambda r: (
        "no returns" if r.returns == 0 else f"returned {_plural(_n(r.returns), 'order')}"
    ),
    "refund_share": lambda r: f"refunds were {_pct(r.refund_share)} of what they paid",
    "deliveries": lambda r: f"{_plural(_n(r.deliveries), 'delivery', 'deliveries')} received",
    "late_deliveries": lambda r: (
        "every delivery arrived on time"
        if r.late_deliveries == 0
        else f"{_n(r.late_deliveries)} of {_plural(_n(r.deliveries), 'delivery', 'deliveries')} "
        "arrived late"
    ),
    "last_late_days": _late,
    "surveys": lambda r: f"answered {_plural(_n(r.surveys), 'survey')}",
    "survey_rating_last": lambda r: f"rated the last order {_n(r.survey_rating_last)}/5",
    "survey_class_last": _survey_class,
    "tickets": lambda r: (
        "no support tickets"
        if r.tickets == 0
        else f"opened {_plural(_n(r.tickets), 'support ticket')}"
    ),
    "ticket_response_hours": lambda r: (
        f"support answers took {_plural(_n(r.ticket_response_hours), 'hour')} on average"
    ),
    "slow_tickets": lambda r: (
        "every support ticket answered within a day"
        if r.slow_tickets == 0
        else f"{_plural(_n(r.slow_tickets), 'support ticket')} waited over a day for an answer"
    ),
    "onboarded": lambda r: (
        "completed onboarding" if r.onboarded else "has not completed onboarding"
    ),
    "features_adopted": lambda r: f"adopted {_plural(_n(r.features_adopted), 'feature')}",
    "first_value": lambda r: (
        "reached first value" if r.first_value else "has not reached first value"
    ),
    "sent_90": lambda r: f"received {_plural(_n(r.sent_90), 'message')} in 90 days",
    "opens_30": lambda r: f"opened {_plural(_n(r.opens_30), 'message')} in the last 30 days",
    "opens_90": lambda r: f"opened {_plural(_n(r.opens_90), 'message')} in the last 90 days",
    "clicks_30": lambda r: f"clicked {_plural(_n(r.clicks_30), 'message')} in the last 30 days",
    "clicks_90": lambda r: f"clicked {_plural(_n(r.clicks_90), 'message')} in the last 90 days",
    "days_since_open": _since_open,
    "btyd_p_alive": lambda r: (
        f"buying pattern gives a {_pct(r.btyd_p_alive)} chance they are still an active buyer"
    ),
}
# Features whose missing value is itself worth saying.
SAYS_MISSING = ("recency_days", "days_since_open")


def _top_family(names: dict[int, str]) -> Callable[[_Row], str]:
    def text(r: _Row) -> str:
        name = names.get(_n(r.top_family))
        return f"buys mostly {name}" if name else "buys mostly unassigned products"

    return text


def reasons_for(
    X: pd.DataFrame,
    contributions: np.ndarray,
    p_churn: np.ndarray,
    base_rate: float,
    family_names: dict[int, str] | None = None,
    horizon_days: int = 90,
) -> list[list[str]]:
    """Up to three reasons per row of ``X``; ``contributions`` is aligned with
    ``X``'s columns. Features with no template are skipped, and so are missing
    values except where the absence is the fact (no order yet, never opened)."""
    templates = dict(TEMPLATES)
    templates["top_family"] = _top_family(family_names or {})
    templates["btyd_expected"] = lambda r: (
        f"their buying pattern predicts {r.btyd_expected:.1f} orders in the next "
        f"{horizon_days} days"
    )
    columns = list(X.columns)
    usable = np.array([c in templates for c in columns])
    values = X.to_numpy(dtype="float64")
    says_missing = np.array([c in SAYS_MISSING for c in columns])
    allowed = usable[None, :] & (~np.isnan(values) | says_missing[None, :])
    sign = np.where(np.asarray(p_churn) >= base_rate, 1.0, -1.0)[:, None]
    signed = np.where(allowed, contributions * sign, -np.inf)
    # The top TOP + 1 (recency and its ratio say one thing once), by
    # contribution, ties by column order: a tiny per-column tilt keeps equal
    # contributions in column order through argpartition.
    k = min(TOP + 1, signed.shape[1])
    keyed = signed - np.arange(signed.shape[1]) * 1e-9
    top = np.argpartition(-keyed, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keyed, top, 1), 1), 1)
    picked = np.take_along_axis(signed, top, axis=1)
    row = _Row({c: values[:, j] for j, c in enumerate(columns)})
    names = [templates.get(c) for c in columns]
    recency = {j for j, c in enumerate(columns) if c in ("recency_days", "recency_ratio")}
    out: list[list[str]] = []
    # Python lists: iterating numpy rows element by element costs twice as much.
    for i, (js, weights) in enumerate(zip(top.tolist(), picked.tolist(), strict=True)):
        row.i = i
        reasons: list[str] = []
        said_recency = False
        for j, weight in zip(js, weights, strict=True):
            if weight < MIN_CONTRIBUTION or len(reasons) == TOP:
                break
            if j in recency:
                if said_recency:
                    continue
                said_recency = True
            reasons.append(names[j](row))
        out.append(reasons)
    return out


class _Row:
    """One customer's values by feature name, for the templates (``row.aov``;
    ``row.get(name)`` for columns a model may lack): a view, not a copy."""

    __slots__ = ("columns", "i")

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns
        self.i = 0

    def __getattr__(self, name: str) -> float:
        try:
            return float(self.columns[name][self.i])
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default=None):
        column = self.columns.get(name)
        return default if column is None else float(column[self.i])
