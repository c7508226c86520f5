"""Scoring customers as of a moment, and writing the scores back set-based.

``churn_score_range(tenant_id, version, as_of, lo=…, hi=…)`` scores every
customer whose id is in ``[lo, hi]`` (the nightly run splits a tenant into such
chunks; on demand the whole tenant is one range):

1. load their history before ``as_of`` and build the model's features;
2. predict ``p_churn`` and ``expected_orders``; derive the top three reasons
   from the per-feature contributions; band by the tenant's thresholds;
3. choose the next best action from the policy (band x value tier x recent
   contact);
4. write: the current ``ChurnScore`` row of each customer and one
   ``ChurnScoreHistory`` row per customer and as-of date (COPY into a
   temporary table, then one ``INSERT … ON CONFLICT`` each, on PostgreSQL).

A customer whose band changed (or who is scored for the first time) *enters*
the band: the chosen action is recorded (``ChosenAction``, also for "none",
so the policy can be judged against doing nothing) and, when ``announce`` is
on, a ``churn_risk.entered`` touchpoint is written for medium and high, a
``next_action.<action>`` touchpoint starts the win-back or nudge journey, and
a call queues a proactive callback for the agents. The tenant's very first run
announces nothing: like an import of history, it is the starting picture, not
news, and must not start a journey for everyone at once.

Re-running a range for the same as-of date changes nothing further: scores are
upserted, history and chosen actions are unique per (customer, as-of date),
touchpoints and callbacks carry idempotency keys.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction

from commerce.models import Customer, ProductFamily
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from retention import clock
from scoring.data import epoch_sql, history_load, query_params, read_frame
from scoring.features import features_build
from scoring.models import (
    NO_ORDER_TIER,
    ChosenAction,
    ChurnScore,
    ChurnScoreHistory,
    ModelVersion,
    NextAction,
    RiskBand,
    ScoringSettings,
)
from scoring.reasons import reasons_for
from scoring.services.setup import policy_table, scoring_settings
from scoring.services.train import model_load

logger = logging.getLogger(__name__)

ANNOUNCED_BANDS = (RiskBand.MEDIUM, RiskBand.HIGH)
JOURNEY_ACTIONS = (NextAction.WINBACK, NextAction.NUDGE)


@dataclass
class Scored:
    """One range's scores (index customer_id), before writing."""

    frame: pd.DataFrame  # p_churn, expected_orders, band, tier, contacted, action, reasons
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Written:
    scored: int
    entered: int
    announced: int
    callbacks: int
    seconds: dict[str, float]


def bands_of(p: np.ndarray, settings: ScoringSettings) -> np.ndarray:
    return np.where(
        p >= settings.high_from,
        RiskBand.HIGH.value,
        np.where(p >= settings.medium_from, RiskBand.MEDIUM.value, RiskBand.LOW.value),
    )


def _tiers(
    tenant_id: int, as_of: datetime, index: pd.Index, lo: int | None, hi: int | None
) -> pd.Series:
    frame = read_frame(
        """SELECT customer_id, tier FROM segments_customerrfm
        WHERE tenant_id = %(tenant)s AND customer_id BETWEEN %(lo)s AND %(hi)s""",
        query_params(tenant_id, as_of, lo, hi),
        {"customer_id": "int64", "tier": "str"},
    )
    return frame.set_index("customer_id")["tier"].reindex(index).fillna(NO_ORDER_TIER)


def _family_names(tenant_id: int) -> dict[int, str]:
    return dict(ProductFamily.objects.for_tenant(tenant_id).values_list("pk", "name"))


def churn_score_frame(
    tenant_id: int,
    version: ModelVersion,
    as_of: datetime,
    *,
    lo: int | None = None,
    hi: int | None = None,
    settings: ScoringSettings | None = None,
) -> Scored:
    """Steps 1-3: everything but the write."""
    settings = settings or scoring_settings(tenant_id)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    model = model_load(version)
    history = history_load(tenant_id, as_of, lo=lo, hi=hi)
    features = features_build(history, model.btyd, model.horizon_days)
    X = features.frame.reindex(columns=model.columns)
    seconds["load_features"] = time.perf_counter() - started
    step = time.perf_counter()
    p = np.clip(model.p_churn(X), 0.0, 1.0)
    expected = model.expected_orders(X)
    seconds["predict"] = time.perf_counter() - step
    step = time.perf_counter()
    base = model.base_rate if model.base_rate is not None else float(np.mean(p)) if len(p) else 0.5
    reasons = reasons_for(
        X, model.contributions(X), p, base, _family_names(tenant_id), model.horizon_days
    )
    seconds["reasons"] = time.perf_counter() - step
    index = X.index
    frame = pd.DataFrame(
        {"p_churn": p, "expected_orders": expected, "band": bands_of(p, settings)}, index=index
    )
    frame["tier"] = _tiers(tenant_id, as_of, index, lo, hi)
    contact = history.contacts.set_index("customer_id")["last_age"].reindex(index)
    frame["contacted"] = (contact <= settings.recent_contact_days).fillna(False).astype(bool)
    table = policy_table(tenant_id)
    frame["action"] = [
        table.get((b, t, c), NextAction.NONE.value)
        for b, t, c in zip(frame["band"], frame["tier"], frame["contacted"], strict=True)
    ]
    frame["reasons"] = reasons
    return Scored(frame=frame, seconds=seconds)


