"""The due-step dispatcher: claim due enrollments, take one step each, write.

A batch is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (by the partial
index over live rows), so any number of dispatchers share the work and never
take the same enrollment. Everything a step does to the database (the outbox
rows, the callback, the segment change, the stored webhook, the step's run
record and the enrollment's new place) commits in the claim's transaction:
either all of it happened or none of it did, and the outbox's idempotency key
``journey:<enrollment>:<version>:<step>`` plus the unique (enrollment, step)
run record make a replay act once. Providers are called only after commit,
by the outbox's own tasks.

A batch costs a handful of statements whatever its size: the claim (with the
customers), the outbox rows, the step runs and the enrollments' new places are
one statement each; on PostgreSQL the writes are ``INSERT … SELECT FROM
unnest(…)`` / ``UPDATE … FROM unnest(…)`` with binary array parameters.

An enrollment's ``next_run_at`` is when to look at it next; the step's real
due time is computed here (timezone, family window, send window), so a row
created "due now" by the trigger scan is simply rescheduled on first sight.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import connection, transaction

from commerce.models import Cart, Customer, Fulfillment, Order, Product, ProductFamily
from experiments.selectors import Running, step_experiments
from experiments.services.exposure import Seen, exposures_record
from feedback.services import survey_invitation_message_set, survey_invite, survey_url
from journeys.models import (
    LIVE_STATUSES,
    PREFERRED_ACTIONS,
    SEND_ACTIONS,
    Action,
    Enrollment,
    EnrollmentStatus,
    Journey,
    JourneyStep,
    JourneyVersion,
    Otherwise,
    StepOutcome,
    StepRun,
)
from journeys.services.conditions import Facts
from journeys.services.schedule import WINDOW_FIELDS, family_days, step_due_at
from messaging.models import Template
from messaging.services.outbox import Content, Enqueued, MessageIn, messages_enqueue_many
from messaging.services.preferences import PreferencesLinks
from messaging.services.templates import template_render
from retention import clock
from retention.db import execute_binary
from retention.models import Tenant

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_ATTEMPTS = 5
RETRY_MINUTES = (1, 5, 15, 60)
LIVE = LIVE_STATUSES


@dataclass
class Plan:
    """What one enrollment does in this batch, built before anything is written."""

    row: Enrollment
    step: JourneyStep | None = None
    outcome: str = ""
    variant: str = ""
    message_key: str = ""
    message: MessageIn | None = None
    detail: str = ""
    next_position: int | None = None
    exit_reason: str = ""
    error: str = ""
    survey: Any = None  # the SurveyInvitation a survey step's message carries
    exposure: tuple[Any, Seen] | None = None  # (running step experiment, who saw what)


@dataclass
class Definition:
    """A version's steps (and each step's variants, by step id), loaded once
    per dispatch call."""

    version: JourneyVersion
    steps: dict[int, JourneyStep] = field(default_factory=dict)
    variants: dict[int, list] = field(default_factory=dict)


class Cache:
    """Per-call lookups so a batch costs a few queries, not a few per row."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.definitions: dict[int, Definition] = {}
        self.families: dict[int, ProductFamily] = {}
        self.tenant_zone = _zone(tenant.timezone) or ZoneInfo("UTC")
        # Running step experiments by journey and step number, and who of the
        # batch takes part in each (``prepare_experiments``).
        self.experiments: dict[int, dict[int, Running]] = {}
        self.eligible: dict[int, set[int]] = {}

    def prepare_experiments(self, rows: list[Enrollment]) -> None:
        by_journey: dict[int, set[int]] = {}
        for row in rows:
            by_journey.setdefault(row.journey_id, set()).add(row.customer_id)
        self.eligible = {}
        for journey_id, customers in by_journey.items():
            if journey_id not in self.experiments:
                self.experiments[journey_id] = step_experiments(
                    tenant_id=self.tenant.pk, journey_id=journey_id
                )
            for experiment in self.experiments[journey_id].values():
                self.eligible[experiment.id] = experiment.eligible(customers)

    def variant(self, row: Enrollment, step: JourneyStep):
        """The step variant this enrollment gets, and the running experiment
        that chose it (None when the per-enrollment split did)."""
        variants = self.definition(row.version_id).variants.get(step.pk, [])
        if not variants:
            return None, None
        experiment = self.experiments.get(row.journey_id, {}).get(step.position)
        if experiment is not None and row.customer_id in self.eligible.get(experiment.id, ()):
            key = experiment.variant_of(row.customer_id)
            chosen = next((v for v in variants if v.key == key), None)
            if chosen is not None:
                return chosen, experiment
        return _pick_variant(row, step, variants), None

    def definition(self, version_id: int) -> Definition:
        found = self.definitions.get(version_id)
        if found is None:
            version = (
                JourneyVersion.objects.for_tenant(self.tenant)
                .select_related("journey")
                .get(pk=version_id)
            )
            steps = (
                JourneyStep.objects.for_tenant(self.tenant)
                .filter(version_id=version_id)
                .select_related(
                    "email_template__tenant",
                    "sms_template__tenant",
                    "in_app_template__tenant",
                    "action_segment",
                )
                .prefetch_related(
                    "variants__email_template__tenant",
                    "variants__sms_template__tenant",
                    "variants__in_app_template__tenant",
                )
            )
            found = Definition(
                version,
                {s.position: s for s in steps},
                # Read per send: a list once, not a queryset over the prefetch per row.
                {s.pk: list(s.variants.all()) for s in steps},
            )
            self.definitions[version_id] = found
        return found

    def load_families(self, ids: set[int]) -> None:
        missing = ids - set(self.families)
        if missing:
            self.families.update(
                ProductFamily.objects.for_tenant(self.tenant).in_bulk(list(missing))
            )

    def zone(self, customer: Customer | None) -> ZoneInfo:
        return _zone(getattr(customer, "timezone", "")) or self.tenant_zone


