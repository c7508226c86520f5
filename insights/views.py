"""The dashboard at ``/dashboard/`` and each chart's numbers as CSV at
``/dashboard/csv/<chart>/``.

Every member of the current store (``request.tenant``, any role) may read it;
anonymous people go to the admin login, a signed-in person without a store
gets 403. Filters are GET parameters checked by ``DashboardFilters``: a bad
value answers 400 with the page (or, for CSV, a plain text line) saying what
is wrong, and another store's segment id is simply not a valid choice.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from insights.forms import DashboardFilters
from insights.selectors import dashboard_data
from retention.admin_base import member_can
from retention.models import Capability

CHARTS = (
    "retention",
    "kpi-journeys",
    "kpi-steps",
    "kpi-segments",
    "kpi-channels",
    "families",
    "cohorts",
    "tiers",
    "tier-flow",
    "churn",
    "at-risk",
    "feedback",
)


def member_required(view: Callable) -> Callable:
    @login_required
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.tenant is None:
            if request.user.is_superuser:
                return _forbidden(request, "Choose a store in the header first.")
            return _forbidden(
                request, "You are not a member of any store: ask its owner to add you."
            )
        if not member_can(request, Capability.VIEW):
            return _forbidden(request, "Your account cannot read this store's dashboard.")
        return view(request, *args, **kwargs)

    return wrapped


def _forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    return render(
        request,
        "insights/forbidden.html",
        {**admin.site.each_context(request), "title": "Dashboard", "reason": reason},
        status=403,
    )


def _query(form: DashboardFilters) -> str:
    """The validated filters, to repeat them in the CSV links."""
    c = form.cleaned_data
    params = {"start": c["start"].isoformat(), "end": c["end"].isoformat()}
    if c.get("segment") is not None:
        params["segment"] = str(c["segment"])
    if c.get("channel"):
        params["channel"] = c["channel"]
    return urlencode(params)


def _data(request: HttpRequest, form: DashboardFilters) -> dict:
    c = form.cleaned_data
    return dashboard_data(
        tenant=request.tenant,
        start=c["start"],
        end=c["end"],
        segment_id=c.get("segment"),
        channel=c.get("channel") or None,
    )


@require_GET
@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardFilters(request.GET, tenant=request.tenant)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "form": form,
        "charts": CHARTS,
    }
    if not form.is_valid():
        context["filter_errors"] = form.error_lines()
        return render(request, "insights/dashboard.html", context, status=400)
    data = _data(request, form)
    form.show_effective()
    context.update(data=data, query=_query(form), chart_data=chart_payload(data))
    return render(request, "insights/dashboard.html", context)


@require_GET
@member_required
def chart_csv(request: HttpRequest, chart: str) -> HttpResponse:
    if chart not in CHARTS:
        raise Http404("No such chart.")
    form = DashboardFilters(request.GET, tenant=request.tenant)
    if not form.is_valid():
        text = "Bad filters: " + " ".join(form.error_lines()) + "\n"
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
    data = _data(request, form)
    rows = CSV_ROWS[chart](data)
    c = form.cleaned_data
    filename = f"{request.tenant.slug}-{chart}-{c['start'].isoformat()}-{c['end'].isoformat()}.csv"
    response = HttpResponse(_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- the numbers for the browser --------------------------------------------------------


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def chart_payload(data: dict) -> dict:
    """What ``dashboard.js`` draws, in percent where it is a share."""
    retention = data["retention"]
    kpis = data["kpis"]
    rows = kpis["channels"]
    payload: dict = {
        "retention": {
            "labels": [w["week_start"].isoformat() for w in retention["weeks"]],
            "values": [_pct(w["value"]) for w in retention["weeks"]],
            "target": _pct(retention["target"]),
        },
        "kpi_channels": {
            "labels": [row["label"] for row in kpis["channels"]],
            "series": [
                {"label": k["label"], "values": [_pct(row["kpis"][i]["value"]) for row in rows]}
                for i, k in enumerate(kpis["kpis"])
            ],
        },
        "tiers": None,
        "churn": None,
    }
    if data["tiers"] is not None:
        payload["tiers"] = {
            "labels": [s["label"] for s in data["tiers"]["sizes"]],
            "values": [s["count"] for s in data["tiers"]["sizes"]],
        }
    if data["churn"] is not None and data["churn"]["scored"]:
        payload["churn"] = {
            "labels": [_bucket(b) for b in data["churn"]["histogram"]],
            "values": [b["count"] for b in data["churn"]["histogram"]],
        }
    return payload


def _bucket(b: dict) -> str:
    if b["low"] is None or b["high"] is None:
        return "?"
    return f"{b['low'] * 100:.0f}-{b['high'] * 100:.0f}%"


# --- CSV --------------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Decimal | int):
        return str(value)
    text = str(value)
    # A name a marketer typed must not run as a formula in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _retention_rows(data: dict) -> list[list]:
    r = data["retention"]
    rows: list[list] = [
        [
            "week_start",
            "week_end",
            "cohort_first_order_from",
            "cohort_first_order_to",
            "first_buyers",
            "returned",
            "retention",
            "target",
        ]
    ]
    for w in r["weeks"]:
        rows.append(
            [
                w["week_start"],
                w["week_end"],
                w["cohort_start"],
                w["cohort_end"],
                w["first_buyers"],
                w["returned"],
                w["value"],
                r["target"],
            ]
        )
    return rows


COUNT_COLUMNS = ("sent", "delivered", "opened", "clicked", "converted", "responded", "unsubscribed")


def _kpi_header(data: dict, first: list[str]) -> list[str]:
    header = [*first, *COUNT_COLUMNS]
    for k in data["kpis"]["kpis"]:
        header += [k["kpi"], f"{k['kpi']}_target_low", f"{k['kpi']}_target_high", f"{k['kpi']}_rag"]
    return [*header, "avg_next_action_seconds"]


def _kpi_cells(row: dict) -> list:
    cells: list = [row["counts"][c] for c in COUNT_COLUMNS]
    for k in row["kpis"]:
        cells += [k["value"], k["low"], k["high"], k["rag"]]
    return [*cells, row["avg_next_action_seconds"]]


def _journey_rows(data: dict) -> list[list]:
    rows = [_kpi_header(data, ["journey", "tier"])]
    for j in data["kpis"]["journeys"]:
        rows.append([j["label"], "all", *_kpi_cells(j)])
        rows.extend([j["label"], t["tier"] or "none", *_kpi_cells(t)] for t in j["tiers"])
    return rows


def _step_rows(data: dict) -> list[list]:
    rows = [_kpi_header(data, ["journey", "step"])]
    rows.extend([s["journey"], s["label"], *_kpi_cells(s)] for s in data["kpis"]["steps"])
    return rows


def _segment_rows(data: dict) -> list[list]:
    rows = [_kpi_header(data, ["segment"])]
    rows.extend([s["label"], *_kpi_cells(s)] for s in data["kpis"]["segments"])
    return rows


def _channel_rows(data: dict) -> list[list]:
    rows = [_kpi_header(data, ["channel"])]
    rows.extend([c["key"], *_kpi_cells(c)] for c in data["kpis"]["channels"])
    rows.append(["all", *_kpi_cells(data["kpis"]["total"])])
    return rows


def _family_rows(data: dict) -> list[list]:
    keys = ("orders", "reorders", "reorder_rate", "upsell_orders", "upsell_revenue", "upsell_aov")
    rows: list[list] = [["family", *keys]]
    rows.extend([f["name"], *(f[k] for k in keys)] for f in data["families"])
    return rows


def _cohort_rows(data: dict) -> list[list]:
    c = data["cohorts"]
    rows: list[list] = [["cohort", "size", *(f"month_{m}" for m in c["months"])]]
    rows.extend(
        [r["cohort"].strftime("%Y-%m"), r["size"], *(cell["value"] for cell in r["cells"])]
        for r in c["rows"]
    )
    return rows


def _tier_rows(data: dict) -> list[list]:
    rows: list[list] = [["tier", "customers", "snapshot_day"]]
    if data["tiers"]:
        day = data["tiers"]["day"]
        rows.extend([s["tier"], s["count"], day] for s in data["tiers"]["sizes"])
    return rows


def _flow_rows(data: dict) -> list[list]:
    rows: list[list] = [["from_tier", "to_tier", "customers", "since", "snapshot_day"]]
    if data["tiers"]:
        t = data["tiers"]
        rows.extend(
            [f["from"] or "none", f["to"] or "none", f["count"], t["flow_since"], t["day"]]
            for f in t["flow"]
        )
    return rows


def _churn_rows(data: dict) -> list[list]:
    rows: list[list] = [["p_churn_from", "p_churn_to", "customers", "snapshot_day"]]
    if data["churn"]:
        day = data["churn"]["day"]
        rows.extend([b["low"], b["high"], b["count"], day] for b in data["churn"]["histogram"])
    return rows


def _at_risk_rows(data: dict) -> list[list]:
    rows: list[list] = [["customer_id", "email", "name", "p_churn", "value"]]
    if data["churn"]:
        rows.extend(
            [r["customer_id"], r["email"], r["name"], r["p_churn"], r["value"]]
            for r in data["churn"]["at_risk"]
        )
    return rows


def _feedback_rows(data: dict) -> list[list]:
    rows: list[list] = [["metric", "value", "snapshot_day"]]
    f = data["feedback"]
    if f:
        day = f["day"]
        rows += [
            ["invited", f["invited"], day],
            ["answered", f["answered"], day],
            ["response_rate", f["response_rate"], day],
        ]
        rows += [[f"{c['class']}_share", c["share"], day] for c in f["classes"]]
        rows += [
            ["callbacks_due", f["callbacks_due"], day],
            ["callbacks_met_sla", f["callbacks_met_sla"], day],
            ["callback_sla_met_rate", f["sla_met_rate"], day],
        ]
    return rows


CSV_ROWS: dict[str, Callable[[dict], list[list]]] = {
    "retention": _retention_rows,
    "kpi-journeys": _journey_rows,
    "kpi-steps": _step_rows,
    "kpi-segments": _segment_rows,
    "kpi-channels": _channel_rows,
    "families": _family_rows,
    "cohorts": _cohort_rows,
    "tiers": _tier_rows,
    "tier-flow": _flow_rows,
    "churn": _churn_rows,
    "at-risk": _at_risk_rows,
    "feedback": _feedback_rows,
}
