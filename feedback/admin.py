"""Admin screens for feedback: for now a read-only list of the callback queue
(the agents' own screens at /agent/callbacks/ come with the feedback issue).
Callbacks change only through the services, so nothing is edited here."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from feedback import admin_surveys  # noqa: F401  (registers the survey screens)
from feedback.models import Callback
from retention.admin_base import TenantAdmin, readonly_everything


@admin.register(Callback)
class CallbackAdmin(TenantAdmin):
    """The queue, most urgent first: open and claimed callbacks past their
    deadline are flagged overdue."""

    list_display = ["due_by", "overdue", "status", "priority", "customer_link", "reason", "source"]
    list_filter = ["status", "source"]
    search_fields = ["reason", "=customer__email"]
    list_select_related = ["customer", "tenant"]
    ordering = ["-priority", "due_by", "id"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [*readonly_everything(Callback), "customer_link", "overdue"]

    @admin.display(description="customer")
    def customer_link(self, obj: Callback) -> str:
        url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj: Callback) -> bool:
        return obj.is_overdue()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
