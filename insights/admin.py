"""Admin screens for insights, for a store's owners and marketers.

- Insights settings: the store's one row (the retention metric's window and
  target, the conversion window, when the weekly summary goes out); the list
  goes straight to it.
- KPI targets: each KPI's green range per tier, edited in the list (in
  percent); a range whose low end is above its high end is refused with a
  message saying so.
- Weekly summary emails: who gets the summary, and a switch for the person
  looking ("Email me the weekly summary" / "Stop emailing me"); only owners
  and marketers may opt in (``summary_subscribe`` refuses anyone else).
- Weekly summaries: the summaries made, read-only, each with a link to its
  printable page.

Every screen is tenant-scoped through TenantAdmin; another store's id is a 404.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from insights.models import InsightsSettings, KpiTarget, SummarySubscription, WeeklySummary
from insights.services.setup import insights_settings, kpi_targets
from insights.services.summary import SUMMARY_ROLES, summary_subscribe, summary_unsubscribe
from insights.summary_format import week_label
from retention.admin_base import TenantAdmin
from retention.errors import Forbidden
from retention.models import Membership
from retention.services import audit_record

WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class PercentField(forms.FloatField):
    """A share stored as 0..1, shown and typed in percent (25 for 0.25)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 100)
        kwargs.setdefault("widget", forms.NumberInput(attrs={"step": "any", "size": 6}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{round(value * 100, 4):g}"
        return value

    def clean(self, value):
        percent = super().clean(value)
        return None if percent is None else round(percent / 100, 8)


# --- settings ---------------------------------------------------------------------------


class InsightsSettingsForm(forms.ModelForm):
    retention_target = PercentField(
        label="Retention target (%)",
        help_text="The share of first-time buyers you aim to see order again within the "
        "window, in percent (30 = 30%).",
    )
    summary_weekday = forms.TypedChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        label="Summary day",
        help_text="The weekly summary of the last full week (Monday to Sunday) goes out on "
        "this day, in the store's timezone.",
    )
    summary_hour = forms.TypedChoiceField(
        choices=[(h, f"{h:02d}:00") for h in range(24)],
        coerce=int,
        label="Summary time",
        help_text="From this hour on, in the store's timezone.",
    )

    class Meta:
        model = InsightsSettings
        fields = [
            "retention_window_days",
            "retention_target",
            "conversion_days",
            "summary_weekday",
            "summary_hour",
        ]


@admin.register(InsightsSettings)
class InsightsSettingsAdmin(TenantAdmin):
    """The store's one insights settings row (made with the defaults on first
    use); the list goes straight to it."""

    form = InsightsSettingsForm
    list_display = ["store", "retention_window_days", "target", "summary_time"]
    list_select_related = ["tenant"]
    fieldsets = [
        ("Retention metric", {"fields": ["retention_window_days", "retention_target"]}),
        ("KPIs", {"fields": ["conversion_days"]}),
        ("Weekly summary", {"fields": ["summary_weekday", "summary_hour"]}),
    ]

    @admin.display(description="store")
    def store(self, obj: InsightsSettings) -> str:
        return obj.tenant.name

    @admin.display(description="retention target")
    def target(self, obj: InsightsSettings) -> str:
        return f"{round(obj.retention_target * 100, 2):g}%"

    @admin.display(description="weekly summary")
    def summary_time(self, obj: InsightsSettings) -> str:
        return f"{dict(WEEKDAYS)[obj.summary_weekday]}s at {obj.summary_hour:02d}:00"

    def changelist_view(self, request, extra_context=None):
        if request.tenant is not None and self.has_view_permission(request):
            row = insights_settings(request.tenant)
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:insights_insightssettings_change", args=[row.pk])
            )
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- KPI targets --------------------------------------------------------------------------


def _range_error(low: float, high: float) -> str:
    return (
        f"The low end of the range ({low * 100:g}%) is above its high end ({high * 100:g}%): "
        "the low end must be at most the high end."
    )


class KpiTargetRangeForm(forms.ModelForm):
    """low and high in percent, low ≤ high (the list's editable row)."""

    low = PercentField(label="Low (%)")
    high = PercentField(label="High (%)")

    class Meta:
        model = KpiTarget
        fields = ["low", "high"]

    def clean(self):
        data = super().clean()
        low, high = data.get("low"), data.get("high")
        if low is not None and high is not None and low > high:
            # The table's check constraint, said on the field it concerns.
            self.add_error("high", _range_error(low, high))
        return data


class KpiTargetForm(KpiTargetRangeForm):
    """A whole target; a new one must not repeat a (tier, KPI) the store has."""

    #: set by KpiTargetAdmin.get_form: the store the target is for
    tenant_id: int | None = None

    class Meta:
        model = KpiTarget
        fields = ["tier", "kpi", "low", "high"]

    def clean(self):
        data = super().clean()
        tenant_id = self.tenant_id or getattr(data.get("tenant"), "pk", None)
        tier, kpi = data.get("tier", self.instance.tier), data.get("kpi", self.instance.kpi)
        if self.instance.pk is None and tenant_id is not None and kpi:
            taken = KpiTarget.objects.for_tenant(tenant_id).filter(tier=tier, kpi=kpi).exists()
            if taken:
                label = KpiTarget(tier=tier, kpi=kpi)
                self.add_error(
                    "kpi", f"There is already a target for {label}; change that one in the list."
                )
        return data