def churn_score_range(
    tenant_id: int,
    version: ModelVersion,
    as_of: datetime,
    *,
    lo: int | None = None,
    hi: int | None = None,
    announce: bool = True,
    settings: ScoringSettings | None = None,
) -> Written:
    settings = settings or scoring_settings(tenant_id)
    scored = churn_score_frame(tenant_id, version, as_of, lo=lo, hi=hi, settings=settings)
    step = time.perf_counter()
    written = scores_write(
        tenant_id, version, as_of, scored.frame, lo=lo, hi=hi, announce=announce,
        horizon_days=version.horizon_days,
    )  # fmt: skip
    written.seconds = {
        **scored.seconds,
        **{f"write_{k}": v for k, v in written.seconds.items()},
        "write": time.perf_counter() - step,
    }
    return written


def _previous(
    tenant_id: int, as_of: datetime, index: pd.Index, lo: int | None, hi: int | None
) -> pd.Series:
    """Each customer's band before ``as_of``: the current score's when it is
    older (the nightly case, one indexed read), else the latest history row
    before ``as_of`` (a re-run, or a re-score of the past)."""
    params = query_params(tenant_id, as_of, lo, hi)
    current = read_frame(
        f"""SELECT customer_id, band, {epoch_sql("as_of")} FROM scoring_churnscore
        WHERE tenant_id = %(tenant)s AND customer_id BETWEEN %(lo)s AND %(hi)s""",
        params,
        {"customer_id": "int64", "band": "str", "at": "float64"},
    ).set_index("customer_id")
    band = current["band"].where(current["at"] < as_of.timestamp())
    if (current["at"] >= as_of.timestamp()).any():
        earlier = read_frame(
            """SELECT h.customer_id, h.band FROM scoring_churnscorehistory h
            JOIN (SELECT customer_id, MAX(as_of) AS at FROM scoring_churnscorehistory
                  WHERE tenant_id = %(tenant)s AND customer_id BETWEEN %(lo)s AND %(hi)s
                    AND as_of < %(as_of)s
                  GROUP BY customer_id) last
              ON last.customer_id = h.customer_id AND last.at = h.as_of
            WHERE h.tenant_id = %(tenant)s""",
            params,
            {"customer_id": "int64", "band": "str"},
        ).set_index("customer_id")["band"]
        stale = band.index[band.isna()]
        band.loc[stale] = earlier.reindex(stale)
    return band.reindex(index)


def scores_write(
    tenant_id: int,
    version: ModelVersion,
    as_of: datetime,
    frame: pd.DataFrame,
    *,
    lo: int | None,
    hi: int | None,
    announce: bool,
    horizon_days: int,
) -> Written:
    now = clock.now()
    seconds: dict[str, float] = {}
    with transaction.atomic():
        step = time.perf_counter()
        prev = _previous(tenant_id, as_of, frame.index, lo, hi)
        frame = frame.assign(prev_band=prev, entered=(prev != frame["band"]).to_numpy())
        seconds["read_previous"] = time.perf_counter() - step
        if connection.vendor == "postgresql":
            _write_copy(tenant_id, version, as_of, frame, now, horizon_days, seconds)
        else:
            _write_orm(tenant_id, version, as_of, frame, now, horizon_days)
        entered = frame[frame["entered"]]
        announced, callbacks = 0, 0
        step = time.perf_counter()
        if announce and len(entered):
            announced, callbacks = _announce(tenant_id, version, as_of, entered)
        seconds["announce"] = time.perf_counter() - step
    return Written(
        scored=len(frame),
        entered=int(frame["entered"].sum()),
        announced=announced,
        callbacks=callbacks,
        seconds=seconds,
    )


