"""The engine's entry points: one tick per tenant, a plan preview, test
enrollments and manual stops."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from commerce.models import Customer
from journeys.models import (
    SEND_ACTIONS,
    Enrollment,
    Journey,
    JourneyStep,
    JourneyVersion,
)
from journeys.services.dispatch import Cache, _channel_and_template, enrollments_dispatch, step_due
from journeys.services.triggers import enrollments_end, triggers_scan
from messaging.services.outbox import Content
from retention import clock
from retention.errors import InvalidInput
from retention.models import AuditAction
from retention.services import audit_record

logger = logging.getLogger(__name__)


def journeys_tick(*, tenant_id: int) -> dict[str, int]:
    """What the beat runs every minute per tenant (and the simulator every
    simulated hour): read new triggers and exits, then take every due step."""
    enrolled = triggers_scan(tenant_id=tenant_id)
    advanced = enrollments_dispatch(tenant_id=tenant_id)
    return {"enrolled": enrolled, "advanced": advanced}


@dataclass(frozen=True)
class PlannedStep:
    step: JourneyStep
    at: datetime
    channel: str
    content: Content | None
    note: str = ""
    variant: str = ""  # "A (50%)": a step with variants is planned once per variant


def journey_plan(
    *,
    version: JourneyVersion,
    customer: Customer,
    trigger_at: datetime | None = None,
    context: dict | None = None,
) -> list[PlannedStep]:
    """What this customer would receive and when, if the trigger fired at
    ``trigger_at`` and every step ran on time (conditions are shown, not
    evaluated: they depend on what the customer does meanwhile). A step with
    A/B variants appears once per variant with its share: which one a customer
    gets is drawn when they are enrolled."""
    from messaging.services.templates import template_render

    if customer.tenant_id != version.tenant_id:
        raise InvalidInput("The customer belongs to another store.")
    cache = Cache(version.journey.tenant)
    row = Enrollment(
        tenant_id=version.tenant_id,
        journey=version.journey,
        version=version,
        customer=customer,
        trigger_at=trigger_at or clock.now(),
        context=context or {},
    )
    if row.context.get("family_id"):
        cache.load_families({row.context["family_id"]})
    plan = []
    for step in version.steps.all().select_related(
        "email_template__tenant", "sms_template__tenant", "in_app_template__tenant"
    ):
        at = step_due(row, step, cache, customer)
        row.last_step_at = at
        note = f"only if {step.get_condition_display().lower()}" if step.condition else ""
        if step.action in SEND_ACTIONS:
            variants = list(step.variants.all())
            total = sum(v.weight for v in variants)
            for holder in variants or [step]:
                channel, template = _channel_and_template(step, holder, customer)
                content = (
                    template_render(template=template, customer=customer) if template else None
                )
                share = f"{holder.key} ({holder.weight / total:.0%})" if variants else ""
                plan.append(PlannedStep(step, at, channel, content, note, share))
        else:
            plan.append(PlannedStep(step, at, "", None, note or step.get_action_display()))
    return plan


def journey_test_enroll(*, journey: Journey, customer: Customer, actor=None) -> Enrollment:
    """Enroll one chosen customer now, outside the trigger (marked as a test)."""
    if customer.tenant_id != journey.tenant_id:
        raise InvalidInput("The customer belongs to another store.")
    if journey.current_version_id is None:
        raise InvalidInput("The journey has no steps yet.")
    now = clock.now()
    with transaction.atomic():
        enrollment = Enrollment.objects.create(
            tenant_id=journey.tenant_id,
            journey=journey,
            version_id=journey.current_version_id,
            customer=customer,
            trigger_key=f"test:{now.isoformat()}",
            trigger_at=now,
            next_run_at=now,
            is_test=True,
        )
        audit_record(
            tenant=journey.tenant_id,
            action=AuditAction.ACTION,
            obj=journey,
            changes={"test_enrollment": enrollment.pk, "customer": customer.pk},
            user=actor,
        )
    return enrollment


def enrollment_stop(*, enrollment: Enrollment, reason: str = "manual", actor=None) -> bool:
    """Stop one enrollment by hand; False if it had already finished."""
    with transaction.atomic():
        stopped = enrollments_end(
            tenant_id=enrollment.tenant_id, ids=[enrollment.pk], reason=reason, now=clock.now()
        )
        if stopped:
            audit_record(
                tenant=enrollment.tenant_id,
                action=AuditAction.ACTION,
                obj=enrollment,
                changes={"stopped": reason},
                user=actor,
            )
    return bool(stopped)
