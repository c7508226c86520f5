"""The weekly summary's printable page, ``/dashboard/summary/<YYYY-MM-DD>/``
(the week's Monday), and ``/dashboard/summary/`` (redirects to the last full
week).

Any member of the store may read it; the store is the session's
(``request.tenant``), or the one named by ``?store=<slug>`` (the email's link
names it, for people who work in several stores) when the person is a member
of it. Anonymous people go to the login; a signed-in person with no store gets
403; a store they are not a member of, a week that is not a Monday, and a
week with no summary that cannot have one yet answer 404. A past week with no
summary yet gets it made on the first view.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from insights.models import WeeklySummary
from insights.services.summary import summary_make, summary_week, week_is_over
from insights.summary_format import summary_context, week_label
from retention import clock
from retention.admin_base import member_can
from retention.models import Capability, Tenant

# A page view builds a missing summary only this far back, so walking URLs
# cannot fill the table with summaries of weeks nobody asked for by email.
BUILD_WEEKS_BACK = 104
OTHER_WEEKS = 12


def _store(request: HttpRequest) -> Tenant | None:
    """The store whose summary to show; None when the person may see none
    (403); Http404 for a store named in the query that is not theirs."""
    slug = request.GET.get("store", "")
    tenant = request.tenant
    if slug and (tenant is None or tenant.slug != slug):
        membership = next((m for m in request.memberships if m.tenant.slug == slug), None)
        if membership is not None:
            return membership.tenant
        if request.user.is_superuser:
            found = Tenant.objects.filter(slug=slug).first()
            if found is not None:
                return found
        raise Http404("No such store.")
    if tenant is None or not member_can(request, Capability.VIEW):
        return None
    return tenant


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "insights/summary_forbidden.html",
        {"reason": "You are not a member of a store, so there is no summary to show."},
        status=403,
    )


def _query(request: HttpRequest, tenant: Tenant) -> str:
    return f"?store={tenant.slug}" if request.GET.get("store") else ""


@require_GET
@login_required
def summary_latest(request: HttpRequest) -> HttpResponse:
    tenant = _store(request)
    if tenant is None:
        return _forbidden(request)
    week = summary_week(tenant, clock.now())
    url = reverse("dashboard-summary-week", args=[week.isoformat()])
    return HttpResponseRedirect(url + _query(request, tenant))


@require_GET
@login_required
def summary_page(request: HttpRequest, week: str) -> HttpResponse:
    tenant = _store(request)
    if tenant is None:
        return _forbidden(request)
    try:
        week_start = date.fromisoformat(week)
    except ValueError:
        raise Http404("Not a date.") from None
    if week_start.weekday() != 0:
        raise Http404("A summary week starts on a Monday.")
    summary = WeeklySummary.objects.for_tenant(tenant).filter(week_start=week_start).first()
    if summary is None:
        now = clock.now()
        oldest = summary_week(tenant, now) - timedelta(weeks=BUILD_WEEKS_BACK)
        if week_start < oldest or not week_is_over(tenant, week_start, now):
            raise Http404("There is no summary of that week.")
        summary = summary_make(tenant=tenant, week_start=week_start)
    return render(
        request,
        "insights/summary_page.html",
        summary_context(summary.data)
        | {
            "tenant": tenant,
            "made_at": summary.created_at,
            "weeks": _other_weeks(tenant, week_start),
            "store_query": _query(request, tenant),
        },
    )


def _other_weeks(tenant: Tenant, current: date) -> list[dict]:
    starts = list(
        WeeklySummary.objects.for_tenant(tenant)
        .order_by("-week_start")
        .values_list("week_start", flat=True)[:OTHER_WEEKS]
    )
    if len(starts) < 2:
        return []
    return [
        {
            "iso": start.isoformat(),
            "label": week_label(start, start + timedelta(days=6)),
            "current": start == current,
        }
        for start in starts
    ]