def _zone(name: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def step_due(row: Enrollment, step: JourneyStep, cache: Cache, customer) -> datetime:
    """When the step falls due for this enrollment; a send-time variant's own
    window replaces the step's."""
    offset = None
    variant, _ = cache.variant(row, step)
    window = step
    if variant is not None and variant.window_start and variant.window_end:
        window = variant
    if step.delay_from == "family":
        family = cache.families.get((row.context or {}).get("family_id"))
        if family is None:
            # The order's family is gone or unknown: its default window.
            offset = {"reorder": 7, "upsell": 14, "replenishment": 28}[step.family_window]
        else:
            offset = family_days(
                window=step.family_window,
                price_tier=(row.context or {}).get("price_tier", "standard"),
                days={w: getattr(family, f) for w, f in WINDOW_FIELDS.items()},
                expensive=(family.expensive_min_days, family.expensive_max_days),
            )
    return step_due_at(
        delay=step.delay,
        unit=step.delay_unit,
        anchor=step.delay_from,
        trigger_at=row.trigger_at,
        previous_at=row.last_step_at,
        zone=cache.zone(customer),
        window_start=window.window_start,
        window_end=window.window_end,
        family_offset_days=offset,
    )


def _pick_variant(row: Enrollment, step: JourneyStep, variants: list):
    if not variants:
        return None
    total = sum(v.weight for v in variants)
    digest = hashlib.sha256(f"{row.tenant_id}:{row.pk}:{step.pk}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    edges, running = [], 0
    for v in variants:
        running += v.weight
        edges.append(running)
    return variants[bisect.bisect_right(edges, point)]


def _channel_and_template(
    step: JourneyStep, holder, customer: Customer
) -> tuple[str, Template | None]:
    if getattr(holder, "channel", ""):  # an email vs SMS variant
        return holder.channel, holder.template_for(holder.channel)
    if step.action not in PREFERRED_ACTIONS:
        channel = step.action
        return channel, holder.template_for(channel)
    order = [customer.preferred_channel] if customer.preferred_channel else []
    order += [c for c in ("email", "sms", "in_app") if c not in order]
    for channel in order:
        template = holder.template_for(channel)
        if template is not None:
            return channel, template
    return "email", None


@dataclass
class Related:
    """The orders and products the due rows' templates show, loaded per batch."""

    orders: dict[int, Order] = field(default_factory=dict)
    products: dict[int, Product] = field(default_factory=dict)
    carts: dict[int, Cart] = field(default_factory=dict)
    fulfillments: dict[int, Fulfillment] = field(default_factory=dict)

    @classmethod
    def load(cls, tenant: Tenant, rows: list[Enrollment]) -> Related:
        contexts = [r.context or {} for r in rows]
        order_ids = {c.get("order_id") for c in contexts} - {None}
        product_ids = {c.get("product_id") for c in contexts} - {None}
        cart_ids = {c.get("cart_id") for c in contexts} - {None}
        parcel_ids = {c.get("fulfillment_id") for c in contexts} - {None}
        return cls(
            orders=Order.objects.for_tenant(tenant)
            .prefetch_related("lines")
            .in_bulk(list(order_ids))
            if order_ids
            else {},
            products=Product.objects.for_tenant(tenant)
            .select_related("family")
            .in_bulk(list(product_ids))
            if product_ids
            else {},
            carts=Cart.objects.for_tenant(tenant).in_bulk(list(cart_ids)) if cart_ids else {},
            fulfillments=Fulfillment.objects.for_tenant(tenant).in_bulk(list(parcel_ids))
            if parcel_ids
            else {},
        )


def _render_context(row: Enrollment, related: Related) -> dict:
    """The order or abandoned cart the trigger was about and, for a family
    window, the product bought in that family (reorder copy names it)."""
    context = row.context or {}
    values = {
        "order": related.orders.get(context.get("order_id")),
        "product": related.products.get(context.get("product_id")),
        "cart": related.carts.get(context.get("cart_id")),
    }
    return {k: v for k, v in values.items() if v is not None}


def _plan_send(
    plan: Plan, cache: Cache, customer: Customer, related: Related, links: PreferencesLinks
) -> None:
    row, step = plan.row, plan.step
    definition = cache.definition(row.version_id)
    variant, experiment = cache.variant(row, step)
    holder = variant or step
    plan.variant = variant.key if variant else ""
    channel, template = _channel_and_template(step, holder, customer)
    if template is None:
        plan.outcome, plan.detail = StepOutcome.NO_CONTENT, f"no {channel} template"
        return
    extra = None
    if step.action == Action.SURVEY:
        plan.survey = _survey_invitation(row, customer, channel, related)
        if plan.survey is None:
            plan.outcome, plan.detail = StepOutcome.SKIPPED, "already invited for this delivery"
            return
        extra = {"links": {"survey": survey_url(plan.survey)}}
    content: Content = template_render(
        template=template,
        customer=customer,
        links=links,
        extra=extra,
        **_render_context(row, related),
    )
    plan.message_key = f"journey:{row.pk}:{row.version_id}:{step.pk}"
    plan.message = MessageIn(
        idempotency_key=plan.message_key,
        customer=customer,
        channel=channel,
        category=definition.version.category,
        content=content,
        template=template,
        source="journey",
        context={
            "journey_id": row.journey_id,
            "version_id": row.version_id,
            "step_id": step.pk,
            "enrollment_id": row.pk,
            "variant": plan.variant,
        },
    )
    plan.outcome = StepOutcome.QUEUED
    if experiment is not None:
        plan.exposure = (
            experiment,
            Seen(row.customer_id, variant.key, clock.now(), f"enrollment:{row.pk}"),
        )


def _survey_invitation(row: Enrollment, customer: Customer, channel: str, related: Related):
    """The survey invitation this step sends: one per delivery (the trigger's
    fulfillment), so None when the delivery has one already (another journey,
    a second delivered event). Made in the batch's transaction: a batch that
    fails leaves no invitation behind."""
    context = row.context or {}
    fulfillment = related.fulfillments.get(context.get("fulfillment_id"))
    order = related.orders.get(context.get("order_id")) if fulfillment is None else None
    invitation, created = survey_invite(
        tenant=row.tenant_id,
        customer=customer,
        fulfillment=fulfillment,
        order=order,
        channel=channel,
    )
    return invitation if created else None


def _do_action(plan: Plan, tenant: Tenant, customer: Customer) -> None:
    """Callbacks, segment changes and webhooks: a savepoint each, so one
    failing row does not undo the batch."""
    row, step = plan.row, plan.step
    with transaction.atomic():
        if step.action == Action.CALLBACK:
            from feedback.services import callback_create

            callback_create(
                tenant=tenant,
                customer=customer,
                reason=step.callback_reason or step.name,
                source="journey",
                idempotency_key=f"journey:{row.pk}:{row.version_id}:{step.pk}",
                context={"journey_id": row.journey_id, "enrollment_id": row.pk},
            )
        elif step.action in (Action.SEGMENT_ADD, Action.SEGMENT_REMOVE):
            from segments.services.lists import segment_member_add, segment_member_remove

            change = (
                segment_member_add if step.action == Action.SEGMENT_ADD else segment_member_remove
            )
            change(
                tenant_id=row.tenant_id,
                segment=step.action_segment,
                customer_id=row.customer_id,
                cause="journey",
            )
        elif step.action == Action.WEBHOOK:
            from journeys.services.webhooks import outbound_webhook_queue

            outbound_webhook_queue(
                tenant_id=row.tenant_id,
                url=step.webhook_url,
                event_id=f"journey_{row.pk}_{row.version_id}_{step.pk}",
                payload={
                    "type": "journey.step",
                    "journey_id": row.journey_id,
                    "journey": row.journey.name,
                    "step": step.name,
                    "customer_id": row.customer_id,
                    "email": customer.email,
                    "context": row.context or {},
                },
            )
    plan.outcome = StepOutcome.DONE


def _plan(
    plan: Plan,
    cache: Cache,
    customer,
    facts: Facts,
    related: Related,
    links: PreferencesLinks,
) -> None:
    row = plan.row
    definition = cache.definition(row.version_id)
    step = definition.steps.get(row.position)
    if step is None:
        plan.next_position = None
        return
    plan.step = step
    if row.status == EnrollmentStatus.HELD_OUT:
        plan.outcome = StepOutcome.HELD_OUT
        plan.next_position = row.position + 1
        return
    if customer is None or customer.merged_into_id:
        plan.exit_reason = "customer_merged"
        return
    if step.condition and not facts.holds(row, step):
        plan.outcome, plan.detail = StepOutcome.SKIPPED, f"{step.condition} is false"
        if step.otherwise == Otherwise.EXIT:
            plan.exit_reason = "condition"
        else:
            plan.next_position = (
                step.goto_position if step.otherwise == Otherwise.GOTO else row.position + 1
            )
        return
    plan.next_position = row.position + 1
    if step.action in SEND_ACTIONS:
        _plan_send(plan, cache, customer, related, links)
    else:
        _do_action(plan, cache.tenant, customer)


def enrollments_dispatch(
    *, tenant_id: int, batch_size: int = BATCH_SIZE, limit: int | None = None
) -> int:
    """Take due steps until none is left (or ``limit`` rows were handled).
    Returns the number of enrollments that acted on a step."""
    tenant = Tenant.objects.get(pk=tenant_id)
    cache = Cache(tenant)
    acted = handled = 0
    while limit is None or handled < limit:
        size = batch_size if limit is None else min(batch_size, limit - handled)
        batch_acted, claimed = _dispatch_batch(tenant, cache, size)
        acted += batch_acted
        handled += claimed
        if claimed < size:
            break
    return acted


def _claim(tenant: Tenant, size: int, now: datetime) -> list[Enrollment]:
    """Lock and load up to ``size`` due rows with their customers (rows another
    dispatcher holds are skipped, not waited for; customers are read, not locked)."""
    rows = list(
        Enrollment.objects.for_tenant(tenant)
        .filter(status__in=LIVE, next_run_at__lte=now)
        .select_related("customer")
        .order_by("next_run_at")
        .select_for_update(skip_locked=True, of=("self",))[:size]
    )
    if rows:
        journeys = Journey.objects.for_tenant(tenant).in_bulk({r.journey_id for r in rows})
        for row in rows:
            row.journey = journeys[row.journey_id]
    return rows


def _dispatch_batch(tenant: Tenant, cache: Cache, size: int) -> tuple[int, int]:
    now = clock.now()
    with transaction.atomic():
        rows = _claim(tenant, size, now)
        if not rows:
            return 0, 0
        customers = {r.customer_id: r.customer for r in rows}
        for r in rows:
            cache.definition(r.version_id)
        cache.prepare_experiments(rows)
        cache.load_families(
            {(r.context or {}).get("family_id") for r in rows if (r.context or {}).get("family_id")}
        )
        # First: which rows are really due now, and which only need a new time.
        due: list[Plan] = []
        later: dict[int, datetime] = {}
        for row in rows:
            step = cache.definition(row.version_id).steps.get(row.position)
            if step is None:
                due.append(Plan(row=row))
                continue
            at = step_due(row, step, cache, customers.get(row.customer_id))
            if at > now:
                later[row.pk] = at
            else:
                due.append(Plan(row=row))
        facts = Facts(tenant.pk, [p.row for p in due], cache)
        related = Related.load(tenant, [p.row for p in due])
        links = PreferencesLinks()
        for plan in due:
            try:
                _plan(plan, cache, customers.get(plan.row.customer_id), facts, related, links)
            except Exception as exc:  # one bad row must not stall the batch
                logger.exception(
                    "journeys.step_failed tenant_id=%s enrollment_id=%s", tenant.pk, plan.row.pk
                )
                plan.error = f"{type(exc).__name__}: {exc}"[:500]
                plan.message = None
        messages = messages_enqueue_many(
            tenant=tenant, items=[p.message for p in due if p.message is not None]
        )
        for plan in due:
            if plan.survey is not None and plan.message_key in messages.ids:
                survey_invitation_message_set(
                    invitation=plan.survey, message_id=messages.ids[plan.message_key]
                )
        _record_exposures(due)
        _write(tenant, cache, due, later, messages, customers, now)
    acted = sum(1 for p in due if p.step is not None and not p.error)
    return acted, len(rows)


def _record_exposures(plans: list[Plan]) -> None:
    """Step experiments' exposures, in the batch's transaction: written if and
    only if the step's message is."""
    by_experiment: dict[int, tuple[Any, list[Seen]]] = {}
    for plan in plans:
        if plan.exposure is not None and not plan.error and plan.outcome == StepOutcome.QUEUED:
            experiment, seen = plan.exposure
            by_experiment.setdefault(experiment.id, (experiment, []))[1].append(seen)
    for experiment, seen in by_experiment.values():
        exposures_record(experiment=experiment, seen=seen)


def _write(tenant, cache, plans, later, messages: Enqueued, customers, now) -> None:
    runs: list[tuple] = []
    updates: list[tuple] = []
    for enrollment_id, at in later.items():
        updates.append((enrollment_id, None, at, None, None, None, None, None))
    for plan in plans:
        row = plan.row
        if plan.error:
            attempts = row.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                runs.append(_run(plan, StepOutcome.FAILED, None, plan.error))
                updates.append(
                    (
                        row.pk,
                        EnrollmentStatus.FAILED,
                        None,
                        None,
                        now,
                        attempts,
                        plan.error,
                        "failed",
                    )
                )
            else:
                retry = now + timedelta(
                    minutes=RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1]
                )
                updates.append((row.pk, None, retry, None, None, attempts, plan.error, None))
            continue
        if plan.exit_reason:
            if plan.step is not None and plan.outcome:
                runs.append(_run(plan, plan.outcome, None, plan.detail))
            updates.append(
                (row.pk, EnrollmentStatus.EXITED, None, None, now, 0, "", plan.exit_reason)
            )
            continue
        if plan.step is not None:
            message_id = messages.ids.get(plan.message_key) if plan.message_key else None
            runs.append(_run(plan, plan.outcome, message_id, plan.detail))
        definition = cache.definition(row.version_id)
        nxt = plan.next_position
        next_step = definition.steps.get(nxt) if nxt else None
        if next_step is None:
            finished = EnrollmentStatus.COMPLETED if row.status == EnrollmentStatus.ACTIVE else None
            updates.append((row.pk, finished, None, nxt or row.position, now, 0, "", None))
            continue
        row.last_step_at = now
        row.position = nxt
        at = step_due(row, next_step, cache, customers.get(row.customer_id))
        updates.append((row.pk, None, max(at, now), nxt, None, 0, "", None, now))
    _insert_runs(tenant.pk, runs, clock.now())
    _update_rows(tenant.pk, updates, now)


def _run(plan: Plan, outcome: str, message_id: int | None, detail: str) -> tuple:
    """A step run, in the order of ``_insert_runs``' columns."""
    return (plan.row.pk, plan.step.pk, plan.variant, outcome, message_id, detail[:300])


def _insert_runs(tenant_id: int, runs: list[tuple], at: datetime) -> None:
    """Record the batch's step runs; a run recorded before (a replayed batch)
    stays as it was. One statement on PostgreSQL."""
    if not runs:
        return
    if connection.vendor == "postgresql":
        execute_binary(
            """
            INSERT INTO journeys_steprun
                (tenant_id, at, enrollment_id, step_id, variant, outcome, message_id, detail)
            SELECT %b, %b, u.enrollment_id, u.step_id, u.variant, u.outcome,
                   u.message_id, u.detail
            FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::text[],
                        %b::bigint[], %b::text[])
                 AS u(enrollment_id, step_id, variant, outcome, message_id, detail)
            ON CONFLICT (tenant_id, enrollment_id, step_id) DO NOTHING
            """,
            [tenant_id, at, *map(list, zip(*runs, strict=True))],
        )
        return
    StepRun.objects.bulk_create(
        [
            StepRun(
                tenant_id=tenant_id,
                enrollment_id=enrollment_id,
                step_id=step_id,
                variant=variant,
                outcome=outcome,
                message_id=message_id,
                at=at,
                detail=detail,
            )
            for enrollment_id, step_id, variant, outcome, message_id, detail in runs
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )


def _update_rows(tenant_id: int, updates: list[tuple], now: datetime) -> None:
    """Write every claimed row's new state in one statement.

    Each tuple: (id, status or None to keep, next_run_at, position or None to
    keep, finished_at or None, attempts or None to keep, last_error, exit
    reason or None, [last_step_at])."""
    if not updates:
        return
    cols = list(zip(*[(*u, *([None] * (9 - len(u)))) for u in updates], strict=True))
    if connection.vendor == "postgresql":
        execute_binary(
            """
            UPDATE journeys_enrollment e SET
                status = coalesce(u.status, e.status),
                next_run_at = CASE WHEN coalesce(u.status, e.status) IN ('active', 'held_out')
                                    AND u.finished_at IS NULL THEN u.next_run_at END,
                position = coalesce(u.position, e.position),
                finished_at = coalesce(u.finished_at, e.finished_at),
                attempts = coalesce(u.attempts, e.attempts),
                last_error = coalesce(u.last_error, e.last_error),
                exit_reason = coalesce(u.exit_reason, e.exit_reason),
                last_step_at = coalesce(u.last_step_at, e.last_step_at)
            FROM unnest(%b::bigint[], %b::text[], %b::timestamptz[], %b::int[],
                        %b::timestamptz[], %b::int[], %b::text[], %b::text[],
                        %b::timestamptz[])
                 AS u(id, status, next_run_at, position, finished_at, attempts,
                      last_error, exit_reason, last_step_at)
            WHERE e.tenant_id = %b AND e.id = u.id
            """,
            [list(c) for c in cols] + [tenant_id],
        )
        return
    rows = Enrollment.objects.for_tenant(tenant_id).in_bulk(list(cols[0]))
    for u in updates:
        pk, status, next_run, position, finished, attempts, error, reason, *rest = (
            *u,
            *([None] * (9 - len(u))),
        )
        row = rows[pk]
        row.status = status or row.status
        row.position = position or row.position
        row.finished_at = finished or row.finished_at
        row.attempts = row.attempts if attempts is None else attempts
        row.last_error = row.last_error if error is None else error
        row.exit_reason = reason or row.exit_reason
        row.last_step_at = rest[0] or row.last_step_at
        live = row.status in LIVE and row.finished_at is None
        row.next_run_at = next_run if live else None
    Enrollment.objects.for_tenant(tenant_id).bulk_update(
        rows.values(),
        [
            "status",
            "position",
            "finished_at",
            "attempts",
            "last_error",
            "exit_reason",
            "last_step_at",
            "next_run_at",
        ],
    )
