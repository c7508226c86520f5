"""The admin base every app's screens build on.

``TenantAdmin`` shows a member only their current tenant's rows: changelists,
change/delete/history views by id (another tenant's id is a 404, like a missing
one), foreign-key and many-to-many choices, and autocomplete. New rows get the
tenant set. Roles gate what a member may do through the capability each admin
names (``edit_capability``). Every create, change and delete is written to the
audit log. Platform superusers see all tenants, with a tenant filter.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.forms.models import model_to_dict
from django.http import Http404, HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator

from retention.models import Capability, Tenant
from retention.services import audit_changes, audit_record
from retention.tenancy import TenantOwnedModel


def json_unstorable(value: Any) -> str:
    """Why PostgreSQL's jsonb cannot store ``value`` ("" when it can): NaN and
    infinities (Python's json reads them, jsonb refuses them), and a NUL
    character or a lone surrogate in any string or key. Iterative, so a deeply
    nested value cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return "Numbers must be finite: NaN, Infinity and 1e400 cannot be stored."
        if isinstance(item, str):
            if "\x00" in item:
                return "Text must not contain a NUL character (\\u0000)."
            if not item.isascii() and any(0xD800 <= ord(ch) <= 0xDFFF for ch in item):
                return "Text must not contain an unpaired surrogate (\\ud800-\\udfff)."
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


class StorableJSONField(forms.JSONField):
    """The admin's JSON form field: a value jsonb cannot store (see
    :func:`json_unstorable`) or nested too deeply to read is a form error, and
    is shown again as typed (Django would re-render the parsed value, and a
    lone surrogate cannot be written into the UTF-8 page). For a NOT NULL
    column (``null=False``) an emptied field gives ``when_empty`` (the model
    field's default) and a JSON ``null`` is a form error: Django would save
    NULL and answer 500 with an IntegrityError."""

    def __init__(self, *, null: bool = True, when_empty: Any = None, **kwargs) -> None:
        self.null = null
        self.when_empty = when_empty
        super().__init__(**kwargs)

    def to_python(self, value):
        if not self.disabled and not self.null and value in self.empty_values:
            return copy.deepcopy(self.when_empty)
        try:
            converted = super().to_python(value)
        except RecursionError as exc:
            raise DjangoValidationError("The JSON is nested too deeply.", code="invalid") from exc
        if converted is None and not self.null and not self.disabled:
            raise DjangoValidationError("Give a JSON value other than null.", code="null")
        problem = json_unstorable(converted)
        if problem:
            raise DjangoValidationError(problem, code="invalid")
        return converted

    def bound_data(self, data, initial):
        try:
            value = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if not self.disabled and not isinstance(value, InvalidJSONInput) and json_unstorable(value):
            return InvalidJSONInput(data)
        return value


def member_can(request: HttpRequest, capability: str) -> bool:
    user = request.user
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    membership = getattr(request, "membership", None)
    return membership is not None and membership.can(capability)


def is_operator_view(request: HttpRequest) -> bool:
    """A platform superuser who has not picked a store sees every tenant."""
    return request.user.is_superuser and getattr(request, "tenant", None) is None


def scope_related_choices(request, db_field, queryset_kw: dict[str, Any]) -> None:
    """Limit a foreign-key or many-to-many field's choices to the current tenant."""
    related = db_field.remote_field.model
    if "queryset" in queryset_kw:
        return
    if issubclass(related, TenantOwnedModel):
        if request.tenant is not None:
            queryset_kw["queryset"] = related._default_manager.for_tenant(request.tenant)
        elif request.user.is_superuser:
            queryset_kw["queryset"] = related._default_manager.unscoped()
        else:
            queryset_kw["queryset"] = related._default_manager.none().unscoped()
    elif related is Tenant and not request.user.is_superuser:
        queryset_kw["queryset"] = Tenant.objects.filter(pk=getattr(request.tenant, "pk", None))


class ScopedRawIdWidget(admin_widgets.ForeignKeyRawIdWidget):
    """Django's raw-id widget looks up the chosen object's label with the
    unscoped default manager; this one uses the field's tenant-scoped queryset,
    so another tenant's id shows nothing (and the scoped manager never raises)."""

    def __init__(self, rel, admin_site, *, queryset, **kwargs):
        super().__init__(rel, admin_site, **kwargs)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            obj = self.queryset.get(**{key: value})
        except (ValueError, self.rel.model.DoesNotExist, DjangoValidationError):
            return "", ""
        try:
            url = reverse(
                f"{self.admin_site.name}:{obj._meta.app_label}_{obj._meta.model_name}_change",
                args=(obj.pk,),
            )
        except NoReverseMatch:
            url = ""
        return Truncator(obj).words(14), url


def scoped_foreignkey_kwargs(model_admin, request, db_field, kwargs: dict) -> None:
    """Scope a foreign key's choices, and its raw-id widget if it has one."""
    scope_related_choices(request, db_field, kwargs)
    if (
        "widget" not in kwargs
        and "queryset" in kwargs
        and db_field.name in model_admin.raw_id_fields
    ):
        kwargs["widget"] = ScopedRawIdWidget(
            db_field.remote_field,
            model_admin.admin_site,
            queryset=kwargs["queryset"],
            using=kwargs.get("using"),
        )


def tenant_related_filter(model, field: str) -> type[admin.SimpleListFilter]:
    """A list filter on the foreign key ``field`` offering only the current
    tenant's rows by name (Django's related filter lists every tenant's)."""

    class Filter(admin.SimpleListFilter):
        title = field.replace("_", " ")
        parameter_name = field

        def lookups(self, request, model_admin):
            if request.tenant is None:
                return []
            return list(model.objects.for_tenant(request.tenant).values_list("pk", "name"))

        def queryset(self, request, queryset):
            value = self.value() or ""
            return queryset.filter(**{f"{field}_id": int(value)}) if value.isdigit() else queryset

    Filter.__name__ = Filter.__qualname__ = f"{model.__name__}Filter"
    return Filter


class TenantFilter(admin.SimpleListFilter):
    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        return list(Tenant.objects.order_by("name").values_list("pk", "name"))

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tenant_id=self.value())
        return queryset