# No key on the temporary table: the frame's index is unique, and a repeated
# customer would still fail the upsert ("cannot affect row a second time").
_CREATE_TEMP = """
CREATE TEMPORARY TABLE scoring_in (
    customer_id bigint, p_churn float8, expected_orders float8, band text,
    tier text, reasons jsonb, action text, contacted boolean, entered boolean
) ON COMMIT DROP
"""

_UPSERT = """
INSERT INTO scoring_churnscore
    (tenant_id, customer_id, p_churn, expected_orders, band, tier, reasons, next_action,
     model_version_id, as_of, band_since, scored_at)
SELECT %(tenant)s, i.customer_id, i.p_churn, i.expected_orders, i.band, i.tier, i.reasons,
       i.action, %(version)s, %(as_of)s, %(as_of)s, %(now)s
FROM scoring_in i
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
    p_churn = EXCLUDED.p_churn, expected_orders = EXCLUDED.expected_orders,
    band = EXCLUDED.band, tier = EXCLUDED.tier, reasons = EXCLUDED.reasons,
    next_action = EXCLUDED.next_action, model_version_id = EXCLUDED.model_version_id,
    as_of = EXCLUDED.as_of, scored_at = EXCLUDED.scored_at,
    band_since = CASE WHEN scoring_churnscore.band = EXCLUDED.band
                      THEN scoring_churnscore.band_since ELSE EXCLUDED.band_since END
WHERE scoring_churnscore.as_of <= EXCLUDED.as_of  -- a re-score of the past keeps today's
"""

_HISTORY = """
INSERT INTO scoring_churnscorehistory
    (tenant_id, customer_id, as_of, p_churn, expected_orders, band, model_version_id)
SELECT %(tenant)s, i.customer_id, %(as_of)s, i.p_churn, i.expected_orders, i.band, %(version)s
FROM scoring_in i
ON CONFLICT (tenant_id, customer_id, as_of) DO UPDATE SET
    p_churn = EXCLUDED.p_churn, expected_orders = EXCLUDED.expected_orders,
    band = EXCLUDED.band, model_version_id = EXCLUDED.model_version_id
"""

_ACTIONS = """
INSERT INTO scoring_chosenaction
    (tenant_id, customer_id, action, band, tier, recently_contacted, p_churn, expected_orders,
     model_version_id, as_of, chosen_at, horizon_end)
SELECT %(tenant)s, i.customer_id, i.action, i.band, i.tier, i.contacted, i.p_churn,
       i.expected_orders, %(version)s, %(as_of)s, %(now)s, %(horizon_end)s
FROM scoring_in i WHERE i.entered
ON CONFLICT (tenant_id, customer_id, as_of) DO NOTHING
"""


