"""Churn features from a :class:`scoring.data.History`: pure pandas and numpy.

``features_build(history, btyd, horizon_days)`` returns one row per customer
(index ``customer_id``) and the *groups* of features the data could support.
A group whose source the tenant has no rows of at all (no surveys, no support
tickets, no tracked product events, no messages) is reported absent, and
training leaves its columns out rather than pretend every customer scored zero.
Inside a present group a count is 0 where the customer has none (true), and a
measure is NaN where it is undefined (the typical gap of a one-time buyer);
both models handle NaN (see ``scoring.model``).

All times are ages in days before the as-of moment (see ``scoring.data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.btyd import BGNBDParams, bgnbd_expected, bgnbd_p_alive, bgnbd_p_none
from scoring.data import History

# Feature -> group. Order is the column order of the frame.
GROUPS: dict[str, str] = {
    "tenure_days": "orders",
    "recency_days": "orders",
    "first_order_days": "orders",
    "orders": "orders",
    "order_days": "orders",
    "orders_365": "orders",
    "spend_365": "orders",
    "spend_total": "orders",
    "aov": "orders",
    "ipt_mean": "orders",
    "ipt_cv": "orders",
    "recency_ratio": "orders",
    "value_trend": "orders",
    "discount_share": "orders",
    "discount_rate": "orders",
    "top_family": "families",
    "n_families": "families",
    "expensive_share": "families",
    "returns": "returns",
    "refund_share": "returns",
    "deliveries": "deliveries",
    "late_deliveries": "deliveries",
    "last_late_days": "deliveries",
    "surveys": "surveys",
    "survey_rating_last": "surveys",
    "survey_class_last": "surveys",
    "tickets": "support",
    "ticket_response_hours": "support",
    "slow_tickets": "support",
    "onboarded": "product",
    "features_adopted": "product",
    "first_value": "product",
    "sent_90": "messages",
    "opens_30": "messages",
    "opens_90": "messages",
    "clicks_30": "messages",
    "clicks_90": "messages",
    "days_since_open": "messages",
    "btyd_p_alive": "btyd",
    "btyd_expected": "btyd",
}
CATEGORICAL = ("top_family",)  # family ids: categories, not magnitudes
SURVEY_CLASSES = ("detractor", "neutral", "promoter")


@dataclass
class Features:
    frame: pd.DataFrame  # index customer_id; columns in GROUPS order
    present: frozenset[str]  # groups the data supports
    btyd_input: pd.DataFrame  # x, t_x, T per buyer (days), for fitting the BTYD model

    def columns(self) -> list[str]:
        return [c for c, g in GROUPS.items() if g in self.present]


def btyd_summary(orders: pd.DataFrame) -> pd.DataFrame:
    """Per buyer: ``x`` repeat order days, ``t_x`` days from the first to the
    last order day, ``T`` days from the first order day to the as-of moment.
    Order days are whole days counted back from the as-of moment."""
    if orders.empty:
        return pd.DataFrame(columns=["x", "t_x", "T"], dtype="float64")
    day = pd.DataFrame(
        {"customer_id": orders["customer_id"].to_numpy(), "day": np.floor(orders["age"]).to_numpy()}
    ).drop_duplicates()
    g = day.groupby("customer_id")["day"]
    first, last, n = g.max(), g.min(), g.size()
    return pd.DataFrame(
        {"x": (n - 1).astype("float64"), "t_x": (first - last).astype("float64"), "T": first + 0.5}
    )


def _order_features(orders: pd.DataFrame, index: pd.Index, tenure: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame(index=index)
    out["tenure_days"] = tenure
    if orders.empty:
        for col in (
            "recency_days",
            "first_order_days",
            "aov",
            "ipt_mean",
            "ipt_cv",
            "recency_ratio",
            "value_trend",
        ):
            out[col] = np.nan
        for col in ("orders", "order_days", "orders_365", "spend_365", "spend_total"):
            out[col] = 0.0
        out["discount_share"] = np.nan
        out["discount_rate"] = np.nan
        return out
    g = orders.groupby("customer_id", sort=False)
    first_age = g["age"].max()
    last_age = g["age"].min()
    count = g.size()
    recent = orders[orders["age"] < 365].groupby("customer_id")
    out["tenure_days"] = np.fmax(tenure, first_age.reindex(index))
    out["recency_days"] = last_age
    out["first_order_days"] = first_age
    out["orders"] = count.reindex(index, fill_value=0).astype("float64")
    # Gaps between order days, in time order (orders are sorted by customer, time).
    day = np.floor(orders["age"].to_numpy())
    cust = orders["customer_id"].to_numpy()
    new_day = np.r_[True, (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])]
    days = pd.DataFrame({"customer_id": cust[new_day], "day": day[new_day]})
    out["order_days"] = days.groupby("customer_id").size().reindex(index, fill_value=0)
    same = days["customer_id"].to_numpy()
    gap = -np.diff(days["day"].to_numpy(), prepend=np.nan)
    gap[np.r_[True, same[1:] != same[:-1]]] = np.nan
    gaps = pd.Series(gap, index=same).dropna().groupby(level=0)
    mean_gap = gaps.mean()
    out["ipt_mean"] = mean_gap
    out["ipt_cv"] = gaps.std(ddof=0) / mean_gap.where(gaps.size() >= 2)
    out["recency_ratio"] = out["recency_days"] / out["ipt_mean"].where(out["ipt_mean"] > 0)
    out["orders_365"] = recent.size().reindex(index, fill_value=0).astype("float64")
    out["spend_365"] = recent["total"].sum().reindex(index, fill_value=0.0)
    spend = g["total"].sum()
    out["spend_total"] = spend.reindex(index, fill_value=0.0)
    out["aov"] = spend / count
    last_total = g["total"].last()
    earlier_mean = (spend - last_total) / (count - 1).where(count >= 2)
    out["value_trend"] = last_total / earlier_mean.where(earlier_mean > 0) - 1.0
    out["discount_share"] = (orders["discount"] > 0).groupby(orders["customer_id"]).mean()
    subtotal = g["subtotal"].sum()
    out["discount_rate"] = g["discount"].sum() / subtotal.where(subtotal > 0)
    return out


def _family_features(h: History, index: pd.Index) -> pd.DataFrame:
    out = pd.DataFrame(index=index)
    fam = h.families
    if fam.empty:
        out["top_family"] = np.nan
        out["n_families"] = 0.0
        out["expensive_share"] = np.nan
        return out
    fam = fam.sort_values(["customer_id", "spend", "family_id"], ascending=[True, False, True])
    g = fam.groupby("customer_id", sort=False)
    out["top_family"] = g["family_id"].first().astype("float64")
    out["n_families"] = (
        fam[fam["family_id"] > 0].groupby("customer_id").size().reindex(index, fill_value=0)
    )
    spend = g["spend"].sum()
    out["expensive_share"] = g["expensive"].sum() / spend.where(spend > 0)
    return out


def features_build(h: History, btyd: BGNBDParams | None = None, horizon_days: int = 90) -> Features:
    """One row per customer of ``h.customers``. Without ``btyd`` parameters the
    buy-till-you-die columns are left out (the model fits them first)."""
    index = pd.Index(h.customers["customer_id"].to_numpy(), name="customer_id")
    tenure = h.customers.set_index("customer_id")["age"].reindex(index)
    present = {"orders"}
    parts = [_order_features(h.orders, index, tenure)]

    if not h.families.empty:
        present.add("families")
    parts.append(_family_features(h, index))

    ret = pd.DataFrame(index=index)
    if not h.returns.empty:
        present.add("returns")
    r = h.returns.set_index("customer_id")
    ret["returns"] = r["returns"].reindex(index, fill_value=0).astype("float64")
    spend = parts[0]["spend_total"]
    refunded = r["refunded"].reindex(index, fill_value=0.0)
    # Refunded orders are not counted in spend: the share is of all they paid.
    paid = spend + refunded
    ret["refund_share"] = refunded / paid.where(paid > 0)
    parts.append(ret)

    dl = pd.DataFrame(index=index)
    d = h.deliveries
    if not d.empty:
        present.add("deliveries")
    late = (d["late_days"] > 0.5) | (d["delayed"] > 0)
    dg = d.assign(late=late).sort_values(["customer_id", "age"]).groupby("customer_id", sort=False)
    dl["deliveries"] = dg.size().reindex(index, fill_value=0).astype("float64")
    dl["late_deliveries"] = dg["late"].sum().reindex(index, fill_value=0).astype("float64")
    dl["last_late_days"] = dg["late_days"].first()  # smallest age: the latest delivery
    parts.append(dl)

    sv = pd.DataFrame(index=index)
    s = h.surveys
    if not s.empty:
        present.add("surveys")
    sg = s.groupby("customer_id", sort=False)  # sorted by time: last() is the latest
    sv["surveys"] = sg.size().reindex(index, fill_value=0).astype("float64")
    sv["survey_rating_last"] = sg["rating"].last()
    last_class = sg["classification"].last().reindex(index)
    sv["survey_class_last"] = last_class.map({c: float(i) for i, c in enumerate(SURVEY_CLASSES)})
    parts.append(sv)

    t = h.touches.set_index("customer_id")

    def col(name: str) -> pd.Series:
        return t[name].reindex(index, fill_value=0).astype("float64")

    sp = pd.DataFrame(index=index)
    if t["tickets"].sum() or t["answers"].sum():
        present.add("support")
    sp["tickets"] = col("tickets")
    sp["ticket_response_hours"] = t["response_hours_mean"].reindex(index)
    sp["slow_tickets"] = col("slow")
    parts.append(sp)

    pr = pd.DataFrame(index=index)
    if t["onboarded"].sum() or t["features"].sum() or t["first_value"].sum():
        present.add("product")
    pr["onboarded"] = (col("onboarded") > 0).astype("float64")
    pr["features_adopted"] = col("features")
    pr["first_value"] = (col("first_value") > 0).astype("float64")
    parts.append(pr)

    ms = pd.DataFrame(index=index)
    if t["sent"].sum() or t["opened"].sum() or t["clicked"].sum():
        present.add("messages")
    ms["sent_90"] = col("sent_90")
    ms["opens_30"] = col("opened_30")
    ms["opens_90"] = col("opened_90")
    ms["clicks_30"] = col("clicked_30")
    ms["clicks_90"] = col("clicked_90")
    ms["days_since_open"] = t["last_open_age"].reindex(index)
    parts.append(ms)

    summary = btyd_summary(h.orders)
    bt = pd.DataFrame(index=index)
    if btyd is not None:
        present.add("btyd")
        p_alive, expected, _ = btyd_predict(btyd, summary, index, tenure, horizon_days)
        bt["btyd_p_alive"] = p_alive
        bt["btyd_expected"] = expected
    else:
        bt["btyd_p_alive"] = np.nan
        bt["btyd_expected"] = np.nan
    parts.append(bt)

    frame = pd.concat(parts, axis=1)[list(GROUPS)]
    return Features(frame=frame, present=frozenset(present), btyd_input=summary)


def btyd_predict(
    params: BGNBDParams,
    summary: pd.DataFrame,
    index: pd.Index,
    tenure: pd.Series,
    horizon_days: int,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(p_alive, expected order days, P(no order)) in the horizon for every
    customer of ``index``. A customer with no order yet is treated as one who
    could buy from sign-up on: x = 0, t_x = 0, T = days since sign-up."""
    s = summary.reindex(index)
    never = s["x"].isna().to_numpy()
    x = s["x"].fillna(0.0).to_numpy()
    t_x = s["t_x"].fillna(0.0).to_numpy()
    T = np.where(never, np.maximum(tenure.reindex(index).fillna(0.0).to_numpy(), 0.5), s["T"])
    p_alive = bgnbd_p_alive(params, x, t_x, T)
    expected = bgnbd_expected(params, x, t_x, T, float(horizon_days))
    p_none = bgnbd_p_none(params, x, t_x, T, float(horizon_days))
    return (
        pd.Series(p_alive, index=index),
        pd.Series(expected, index=index),
        pd.Series(p_none, index=index),
    )