class AuditedAdminMixin:
    """Records admin creates, changes and deletes in the tenant's audit log."""

    def _audit_tenant(self, obj) -> int | None:
        if isinstance(obj, Tenant):
            return obj.pk
        return getattr(obj, "tenant_id", None)

    def save_model(self, request, obj, form, change):
        before = model_to_dict(type(obj)._base_manager.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        after = model_to_dict(obj)
        tenant_id = self._audit_tenant(obj)
        if tenant_id is None:
            return
        if change:
            changes = audit_changes(before, after)
            action = "update"
        else:
            changes = audit_changes({}, {k: v for k, v in after.items() if v not in (None, "", [])})
            action = "create"
        if change and not changes:
            return
        audit_record(tenant=tenant_id, action=action, obj=obj, changes=changes, user=request.user)

    def delete_model(self, request, obj):
        tenant_id = self._audit_tenant(obj)
        if tenant_id is not None:
            audit_record(tenant=tenant_id, action="delete", obj=obj, user=request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            tenant_id = self._audit_tenant(obj)
            if tenant_id is not None:
                audit_record(tenant=tenant_id, action="delete", obj=obj, user=request.user)
        super().delete_queryset(request, queryset)


def scoped_pk_formset(formset, rows):
    """A formset class whose rows' hidden id fields look ids up in ``rows``.
    Django gives that field the model's default manager, which refuses a
    query without a tenant (a 500 on saving a list edit or an inline); the
    admin's own scoped queryset is also the right set of ids to accept."""

    class ScopedFormSet(formset):
        def add_fields(self, form, index):
            super().add_fields(form, index)
            field = form.fields.get(self._pk_field.name) if self._pk_field else None
            if field is not None and hasattr(field, "queryset"):
                field.queryset = rows

    ScopedFormSet.__name__ = formset.__name__
    return ScopedFormSet


class TenantAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """ModelAdmin for tenant-owned models."""

    #: capability needed to add, change and delete; everyone in the tenant may view
    edit_capability: str = Capability.CONFIGURE
    view_capability: str = Capability.VIEW
    formfield_overrides = {
        models.JSONField: {"form_class": StorableJSONField},
        # A link typed without a scheme is https (Django 6's default, asked for
        # now; the admin's own widget kept, since an override replaces it).
        models.URLField: {"widget": admin_widgets.AdminURLFieldWidget, "assume_scheme": "https"},
    }

    # --- scoping ---------------------------------------------------------------
    def get_queryset(self, request):
        qs = self.model._default_manager.get_queryset()
        if self._is_operator_view(request):
            qs = qs.unscoped()  # platform operator: all tenants, filtered in the list
        elif request.tenant is None:
            qs = qs.none().unscoped()
        else:
            qs = qs.for_tenant(request.tenant)
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def _is_operator_view(self, request) -> bool:
        return is_operator_view(request)

    def get_changelist_formset(self, request, **kwargs):
        return scoped_pk_formset(
            super().get_changelist_formset(request, **kwargs), self.get_queryset(request)
        )

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if self._is_operator_view(request):
            filters.insert(0, TenantFilter)
        return filters

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if self._is_operator_view(request) and "tenant" not in display:
            display.append("tenant")
        return display

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not self._is_operator_view(request) or obj is not None:
            exclude.append("tenant")
        return exclude

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        scoped_foreignkey_kwargs(self, request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        scope_related_choices(request, db_field, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("null", db_field.null)
            if not db_field.null and db_field.has_default():
                kwargs.setdefault("when_empty", db_field.get_default())
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change and not obj.tenant_id:
            obj.tenant = request.tenant
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            inst = inline_form.instance
            if isinstance(inst, TenantOwnedModel) and not inst.tenant_id:
                inst.tenant_id = form.instance.tenant_id
        super().save_formset(request, form, formset, change)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another tenant's id answers exactly like a missing one: 404, not a
        # redirect that would tell the two apart by timing or message.
        raise Http404(f"No {opts.verbose_name} with id {object_id!r}.")

    # --- roles -------------------------------------------------------------------
    def has_module_permission(self, request) -> bool:
        return member_can(request, self.view_capability)

    def has_view_permission(self, request, obj=None) -> bool:
        return member_can(request, self.view_capability) and self._owns(request, obj)

    def has_add_permission(self, request) -> bool:
        return member_can(request, self.edit_capability) and (
            request.tenant is not None or request.user.is_superuser
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return member_can(request, self.edit_capability) and self._owns(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return member_can(request, self.edit_capability) and self._owns(request, obj)

    def _owns(self, request, obj) -> bool:
        if obj is None or self._is_operator_view(request):
            return True
        return request.tenant is not None and obj.tenant_id == request.tenant.pk


class TenantInline(admin.TabularInline):
    """Inline for tenant-owned children; choices scoped like TenantAdmin."""

    extra = 0
    edit_capability: str = Capability.CONFIGURE

    def get_queryset(self, request):
        # The formset then filters by the parent object, which is in scope.
        qs = self.model._default_manager.get_queryset()
        if request.tenant is not None:
            return qs.for_tenant(request.tenant)
        # A platform operator looks at one parent object, whichever its tenant.
        return qs.unscoped() if request.user.is_superuser else qs.none().unscoped()

    def get_formset(self, request, obj=None, **kwargs):
        return scoped_pk_formset(
            super().get_formset(request, obj, **kwargs), self.get_queryset(request)
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        scoped_foreignkey_kwargs(self, request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_exclude(self, request, obj=None):
        return [*list(super().get_exclude(request, obj) or []), "tenant"]

    def has_view_permission(self, request, obj=None) -> bool:
        return member_can(request, Capability.VIEW)

    def has_add_permission(self, request, obj=None) -> bool:
        return member_can(request, self.edit_capability)

    def has_change_permission(self, request, obj=None) -> bool:
        return member_can(request, self.edit_capability)

    def has_delete_permission(self, request, obj=None) -> bool:
        return member_can(request, self.edit_capability)


def readonly_everything(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.fields]