@admin.register(KpiTarget)
class KpiTargetAdmin(TenantAdmin):
    """Each KPI's green range per tier (blank tier: every customer, and the
    range used where a tier has none). Inside the range is green, within a
    fifth of its width outside amber, further red (unsubscribes: lower is
    better). The store's defaults are listed on the first visit."""

    form = KpiTargetForm
    list_display = ["kpi", "tier_label", "low", "high"]
    list_display_links = ["kpi"]
    list_editable = ["low", "high"]
    list_filter = ["tier", "kpi"]
    ordering = ["tier", "kpi"]

    @admin.display(description="tier", ordering="tier")
    def tier_label(self, obj: KpiTarget) -> str:
        return obj.get_tier_display()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_id = obj.tenant_id if obj is not None else getattr(request.tenant, "pk", None)
        return form

    def get_fields(self, request, obj=None):
        operator_add = obj is None and self._is_operator_view(request)
        return (["tenant"] if operator_add else []) + ["tier", "kpi", "low", "high"]

    def get_readonly_fields(self, request, obj=None):
        # A target's tier and KPI are what it is; change its range, or add another.
        return ["tier", "kpi"] if obj is not None else []

    def get_changelist_form(self, request, **kwargs):
        kwargs.setdefault("form", KpiTargetRangeForm)
        return super().get_changelist_form(request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        if request.tenant is not None and self.has_view_permission(request):
            kpi_targets(request.tenant)  # the defaults, written on first use
        return super().changelist_view(request, extra_context)


# --- who gets the summary -------------------------------------------------------------------


@admin.register(SummarySubscription)
class SummarySubscriptionAdmin(TenantAdmin):
    """Who gets the weekly summary by email. Each owner or marketer opts in or
    out for themself with the switch above the list; someone who is no longer
    an owner or marketer stays listed but gets nothing."""

    list_display = ["user", "gets_it", "created_at"]
    list_select_related = ["user"]
    fields = ["user", "gets_it", "created_at"]
    readonly_fields = fields
    change_list_template = "insights/admin/summarysubscription_change_list.html"

    def get_queryset(self, request):
        may_get = Membership.objects.unscoped().filter(
            # Correlated to the outer row's tenant, so it is scoped with it.
            tenant_id=OuterRef("tenant_id"),
            user_id=OuterRef("user_id"),
            role__in=SUMMARY_ROLES,
            user__is_active=True,
        )
        return super().get_queryset(request).annotate(may_get=Exists(may_get))

    @admin.display(description="gets it (owner or marketer)", boolean=True)
    def gets_it(self, obj: SummarySubscription) -> bool:
        return bool(getattr(obj, "may_get", False))

    def get_urls(self):
        return [
            path(
                "email-me/",
                self.admin_site.admin_view(self.email_me_view),
                name="insights_summarysubscription_email_me",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        membership = getattr(request, "membership", None)
        if request.tenant is not None and membership is not None:
            extra_context["summary_email"] = {
                "url": reverse(f"{self.admin_site.name}:insights_summarysubscription_email_me"),
                "allowed": membership.role in SUMMARY_ROLES,
                "subscribed": SummarySubscription.objects.for_tenant(request.tenant)
                .filter(user_id=request.user.pk)
                .exists(),
            }
        return super().changelist_view(request, extra_context)

    def email_me_view(self, request: HttpRequest):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        changelist = reverse(f"{self.admin_site.name}:insights_summarysubscription_changelist")
        tenant, user = request.tenant, request.user
        if tenant is None:
            self.message_user(request, "Choose a store first.", messages.ERROR)
            return HttpResponseRedirect(changelist)
        if request.POST.get("subscribe") == "1":
            try:
                subscription = summary_subscribe(tenant=tenant, user=user)
            except Forbidden as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(changelist)
            audit_record(tenant=tenant, action="create", obj=subscription, user=user)
            self.message_user(
                request, f"The weekly summary will be emailed to {user.email}.", messages.SUCCESS
            )
        else:
            existing = SummarySubscription.objects.for_tenant(tenant).filter(user_id=user.pk)
            existing = existing.first()
            if existing is not None and summary_unsubscribe(tenant=tenant, user=user):
                audit_record(tenant=tenant, action="delete", obj=existing, user=user)
            self.message_user(request, f"The weekly summary is no longer emailed to {user.email}.")
        return HttpResponseRedirect(changelist)

    # Each person opts in for themself with the switch.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- the summaries -------------------------------------------------------------------------


@admin.register(WeeklySummary)
class WeeklySummaryAdmin(TenantAdmin):
    """The summaries made (one per week, never changed), each with its
    printable page."""

    list_display = ["week", "created_at", "recipients", "page"]
    fields = ["week", "created_at", "sent_to", "page"]
    readonly_fields = fields
    date_hierarchy = "week_start"

    @admin.display(description="week", ordering="week_start")
    def week(self, obj: WeeklySummary) -> str:
        return week_label(obj.week_start, obj.week_start + timedelta(days=6))

    @admin.display(description="emailed to")
    def recipients(self, obj: WeeklySummary) -> int:
        return len(obj.sent_to or [])

    @admin.display(description="printable page")
    def page(self, obj: WeeklySummary) -> str:
        url = reverse("dashboard-summary-week", args=[obj.week_start.isoformat()])
        return format_html(
            '<a href="{}?store={}" target="_blank" rel="noopener">Open</a>', url, obj.tenant.slug
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tenant").defer("data")

    # Summaries are made by the weekly run or a page view, never by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
