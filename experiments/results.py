"""An experiment's results, as the page and ``experiment_report`` show them.

One statement reads every exposed customer with what they did after the
exposure (the first counted order, how many orders and how much revenue within
the horizon; the first response to a message). Each metric then counts only
customers whose window has fully passed ("mature"); the rest are "maturing"
and are reported as such, never as non-converters.

- rates (conversion in N days, retention at 30/60/90 days, response rate):
  Wilson interval per variant; lift vs control with Newcombe's interval
  (absolute) and the log risk-ratio interval (relative); pooled z-test.
- means (repeat purchases, revenue per exposed customer): t interval per
  variant; Welch's interval and test for the lift.
- with more than one treatment, p-values are Holm-adjusted.
- sample-ratio mismatch: chi-square of the exposure counts against the weights.
- the sample size the design needs (Cohen's h, two-sided) and a warning, not
  a verdict, when someone reads the results before the planned end (the
  exposure period plus the metric's window) or before that many customers
  per arm have matured: repeated looks at a fixed-horizon test inflate the
  false-positive rate far above its nominal 5%.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime

import numpy as np
import pandas as pd

from commerce.selectors import COUNTED_ORDER_STATUSES
from experiments import stats
from experiments.models import Experiment, Metric, Variant
from retention import clock
from scoring.data import epoch_sql, read_frame

DAY = 86_400.0
RATE_METRICS = (
    Metric.CONVERSION,
    Metric.RETENTION_30,
    Metric.RETENTION_60,
    Metric.RETENTION_90,
    Metric.RESPONSE_RATE,
)
MEAN_METRICS = (Metric.REPEAT_PURCHASES, Metric.REVENUE)
# What counts as responding to a message.
RESPONSE_KINDS = ("message.clicked", "message.replied", "survey.answered")
CHART_POINTS = 120


def metric_window(experiment: Experiment, metric: str) -> int:
    """Days after exposure that a metric looks at."""
    return {
        Metric.CONVERSION: experiment.conversion_days,
        Metric.RETENTION_30: 30,
        Metric.RETENTION_60: 60,
        Metric.RETENTION_90: 90,
    }.get(metric, experiment.horizon_days)


def exposures_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per exposed customer: variant, exposure time (epoch seconds),
    seconds to the first counted order after it (NaN: none yet), orders and
    revenue within the horizon, seconds to the first response (NaN: none)."""
    horizon = experiment.horizon_days * DAY
    statuses = ", ".join(f"'{s}'" for s in COUNTED_ORDER_STATUSES)
    kinds = ", ".join(f"'{k}'" for k in RESPONSE_KINDS)
    e_at, o_at, t_at = (
        epoch_sql("e.exposed_at"),
        epoch_sql("o.placed_at"),
        epoch_sql("t.occurred_at"),
    )
    params = {"tenant": experiment.tenant_id, "experiment": experiment.pk, "horizon": horizon}
    orders = read_frame(
        f"""SELECT e.id, e.variant_id, {e_at},
                   MIN({o_at}) - {e_at},
                   SUM(CASE WHEN {o_at} - {e_at} <= %(horizon)s THEN 1 ELSE 0 END),
                   SUM(CASE WHEN {o_at} - {e_at} <= %(horizon)s THEN o.total ELSE 0 END)
            FROM experiments_exposure e
            LEFT JOIN commerce_order o
              ON o.tenant_id = e.tenant_id AND o.customer_id = e.customer_id
             AND o.placed_at > e.exposed_at AND o.status IN ({statuses})
            WHERE e.tenant_id = %(tenant)s AND e.experiment_id = %(experiment)s
            GROUP BY e.id, e.variant_id, e.exposed_at""",  # noqa: S608 - constants only
        params,
        {
            "id": "int64",
            "variant_id": "int64",
            "exposed": "float64",
            "first_gap": "float64",
            "orders": "float64",
            "revenue": "float64",
        },
    )
    responses = read_frame(
        f"""SELECT e.id, MIN({t_at}) - {e_at}
            FROM experiments_exposure e
            JOIN commerce_touchpoint t
              ON t.tenant_id = e.tenant_id AND t.customer_id = e.customer_id
             AND t.occurred_at > e.exposed_at AND t.kind IN ({kinds})
            WHERE e.tenant_id = %(tenant)s AND e.experiment_id = %(experiment)s
            GROUP BY e.id, e.exposed_at""",  # noqa: S608 - constants only
        params,
        {"id": "int64", "response_gap": "float64"},
    )
    frame = orders.merge(responses, on="id", how="left")
    frame["orders"] = frame["orders"].fillna(0.0)
    frame["revenue"] = frame["revenue"].fillna(0.0)
    return frame