def _copy_text(frame: pd.DataFrame) -> bytes:
    """The rows in COPY's text format (tab-separated; a backslash in the JSON
    doubled): half the time of pandas' CSV writer for the same rows."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode

    def reasons(value: list[str]) -> str:
        text = dumps(list(value))
        return text.replace("\\", "\\\\") if "\\" in text else text

    lines = [
        f"{c}\t{p:.6g}\t{e:.6g}\t{b}\t{t}\t{reasons(r)}\t{a}\t{'t' if k else 'f'}\t"
        f"{'t' if n else 'f'}"
        for c, p, e, b, t, r, a, k, n in zip(
            frame.index.tolist(),
            frame["p_churn"].tolist(),
            frame["expected_orders"].tolist(),
            frame["band"].tolist(),
            frame["tier"].tolist(),
            frame["reasons"].tolist(),
            frame["action"].tolist(),
            frame["contacted"].tolist(),
            frame["entered"].tolist(),
            strict=True,
        )
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _write_copy(tenant_id, version, as_of, frame, now, horizon_days, seconds) -> None:
    params = {
        "tenant": tenant_id,
        "version": version.pk,
        "as_of": as_of,
        "now": now,
        "horizon_end": as_of + timedelta(days=horizon_days),
    }
    step = time.perf_counter()
    data = _copy_text(frame)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS scoring_in")
        cur.execute(_CREATE_TEMP)
        with cur.cursor.copy("COPY scoring_in FROM STDIN") as copy:
            copy.write(data)
        seconds["copy"] = time.perf_counter() - step
        for name, sql in (("current", _UPSERT), ("history", _HISTORY), ("actions", _ACTIONS)):
            step = time.perf_counter()
            cur.execute(sql, params)
            seconds[name] = time.perf_counter() - step
        cur.execute("DROP TABLE scoring_in")


def _write_orm(tenant_id, version, as_of, frame, now, horizon_days) -> None:
    """The embedded (SQLite) path: the same rows through the ORM."""
    rows = list(frame.itertuples())
    current = {
        s.customer_id: s
        for s in ChurnScore.objects.for_tenant(tenant_id).filter(customer_id__in=frame.index)
    }
    scores = []
    for r in rows:
        old = current.get(r.Index)
        if old is not None and old.as_of > as_of:
            continue  # a re-score of the past keeps today's score
        since = old.band_since if old is not None and old.band == r.band else as_of
        scores.append(
            ChurnScore(
                tenant_id=tenant_id, customer_id=r.Index, p_churn=r.p_churn,
                expected_orders=r.expected_orders, band=r.band, tier=r.tier, reasons=r.reasons,
                next_action=r.action, model_version=version, as_of=as_of, band_since=since,
                scored_at=now,
            )
        )  # fmt: skip
    fields = ["p_churn", "expected_orders", "band", "tier", "reasons", "next_action",
              "model_version", "as_of", "band_since", "scored_at"]  # fmt: skip
    ChurnScore.objects.bulk_create(
        scores, update_conflicts=True, unique_fields=["tenant", "customer"], update_fields=fields
    )
    ChurnScoreHistory.objects.bulk_create(
        [
            ChurnScoreHistory(
                tenant_id=tenant_id, customer_id=r.Index, as_of=as_of, p_churn=r.p_churn,
                expected_orders=r.expected_orders, band=r.band, model_version=version,
            )
            for r in rows
        ],
        update_conflicts=True,
        unique_fields=["tenant", "customer", "as_of"],
        update_fields=["p_churn", "expected_orders", "band", "model_version"],
    )  # fmt: skip
    ChosenAction.objects.bulk_create(
        [
            ChosenAction(
                tenant_id=tenant_id, customer_id=r.Index, action=r.action, band=r.band,
                tier=r.tier, recently_contacted=r.contacted, p_churn=r.p_churn,
                expected_orders=r.expected_orders, model_version=version, as_of=as_of,
                chosen_at=now, horizon_end=as_of + timedelta(days=horizon_days),
            )
            for r in rows
            if r.entered
        ],
        ignore_conflicts=True,
    )  # fmt: skip


def _announce(tenant_id, version, as_of, entered: pd.DataFrame) -> tuple[int, int]:
    """Touchpoints for band entries and journey actions; callbacks for calls."""
    day = as_of.strftime("%Y-%m-%d")
    items = []
    for customer_id, r in entered.iterrows():
        p = round(float(r["p_churn"]), 4)
        if r["band"] in ANNOUNCED_BANDS:
            items.append(
                TouchpointIn(
                    customer_id=int(customer_id), category="product", kind="churn_risk.entered",
                    occurred_at=as_of,
                    properties={"band": r["band"], "p_churn": p, "action": r["action"],
                                "model_version": version.version},
                    external_id=f"churn:{day}:{customer_id}",
                )
            )  # fmt: skip
        if r["action"] in JOURNEY_ACTIONS:
            items.append(
                TouchpointIn(
                    customer_id=int(customer_id), category="product",
                    kind=f"next_action.{r['action']}", occurred_at=as_of,
                    properties={"band": r["band"], "p_churn": p, "reasons": list(r["reasons"])},
                    external_id=f"action:{day}:{customer_id}",
                )
            )  # fmt: skip
    touchpoints_record_many(tenant_id=tenant_id, source="scoring", items=items)
    calls = entered[entered["action"] == NextAction.CALL]
    return len(items), _callbacks(tenant_id, as_of, calls)


def _callbacks(tenant_id: int, as_of: datetime, calls: pd.DataFrame) -> int:
    if calls.empty:
        return 0
    from feedback.services.callbacks import callback_create

    created = 0
    customers = Customer.objects.for_tenant(tenant_id).in_bulk(list(calls.index))
    for customer_id, r in calls.iterrows():
        customer = customers.get(customer_id)
        if customer is None:
            continue
        reasons = list(r["reasons"])
        _, made = callback_create(
            tenant=tenant_id,
            customer=customer,
            reason="Proactive check-in: churn risk "
            + f"{round(100 * float(r['p_churn']))}% ({r['band']})",
            source="scoring",
            idempotency_key=f"churn:{as_of:%Y-%m-%d}:{customer_id}",
            context={"p_churn": round(float(r["p_churn"]), 4), "band": r["band"],
                     "reasons": reasons},
        )  # fmt: skip
        created += int(made)
    return created
