"""Admin screens for feedback: a read-only list of the callback queue (each
linking to the agents' page at /agent/callbacks/<id>/, where callbacks are
worked) with its contact log, and the store's feedback settings (the callback
SLA minutes, survey thresholds; the store's business hours shown read-only,
with a link to the store settings where owners edit them). Callbacks change
only through the services, so nothing of theirs is edited here."""

from __future__ import annotations

from datetime import time

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from feedback import admin_surveys  # noqa: F401  (registers the survey screens)
from feedback.models import Callback, CallbackContact, FeedbackSettings
from feedback.services import feedback_settings
from feedback.services.callbacks import business_hours_of
from feedback.services.surveys import feedback_thresholds_validate
from feedback.sla import WEEKDAY_NAMES, InvalidBusinessHours
from retention.admin_base import TenantAdmin, TenantInline, readonly_everything
from retention.errors import InvalidInput
from retention.models import Tenant


class CallbackContactInline(TenantInline):
    """The contact log, oldest first: read-only (agents log contacts on their page)."""

    model = CallbackContact
    fields = ["at", "agent", "outcome", "notes", "follow_up_at"]
    readonly_fields = fields
    ordering = ["at", "id"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Callback)
class CallbackAdmin(TenantAdmin):
    """The queue, most urgent first: open and claimed callbacks past their
    deadline are flagged overdue."""

    list_display = [
        "due_by",
        "overdue",
        "status",
        "priority",
        "customer_link",
        "reason",
        "source",
        "agent_page",
    ]
    list_filter = ["status", "source"]
    search_fields = ["reason", "=customer__email"]
    list_select_related = ["customer", "tenant"]
    ordering = ["-priority", "due_by", "id"]
    show_full_result_count = False
    inlines = [CallbackContactInline]

    def get_readonly_fields(self, request, obj=None):
        return [*readonly_everything(Callback), "customer_link", "overdue", "agent_page"]

    @admin.display(description="customer")
    def customer_link(self, obj: Callback) -> str:
        url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj: Callback) -> bool:
        return obj.is_overdue()

    @admin.display(description="agent page")
    def agent_page(self, obj: Callback) -> str:
        return format_html('<a href="{}">Work it</a>', reverse("agent-callback", args=[obj.pk]))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- settings -------------------------------------------------------------------------------


def days_label(iso_days: object) -> str:
    """ISO weekdays as short names, runs joined: [1, 2, 3, 4, 5, 7] → "Mon-Fri, Sun"."""
    if not isinstance(iso_days, list | tuple):
        return ""
    days = sorted({d for d in iso_days if isinstance(d, int) and 1 <= d <= 7})
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = [WEEKDAY_NAMES[d - 1][:3] for d in range(1, 8)]
    return ", ".join(
        names[run[0] - 1] if len(run) == 1 else f"{names[run[0] - 1]}-{names[run[-1] - 1]}"
        for run in runs
    )


def business_hours_label(tenant: Tenant) -> str:
    """The store's business hours in one line: "Mon-Fri, 09:00-17:00 (Europe/Berlin)"."""
    start, end = tenant.business_hours_start, tenant.business_hours_end
    times = "-".join(t.strftime("%H:%M") if isinstance(t, time) else str(t) for t in (start, end))
    return f"{days_label(tenant.business_days) or 'no business days'}, {times} ({tenant.timezone})"


class FeedbackSettingsForm(forms.ModelForm):
    class Meta:
        model = FeedbackSettings
        fields = [
            "first_contact_minutes",
            "survey_valid_days",
            "promoter_min_rating",
            "neutral_min_rating",
        ]

    def clean(self):
        data = super().clean()
        promoter, neutral = data.get("promoter_min_rating"), data.get("neutral_min_rating")
        if promoter is not None and neutral is not None:
            try:
                feedback_thresholds_validate(
                    promoter_min_rating=promoter, neutral_min_rating=neutral
                )
            except InvalidInput as exc:
                for field, message in exc.fields.items():
                    self.add_error(field, message)
        return data


@admin.register(FeedbackSettings)
class FeedbackSettingsAdmin(TenantAdmin):
    """The store's one feedback settings row: the callback SLA minutes and the
    survey thresholds. Owners and marketers edit it; the list goes straight to
    the store's row (created with the defaults on first use). The business
    hours the SLA counts in are the store's own: shown here read-only, edited
    by owners in the store settings (``TenantSettingsAdmin``)."""

    form = FeedbackSettingsForm
    list_display = ["store", "first_contact_minutes", "hours"]
    list_select_related = ["tenant"]
    readonly_fields = ["business_hours"]
    fieldsets = [
        (
            "Callback SLA",
            {
                "fields": ["first_contact_minutes", "business_hours"],
                "description": "First contact with a new callback is due this many minutes "
                "of business time after it is queued; outside business hours, that many "
                "minutes after the next opening. The business hours are the store's, in "
                "its timezone.",
            },
        ),
        ("Surveys", {"fields": ["survey_valid_days", "promoter_min_rating", "neutral_min_rating"]}),
    ]

    @admin.display(description="store")
    def store(self, obj: FeedbackSettings) -> str:
        return obj.tenant.name

    @admin.display(description="business hours")
    def hours(self, obj: FeedbackSettings) -> str:
        return business_hours_label(obj.tenant)

    @admin.display(description="business hours")
    def business_hours(self, obj: FeedbackSettings) -> str:
        tenant = obj.tenant
        try:
            business_hours_of(tenant)
        except InvalidBusinessHours:
            problem = " These hours cannot work, so due times count plain minutes."
        else:
            problem = ""
        return format_html(
            '{}.{} <a href="{}">Edit them in the store settings</a> (only owners may change them).',
            business_hours_label(tenant),
            problem,
            reverse("admin:retention_tenant_change", args=[tenant.pk]),
        )

    def changelist_view(self, request, extra_context=None):
        if request.tenant is not None and self.has_view_permission(request):
            row = feedback_settings(request.tenant)
            url = reverse("admin:feedback_feedbacksettings_change", args=[row.pk])
            return HttpResponseRedirect(url)
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
