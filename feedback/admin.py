"""Admin screens for feedback: a read-only list of the callback queue (each
linking to the agents' page at /agent/callbacks/<id>/, where callbacks are
worked) with its contact log, and the store's feedback settings (business
hours for the callback SLA, survey thresholds). Callbacks change only through
the services, so nothing of theirs is edited here."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from feedback import admin_surveys  # noqa: F401  (registers the survey screens)
from feedback.models import Callback, CallbackContact, FeedbackSettings
from feedback.services import feedback_settings
from feedback.services.surveys import feedback_thresholds_validate
from feedback.sla import WEEKDAY_NAMES, business_hours_errors
from retention.admin_base import TenantAdmin, TenantInline, readonly_everything
from retention.errors import InvalidInput


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

WEEKDAY_CHOICES = [(str(n), name) for n, name in enumerate(WEEKDAY_NAMES)]


class FeedbackSettingsForm(forms.ModelForm):
    business_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        required=False,  # an empty choice gets our own message in clean()
        help_text="The days the support team calls customers back.",
    )

    class Meta:
        model = FeedbackSettings
        fields = [
            "first_contact_minutes",
            "opening_time",
            "closing_time",
            "business_days",
            "survey_valid_days",
            "promoter_min_rating",
            "neutral_min_rating",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["business_days"] = [str(d) for d in self.instance.business_days or []]

    def clean(self):
        data = super().clean()
        errors = business_hours_errors(
            opening=data.get("opening_time"),
            closing=data.get("closing_time"),
            days=sorted(data.get("business_days") or []),
        )
        for field, message in errors.items():
            self.add_error(field, message)
        promoter, neutral = data.get("promoter_min_rating"), data.get("neutral_min_rating")
        if promoter is not None and neutral is not None:
            try:
                feedback_thresholds_validate(
                    promoter_min_rating=promoter, neutral_min_rating=neutral
                )
            except InvalidInput as exc:
                for field, message in exc.fields.items():
                    self.add_error(field, message)
        if "business_days" in data:
            data["business_days"] = sorted(data.get("business_days") or [])
        return data


@admin.register(FeedbackSettings)
class FeedbackSettingsAdmin(TenantAdmin):
    """The store's one feedback settings row: business hours for the callback
    SLA and the survey thresholds. Owners and marketers edit it; the list goes
    straight to the store's row (created with the defaults on first use)."""

    form = FeedbackSettingsForm
    list_display = ["store", "first_contact_minutes", "opening_time", "closing_time", "days"]
    list_select_related = ["tenant"]
    fieldsets = [
        (
            "Callback SLA",
            {
                "fields": [
                    "first_contact_minutes",
                    "opening_time",
                    "closing_time",
                    "business_days",
                ],
                "description": "First contact with a new callback is due this many minutes "
                "of business time after it is queued; outside business hours, that many "
                "minutes after the next opening. Times are in the store's timezone.",
            },
        ),
        ("Surveys", {"fields": ["survey_valid_days", "promoter_min_rating", "neutral_min_rating"]}),
    ]

    @admin.display(description="store")
    def store(self, obj: FeedbackSettings) -> str:
        return obj.tenant.name

    @admin.display(description="business days")
    def days(self, obj: FeedbackSettings) -> str:
        return ", ".join(WEEKDAY_NAMES[d][:3] for d in sorted(obj.business_days or []))

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