def _per_customer(frame: pd.DataFrame, experiment: Experiment, metric: str) -> pd.Series:
    window = metric_window(experiment, metric) * DAY
    if metric == Metric.REPEAT_PURCHASES:
        return frame["orders"]
    if metric == Metric.REVENUE:
        return frame["revenue"]
    gap = frame["response_gap"] if metric == Metric.RESPONSE_RATE else frame["first_gap"]
    return (gap <= window).astype("float64")


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _clean(data):
    """NaN and inf become None, so the result is plain JSON."""
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean(v) for v in data]
    if isinstance(data, float | np.floating):
        return _finite(float(data))
    if isinstance(data, np.integer):
        return int(data)
    return data


def _metric(
    frame: pd.DataFrame,
    experiment: Experiment,
    variants: list[Variant],
    metric: str,
    as_of: datetime,
) -> dict:
    window_days = metric_window(experiment, metric)
    mature = frame["exposed"] + window_days * DAY <= as_of.timestamp()
    values = _per_customer(frame, experiment, metric)
    rows, per_arm = [], {}
    for v in variants:
        mine = frame["variant_id"] == v.pk
        x = values[mine & mature].to_numpy(dtype="float64")
        maturing = int((mine & ~mature).sum())
        if metric in RATE_METRICS:
            successes = int(x.sum())
            r = stats.rate_interval(successes, len(x), alpha=experiment.alpha)
            row = {"value": r.rate, "low": r.low, "high": r.high, "successes": successes}
            per_arm[v.key] = (successes, len(x))
        else:
            m = stats.mean_from_sums(len(x), float(x.sum()), float((x * x).sum()))
            low, high = (
                stats.mean_interval(m, alpha=experiment.alpha)
                if len(x) > 1
                else (
                    math.nan,
                    math.nan,
                )
            )
            row = {"value": m.mean, "low": low, "high": high}
            per_arm[v.key] = m
        rows.append(
            {"key": v.key, "name": v.name or v.key, "n": len(x), "maturing": maturing, **row}
        )
    control = next(v for v in variants if v.is_control)
    lifts = []
    for v in variants:
        if v.is_control:
            continue
        if metric in RATE_METRICS:
            lift = stats.proportion_lift(
                per_arm[control.key], per_arm[v.key], alpha=experiment.alpha
            )
        else:
            lift = stats.mean_lift(per_arm[control.key], per_arm[v.key], alpha=experiment.alpha)
        lifts.append({"key": v.key, **asdict(lift)})
    adjusted = stats.holm([lift["p_value"] for lift in lifts]) if len(lifts) > 1 else None
    for index, lift in enumerate(lifts):
        p = adjusted[index] if adjusted else lift["p_value"]
        lift["p_adjusted"] = p
        lift["significant"] = bool(p is not None and math.isfinite(p) and p < experiment.alpha)
    return {
        "metric": metric,
        "label": Metric(metric).label,
        "kind": "rate" if metric in RATE_METRICS else "mean",
        "window_days": window_days,
        "variants": rows,
        "lifts": lifts,
    }


def _chart(
    frame: pd.DataFrame, experiment: Experiment, variants: list[Variant], as_of: datetime
) -> dict:
    """Cumulative conversion per variant: at each day, the rate among customers
    whose conversion window had closed by then, with its interval band."""
    window = experiment.conversion_days * DAY
    ready = frame["exposed"] + window
    converted = frame["first_gap"] <= window
    if frame.empty:
        return {"days": [], "series": []}
    first = float(ready.min())
    last = as_of.timestamp()
    if last < first:
        return {"days": [], "series": []}
    step = max(DAY, math.ceil((last - first) / DAY / CHART_POINTS) * DAY)
    edges = np.arange(first + DAY - first % DAY, last + step, step)
    edges = edges[edges <= last + step - 1] if len(edges) else edges
    days = [datetime.fromtimestamp(t, tz=as_of.tzinfo).date().isoformat() for t in edges]
    series = []
    for v in variants:
        mine = (frame["variant_id"] == v.pk).to_numpy()
        r = np.sort(ready.to_numpy()[mine])
        c = np.sort(ready.to_numpy()[mine & converted.to_numpy()])
        n = np.searchsorted(r, edges, side="right")
        s = np.searchsorted(c, edges, side="right")
        points = []
        for ni, si in zip(n.tolist(), s.tolist(), strict=True):
            rate = stats.rate_interval(si, ni, alpha=experiment.alpha)
            points.append({"n": ni, "rate": rate.rate, "low": rate.low, "high": rate.high})
        series.append({"key": v.key, "name": v.name or v.key, "points": points})
    return {"days": days, "series": series, "window_days": experiment.conversion_days}


