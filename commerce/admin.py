"""Admin screens for commerce data. Every screen is tenant-scoped through
TenantAdmin / TenantInline; actions call services, nothing more."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.text import slugify

from commerce.models import (
    Cart,
    ChannelConsent,
    CommerceSettings,
    Customer,
    CustomerIdentity,
    Fulfillment,
    InboxEntry,
    Order,
    OrderLine,
    Product,
    ProductFamily,
    Return,
    Touchpoint,
)
from commerce.services.inbox import inbox_retry
from commerce.services.privacy import customer_erase, customer_export
from retention.admin_base import (
    TenantAdmin,
    TenantInline,
    member_can,
    readonly_everything,
    tenant_related_filter,
)
from retention.models import Capability

TIMELINE_LENGTH = 50


class ReadOnlyInline(TenantInline):
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.fields] if self.fields else readonly_everything(self.model)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- customers ---------------------------------------------------------------------


class IdentityInline(TenantInline):
    model = CustomerIdentity
    fields = ["kind", "source", "value", "created_at"]
    readonly_fields = ["created_at"]


class ConsentInline(TenantInline):
    model = ChannelConsent
    fields = ["channel", "status", "source", "at"]


class TimelineInline(ReadOnlyInline):
    """The customer's most recent touchpoints, newest first."""

    model = Touchpoint
    verbose_name = "touchpoint"
    verbose_name_plural = f"timeline (last {TIMELINE_LENGTH})"
    fields = ["occurred_at", "category", "kind", "source", "properties"]
    show_change_link = False

    def get_queryset(self, request):
        recent = (
            # Correlated to the outer row's customer, so it is scoped with it.
            Touchpoint.objects.unscoped()
            .filter(customer_id=OuterRef("customer_id"))
            .order_by("-occurred_at", "-id")
            .values("pk")[:TIMELINE_LENGTH]
        )
        return super().get_queryset(request).filter(pk__in=Subquery(recent))


class CustomerOrderInline(ReadOnlyInline):
    model = Order
    fields = ["number", "external_id", "source", "status", "total", "currency", "placed_at"]


@dataclass(frozen=True)
class CustomerPanel:
    """A read-only section of the customer page that another app adds.

    ``render`` is called with the customer (already scoped to the page's tenant)
    and returns safe HTML, e.g. from ``format_html``.
    """

    title: str
    render: Callable[[Customer], str]


# Extension point: apps that depend on commerce (segments, ...) append panels
# here when their admin modules are imported; commerce never imports them.
CUSTOMER_PANELS: list[CustomerPanel] = []


@functools.cache
def _panel_field(panel: CustomerPanel) -> Callable[[Customer], str]:
    """The panel as a read-only admin field; one function per panel, so the
    admin recognises it across calls."""

    def field(obj: Customer) -> str:
        return panel.render(obj)

    field.short_description = panel.title
    field.__name__ = "panel_" + slugify(panel.title).replace("-", "_")
    return field


@admin.register(Customer)
class CustomerAdmin(TenantAdmin):
    list_display = ["name", "email", "phone", "created_at"]
    search_fields = ["email", "phone", "identities__value"]
    readonly_fields = ["created_at", "merged_into"]
    inlines = [IdentityInline, ConsentInline, TimelineInline, CustomerOrderInline]
    actions = ["export_personal_data", "erase_personal_data"]

    @admin.action(description="Export personal data (JSON)", permissions=["export"])
    def export_personal_data(self, request, queryset):
        customers = list(queryset[:2])
        if len(customers) != 1:
            self.message_user(request, "Select exactly one customer to export.", messages.ERROR)
            return None
        customer = customers[0]
        document = customer_export(tenant=customer.tenant, customer=customer)
        response = HttpResponse(
            json.dumps(document, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder),
            content_type="application/json",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="customer-{customer.pk}-export.json"'
        )
        return response

    @admin.action(description="Erase personal data (GDPR)…", permissions=["erase"])
    def erase_personal_data(self, request, queryset):
        if request.POST.get("confirm") == "yes":
            erased = 0
            for customer in queryset:
                if customer_erase(tenant=customer.tenant, customer=customer, actor=request.user):
                    erased += 1
            self.message_user(
                request,
                f"Erased the personal data of {erased} customers; "
                f"{queryset.count() - erased} were already erased.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase personal data?",
            "opts": self.model._meta,
            "customers": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/commerce/customer/erase_confirmation.html", context)

    def has_export_permission(self, request) -> bool:
        return member_can(request, Capability.CONFIGURE)

    def has_erase_permission(self, request) -> bool:
        return member_can(request, Capability.MANAGE_TEAM)

    def _panel_fields(self, obj: Customer | None) -> list[Callable[[Customer], str]]:
        # Panels describe an existing customer: none on the add page.
        return [] if obj is None else [_panel_field(panel) for panel in CUSTOMER_PANELS]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *self._panel_fields(obj)]

    def get_fieldsets(self, request, obj=None):
        panels = self._panel_fields(obj)
        fields = [f for f in self.get_fields(request, obj) if f not in panels]
        return [
            (None, {"fields": fields}),
            *((field.short_description, {"fields": [field]}) for field in panels),
        ]

    @admin.display(description="name", ordering="last_name")
    def name(self, obj: Customer) -> str:
        return f"{obj.first_name} {obj.last_name}".strip() or "—"

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.isascii() and term.isdigit() and len(term) < 19:
            results |= queryset.filter(pk=int(term))
        return results, may_have_duplicates


