"""Admin screens for tenant settings, the team, API keys and the audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.html import format_html

from retention import services
from retention.admin_base import AuditedAdminMixin, TenantAdmin, is_operator_view, member_can
from retention.models import ApiKey, AuditEntry, Capability, Membership, Tenant, User, WebhookSecret


class WebhookSecretInline(admin.TabularInline):
    model = WebhookSecret
    extra = 0
    can_delete = False
    fields = ["masked", "created_at", "expires_at"]
    readonly_fields = ["masked", "created_at", "expires_at"]
    verbose_name = "webhook signing secret"

    @admin.display(description="secret")
    def masked(self, obj: WebhookSecret) -> str:
        return f"{obj.secret[:10]}…{obj.secret[-4:]}"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# ISO weekdays, as ``Tenant.business_days`` stores them.
ISO_WEEKDAY_CHOICES = [
    (1, "Monday"),
    (2, "Tuesday"),
    (3, "Wednesday"),
    (4, "Thursday"),
    (5, "Friday"),
    (6, "Saturday"),
    (7, "Sunday"),
]


class TenantSettingsForm(forms.ModelForm):
    """Business days as Monday…Sunday checkboxes (stored as sorted ISO weekday
    numbers). That closing comes after opening is ``Tenant.clean``'s rule,
    which the model form runs."""

    business_days = forms.TypedMultipleChoiceField(
        choices=ISO_WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one business day."},
        help_text="The days the support team works (and calls customers back).",
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "timezone",
            "currency",
            "is_active",
            "business_hours_start",
            "business_hours_end",
            "business_days",
        ]

    def clean_business_days(self) -> list[int]:
        return sorted(set(self.cleaned_data["business_days"]))


@admin.register(Tenant)
class TenantSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Tenant settings. Members see their own tenant; owners edit it. The
    business hours here are the store's one source: the callback queue's SLA
    counts business time within them."""

    form = TenantSettingsForm
    list_display = ["name", "slug", "timezone", "currency", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "timezone", "currency", "is_active", "created_at"]}),
        (
            "Business hours",
            {
                "fields": ["business_hours_start", "business_hours_end", "business_days"],
                "description": "When the support team works, in the store's timezone. A new "
                "callback's first contact is due within business time (the minutes are in "
                "the feedback settings).",
            },
        ),
    ]
    inlines = [WebhookSecretInline]
    actions = ["rotate_webhook_secret"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if is_operator_view(request):
            return qs
        return qs.filter(pk=getattr(request.tenant, "pk", None))

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ["created_at"]
        return ["slug", "is_active", "created_at"]

    def has_module_permission(self, request):
        return member_can(request, Capability.VIEW)

    def has_view_permission(self, request, obj=None):
        return member_can(request, Capability.VIEW)

    def has_change_permission(self, request, obj=None):
        return member_can(request, Capability.MANAGE_TEAM)

    def has_add_permission(self, request):
        # A store is made by ``manage.py create_tenant`` (``tenant_create``): its
        # signing secret, settings, tier segments and shipped journeys come with
        # it. A bare row saved here would have none of them.
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # tenants are deactivated, never deleted from the UI

    @admin.action(description="Rotate the webhook signing secret (old one works 7 more days)")
    def rotate_webhook_secret(self, request, queryset):
        for tenant in queryset:
            secret = services.webhook_secret_rotate(tenant=tenant)
            services.audit_record(
                tenant=tenant,
                action="action",
                obj=tenant,
                user=request.user,
                changes={"webhook_secret": ["rotated", secret.secret[:10] + "…"]},
            )
            messages.warning(
                request,
                format_html(
                    "New webhook secret for {}: <code>{}</code>. "
                    "Copy it now, it is not shown again.",
                    tenant.name,
                    secret.secret,
                ),
            )

    def save_model(self, request, obj, form, change):
        creating = not change
        super().save_model(request, obj, form, change)
        if creating:
            services.webhook_secret_create(tenant=obj)


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    edit_capability = Capability.MANAGE_TEAM
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]
    autocomplete_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantAdmin):
    edit_capability = Capability.MANAGE_TEAM
    view_capability = Capability.MANAGE_TEAM
    list_display = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "scopes", *readonly_fields]
    actions = ["revoke"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail keeps the key

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = services.api_key_issue(
            tenant=request.tenant,
            name=obj.name,
            scopes=obj.scopes or ["read", "write"],
            created_by=request.user,
        )
        obj.pk, obj.prefix, obj._state.adding = key.pk, key.prefix, False
        obj.tenant = key.tenant
        services.audit_record(
            tenant=key.tenant,
            action="create",
            obj=key,
            user=request.user,
            changes={"name": [None, key.name], "scopes": [None, key.scopes]},
        )
        messages.warning(
            request,
            format_html("API key <code>{}</code> — copy it now, it is not shown again.", raw),
        )

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key)
            services.audit_record(
                tenant=key.tenant_id,
                action="action",
                obj=key,
                user=request.user,
                changes={"revoked": [False, True]},
            )
        messages.success(request, "Revoked.")


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_repr", "object_id", "actor_user__email"]
    date_hierarchy = "at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """People. Only platform operators manage accounts directly; members are
    added per tenant through Memberships (or ``manage.py add_member``)."""

    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_superuser", "last_login"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        # Owners may search people when adding a membership (autocomplete).
        return request.user.is_superuser or (
            obj is None and member_can(request, Capability.MANAGE_TEAM)
        )

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_search_results(self, request, queryset, search_term):
        qs, dup = super().get_search_results(request, queryset, search_term)
        if not request.user.is_superuser:
            # Owners find only exact addresses: no browsing other tenants' people.
            qs = qs.filter(email__iexact=search_term.strip()) if search_term else qs.none()
        return qs, dup
