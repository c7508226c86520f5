"""Admin screens for survey invitations and responses (imported by
``feedback.admin``): read-only lists of this store's rows, each linking to its
customer. Answers change only through the survey page and SMS replies."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.html import format_html

from feedback import customer_admin  # noqa: F401  (adds the survey panel to the customer page)
from feedback.models import SurveyInvitation, SurveyResponse
from retention import clock
from retention.admin_base import TenantAdmin, readonly_everything


def _customer_link(customer_id: int, customer: object) -> str:
    url = reverse("admin:commerce_customer_change", args=[customer_id])
    return format_html('<a href="{}">{}</a>', url, customer)


class ReadOnlyTenantAdmin(TenantAdmin):
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AnsweredFilter(admin.SimpleListFilter):
    title = "answered"
    parameter_name = "answered"

    def lookups(self, request, model_admin):
        return [("yes", "Answered"), ("no", "Not answered"), ("expired", "Expired unanswered")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "yes":
            return queryset.filter(is_answered=True)
        if value == "no":
            return queryset.filter(is_answered=False)
        if value == "expired":
            return queryset.filter(is_answered=False, expires_at__lte=clock.now())
        return queryset


@admin.register(SurveyInvitation)
class SurveyInvitationAdmin(ReadOnlyTenantAdmin):
    list_display = [
        "created_at",
        "customer_link",
        "channel",
        "source",
        "order",
        "expires_at",
        "answered",
    ]
    list_filter = [AnsweredFilter, "channel", "source", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=customer__email", "=customer__phone", "=order__number"]
    list_select_related = ["customer", "order", "tenant"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        answered = SurveyResponse.objects.for_tenant(OuterRef("tenant")).filter(
            invitation=OuterRef("pk")
        )
        return super().get_queryset(request).annotate(is_answered=Exists(answered))

    def get_readonly_fields(self, request, obj=None):
        return [*readonly_everything(SurveyInvitation), "customer_link", "answered"]

    @admin.display(description="customer")
    def customer_link(self, obj: SurveyInvitation) -> str:
        return _customer_link(obj.customer_id, obj.customer)

    @admin.display(description="answered", boolean=True, ordering="is_answered")
    def answered(self, obj: SurveyInvitation) -> bool:
        found = getattr(obj, "is_answered", None)
        if found is None:
            found = SurveyResponse.objects.for_tenant(obj.tenant_id).filter(invitation=obj).exists()
        return found


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyTenantAdmin):
    list_display = [
        "answered_at",
        "customer_link",
        "rating",
        "classification",
        "wants",
        "channel",
        "short_text",
    ]
    list_filter = [
        "classification",
        "channel",
        "rating",
        "wants",
        ("answered_at", admin.DateFieldListFilter),
    ]
    search_fields = ["=customer__email", "=customer__phone", "comment", "highlight_text"]
    list_select_related = ["customer", "tenant"]
    ordering = ["-answered_at", "-id"]

    def get_readonly_fields(self, request, obj=None):
        return [*readonly_everything(SurveyResponse), "customer_link"]

    @admin.display(description="customer")
    def customer_link(self, obj: SurveyResponse) -> str:
        return _customer_link(obj.customer_id, obj.customer)

    @admin.display(description="in their words")
    def short_text(self, obj: SurveyResponse) -> str:
        text = " / ".join(t for t in (obj.highlight_text, obj.comment) if t)
        return text if len(text) <= 80 else text[:79] + "…"