# --- orders --------------------------------------------------------------------------


class OrderLineInline(TenantInline):
    model = OrderLine
    fields = ["sku", "name", "family", "quantity", "unit_price", "discount", "total", "price_tier"]
    raw_id_fields = ["family"]


class FulfillmentInline(TenantInline):
    model = Fulfillment
    fields = [
        "external_id",
        "status",
        "carrier",
        "tracking_number",
        "estimated_delivery_start",
        "estimated_delivery_end",
        "shipped_at",
        "delivered_at",
    ]


@admin.register(Order)
class OrderAdmin(TenantAdmin):
    list_display = ["__str__", "customer", "status", "source", "total", "currency", "placed_at"]
    list_filter = ["status", "source"]
    search_fields = ["external_id", "number", "customer__email"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline, FulfillmentInline]


# --- catalogue -----------------------------------------------------------------------


@admin.register(ProductFamily)
class ProductFamilyAdmin(TenantAdmin):
    list_display = ["name", "slug", "reorder_days", "upsell_days", "replenishment_days"]
    list_editable = ["reorder_days", "upsell_days", "replenishment_days"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["related"]


FamilyFilter = tenant_related_filter(ProductFamily, "family")


@admin.register(Product)
class ProductAdmin(TenantAdmin):
    list_display = ["sku", "name", "family", "price", "price_tier"]
    list_filter = ["price_tier", FamilyFilter]
    search_fields = ["sku", "name"]


# --- carts and returns ------------------------------------------------------------


@admin.register(Cart)
class CartAdmin(TenantAdmin):
    list_display = ["external_id", "customer", "status", "total", "currency", "updated_at"]
    list_filter = ["status", "source"]
    search_fields = ["external_id", "customer__email"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer", "order"]


@admin.register(Return)
class ReturnAdmin(TenantAdmin):
    list_display = ["external_id", "order", "refund_amount", "reason", "created_at"]
    list_filter = ["source"]
    search_fields = ["external_id", "order__external_id", "order__number"]
    list_select_related = ["order"]
    raw_id_fields = ["order"]


# --- settings ------------------------------------------------------------------------


@admin.register(CommerceSettings)
class CommerceSettingsAdmin(TenantAdmin):
    """One row per tenant; owners and marketers edit it."""

    list_display = ["__str__", "cart_abandon_minutes", "return_window_days"]
    edit_capability = Capability.CONFIGURE

    def has_add_permission(self, request) -> bool:
        if not super().has_add_permission(request) or request.tenant is None:
            return False
        return not CommerceSettings.objects.for_tenant(request.tenant).exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- inbox ---------------------------------------------------------------------------


@admin.register(InboxEntry)
class InboxEntryAdmin(TenantAdmin):
    list_display = [
        "topic",
        "webhook_id",
        "channel",
        "status",
        "attempts",
        "received_at",
        "processed_at",
    ]
    list_filter = ["status", "channel", "topic"]
    search_fields = ["=webhook_id"]
    fields = [
        "channel",
        "webhook_id",
        "topic",
        "status",
        "attempts",
        "error",
        "received_at",
        "processed_at",
        "headers_pretty",
        "body_pretty",
    ]
    readonly_fields = fields
    actions = ["retry_selected"]

    @admin.display(description="headers")
    def headers_pretty(self, obj: InboxEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, sort_keys=True))

    @admin.display(description="body")
    def body_pretty(self, obj: InboxEntry) -> str:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            text = obj.body
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Retry selected", permissions=["retry"])
    def retry_selected(self, request, queryset):
        retried = sum(1 for entry in queryset if inbox_retry(entry=entry))
        skipped = queryset.count() - retried
        self.message_user(
            request,
            f"{retried} entries queued again; {skipped} already processed.",
            messages.SUCCESS if retried else messages.WARNING,
        )

    def has_retry_permission(self, request) -> bool:
        return member_can(request, Capability.CONFIGURE)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
