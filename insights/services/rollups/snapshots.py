"""Snapshot: small figures of the state now, kept whole per day (tier sizes
and moves, the churn-risk distribution and the valuable customers at risk,
feedback and the callback SLA)."""

# Statements are built from our own constants and vendor expressions;
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from insights.models import Snapshot
from insights.services.rollups.sql import Run, fetch, lock, pg
from segments.models import SegmentKind, Tier

SNAPSHOT_DAYS = 28


def _tiers_data(run: Run, params: dict) -> dict:
    sizes = dict.fromkeys(Tier.values, 0)
    for tier, n in fetch(
        "SELECT tier, COUNT(*) FROM segments_customerrfm WHERE tenant_id = %(tenant)s"
        " GROUP BY tier",
        params,
    ):
        sizes[tier] = n
    flow = fetch(
        f"""SELECT mv.from_tier, mv.to_tier, COUNT(*) FROM (
            SELECT t.customer_id, t.at,
                   MAX(CASE WHEN t.kind = 'left' THEN s.tier ELSE '' END) AS from_tier,
                   MAX(CASE WHEN t.kind = 'entered' THEN s.tier ELSE '' END) AS to_tier
            FROM segments_segmenttransition t
            JOIN segments_segment s
              ON s.tenant_id = %(tenant)s AND s.id = t.segment_id AND s.kind = '{SegmentKind.TIER}'
            WHERE t.tenant_id = %(tenant)s AND t.at > %(since)s AND t.at <= %(now)s
            GROUP BY t.customer_id, t.at) mv
        GROUP BY mv.from_tier, mv.to_tier""",
        params,
    )
    flow = sorted(flow, key=lambda r: (-r[2], r[0], r[1]))
    return {"sizes": sizes, "flow": [{"from": f, "to": t, "n": n} for f, t, n in flow]}


def _churn_data(run: Run, params: dict) -> dict:
    bands = {"low": 0, "medium": 0, "high": 0}
    histogram = [0] * 10
    # PostgreSQL rounds a float cast to an integer; SQLite truncates.
    tenth = "floor(p_churn * 10)::int" if pg() else "CAST(p_churn * 10 AS INTEGER)"
    for band, bucket, n in fetch(
        f"""SELECT band, CASE WHEN p_churn >= 0.9 THEN 9 WHEN p_churn < 0 THEN 0
                              ELSE {tenth} END, COUNT(*)
        FROM scoring_churnscore WHERE tenant_id = %(tenant)s GROUP BY 1, 2""",
        params,
    ):
        bands[band] = bands.get(band, 0) + n
        histogram[bucket] += n
    at_risk = fetch(
        """SELECT s.customer_id, c.email, s.p_churn, r.monetary
        FROM scoring_churnscore s
        JOIN commerce_customer c ON c.tenant_id = %(tenant)s AND c.id = s.customer_id
        LEFT JOIN segments_customerrfm r
          ON r.tenant_id = %(tenant)s AND r.customer_id = s.customer_id
        WHERE s.tenant_id = %(tenant)s AND s.band = 'high'
        ORDER BY r.monetary DESC NULLS LAST, s.p_churn DESC, s.customer_id
        LIMIT 20""",
        params,
    )
    return {
        "bands": bands,
        "histogram": histogram,
        "at_risk": [
            {"id": i, "email": e, "p_churn": round(p, 4), "value": float(v or 0)}
            for i, e, p, v in at_risk
        ],
    }


def _feedback_data(run: Run, params: dict) -> dict:
    invited, answered, promoter, neutral, detractor = fetch(
        """SELECT COUNT(*), COUNT(r.id),
                  SUM(CASE WHEN r.classification = 'promoter' THEN 1 ELSE 0 END),
                  SUM(CASE WHEN r.classification = 'neutral' THEN 1 ELSE 0 END),
                  SUM(CASE WHEN r.classification = 'detractor' THEN 1 ELSE 0 END)
        FROM feedback_surveyinvitation i
        LEFT JOIN feedback_surveyresponse r
          ON r.tenant_id = %(tenant)s AND r.invitation_id = i.id
        WHERE i.tenant_id = %(tenant)s AND i.created_at > %(since)s AND i.created_at <= %(now)s""",
        params,
    )[0]
    due, met = fetch(
        """SELECT COUNT(*), SUM(CASE WHEN first_contact_at <= due_by THEN 1 ELSE 0 END)
        FROM feedback_callback
        WHERE tenant_id = %(tenant)s AND due_by > %(since)s AND due_by <= %(now)s
          AND NOT (status = 'cancelled' AND first_contact_at IS NULL)""",
        params,
    )[0]
    met = met or 0
    return {
        "invited": invited,
        "answered": answered,
        "response_rate": answered / invited if invited else None,
        "classes": {
            "promoter": promoter or 0,
            "neutral": neutral or 0,
            "detractor": detractor or 0,
        },
        "callbacks_due": due,
        "callbacks_met_sla": met,
        "sla_met_rate": met / due if due else None,
    }


def refresh_snapshots(run: Run) -> int:
    params = run.params(since=run.now - timedelta(days=SNAPSHOT_DAYS))
    data = {
        "tiers": _tiers_data(run, params),
        "churn": _churn_data(run, params),
        "feedback": _feedback_data(run, params),
    }
    with transaction.atomic():
        lock(run.tenant_id)
        Snapshot.objects.for_tenant(run.tenant_id).filter(day=run.today).delete()
        Snapshot.objects.bulk_create(
            [
                Snapshot(tenant_id=run.tenant_id, day=run.today, kind=kind, data=value)
                for kind, value in data.items()
            ]
        )
    return len(data)
