"""Admin screens for segments: rule segments with a condition builder and a
live member count, the tier segments (read-only, with their definition), the
per-tenant segment settings and the transition history.

Every screen is tenant-scoped through TenantAdmin. Saving, deleting and
refreshing a segment call ``segments.services.memberships``; the form only
shows what the services answer.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from retention import clock
from retention.admin_base import StorableJSONField, TenantAdmin, tenant_related_filter
from retention.errors import Conflict, InvalidInput, json_error
from segments import customer_admin, rules  # noqa: F401  (customer_admin adds customer panels)
from segments.models import (
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentSettings,
    SegmentTransition,
    Tier,
)
from segments.services.memberships import (
    Preview,
    segment_delete,
    segment_preview,
    segment_refresh_enqueue,
    segment_save,
    segment_validate,
)
from segments.services.setup import segment_settings

PREVIEW_SAMPLE = 10
RULE_FIELDS = ["name", "slug", "description", "status", "match", "conditions"]
RULE_INPUTS = {"match", "conditions", "status"}

VALUE_HINTS = {
    "integer": "a whole number, or [low, high] with between",
    "decimal": 'an amount such as "250.00", or [low, high] with between',
    "choice": "one of: {choices}",
    "choices": "a list of: {choices}",
    "family": 'a family id or slug ({choices}); add "within_days": N next to "value" '
    "to count only recent purchases",
    "consent": '{{"channel": "email", "status": "opted_in"}} (channels: email, sms, in_app; '
    "statuses: opted_in, opted_out, unknown)",
    "touchpoint": '{{"kind": "message.opened", "within_days": 7, "min_count": 1}}',
}


# --- the condition builder ---------------------------------------------------------


class ConditionBuilderWidget(forms.Textarea):
    """The conditions as JSON in a textarea, which our script turns into rows
    of field / operator / value controls and keeps in sync. Without JavaScript
    the textarea stays, with a list of the fields it accepts."""

    template_name = "segments/widgets/condition_builder.html"

    class Media:
        js = ["segments/condition_builder.js"]
        css = {"all": ["segments/condition_builder.css"]}

    def __init__(self, attrs: dict | None = None):
        super().__init__({"rows": 6, "cols": 90, **(attrs or {})})
        self.catalogue: list[dict] = []
        self.condition_errors: dict[str, str] = {}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget_id = context["widget"]["attrs"].get("id", name)
        context["widget"].update(
            catalogue=self.catalogue,
            catalogue_id=f"{widget_id}_catalogue",
            condition_errors=self.condition_errors,
            errors_id=f"{widget_id}_errors",
            hints=[_hint(entry) for entry in self.catalogue],
        )
        return context

    def __deepcopy__(self, memo):
        # Forms deep-copy their fields' widgets, but Django's widget copy is
        # shallow: each form must get its own catalogue and errors, or one
        # marketer's errors would show on the next form anyone opens.
        copy = super().__deepcopy__(memo)
        copy.catalogue = []
        copy.condition_errors = {}
        return copy


def _hint(entry: dict) -> dict:
    choices = ", ".join(
        f"{value} ({label})" if entry["type"] == "family" else str(value)
        for value, label in entry["choices"]
    )
    return {
        "name": entry["name"],
        "label": entry["label"],
        "ops": ", ".join(op for op, _ in entry["ops"]),
        "value": VALUE_HINTS.get(entry["type"], entry["type"]).format(choices=choices or "none"),
    }


def _condition_message(key: str, message: str) -> str:
    """'conditions[1].value' -> 'Condition 2 (value): …' for people."""
    index, _, part = key.removeprefix("conditions[").partition("]")
    where = part.lstrip(".") or "condition"
    return f"Condition {int(index) + 1} ({where}): {message}" if index.isdigit() else message


class SegmentForm(forms.ModelForm):
    """A rule segment. Checked by the segment service (the same rules as the
    API); the "Preview members" button re-renders the bound form with the
    member count and never saves."""

    conditions = StorableJSONField(
        required=False,
        initial=list,
        widget=ConditionBuilderWidget,
        help_text="Who belongs: the member count below follows your changes.",
    )

    #: set by SegmentAdmin.get_form: the tenant whose families and customers count
    tenant_id: int | None = None

    class Meta:
        model = Segment
        fields = RULE_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 90})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.preview: Preview | None = None
        if "conditions" in self.fields and self.tenant_id is not None:
            self.fields["conditions"].widget.catalogue = rules.field_catalogue(self.tenant_id)
        if "slug" in self.fields:
            self.fields["slug"].required = False
            self.fields["slug"].help_text = "Leave empty to make one from the name."

    @property
    def wants_preview(self) -> bool:
        return self.is_bound and "_preview" in self.data

    def is_valid(self) -> bool:
        # A preview is a valid form that must not be saved: the admin then
        # re-renders it, with the count from clean(), instead of saving.
        return super().is_valid() and not self.wants_preview

    def clean(self):
        data = super().clean()
        tenant = self.tenant_id or getattr(data.get("tenant"), "pk", None)
        if tenant is None:
            raise forms.ValidationError("Pick a store first.")
        values = {key: data[key] for key in RULE_FIELDS if key in data}
        values["conditions"] = values.get("conditions") or []
        try:
            clean = segment_validate(
                tenant=tenant, data=values, segment=self.instance if self.instance.pk else None
            )
        except (InvalidInput, Conflict) as exc:
            self._add_service_errors(exc)
            return data
        data.update(clean)
        if self.wants_preview:
            self.preview = segment_preview(
                tenant, match=clean["match"], conditions=clean["conditions"], sample=PREVIEW_SAMPLE
            )
        return data

    def _add_service_errors(self, exc: InvalidInput | Conflict) -> None:
        if not exc.fields:
            self.add_error(None, exc.message)
        for key, message in exc.fields.items():
            if key.startswith("conditions"):
                self.fields["conditions"].widget.condition_errors[key] = message
                self.add_error("conditions", _condition_message(key, message))
            elif key in self.fields and key not in self.errors:
                self.add_error(key, message)
            elif key not in self.fields:
                self.add_error(None, f"{key}: {message}")


class ListSegmentForm(forms.Form):
    name = forms.CharField(max_length=Segment._meta.get_field("name").max_length)
    slug = forms.SlugField(
        max_length=Segment._meta.get_field("slug").max_length,
        required=False,
        help_text="Leave empty to make one from the name.",
    )
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 90})
    )


# --- segments ------------------------------------------------------------------------------


@admin.register(Segment)
class SegmentAdmin(TenantAdmin):
    """Rule segments are built here; tier segments are shown, never edited."""

    form = SegmentForm
    list_display = ["name", "kind", "status", "member_count", "counted_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    radio_fields = {"match": admin.HORIZONTAL}
    readonly_fields = ["kind", "definition", "member_count", "counted_at", "history"]
    actions = ["refresh_now"]

    # --- what is shown ---------------------------------------------------------------
    def get_fields(self, request, obj=None):
        counts = ["member_count", "counted_at", "history"]
        if obj is not None and obj.kind == SegmentKind.TIER:
            return ["name", "slug", "kind", "definition", *counts]
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "slug", "description", "status", "kind", "definition", *counts]
        operator_add = obj is None and self._is_operator_view(request)
        return (["tenant"] if operator_add else []) + RULE_FIELDS + ([] if obj is None else counts)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_id = obj.tenant_id if obj is not None else getattr(request.tenant, "pk", None)
        return form

    @admin.display(description="definition")
    def definition(self, obj: Segment) -> str:
        if obj.kind == SegmentKind.TIER:
            return _tier_definition(obj)
        lines = rules.describe_conditions(obj.tenant_id, obj.match, obj.conditions)
        if not lines:
            return "No conditions yet: nobody is a member."
        intro = "Customers who meet all of:" if obj.match == "all" else "Customers who meet any of:"
        return format_html(
            "<p>{}</p><ul>{}</ul>",
            intro,
            format_html_join("", "<li>{}</li>", ((line,) for line in lines)),
        )

    @admin.display(description="entries and exits")
    def history(self, obj: Segment) -> str:
        url = reverse("admin:segments_segmenttransition_changelist")
        return format_html('<a href="{}?segment={}">See who entered and left</a>', url, obj.pk)

    # --- roles: tier segments are read-only for everyone ------------------------------------
    def has_change_permission(self, request, obj=None) -> bool:
        editable = obj is None or obj.kind == SegmentKind.RULE
        return editable and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        deletable = obj is None or obj.kind == SegmentKind.RULE
        return deletable and super().has_delete_permission(request, obj)

    # --- saving and deleting go through the service ---------------------------------------
    def save_model(self, request, obj, form, change):
        # The service validates, saves, audits and queues the refresh, so the
        # audited save of the base class is not used (it would audit twice).
        tenant_id = obj.tenant_id or getattr(request.tenant, "pk", None)
        saved = segment_save(
            tenant=tenant_id,
            data=form.cleaned_data,
            segment=obj if change else None,
            actor=request.user,
        )
        if not change:
            for field in Segment._meta.concrete_fields:
                setattr(obj, field.attname, getattr(saved, field.attname))
            obj._state.adding = False
        if not change or RULE_INPUTS & set(form.changed_data):
            self.message_user(request, "Members are being refreshed; the count follows shortly.")

    def delete_model(self, request, obj):
        segment_delete(segment=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for segment in queryset:
            segment_delete(segment=segment, actor=request.user)

    def get_deleted_objects(self, objs, request):
        """Sum up the members and history that go with a segment instead of
        listing every row (a segment can hold a hundred thousand)."""
        segments = list(objs)
        perms_needed = (
            {str(Segment._meta.verbose_name)}
            if any(not self.has_delete_permission(request, s) for s in segments)
            else set()
        )
        ids = [s.pk for s in segments]
        members = moves = 0
        for tenant_id in {s.tenant_id for s in segments}:  # one, from a scoped changelist
            scoped = {"segment_id__in": ids}
            members += SegmentMembership.objects.for_tenant(tenant_id).filter(**scoped).count()
            moves += SegmentTransition.objects.for_tenant(tenant_id).filter(**scoped).count()
        counts = {
            str(Segment._meta.verbose_name_plural): len(segments),
            "memberships": members,
            "entries and exits": moves,
        }
        listed = [f"{s} ({s.get_kind_display()})" for s in segments]
        return listed, counts, perms_needed, []

    # --- refresh ------------------------------------------------------------------------
    @admin.action(description="Refresh membership now", permissions=["change"])
    def refresh_now(self, request, queryset):
        queued = sum(1 for segment in queryset if segment_refresh_enqueue(segment=segment))
        skipped = queryset.count() - queued
        note = (
            f" {skipped} tier segment(s) follow the RFM engine and were skipped." if skipped else ""
        )
        self.message_user(
            request,
            f"Refreshing {queued} segment(s); counts update when done.{note}",
            messages.SUCCESS if queued else messages.WARNING,
        )

    # --- the live member count ------------------------------------------------------------
    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path(
                "add-list/",
                self.admin_site.admin_view(self.add_list_view),
                name="segments_segment_add_list",
            ),
            path("add/preview/", preview, name="segments_segment_preview_add"),
            path("<path:object_id>/preview/", preview, name="segments_segment_preview"),
            *super().get_urls(),
        ]

    def add_list_view(self, request: HttpRequest) -> HttpResponse:
        """A list segment: no conditions, members are added and removed by
        journey steps (and the API). Made by ``list_segment_create``."""
        from segments.services.lists import list_segment_create

        tenant = getattr(request, "tenant", None)
        if tenant is None or not self.has_add_permission(request):
            raise PermissionDenied
        form = ListSegmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                segment = list_segment_create(
                    tenant=tenant, actor=request.user, **form.cleaned_data
                )
            except (InvalidInput, Conflict) as exc:
                for key, message in exc.fields.items():
                    form.add_error(key if key in form.fields else None, message)
                if not exc.fields:
                    form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"List segment “{segment.name}” created. Journey steps can now add "
                    "customers to it or remove them.",
                )
                return redirect(reverse("admin:segments_segment_change", args=[segment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Add list segment",
            "form": form,
        }
        return TemplateResponse(request, "admin/segments/segment/add_list.html", context)

    def changelist_view(self, request, extra_context=None):
        extra = {"may_add_list": getattr(request, "tenant", None) is not None}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> JsonResponse:
        """JSON for the builder: how many customers the conditions in the query
        string (``match``, ``conditions``) hold now, and a sample of them."""
        if request.method != "GET":
            return json_error(405, "method_not_allowed", "Use GET.")
        try:
            tenant_id = self._preview_tenant(request, object_id)
        except PermissionDenied:
            return json_error(403, "forbidden", "You may not look at this segment.")
        if tenant_id is None:
            return json_error(404, "not_found", "Not found.")
        if not self.has_change_permission(request) and object_id is not None:
            # Read-only roles see the stored rule's members, not rules of their own.
            segment = self.get_object(request, unquote(object_id))
            request.GET = request.GET.copy()
            request.GET["match"], request.GET["conditions"] = (
                segment.match,
                json.dumps(segment.conditions),
            )
        try:
            conditions = json.loads(request.GET.get("conditions") or "[]")
            preview = segment_preview(
                tenant_id,
                match=request.GET.get("match") or "all",
                conditions=conditions,
                sample=PREVIEW_SAMPLE,
            )
        except (ValueError, RecursionError):
            return json_error(
                422, "invalid", "Conditions are not valid JSON.", {"conditions": "Not JSON."}
            )
        except InvalidInput as exc:
            return json_error(exc.status, exc.code, exc.message, exc.fields)
        return JsonResponse(_preview_body(preview))

    def _preview_tenant(self, request: HttpRequest, object_id: str | None) -> int | None:
        if object_id is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
            return getattr(request.tenant, "pk", None)
        segment = self.get_object(request, unquote(object_id))
        if segment is None:
            return None  # another tenant's segment answers like a missing one
        if not self.has_view_or_change_permission(request, segment):
            raise PermissionDenied
        return segment.tenant_id

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        editable = add or self.has_change_permission(request, obj)
        preview, error = self._page_preview(context["adminform"].form, obj)
        context.update(
            segment_preview_panel=obj is not None or editable,
            segment_preview=_preview_body(preview) if preview else None,
            segment_preview_error=error,
            segment_preview_submit=editable,
            segment_preview_url=reverse(
                "admin:segments_segment_preview" if obj else "admin:segments_segment_preview_add",
                args=[obj.pk] if obj else [],
            ),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _page_preview(self, form, obj: Segment | None) -> tuple[Preview | None, str]:
        """The count shown when the page renders: the previewed form's, else the
        stored rule's (or tier's); none while a submitted form has errors."""
        if form.is_bound:
            return getattr(form, "preview", None), ""
        if obj is None:
            return None, ""
        match, conditions = obj.match, obj.conditions
        if obj.kind == SegmentKind.TIER:
            match, conditions = "all", [{"field": "tier", "op": "in", "value": [obj.tier]}]
        try:
            preview = segment_preview(
                obj.tenant_id, match=match, conditions=conditions, sample=PREVIEW_SAMPLE
            )
        except InvalidInput as exc:
            return None, exc.message
        return preview, ""


def _preview_body(preview: Preview) -> dict:
    body = preview.as_dict()
    for member in body["sample"]:
        member["url"] = reverse("admin:commerce_customer_change", args=[member["id"]])
    return body


def _tier_definition(segment: Segment) -> str:
    settings = segment_settings(segment.tenant_id)
    repeat = (
        f"at least {settings.repeat_min_orders} counted orders in the last "
        f"{settings.window_days} days"
    )
    rule = {
        Tier.HIGH_VALUE_REPEAT: f"{repeat} and a monetary score of "
        f"{settings.high_value_min_monetary_score} or more",
        Tier.MID_VALUE_REPEAT: f"{repeat} and a monetary score below "
        f"{settings.high_value_min_monetary_score}",
        Tier.ONE_TIME: f"fewer than {settings.repeat_min_orders} counted orders in the last "
        f"{settings.window_days} days",
    }.get(segment.tier, "")
    return format_html(
        "<p>{}</p><p>Members now: buyers with {}. Tiers follow the RFM engine (after each "
        "order and nightly) and the thresholds in the segment settings; they cannot be "
        "edited here.</p>",
        segment.description,
        rule,
    )


# --- settings ------------------------------------------------------------------------------


TIER_INPUTS = {"window_days", "repeat_min_orders", "high_value_min_monetary_score"}


@admin.register(SegmentSettings)
class SegmentSettingsAdmin(TenantAdmin):
    """The store's one settings row: the RFM window, tier thresholds, the night
    hour and the rising-interest alert settings. Created with the store."""

    list_display = ["store", "window_days", "repeat_min_orders", "nightly_hour", "last_full_at"]
    list_select_related = ["tenant"]
    fields = [
        "window_days",
        "repeat_min_orders",
        "high_value_min_monetary_score",
        "nightly_hour",
        "rising_threshold_pct",
        "rising_min_members",
        "score_boundaries",
        "last_full_at",
        "last_full_seconds",
        "updated_at",
    ]
    readonly_fields = ["score_boundaries", "last_full_at", "last_full_seconds", "updated_at"]

    @admin.display(description="store")
    def store(self, obj: SegmentSettings) -> str:
        return obj.tenant.name

    @admin.display(description="score boundaries (last full recompute)")
    def score_boundaries(self, obj: SegmentSettings) -> str:
        if not obj.boundaries:
            return "Not computed yet."
        return format_html("<pre>{}</pre>", json.dumps(obj.boundaries, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        obj.updated_at = clock.now()
        super().save_model(request, obj, form, change)
        if TIER_INPUTS & set(form.changed_data):
            from segments.tasks import recompute_tenant

            tenant_id = obj.tenant_id
            transaction.on_commit(lambda: recompute_tenant.delay(tenant_id))
            self.message_user(request, "Tiers and segments are being recomputed.")


# --- history -------------------------------------------------------------------------------


SegmentFilter = tenant_related_filter(Segment, "segment")


class CauseFilter(admin.SimpleListFilter):
    title = "cause"
    parameter_name = "cause"

    def lookups(self, request, model_admin):
        return [(c, c) for c in ("order", "recompute", "refresh", "merge", "consent", "touchpoint")]

    def queryset(self, request, queryset):
        return queryset.filter(cause=self.value()) if self.value() else queryset


@admin.register(SegmentTransition)
class SegmentTransitionAdmin(TenantAdmin):
    """Every entry into and exit from a segment, newest first; read-only."""

    list_display = ["at", "segment", "customer_link", "kind", "cause"]
    # No date drill-down or distinct-value filters: each would scan the
    # tenant's whole history on every page.
    list_filter = [SegmentFilter, "kind", "at", CauseFilter]
    search_fields = ["customer__email"]
    list_select_related = ["segment", "customer"]
    show_full_result_count = False

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj: SegmentTransition) -> str:
        url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


from segments import alerts_admin  # noqa: E402,F401
