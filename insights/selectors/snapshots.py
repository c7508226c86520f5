"""The latest snapshots (tiers, churn, feedback), open rising-interest alerts
and running experiments.

Snapshots are read as ``insights.services.rollups`` writes them (a missing
one is ``None``, and the page says "not computed yet"; a missing key reads as
zero): ``tiers`` {sizes, flow [{from, to, n}]}, ``churn`` {bands, histogram
(10 counts), at_risk [{id, email, p_churn, value}]}, ``feedback`` {invited,
answered, classes, callbacks_due, callbacks_met_sla}.
"""

from __future__ import annotations

from datetime import date, timedelta

from commerce.models import Customer
from experiments.models import Experiment, ExperimentStatus
from insights.kpis import ratio
from insights.models import Snapshot
from insights.selectors.tables import TIER_LABELS, TIER_ORDER
from retention.models import Tenant
from segments.models import RisingInterestAlert

AT_RISK_SHOWN = 20
ALERTS_SHOWN = 20
FEEDBACK_CLASSES = ("promoter", "neutral", "detractor")
SNAPSHOT_DAYS = 28  # the tier flow and feedback cover these days (as the rollups write them)


def _latest(tenant: Tenant, kind: str, end: date) -> Snapshot | None:
    return (
        Snapshot.objects.for_tenant(tenant)
        .filter(kind=kind, day__lte=end)
        .order_by("-day")
        .only("day", "data")
        .first()
    )


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _dict(snap: Snapshot) -> dict:
    return snap.data if isinstance(snap.data, dict) else {}


def tier_snapshot(*, tenant: Tenant, end: date) -> dict | None:
    """Customers per tier and the moves between tiers in the 28 days before
    the snapshot (largest first)."""
    snap = _latest(tenant, "tiers", end)
    if snap is None:
        return None
    data = _dict(snap)
    sizes = data.get("sizes") if isinstance(data.get("sizes"), dict) else {}
    ordered = TIER_ORDER + sorted(t for t in sizes if t not in TIER_ORDER)
    flow = [
        {
            "from": item.get("from") or "",
            "from_label": TIER_LABELS.get(item.get("from") or "", item.get("from")),
            "to": item.get("to") or "",
            "to_label": TIER_LABELS.get(item.get("to") or "", item.get("to")),
            "count": _int(item.get("n")),
        }
        for item in data.get("flow") or []
        if isinstance(item, dict)
    ]
    flow.sort(key=lambda f: -f["count"])
    return {
        "day": snap.day,
        "flow_since": snap.day - timedelta(days=SNAPSHOT_DAYS),
        "sizes": [
            {"tier": t, "label": TIER_LABELS.get(t, t), "count": _int(sizes.get(t))}
            for t in ordered
        ],
        "flow": flow,
    }


def churn_snapshot(*, tenant: Tenant, end: date) -> dict | None:
    """The risk histogram (tenths of the churn probability) and the
    highest-value customers at risk; each customer is read again from this
    store's customers (at most 20, by primary key), so a row can never show
    another store's customer."""
    snap = _latest(tenant, "churn", end)
    if snap is None:
        return None
    data = _dict(snap)
    counts = data.get("histogram") if isinstance(data.get("histogram"), list) else []
    buckets = len(counts)
    histogram = [
        {"low": i / buckets, "high": (i + 1) / buckets, "count": _int(n)}
        for i, n in enumerate(counts)
    ]
    listed = [r for r in data.get("at_risk") or [] if isinstance(r, dict)][:AT_RISK_SHOWN]
    ids = [_int(r.get("id")) for r in listed]
    customers = {
        c["pk"]: c
        for c in Customer.objects.for_tenant(tenant)
        .filter(pk__in=[i for i in ids if i])
        .values("pk", "email", "first_name", "last_name")
    }
    at_risk = []
    for r, pk in zip(listed, ids, strict=True):
        found = customers.get(pk)
        if found is None:  # gone since the snapshot (or never ours)
            continue
        at_risk.append(
            {
                "customer_id": pk,
                "email": found["email"],
                "name": f"{found['first_name']} {found['last_name']}".strip(),
                "p_churn": _float(r.get("p_churn")),
                "value": _float(r.get("value")),
            }
        )
    bands = data.get("bands") if isinstance(data.get("bands"), dict) else {}
    return {
        "day": snap.day,
        "histogram": histogram,
        "bands": {str(k): _int(v) for k, v in bands.items()},
        "scored": sum(b["count"] for b in histogram),
        "at_risk": at_risk,
    }


def feedback_snapshot(*, tenant: Tenant, end: date) -> dict | None:
    """Survey response rate, the class mix of the answers and the callback
    SLA over the 28 days before the snapshot; rates from the counts."""
    snap = _latest(tenant, "feedback", end)
    if snap is None:
        return None
    data = _dict(snap)
    classes = data.get("classes") if isinstance(data.get("classes"), dict) else {}
    counts = {c: _int(classes.get(c)) for c in FEEDBACK_CLASSES}
    answers = sum(counts.values())
    invited, answered = _int(data.get("invited")), _int(data.get("answered"))
    due, met = _int(data.get("callbacks_due")), _int(data.get("callbacks_met_sla"))
    return {
        "day": snap.day,
        "invited": invited,
        "answered": answered,
        "response_rate": ratio(answered, invited),
        "classes": [
            {"class": c, "count": counts[c], "share": ratio(counts[c], answers)}
            for c in FEEDBACK_CLASSES
        ],
        "callbacks_due": due,
        "callbacks_met_sla": met,
        "sla_met_rate": ratio(met, due),
    }


# --- alerts and experiments -------------------------------------------------------------


def open_alerts(*, tenant: Tenant) -> list[dict]:
    rows = (
        RisingInterestAlert.objects.for_tenant(tenant)
        .filter(acknowledged_at__isnull=True)
        .select_related("segment")
        .order_by("-raised_at", "-id")[:ALERTS_SHOWN]
    )
    return [
        {
            "id": a.pk,
            "segment_id": a.segment_id,
            "segment": a.segment.name,
            "day": a.day,
            "members": a.members,
            "rise_pct": a.rise_pct,
        }
        for a in rows
    ]


def running_experiments(*, tenant: Tenant) -> list[dict]:
    rows = (
        Experiment.objects.for_tenant(tenant)
        .filter(status=ExperimentStatus.RUNNING)
        .order_by("-started_at", "name")
        .values("pk", "name", "kind", "started_at")
    )
    return [
        {"id": r["pk"], "name": r["name"], "kind": r["kind"], "started_at": r["started_at"]}
        for r in rows
    ]
