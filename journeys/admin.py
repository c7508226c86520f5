"""Admin screens for journeys, for a store's marketers.

- The list: each journey's status, current version, trigger and numbers
  (entered, active, completed, exited, held out: one grouped query per page).
- The journey page (the change view): a picture of the flow, the steps with
  their figures from the outbox, the version's settings, older versions with
  their customers in flight, and the status buttons.
- The edit page and the add page: the version's settings and its steps in one
  form, saved through ``journeys.services.definitions`` (a journey with
  enrollments gets a new version).
- Confirmation pages for activate / pause / archive and for moving in-flight
  enrollments to the current version, a per-step template preview and the
  test mode (``journeys.admin_pages``); enrollments (``journeys.enrollments_admin``).

Everyone in the store may look; changing anything takes the configure
capability (owners and marketers). The screens call services and selectors and
hold no rules of their own.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from journeys import selectors
from journeys.admin_pages import JourneyPagesMixin
from journeys.flow import flow_of, trigger_text
from journeys.forms import (
    JourneyNameForm,
    StepFormSet,
    VariantFormSet,
    VersionForm,
    add_service_errors,
    definition_from_forms,
    initial_from_spec,
)
from journeys.models import Journey, JourneyStatus
from retention.admin_base import TenantAdmin
from retention.errors import InvalidInput

# The buttons a status offers, in the order shown (the service decides).
STATUS_BUTTONS = {
    JourneyStatus.DRAFT: [JourneyStatus.ACTIVE, JourneyStatus.ARCHIVED],
    JourneyStatus.ACTIVE: [JourneyStatus.PAUSED, JourneyStatus.ARCHIVED],
    JourneyStatus.PAUSED: [JourneyStatus.ACTIVE, JourneyStatus.ARCHIVED],
    JourneyStatus.ARCHIVED: [],
}
STATUS_VERBS = {
    JourneyStatus.ACTIVE: "Activate",
    JourneyStatus.PAUSED: "Pause",
    JourneyStatus.ARCHIVED: "Archive",
}


class JourneyChangeList(ChangeList):
    """Attaches each listed journey's numbers after the page is fetched: one
    grouped query for the page (per store, in the operators' all-stores view)."""

    def get_results(self, request):
        super().get_results(request)
        by_tenant: dict[int, list[int]] = {}
        for journey in self.result_list:
            by_tenant.setdefault(journey.tenant_id, []).append(journey.pk)
        counts: dict[int, dict[str, int]] = {}
        for tenant_id, ids in by_tenant.items():
            counts.update(selectors.journey_counts(tenant_id, ids))
        for journey in self.result_list:
            journey.figures = counts[journey.pk]


def _count(key: str, label: str):
    def column(self, obj: Journey) -> int:
        return getattr(obj, "figures", {}).get(key, 0)

    column.__name__ = key
    return admin.display(description=label)(column)


@admin.register(Journey)
class JourneyAdmin(JourneyPagesMixin, TenantAdmin):
    list_display = ["name", "status_label", "version_number", "trigger"]
    list_display += ["entered", "active", "completed", "exited", "held_out"]
    list_filter = ["status"]
    search_fields = ["name"]
    list_select_related = ["current_version", "current_version__segment"]
    show_full_result_count = False
    # The add page and the change view's POST: the journey's name and
    # description only. The definition has its own page (``edit_view``) and
    # the status its confirmed buttons.
    form = JourneyNameForm

    entered = _count("entered", "entered")
    active = _count("active", "active")
    completed = _count("completed", "completed")
    exited = _count("exited", "exited")
    held_out = _count("held_out", "held out")

    class Media:
        css = {"all": ["journeys/journeys.css"]}

    def get_changelist(self, request, **kwargs):
        return JourneyChangeList

    @admin.display(description="status", ordering="status")
    def status_label(self, obj: Journey) -> str:
        return format_html(
            '<span class="journey-status journey-status-{}">{}</span>',
            obj.status,
            obj.get_status_display(),
        )

    @admin.display(description="version")
    def version_number(self, obj: Journey) -> str:
        return f"v{obj.current_version.number}" if obj.current_version_id else "—"

    @admin.display(description="trigger")
    def trigger(self, obj: Journey) -> str:
        return trigger_text(obj.current_version)

    # --- roles: a journey that ran is archived, not deleted --------------------------
    def has_delete_permission(self, request, obj=None) -> bool:
        deletable = obj is None or obj.status == JourneyStatus.DRAFT
        return deletable and super().has_delete_permission(request, obj)

    # --- urls ------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/edit/", wrap(self.edit_view), name="journeys_journey_edit"),
            *self.page_urls(wrap),
            *super().get_urls(),
        ]

    # --- lookups shared by every page ------------------------------------------------
    def journey_or_404(self, request: HttpRequest, object_id: str) -> Journey:
        journey = self.get_object(request, unquote(object_id))
        if journey is None:
            raise Http404("No such journey.")  # another store's, or missing
        if not self.has_view_or_change_permission(request, journey):
            raise PermissionDenied
        return journey

    def require_change(self, request: HttpRequest, journey: Journey) -> None:
        if not self.has_change_permission(request, journey):
            raise PermissionDenied

    def page_url(self, journey: Journey) -> str:
        return reverse("admin:journeys_journey_change", args=[journey.pk])

    def render_page(
        self, request: HttpRequest, template: str, context: dict, journey: Journey | None = None
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "journey": journey,
            "page_url": self.page_url(journey) if journey is not None else "",
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"admin/journeys/journey/{template}", context)

    # --- the journey page ------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            # Renaming: Django's change form (fields above), audited by TenantAdmin.
            return super().change_view(request, object_id, form_url, extra_context)
        journey = self.journey_or_404(request, object_id)
        versions = selectors.version_list(journey)
        shown = journey.current_version
        wanted = request.GET.get("version", "")
        if wanted:
            shown = next((v for v in versions if str(v.number) == wanted), None)
            if shown is None:
                raise Http404("No such version.")
        if shown is not None:
            shown = selectors.version_get(journey, shown.pk)
        flow, figures = None, {}
        if shown is not None:
            steps = selectors.version_steps(shown)
            names = selectors.segment_names(
                journey.tenant_id, [s.condition_value for s in steps if s.condition_value]
            )
            flow = flow_of(shown, steps, names)
            figures = selectors.step_figures(journey.tenant_id, shown.pk)
            for item in flow.steps:
                item.figures = figures.get(item.step.pk, {})
        may_change = self.has_change_permission(request, journey)
        context = {
            "title": journey.name,
            "version": shown,
            "is_current": shown is not None and shown.pk == journey.current_version_id,
            "flow": flow,
            "versions": versions,
            "counts": selectors.journey_counts(journey.tenant_id, [journey.pk])[journey.pk],
            "may_change": may_change,
            "buttons": _status_buttons(journey) if may_change else [],
            "may_edit": may_change and journey.status != JourneyStatus.ARCHIVED,
            "settings_rows": _settings_rows(shown, flow) if shown is not None else [],
            "enrollments_url": reverse("admin:journeys_enrollment_changelist")
            + f"?journey={journey.pk}",
        }
        return self.render_page(request, "page.html", context, journey)

    # --- name and description: the add page, and the change view's POST ----------------
    def get_fields(self, request, obj=None):
        operator_add = obj is None and self._is_operator_view(request)
        return (["tenant"] if operator_add else []) + ["name", "description"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_id = obj.tenant_id if obj is not None else getattr(request.tenant, "pk", None)
        return form

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"“{obj.name}” is a draft: now choose its trigger and steps.")
        return HttpResponseRedirect(reverse("admin:journeys_journey_edit", args=[obj.pk]))

    def response_change(self, request, obj):
        self.message_user(request, f"“{obj.name}” is saved.", messages.SUCCESS)
        return HttpResponseRedirect(self.page_url(obj))

    # --- editing the definition --------------------------------------------------------
    def edit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        journey = self.journey_or_404(request, object_id)
        self.require_change(request, journey)
        if journey.status == JourneyStatus.ARCHIVED:
            self.message_user(request, "An archived journey cannot be changed.", messages.ERROR)
            return HttpResponseRedirect(self.page_url(journey))
        return self._definition_form(request, journey=journey)

    def _definition_form(self, request: HttpRequest, *, journey: Journey) -> HttpResponse:
        from journeys.services.definitions import journey_update, version_as_spec

        tenant = journey.tenant
        current = journey.current_version
        spec = version_as_spec(current) if current is not None else ({}, [])
        version_initial, step_initial, variant_initial = initial_from_spec(*spec)
        data = request.POST if request.method == "POST" else None
        growing = data is not None and ("_add_step" in data or "_add_variant" in data)
        if growing:
            # Without script: one more empty row, and the page again, unsaved.
            data = data.copy()
            key = "steps-TOTAL_FORMS" if "_add_step" in data else "variants-TOTAL_FORMS"
            total = data.get(key) or "0"
            data[key] = str(int(total) + 1) if total.isdigit() and len(total) < 4 else total
        kwargs = {"form_kwargs": {"tenant_id": tenant.pk}}
        version_form = VersionForm(data, initial=version_initial, tenant_id=tenant.pk)
        steps = StepFormSet(data, initial=step_initial, prefix="steps", **kwargs)
        variants = VariantFormSet(data, initial=variant_initial, prefix="variants", **kwargs)
        loose: list[str] = []
        forms_ok = all(f.is_valid() for f in (version_form, steps, variants))
        if request.method == "POST" and not growing and forms_ok:
            definition = definition_from_forms(version_form, steps, variants)
            if definition is not None:
                try:
                    saved = journey_update(
                        journey=journey,
                        version=definition.version,
                        steps=definition.steps,
                        actor=request.user,
                        note=definition.note,
                    )
                    self.message_user(request, _saved_message(journey, current, saved))
                    return HttpResponseRedirect(self.page_url(journey))
                except InvalidInput as exc:
                    loose = add_service_errors(
                        exc.fields or {"version": [exc.message]},
                        definition=definition,
                        version_form=version_form,
                    )
        context = {
            "title": f"Edit {journey.name}",
            "version_form": version_form,
            "steps": steps,
            "variants": variants,
            "loose_errors": loose,
            "current": current,
            "has_errors": request.method == "POST",
        }
        return self.render_page(request, "edit.html", context, journey)


