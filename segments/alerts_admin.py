"""Admin screens for rising-interest alerts and who gets them by email.

- Alerts: everyone in the tenant sees them (read-only); owners and marketers
  acknowledge them (an action). The list carries an "Email me rising-interest
  alerts" / "Stop emailing me" button for owners.
- Alert emails: owners see who gets the emails (and whether each is still an
  owner, which the email requires at send time).

Imported by ``segments/admin.py``; actions and buttons call
``segments.services.alerts``, nothing more.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from retention.admin_base import TenantAdmin, member_can, tenant_related_filter
from retention.models import Capability, Membership, Role
from retention.services import audit_record
from segments.models import AlertSubscription, RisingInterestAlert, Segment
from segments.services.alerts import (
    EVENT_KINDS,
    alert_acknowledge,
    alert_subscribe,
    alert_unsubscribe,
)


def _is_owner(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return (
        request.user.is_active
        and getattr(request, "tenant", None) is not None
        and membership is not None
        and membership.tenant_id == request.tenant.pk
        and membership.role == Role.OWNER
    )


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("no", "Not yet"), ("yes", "Acknowledged")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


SegmentFilter = tenant_related_filter(Segment, "segment")


@admin.register(RisingInterestAlert)
class RisingInterestAlertAdmin(TenantAdmin):
    list_display = [
        "segment",
        "day",
        "members",
        "current_vs_baseline",
        "rise",
        "acknowledged",
        "emailed",
    ]
    list_filter = [AcknowledgedFilter, ("day", admin.DateFieldListFilter), SegmentFilter]
    list_select_related = ["segment"]
    date_hierarchy = "day"
    fields = [
        "segment",
        "day",
        "members",
        "current_vs_baseline",
        "rise",
        "breakdown_table",
        "raised_at",
        "emailed_to",
        "acknowledged_at",
    ]
    readonly_fields = fields
    actions = ["acknowledge_selected"]
    change_list_template = "segments/alerts_change_list.html"

    @admin.display(description="per member: last 7 days vs weekly before")
    def current_vs_baseline(self, obj: RisingInterestAlert) -> str:
        return f"{obj.current_per_member:.2f} vs {obj.baseline_per_member:.2f}"

    @admin.display(description="rise", ordering="rise_pct")
    def rise(self, obj: RisingInterestAlert) -> str:
        if obj.breakdown.get("baseline_zero"):
            return "new (nothing before)"
        return f"+{obj.rise_pct:.0f}%"

    @admin.display(description="acknowledged", boolean=True, ordering="acknowledged_at")
    def acknowledged(self, obj: RisingInterestAlert) -> bool:
        return obj.acknowledged_at is not None

    @admin.display(description="emailed to")
    def emailed(self, obj: RisingInterestAlert) -> int:
        return len(obj.emailed_to or [])

    @admin.display(description="events")
    def breakdown_table(self, obj: RisingInterestAlert) -> str:
        current = obj.breakdown.get("current", {})
        baseline = obj.breakdown.get("baseline", {})
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((kind, current.get(kind, 0), baseline.get(kind, 0)) for kind in EVENT_KINDS),
        )
        return format_html(
            "<table><thead><tr><th>event</th><th>last 7 days</th><th>4 weeks before</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- acknowledge -------------------------------------------------------------
    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge_selected(self, request, queryset):
        done = sum(1 for alert in queryset if alert_acknowledge(alert, user=request.user))
        self.message_user(request, f"{done} alerts acknowledged.", messages.SUCCESS)

    def has_acknowledge_permission(self, request) -> bool:
        return member_can(request, Capability.CONFIGURE)

    # Alerts are raised by the check, never by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- "Email me rising-interest alerts" -------------------------------------------
    def get_urls(self):
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path(
                "email-me/",
                self.admin_site.admin_view(self.email_me_view),
                name="{}_{}_email_me".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if _is_owner(request):
            extra_context["alert_email"] = {
                "url": reverse(f"{self.admin_site.name}:segments_risinginterestalert_email_me"),
                "subscribed": AlertSubscription.objects.for_tenant(request.tenant)
                .filter(user_id=request.user.pk)
                .exists(),
            }
        return super().changelist_view(request, extra_context)

    def email_me_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not _is_owner(request):
            raise PermissionDenied("Only owners can receive rising-interest alerts by email.")
        tenant, user = request.tenant, request.user
        if request.POST.get("subscribe") == "1":
            subscription = alert_subscribe(tenant=tenant, user=user)
            audit_record(tenant=tenant, action="create", obj=subscription, user=user)
            self.message_user(
                request,
                f"Rising-interest alerts will be emailed to {user.email}.",
                messages.SUCCESS,
            )
        else:
            existing = AlertSubscription.objects.for_tenant(tenant).filter(user_id=user.pk).first()
            if existing is not None and alert_unsubscribe(tenant=tenant, user=user):
                audit_record(tenant=tenant, action="delete", obj=existing, user=user)
            self.message_user(
                request, f"Rising-interest alerts are no longer emailed to {user.email}."
            )
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:segments_risinginterestalert_changelist")
        )


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(TenantAdmin):
    """Who gets rising-interest alerts by email. Owners only; each owner opts in
    or out with the button on the alerts list."""

    list_display = ["user", "still_owner", "created_at"]
    list_select_related = ["user"]
    fields = ["user", "still_owner", "created_at"]
    readonly_fields = fields
    view_capability = Capability.MANAGE_TEAM
    edit_capability = Capability.MANAGE_TEAM

    def get_queryset(self, request):
        owner = Membership.objects.unscoped().filter(
            # Correlated to the outer row's tenant, so it is scoped with it.
            tenant_id=OuterRef("tenant_id"),
            user_id=OuterRef("user_id"),
            role=Role.OWNER,
        )
        return super().get_queryset(request).annotate(is_owner=Exists(owner))

    @admin.display(description="gets the emails (still an owner)", boolean=True)
    def still_owner(self, obj: AlertSubscription) -> bool:
        return bool(getattr(obj, "is_owner", False))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
