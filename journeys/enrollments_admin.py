"""Admin screens for enrollments: who is in which journey, filtered by journey,
status and test; an enrollment's page with every step it took (and the message
each sent); and stopping enrollments, one from its page or several from the
list, each behind a confirmation and through ``enrollment_stop``.

Read-only otherwise: enrollments change only through the engine. Imported by
``journeys.admin``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from journeys import selectors
from journeys.models import Enrollment, EnrollmentStatus, Journey
from retention.admin_base import TenantAdmin, member_can, readonly_everything, tenant_related_filter
from retention.errors import DomainError
from retention.models import Capability

JourneyFilter = tenant_related_filter(Journey, "journey")
# Under way: held-out customers walk the steps too (sent nothing) until they finish.
STOPPABLE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT)


def _under_way(enrollment: Enrollment) -> bool:
    return enrollment.status in STOPPABLE and enrollment.finished_at is None


def _stop(enrollment: Enrollment, actor) -> bool:
    from journeys.services.engine import enrollment_stop

    return enrollment_stop(enrollment=enrollment, reason="manual", actor=actor)


@admin.register(Enrollment)
class EnrollmentAdmin(TenantAdmin):
    list_display = ["id", "customer_link", "journey", "version_number", "status"]
    list_display += ["next_step", "next_run_at", "entered_at", "exit_reason", "is_test"]
    list_filter = [JourneyFilter, "status", "is_test"]
    search_fields = ["=customer__email"]
    list_select_related = ["customer", "journey", "version"]
    show_full_result_count = False
    actions = ["stop_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "journey_link",
                    "version_number",
                    "customer_link",
                    "status",
                    "is_test",
                    "stop_link",
                ]
            },
        ),
        ("Trigger", {"fields": ["trigger_key", "trigger_at", "context"]}),
        (
            "Progress",
            {
                "fields": [
                    "next_step",
                    "next_run_at",
                    "last_step_at",
                    "entered_at",
                    "finished_at",
                    "exit_reason",
                    "attempts",
                    "last_error",
                ]
            },
        ),
        ("Steps taken", {"fields": ["runs_table"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        extra = ["journey_link", "version_number", "customer_link", "stop_link", "next_step"]
        return [*readonly_everything(Enrollment), *extra, "runs_table"]

    # --- columns ------------------------------------------------------------------------
    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj: Enrollment) -> str:
        url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="journey")
    def journey_link(self, obj: Enrollment) -> str:
        url = reverse("admin:journeys_journey_change", args=[obj.journey_id])
        return format_html('<a href="{}">{}</a>', url, obj.journey)

    @admin.display(description="version")
    def version_number(self, obj: Enrollment) -> str:
        return f"v{obj.version.number}"

    @admin.display(description="next step", ordering="position")
    def next_step(self, obj: Enrollment) -> str:
        if not _under_way(obj):
            return "—"
        return str(obj.position)

    @admin.display(description="stop")
    def stop_link(self, obj: Enrollment) -> str:
        if not _under_way(obj):
            return "Not under way."
        url = reverse("admin:journeys_enrollment_stop", args=[obj.pk])
        return format_html('<a class="button" href="{}">Stop this enrollment…</a>', url)

    @admin.display(description="steps taken")
    def runs_table(self, obj: Enrollment) -> str:
        runs = selectors.enrollment_runs(obj)
        if not runs:
            return "None yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}. {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    run.at.strftime("%Y-%m-%d %H:%M"),
                    run.step.position,
                    run.step.name,
                    run.variant or "—",
                    run.get_outcome_display(),
                    _message_cell(run),
                    run.detail or "",
                )
                for run in runs
            ),
        )
        return format_html(
            '<table class="journey-runs"><thead><tr><th>at</th><th>step</th><th>variant</th>'
            "<th>outcome</th><th>message</th><th>detail</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- roles: read-only; stopping takes the configure capability ------------------------
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_stop_permission(self, request, obj=None) -> bool:
        return member_can(request, Capability.CONFIGURE) and self._owns(request, obj)

    # --- stopping -------------------------------------------------------------------------
    @admin.action(description="Stop the selected enrollments", permissions=["stop"])
    def stop_selected(self, request: HttpRequest, queryset):
        chosen = list(
            queryset.filter(status__in=STOPPABLE, finished_at__isnull=True).select_related(
                "customer", "journey"
            )
        )
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Stop these enrollments?",
                "enrollments": chosen,
                "selected": [e.pk for e in chosen],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/journeys/enrollment/confirm_stop_selected.html", context
            )
        stopped = sum(1 for enrollment in chosen if _stop(enrollment, request.user))
        self.message_user(
            request, f"Stopped {stopped} enrollment{'s' if stopped != 1 else ''}.", messages.SUCCESS
        )
        return None

    def get_urls(self):
        return [
            path(
                "<path:object_id>/stop/",
                self.admin_site.admin_view(self.stop_view),
                name="journeys_enrollment_stop",
            ),
            *super().get_urls(),
        ]

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        enrollment = self.get_object(request, unquote(object_id))
        if enrollment is None:
            raise Http404("No such enrollment.")  # another store's, or missing
        if not self.has_stop_permission(request, enrollment):
            raise PermissionDenied
        back = reverse("admin:journeys_enrollment_change", args=[enrollment.pk])
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                stopped = _stop(enrollment, request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                if stopped:
                    self.message_user(request, "The enrollment is stopped.", messages.SUCCESS)
                else:
                    self.message_user(request, "It was no longer under way.", messages.WARNING)
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Stop {enrollment.customer} in “{enrollment.journey}”?",
            "enrollment": enrollment,
            "under_way": _under_way(enrollment),
            "back": back,
        }
        return TemplateResponse(request, "admin/journeys/enrollment/confirm_stop.html", context)


def _message_cell(run) -> str:
    if run.message_id is None:
        return "—"
    url = reverse("admin:messaging_message_change", args=[run.message_id])
    status = run.message.get_status_display() if run.message is not None else ""
    return format_html('<a href="{}">#{}</a> {}', url, run.message_id, status)