def _status_buttons(journey: Journey) -> list[tuple[str, str]]:
    verbs = dict(STATUS_VERBS)
    if journey.status == JourneyStatus.PAUSED:
        verbs[JourneyStatus.ACTIVE] = "Resume"
    return [(verbs[status], status) for status in STATUS_BUTTONS[JourneyStatus(journey.status)]]


def _saved_message(journey: Journey, before, saved) -> str:
    if before is None or saved.pk == before.pk:
        return f"Saved version {saved.number}."
    waiting = next((v.in_flight for v in selectors.version_list(journey) if v.pk == before.pk), 0)
    message = f"Saved as version {saved.number}, now current."
    if waiting:
        message += (
            f" {waiting} customer{'s' if waiting != 1 else ''} under way "
            f"{'finish' if waiting != 1 else 'finishes'} version "
            f"{before.number}; move them from the versions list if they should switch."
        )
    return message


def _settings_rows(version, flow) -> list[tuple[str, str]]:
    rows = [
        ("Trigger", flow.trigger),
        ("Who may enter", "; ".join(flow.entry) or "everyone the trigger fires for"),
        ("Enters", flow.reentry),
        ("Leaving early", flow.exits_sentence),
        ("Holdout", flow.holdout or "none"),
        ("Sends as", f"{version.category.capitalize()} messages"),
    ]
    if version.note:
        rows.append(("Note", version.note))
    return rows


from journeys import enrollments_admin  # noqa: E402,F401  (registers EnrollmentAdmin)