def experiment_results(experiment: Experiment, *, as_of: datetime | None = None) -> dict:
    """Everything the results page and the report command show, as plain data."""
    from experiments.services.lifecycle import planned_end

    as_of = as_of or clock.now()
    variants = list(
        Variant.objects.for_tenant(experiment.tenant_id)
        .filter(experiment=experiment)
        .order_by("-is_control", "key")
    )
    frame = exposures_frame(experiment)
    primary = experiment.primary_metric
    metrics = [_metric(frame, experiment, variants, m, as_of) for m in Metric.values]
    by_key = {m["metric"]: m for m in metrics}
    exposed = {v.key: int((frame["variant_id"] == v.pk).sum()) for v in variants}
    srm = stats.sample_ratio_check(exposed, {v.key: float(v.weight) for v in variants})
    control = next((v for v in variants if v.is_control), None)
    ratio = 1.0
    needed = None
    if control is not None and len(variants) > 1:
        treatment = next(v for v in variants if not v.is_control)
        ratio = treatment.weight / control.weight
        needed = stats.sample_size(
            experiment.baseline_rate,
            experiment.minimum_effect,
            alpha=experiment.alpha,
            power=experiment.power,
            ratio=ratio,
        )
    window = metric_window(experiment, primary)
    end = planned_end(experiment, window)
    mature = [row["n"] for row in by_key[primary]["variants"]]
    early_reasons = []
    if end is not None and as_of < end:
        early_reasons.append(f"the planned end is {end:%Y-%m-%d}")
    if needed is not None and mature and min(mature) < needed:
        early_reasons.append(
            f"{min(mature):,} customers have matured in the smallest arm of {needed:,} planned"
        )
    report = {
        "experiment": {
            "id": experiment.pk,
            "name": experiment.name,
            "kind": experiment.kind,
            "status": experiment.status,
            "hypothesis": experiment.hypothesis,
            "journey": str(experiment.journey),
            "step_position": experiment.step_position,
            "started_at": experiment.started_at.isoformat() if experiment.started_at else None,
            "stopped_at": experiment.stopped_at.isoformat() if experiment.stopped_at else None,
            "planned_end": end.isoformat() if end else None,
            "decision": experiment.decision,
            "winner": experiment.winner.key if experiment.winner_id else None,
        },
        "as_of": as_of.isoformat(),
        "primary_metric": primary,
        "variants": [
            {
                "key": v.key,
                "name": v.name or v.key,
                "weight": v.weight,
                "is_control": v.is_control,
                "exposed": exposed[v.key],
            }
            for v in variants
        ],
        "metrics": metrics,
        "primary": by_key[primary],
        "srm": asdict(srm),
        "design": {
            "baseline_rate": experiment.baseline_rate,
            "minimum_effect": experiment.minimum_effect,
            "alpha": experiment.alpha,
            "power": experiment.power,
            "needed_per_control_arm": needed,
            "needed_per_treatment_arm": math.ceil(needed * ratio) if needed else None,
        },
        "peeking": {
            "early": bool(early_reasons),
            "message": (
                "Too early to decide: "
                + " and ".join(early_reasons)
                + ". Intervals and p-values read now are a peek, not a verdict: checking "
                "repeatedly and stopping at the first 'significant' result makes a false "
                "win far likelier than 5%."
            )
            if early_reasons
            else "",
        },
        "chart": _chart(frame, experiment, variants, as_of),
    }
    report["verdict"] = _verdict(report, experiment)
    return _clean(report)


def _verdict(report: dict, experiment: Experiment) -> str:
    primary = report["primary"]
    if not primary["lifts"]:
        return "No treatment arm to compare."
    if report["srm"]["mismatch"]:
        return (
            "Sample-ratio mismatch: the arms' sizes do not match their weights, so the split "
            "is broken somewhere. Fix that before trusting any lift."
        )
    parts = []
    for lift in primary["lifts"]:
        relative = lift["relative"]
        size = f"{relative:+.1%}" if relative is not None and math.isfinite(relative) else "n/a"
        if lift["significant"]:
            better = (lift["absolute"] or 0) > 0
            parts.append(
                f"{lift['key']} {'beats' if better else 'is worse than'} the control on "
                f"{primary['label'].lower()}: {size} (p = {lift['p_adjusted']:.3g})"
            )
        else:
            parts.append(f"{lift['key']}: no significant difference ({size})")
    text = "; ".join(parts) + "."
    if report["peeking"]["early"]:
        text = "Provisional: " + text
    return text
