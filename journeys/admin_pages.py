"""The journey admin's pages besides the journey page and the edit form:

- activate / pause / archive, each behind a confirmation page (the change
  happens on a POST carrying ``confirm``, never on a GET);
- moving a version's in-flight enrollments to the current version (confirmed);
- a step's template preview for a real customer of the store;
- test mode: what a chosen customer would receive and when, and enrolling
  them for real (confirmed).

A mixin of ``JourneyAdmin`` (``journeys.admin``), which supplies the lookups
(``journey_or_404``, ``require_change``) and ``render_page``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.timesince import timeuntil

from commerce.models import Channel
from journeys import selectors
from journeys.flow import condition_text, step_sends
from journeys.models import Journey, JourneyStatus
from retention import clock
from retention.errors import DomainError, InvalidInput

CHANNEL_LABELS = dict(Channel.choices)
STATUS_NOTES = {
    JourneyStatus.ACTIVE: "Customers the trigger fires for from now on enter the journey, and "
    "paused customers carry on where they stopped (steps that fell due meanwhile run now).",
    JourneyStatus.PAUSED: "No steps run and nobody new enters while the journey is paused. "
    "Customers under way wait where they are and carry on when it is activated again.",
    JourneyStatus.ARCHIVED: "Nobody new enters, and customers under way leave the journey "
    "(recorded as exited, reason “archived”). An archived journey cannot be activated or "
    "edited again.",
}


def customer_zone(customer, tenant) -> ZoneInfo:
    for name in (customer.timezone, tenant.timezone, "UTC"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            continue
    return ZoneInfo("UTC")


class JourneyPagesMixin:
    def page_urls(self, wrap) -> list:
        return [
            path(
                "<path:object_id>/status/<slug:status>/",
                wrap(self.status_view),
                name="journeys_journey_status",
            ),
            path(
                "<path:object_id>/versions/<int:version_id>/migrate/",
                wrap(self.migrate_view),
                name="journeys_journey_migrate",
            ),
            path(
                "<path:object_id>/steps/<int:step_id>/preview/",
                wrap(self.step_preview_view),
                name="journeys_journey_step_preview",
            ),
            path("<path:object_id>/test/", wrap(self.test_view), name="journeys_journey_test"),
        ]

    # --- activate, pause, archive -----------------------------------------------------
    def status_view(self, request: HttpRequest, object_id: str, status: str) -> HttpResponse:
        from journeys.services.definitions import journey_set_status

        journey = self.journey_or_404(request, object_id)
        if status not in STATUS_NOTES:
            raise Http404("No such status.")
        self.require_change(request, journey)
        verb = {"active": "Activate", "paused": "Pause", "archived": "Archive"}[status]
        if journey.status == JourneyStatus.PAUSED and status == JourneyStatus.ACTIVE:
            verb = "Resume"
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                journey_set_status(journey=journey, status=status, actor=request.user)
            except InvalidInput as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                done = {"active": "is active", "paused": "is paused", "archived": "is archived"}
                self.message_user(request, f"“{journey.name}” {done[status]}.", messages.SUCCESS)
            return HttpResponseRedirect(self.page_url(journey))
        counts = selectors.journey_counts(journey.tenant_id, [journey.pk])[journey.pk]
        context = {
            "title": f"{verb} “{journey.name}”?",
            "verb": verb,
            "note": STATUS_NOTES[status],
            "under_way": counts["active"] + counts["held_out"],
            "possible": status != journey.status,
            "action_url": reverse("admin:journeys_journey_status", args=[journey.pk, status]),
        }
        return self.render_page(request, "confirm_status.html", context, journey)

    # --- moving enrollments to the current version ---------------------------------------
    def migrate_view(self, request: HttpRequest, object_id: str, version_id: int) -> HttpResponse:
        from journeys.services.definitions import enrollments_migrate

        journey = self.journey_or_404(request, object_id)
        version = selectors.version_get(journey, version_id)
        if version is None:
            raise Http404("No such version.")
        self.require_change(request, journey)
        target = journey.current_version
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                moved = enrollments_migrate(
                    journey=journey, from_version=version, to_version=target, actor=request.user
                )
            except InvalidInput as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Moved {moved} customer{'s' if moved != 1 else ''} from version "
                    f"{version.number} to version {target.number}.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(self.page_url(journey))
        in_flight = next(
            (v.in_flight for v in selectors.version_list(journey) if v.pk == version.pk), 0
        )
        context = {
            "title": f"Move customers from version {version.number} to {target.number}?",
            "from_version": version,
            "to_version": target,
            "in_flight": in_flight,
            "action_url": reverse("admin:journeys_journey_migrate", args=[journey.pk, version.pk]),
        }
        return self.render_page(request, "confirm_migrate.html", context, journey)

    # --- a step's templates for a real customer ----------------------------------------------
    def step_preview_view(self, request: HttpRequest, object_id: str, step_id: int) -> HttpResponse:
        from messaging.services.templates import sms_segments, template_preview

        journey = self.journey_or_404(request, object_id)
        step = selectors.step_get(journey, step_id)
        if step is None:
            raise Http404("No such step.")
        lookup = request.GET.get("customer", "")
        customer, error = selectors.customer_pick(tenant=journey.tenant, lookup=lookup)
        previews = []
        sends, _ = step_sends(step)
        for send in sends:
            content, problem = None, ""
            if customer is not None:
                try:
                    content = template_preview(template=send.template, customer=customer)
                except DomainError as exc:
                    problem = exc.message
            sms = sms_segments(content.text) if content and send.channel == "sms" else None
            previews.append({"send": send, "content": content, "error": problem, "sms": sms})
        context = {
            "title": f"Preview: step {step.position}, {step.name}",
            "step": step,
            "lookup": lookup if lookup else (customer.pk if customer else ""),
            "customer": customer,
            "error": error,
            "previews": previews,
        }
        return self.render_page(request, "step_preview.html", context, journey)

    # --- test mode ------------------------------------------------------------------------
    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from journeys.services.engine import journey_test_enroll

        journey = self.journey_or_404(request, object_id)
        posted = request.method == "POST"
        if posted:
            self.require_change(request, journey)
        params = request.POST if posted else request.GET
        lookup = params.get("customer", "")
        customer, error = selectors.customer_pick(tenant=journey.tenant, lookup=lookup)
        if posted and customer is not None and params.get("confirm") == "yes":
            try:
                enrollment = journey_test_enroll(
                    journey=journey, customer=customer, actor=request.user
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{customer} is enrolled in “{journey.name}” as a test; the steps below "
                    "run on their schedule.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:journeys_enrollment_change", args=[enrollment.pk])
                )
        plan, plan_error = [], ""
        if customer is not None and journey.current_version_id:
            plan, plan_error = _plan(journey, customer)
        context = {
            "title": f"Test mode: {journey.name}",
            "lookup": lookup if lookup else (customer.pk if customer else ""),
            "customer": customer,
            "error": error or plan_error,
            "plan": plan,
            "confirming": posted and customer is not None,
            "may_enroll": self.has_change_permission(request, journey)
            and journey.status != JourneyStatus.ARCHIVED,
            "zone": customer_zone(customer, journey.tenant) if customer else None,
            "test_enrollments": (
                selectors.enrollments_of_customer(journey, customer).filter(is_test=True)[:10]
                if customer is not None
                else []
            ),
        }
        return self.render_page(request, "test.html", context, journey)


def _plan(journey: Journey, customer) -> tuple[list[dict], str]:
    """The customer's planned steps as rows for the page, or an error to show."""
    from journeys.services.engine import journey_plan

    now = clock.now()
    try:
        planned = journey_plan(version=journey.current_version, customer=customer, trigger_at=now)
    except DomainError as exc:
        return [], exc.message
    zone = customer_zone(customer, journey.tenant)
    names = selectors.segment_names(
        journey.tenant_id, [p.step.condition_value for p in planned if p.step.condition_value]
    )
    rows = []
    for item in planned:
        at: datetime | None = item.at
        content = item.content
        note = item.note or ""
        if item.step.condition:
            # The flow picture's wording, with the segment's name.
            note = f"Only if the customer {condition_text(item.step, names)}."
        if item.variant:
            note = f"Variant {item.variant}. {note}".strip()
        rows.append(
            {
                "step": item.step,
                "at": at.astimezone(zone) if at else None,
                # Formatted here: the date filter would show the admin's timezone.
                "when": _local(at.astimezone(zone)) if at else "",
                "in": f"in {timeuntil(at, now)}" if at and at > now else "now",
                "channel": CHANNEL_LABELS.get(item.channel, item.channel or ""),
                "subject": content.subject if content else "",
                "text": content.text if content else "",
                "note": note,
            }
        )
    return rows, ""


def _local(at: datetime) -> str:
    return f"{at:%a} {at.day} {at:%b %Y, %H:%M}"
