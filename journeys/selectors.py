"""Reads for journeys: the list's per-journey numbers, a version's steps with
what they need to be drawn, versions with their customers in flight, per-step
figures from the outbox, an enrollment's step runs, and the customer the
admin's previews and test mode use.

Every function reads through the tenant-scoped managers with the tenant it is
given. The figures are set-based: one grouped query per kind of number for a
whole page or version, never a query per row.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce

from commerce.models import Customer, Order
from commerce.selectors import COUNTED_ORDER_STATUSES, customer_get, customer_list
from journeys.models import (
    Enrollment,
    EnrollmentStatus,
    Journey,
    JourneyStep,
    JourneyVersion,
    StepOutcome,
    StepRun,
    StepVariant,
)
from messaging.models import SENT_LIKE, Status
from retention.errors import NotFound
from retention.models import Tenant
from segments.models import Segment

# An order placed this long after a message counts as a conversion of it.
CONVERSION_WINDOW = timedelta(days=7)
# In flight: what enrollments_migrate moves (held-out customers walk the steps too).
IN_FLIGHT = (EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT)
COUNT_KEYS = ("entered", "active", "completed", "exited", "held_out", "failed")
FIGURE_KEYS = (
    "runs",
    "messages",
    "waiting",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "converted",
    "suppressed",
    "held_out",
    "skipped",
    "no_content",
    "done",
    "failed",
)
_PENDING = (Status.QUEUED, Status.DEFERRED, Status.SENDING)
_DELIVERED = (Status.DELIVERED, Status.OPENED, Status.CLICKED)
_OPENED = (Status.OPENED, Status.CLICKED)
_NOT_SENT = (Status.SUPPRESSED, Status.FAILED)
_OUTCOME_KEYS = {
    StepOutcome.HELD_OUT: "held_out",
    StepOutcome.SKIPPED: "skipped",
    StepOutcome.NO_CONTENT: "no_content",
    StepOutcome.DONE: "done",
    StepOutcome.FAILED: "failed",
}


# --- journeys --------------------------------------------------------------------


def journey_counts(tenant_id: int, journey_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per journey: how many customers entered (every real enrollment, held-out
    ones included), and how many are active, completed, exited, held out and
    failed now. Test enrollments are left out. One grouped query."""
    counts = {pk: dict.fromkeys(COUNT_KEYS, 0) for pk in journey_ids}
    if not journey_ids:
        return counts
    rows = (
        Enrollment.objects.for_tenant(tenant_id)
        .filter(journey_id__in=journey_ids, is_test=False)
        .values("journey_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        numbers = counts[row["journey_id"]]
        numbers["entered"] += row["n"]
        if row["status"] in numbers:
            numbers[row["status"]] += row["n"]
    return counts


def version_list(journey: Journey) -> list[JourneyVersion]:
    """The journey's versions, newest first, each with ``in_flight``: its
    enrollments still under way (what "migrate" would move). Two queries."""
    versions = list(
        JourneyVersion.objects.for_tenant(journey.tenant_id)
        .filter(journey_id=journey.pk)
        .order_by("-number")
    )
    in_flight = dict(
        Enrollment.objects.for_tenant(journey.tenant_id)
        .filter(journey_id=journey.pk, status__in=IN_FLIGHT, finished_at__isnull=True)
        .values("version_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("version_id", "n")
    )
    for version in versions:
        version.in_flight = in_flight.get(version.pk, 0)
    return versions


def version_get(journey: Journey, version_id: object) -> JourneyVersion | None:
    try:
        pk = int(str(version_id))
    except ValueError:
        return None
    return (
        JourneyVersion.objects.for_tenant(journey.tenant_id)
        .filter(journey_id=journey.pk, pk=pk)
        .select_related("segment", "entry_segment", "exit_segment")
        .first()
    )


def version_steps(version: JourneyVersion) -> list[JourneyStep]:
    """The version's steps in order, with their templates, segment and variants
    (and theirs) loaded: what the flow picture needs, in two queries."""
    tenant_id = version.tenant_id
    templates = ("email_template", "sms_template", "in_app_template")
    variants = StepVariant.objects.for_tenant(tenant_id).select_related(*templates)
    return list(
        JourneyStep.objects.for_tenant(tenant_id)
        .filter(version_id=version.pk)
        .select_related(*templates, "action_segment")
        .prefetch_related(Prefetch("variants", queryset=variants))
        .order_by("position")
    )


def step_get(journey: Journey, step_id: object) -> JourneyStep | None:
    """A step of any version of this journey, or None."""
    try:
        pk = int(str(step_id))
    except ValueError:
        return None
    templates = ("email_template", "sms_template", "in_app_template")
    variants = StepVariant.objects.for_tenant(journey.tenant_id).select_related(*templates)
    return (
        JourneyStep.objects.for_tenant(journey.tenant_id)
        .filter(pk=pk, version__journey_id=journey.pk)
        .select_related("version", *templates)
        .prefetch_related(Prefetch("variants", queryset=variants))
        .first()
    )


def segment_names(tenant_id: int, ids: list[object]) -> dict[str, str]:
    """Segment names by id (as text: a step's ``condition_value`` holds one)."""
    wanted = {int(i) for i in ids if str(i).isdigit()}
    if not wanted:
        return {}
    rows = Segment.objects.for_tenant(tenant_id).filter(pk__in=wanted).values_list("pk", "name")
    return {str(pk): name for pk, name in rows}


# --- per-step figures -------------------------------------------------------------


def step_figures(tenant_id: int, version_id: int) -> dict[int, dict]:
    """Per step of the version: its runs by outcome and, from the outbox, its
    messages sent, delivered, opened, clicked and converted (the customer placed
    an order, not cancelled or refunded, within seven days after the send).

    Each step's dict holds the keys of ``FIGURE_KEYS`` and ``variants``: the
    same numbers per A/B variant key (empty for a step without variants).
    Three queries: the step ids, the runs by outcome, the messages.
    """
    step_ids = list(
        JourneyStep.objects.for_tenant(tenant_id)
        .filter(version_id=version_id)
        .values_list("id", flat=True)
    )
    figures: dict[int, dict] = {
        pk: {**dict.fromkeys(FIGURE_KEYS, 0), "variants": {}} for pk in step_ids
    }
    if not step_ids:
        return figures

    def bucket(step_id: int, variant: str) -> list[dict]:
        step = figures[step_id]
        if not variant:
            return [step]
        return [step, step["variants"].setdefault(variant, dict.fromkeys(FIGURE_KEYS, 0))]

    runs = StepRun.objects.for_tenant(tenant_id).filter(step_id__in=step_ids)
    by_outcome = runs.values("step_id", "variant", "outcome").annotate(n=Count("id")).order_by()
    for row in by_outcome:
        for numbers in bucket(row["step_id"], row["variant"]):
            numbers["runs"] += row["n"]
            key = _OUTCOME_KEYS.get(row["outcome"])
            if key:
                numbers[key] += row["n"]

    sent = Q(message__status__in=SENT_LIKE)
    converting_order = Order.objects.for_tenant(tenant_id).filter(
        customer_id=OuterRef("message__customer_id"),
        status__in=COUNTED_ORDER_STATUSES,
        placed_at__gt=OuterRef("sent_anchor"),
        placed_at__lte=OuterRef("sent_anchor") + CONVERSION_WINDOW,
    )
    by_message = (
        runs.filter(message__isnull=False)
        .annotate(sent_anchor=Coalesce(F("message__sent_at"), F("message__created_at")))
        .values("step_id", "variant")
        .annotate(
            messages=Count("id"),
            waiting=Count("id", filter=Q(message__status__in=_PENDING)),
            sent=Count("id", filter=sent),
            delivered=Count(
                "id",
                filter=Q(message__status__in=_DELIVERED) | Q(message__delivered_at__isnull=False),
            ),
            opened=Count(
                "id", filter=Q(message__status__in=_OPENED) | Q(message__opened_at__isnull=False)
            ),
            clicked=Count(
                "id",
                filter=Q(message__status=Status.CLICKED) | Q(message__clicked_at__isnull=False),
            ),
            suppressed=Count("id", filter=Q(message__status__in=_NOT_SENT)),
            converted=Count("id", filter=sent & Q(Exists(converting_order))),
        )
        .order_by()
    )
    keys = ("messages", "waiting", "sent", "delivered", "opened", "clicked")
    keys += ("suppressed", "converted")
    for row in by_message:
        for numbers in bucket(row["step_id"], row["variant"]):
            for key in keys:
                numbers[key] += row[key]
    return figures


# --- enrollments ---------------------------------------------------------------------


def enrollment_runs(enrollment: Enrollment) -> list[StepRun]:
    """What the enrollment did, step by step, with each step and its message."""
    return list(
        StepRun.objects.for_tenant(enrollment.tenant_id)
        .filter(enrollment_id=enrollment.pk)
        .select_related("step", "message")
        .order_by("at", "id")
    )


def enrollments_of_customer(journey: Journey, customer: Customer) -> QuerySet[Enrollment]:
    return Enrollment.objects.for_tenant(journey.tenant_id).filter(
        journey_id=journey.pk, customer_id=customer.pk
    )


# --- the customer a preview is for -------------------------------------------------------


def recent_customer(*, tenant: Tenant) -> Customer | None:
    """The default customer for previews: the one who ordered last, else the
    newest customer (a store with no orders yet still gets a preview)."""
    last_order = (
        Order.objects.for_tenant(tenant)
        .filter(customer__merged_into__isnull=True)
        .order_by("-placed_at", "-id")
        .values_list("customer_id", flat=True)
        .first()
    )
    if last_order is not None:
        return customer_list(tenant=tenant).filter(pk=last_order).first()
    return customer_list(tenant=tenant).order_by("-created_at", "-id").first()


def customer_pick(*, tenant: Tenant, lookup: str) -> tuple[Customer | None, str]:
    """The store's customer named by ``lookup`` (an id or an email), or the most
    recent one when it is empty; else None and what to tell the marketer. A
    missing id and another store's read the same."""
    lookup = (lookup or "").strip()
    if not lookup:
        customer = recent_customer(tenant=tenant)
        return customer, "" if customer is not None else "This store has no customers yet."
    if lookup.isdigit():
        try:
            return customer_get(tenant=tenant, customer_id=lookup), ""
        except NotFound:
            return None, f"No customer with the id {lookup} in this store."
    if "@" in lookup:
        found = customer_list(tenant=tenant, email=lookup.lower()).first()
        if found is not None:
            return found, ""
        return None, f"No customer with the email {lookup} in this store."
    return None, "Give a customer id or an email address."
