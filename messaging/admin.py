"""Admin screens for messaging: the outbox (every message with its status,
reason and provider events), templates (``templates_admin``), consent and the
suppression list, and the store's messaging settings.

The outbox is read-only: messages change only through the send path and
provider callbacks, so what the screen shows is what happened.
"""

from __future__ import annotations

import phonenumbers
from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from commerce.models import ChannelConsent
from messaging import templates_admin  # noqa: F401  (registers TemplateAdmin)
from messaging.models import Message, MessagingSettings, ProviderEvent, Suppression
from messaging.services.outbox import suppression_add
from messaging.services.send import channel_ready
from retention.admin_base import TenantAdmin, readonly_everything


def _customer_link(customer) -> str:
    if customer is None:
        return "—"
    url = reverse("admin:commerce_customer_change", args=[customer.pk])
    return format_html('<a href="{}">{}</a>', url, customer)


@admin.register(Message)
class MessageAdmin(TenantAdmin):
    """The outbox, newest first. With no provider key set for a channel, its
    messages wait here (reason "Outbox only") and can be read in full."""

    list_display = ["created_at", "channel", "category", "to_address", "subject_or_text", "status"]
    list_display += ["reason", "source"]
    list_filter = ["status", "channel", "category", "reason", "source"]
    search_fields = ["to_address", "idempotency_key", "provider_id", "=customer__email"]
    # The tenant column appears in the platform operators' all-stores view.
    list_select_related = ["tenant"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["channel", "category", "customer_link", "to_address", "status"]}),
        ("Why", {"fields": ["reason", "detail", "due_at", "attempts", "outbox_note"]}),
        ("Content", {"fields": ["subject", "body_text", "html_preview"]}),
        (
            "Tracking",
            {
                "fields": [
                    "idempotency_key",
                    "source",
                    "context",
                    "template",
                    "provider_id",
                    "created_at",
                    "sent_at",
                    "delivered_at",
                    "opened_at",
                    "clicked_at",
                    "failed_at",
                    "provider_events",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [
            *readonly_everything(Message),
            "customer_link",
            "html_preview",
            "provider_events",
            "outbox_note",
        ]

    @admin.display(description="content")
    def subject_or_text(self, obj: Message) -> str:
        text = obj.subject or obj.body_text
        return text if len(text) <= 60 else text[:59] + "…"

    @admin.display(description="customer")
    def customer_link(self, obj: Message) -> str:
        return _customer_link(obj.customer)

    @admin.display(description="HTML")
    def html_preview(self, obj: Message) -> str:
        if not obj.body_html:
            return "—"
        # A sandboxed frame: the message's HTML cannot run script or reach the admin.
        return format_html(
            '<iframe sandbox srcdoc="{}" style="width:100%;max-width:700px;height:420px;'
            'border:1px solid #ccc"></iframe>',
            obj.body_html,
        )

    @admin.display(description="provider events")
    def provider_events(self, obj: Message) -> str:
        events = ProviderEvent.objects.filter(message_id=obj.pk, tenant_id=obj.tenant_id)
        rows = [(e.received_at.strftime("%Y-%m-%d %H:%M:%S"), e.provider, e.kind) for e in events]
        if not rows:
            return "None yet."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {}: {}</li>", rows[:50]))

    @admin.display(description="outbox")
    def outbox_note(self, obj: Message) -> str:
        if channel_ready(obj.channel):
            return "The channel's provider is configured."
        return "No provider key is set for this channel: messages stay in the outbox."

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["channel", "address", "reason", "detail"]

    def clean(self):
        data = super().clean()
        channel, address = data.get("channel"), (data.get("address") or "").strip()
        if channel == "sms":
            try:
                number = phonenumbers.parse(address, None)
            except phonenumbers.NumberParseException as exc:
                raise forms.ValidationError({"address": f"Not a phone number: {exc}."}) from exc
            if not phonenumbers.is_valid_number(number):
                raise forms.ValidationError({"address": "Not a valid phone number."})
            data["address"] = phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164
            )
        elif channel == "email":
            forms.EmailField().clean(address)
            data["address"] = address.lower()
        return data


@admin.register(Suppression)
class SuppressionAdmin(TenantAdmin):
    """Addresses the store must not message. Bounces, spam reports, unsubscribes
    and SMS STOP add themselves; staff may add one by hand or lift one (delete)."""

    form = SuppressionForm
    list_display = ["address", "channel", "reason", "source", "created_at"]
    list_filter = ["channel", "reason", "source"]
    search_fields = ["address"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return ["channel", "address", "reason", "source", "created_at"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        suppression_add(
            tenant_id=request.tenant.pk,
            channel=obj.channel,
            address=form.cleaned_data["address"],
            reason=obj.reason,
            source=f"staff:{request.user.email}",
            detail=obj.detail,
        )
        found = Suppression.objects.for_tenant(request.tenant).get(
            channel=obj.channel, address=form.cleaned_data["address"]
        )
        obj.pk, obj.tenant_id, obj.created_at = found.pk, found.tenant_id, found.created_at


@admin.register(ChannelConsent)
class ChannelConsentAdmin(TenantAdmin):
    """Every customer's consent per channel, with where and when it was given.
    Read-only: consent changes come from the shopper (preferences page, STOP),
    the storefront (webhooks, API) or provider callbacks, each recorded with
    its source."""

    list_display = ["customer_link", "channel", "status", "source", "at"]
    list_filter = ["channel", "status", "source"]
    search_fields = ["=customer__email", "=customer__phone"]
    list_select_related = ["customer", "tenant"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [*readonly_everything(ChannelConsent), "customer_link"]

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj: ChannelConsent) -> str:
        return _customer_link(obj.customer)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MessagingSettingsForm(forms.ModelForm):
    class Meta:
        model = MessagingSettings
        fields = [
            "from_email",
            "from_name",
            "reply_to",
            "postal_address",
            "sms_from",
            "sms_help_text",
            "quiet_hours_enabled",
            "quiet_start",
            "quiet_end",
            "frequency_cap",
            "frequency_cap_days",
            "email_requires_opt_in",
        ]

    def clean_sms_from(self) -> str:
        value = (self.cleaned_data.get("sms_from") or "").strip()
        if not value:
            return ""
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise forms.ValidationError(
                f"Give the number in international form, e.g. +4915112345678 ({exc})."
            ) from exc
        if not phonenumbers.is_valid_number(number):
            raise forms.ValidationError("Not a valid phone number.")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        taken = (
            # Unscoped on purpose: one number can belong to one store only.
            MessagingSettings.objects.unscoped()
            .filter(sms_from=e164)
            .exclude(pk=self.instance.pk)
            .exists()
        )
        if taken:
            raise forms.ValidationError("Another store already uses this number.")
        return e164

    def clean(self):
        data = super().clean()
        if data.get("quiet_start") and data.get("quiet_start") == data.get("quiet_end"):
            self.add_error("quiet_end", "Start and end are equal; turn quiet hours off instead.")
        return data


@admin.register(MessagingSettings)
class MessagingSettingsAdmin(TenantAdmin):
    """The store's sender identity (email from-address, SMS number), quiet hours,
    the marketing frequency cap and the email consent policy."""

    form = MessagingSettingsForm
    list_display = ["store", "from_email", "sms_from", "quiet_start", "quiet_end"]
    list_display += ["frequency_cap", "frequency_cap_days"]
    list_select_related = ["tenant"]
    fieldsets = [
        ("Sender", {"fields": ["from_email", "from_name", "reply_to", "postal_address"]}),
        ("SMS", {"fields": ["sms_from", "sms_help_text"]}),
        ("Quiet hours", {"fields": ["quiet_hours_enabled", "quiet_start", "quiet_end"]}),
        (
            "Marketing",
            {"fields": ["frequency_cap", "frequency_cap_days", "email_requires_opt_in"]},
        ),
    ]

    @admin.display(description="store")
    def store(self, obj: MessagingSettings) -> str:
        return obj.tenant.name

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
