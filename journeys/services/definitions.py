"""Writing journey definitions: create, edit (a new version once one is in use),
activate / pause / archive, and explicit migration of in-flight enrollments.

A definition is given as plain data, the same shape the admin form and the
shipped defaults produce: ``version`` holds ``JourneyVersion`` fields and
``steps`` a list of ``JourneyStep`` fields (with optional ``variants``). Model
instances or ids are accepted for foreign keys; every one must belong to the
journey's tenant.
"""

from __future__ import annotations

import logging
from datetime import time
from typing import Any

from django.db import transaction
from django.db.models import Model

from commerce.models import Channel, FulfillmentStatus
from journeys.models import (
    PREFERRED_ACTIONS,
    SEND_ACTIONS,
    Action,
    Condition,
    DelayFrom,
    DelayUnit,
    Enrollment,
    EnrollmentStatus,
    FamilyWindow,
    Journey,
    JourneyStatus,
    JourneyStep,
    JourneyVersion,
    OrderNth,
    Otherwise,
    Reentry,
    StepVariant,
    TriggerKind,
)
from messaging.models import Category, Template
from retention import clock
from retention.errors import InvalidInput
from retention.models import AuditAction, Tenant
from retention.services import audit_record
from segments.models import Segment, SegmentKind, Tier

logger = logging.getLogger(__name__)

VERSION_FIELDS = (
    "trigger",
    "order_nth",
    "order_n",
    "fulfillment_status",
    "family_window",
    "segment",
    "value",
    "entry_segment",
    "entry_requires_consent",
    "reentry",
    "reentry_cooldown_days",
    "exit_on_order",
    "exit_on_unsubscribe",
    "exit_segment",
    "exit_segment_on",
    "holdout_percent",
    "category",
    "note",
)
STEP_FIELDS = (
    "name",
    "delay",
    "delay_unit",
    "delay_from",
    "family_window",
    "window_start",
    "window_end",
    "condition",
    "condition_value",
    "otherwise",
    "goto_position",
    "action",
    "email_template",
    "sms_template",
    "in_app_template",
    "action_segment",
    "webhook_url",
    "callback_reason",
)
TEMPLATE_FIELDS = {"email_template": "email", "sms_template": "sms", "in_app_template": "in_app"}
VARIANT_FIELDS = ("key", "weight", "channel", "window_start", "window_end", *TEMPLATE_FIELDS)
MAX_STEPS = 30
MAX_DELAY_DAYS = 400
# Triggers whose occurrence carries an order, so a step can wait for its family window.
ORDER_TRIGGERS = (TriggerKind.ORDER_PLACED, TriggerKind.FAMILY_WINDOW)
# The risk bands whose entry the nightly scorer announces with a
# ``churn_risk.entered`` touchpoint (nobody is announced entering "low").
CHURN_ENTRY_BANDS = ("medium", "high")
# Which statuses may follow which; archiving is final.
STATUS_MOVES = {
    JourneyStatus.DRAFT: {JourneyStatus.ACTIVE, JourneyStatus.ARCHIVED},
    JourneyStatus.ACTIVE: {JourneyStatus.PAUSED, JourneyStatus.ARCHIVED},
    JourneyStatus.PAUSED: {JourneyStatus.ACTIVE, JourneyStatus.ARCHIVED},
    JourneyStatus.ARCHIVED: set(),
}


class _Errors:
    """Collects field errors so the marketer sees all of them at once."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            first = next(iter(self.fields.values()))[0]
            raise InvalidInput(first, fields=self.fields)


def _pk(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, Model):
        return value.pk
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _owned(model, tenant_id: int, value: Any, field: str, errors: _Errors, **filters):
    pk = _pk(value)
    if pk is None:
        return None
    found = model.objects.for_tenant(tenant_id).filter(pk=pk, **filters).first()
    if found is None:
        errors.add(field, f"No such {model._meta.verbose_name} in this store.")
    return found


def _clean_version(tenant_id: int, data: dict, errors: _Errors) -> dict:
    unknown = set(data) - set(VERSION_FIELDS)
    if unknown:
        errors.add("version", f"Unknown fields: {', '.join(sorted(unknown))}.")
    out = {k: v for k, v in data.items() if k in VERSION_FIELDS}
    trigger = out.get("trigger")
    if trigger not in TriggerKind.values:
        errors.add("trigger", f"Choose a trigger: {', '.join(TriggerKind.values)}.")
    for name in ("segment", "entry_segment", "exit_segment"):
        out[name] = _owned(Segment, tenant_id, out.get(name), name, errors)
    nth = out.setdefault("order_nth", OrderNth.ANY) or OrderNth.ANY
    if nth not in OrderNth.values:
        errors.add("order_nth", "Choose any, first or nth.")
    n = out.setdefault("order_n", 1)
    if not isinstance(n, int) or not 1 <= n <= 100:
        errors.add("order_n", "The nth order is a number from 1 to 100.")
    if trigger == TriggerKind.FULFILLMENT and out.get("fulfillment_status") not in (
        FulfillmentStatus.PACKED,
        FulfillmentStatus.SHIPPED,
        FulfillmentStatus.OUT_FOR_DELIVERY,
        FulfillmentStatus.DELIVERED,
        FulfillmentStatus.DELAYED,
        FulfillmentStatus.FAILED,
    ):
        errors.add("fulfillment_status", "Choose the delivery status that starts the journey.")
    if trigger == TriggerKind.FAMILY_WINDOW and out.get("family_window") not in FamilyWindow.values:
        errors.add("family_window", "Choose reorder, upsell or replenishment.")
    if trigger in (TriggerKind.SEGMENT_ENTERED, TriggerKind.SEGMENT_LEFT) and not out["segment"]:
        errors.add("segment", "Choose the segment whose entries or exits start the journey.")
    value = str(out.get("value") or "").strip()
    out["value"] = value
    if trigger == TriggerKind.TOUCHPOINT and not value:
        errors.add("value", "Name the touchpoint kind that starts the journey.")
    if trigger == TriggerKind.CHURN_BAND:
        # Matched exactly against the churn_risk.entered touchpoint's band.
        out["value"] = value = value.lower()
        if value not in CHURN_ENTRY_BANDS:
            errors.add(
                "value",
                "Choose the churn risk band whose entry starts the journey: "
                f"{' or '.join(CHURN_ENTRY_BANDS)}.",
            )
    if trigger == TriggerKind.SURVEY_CLASS and value not in ("promoter", "neutral", "detractor"):
        errors.add("value", "Choose promoter, neutral or detractor.")
    if out.get("entry_requires_consent", "") not in ("", *Channel.values):
        errors.add("entry_requires_consent", "Choose a channel or none.")
    if out.setdefault("reentry", Reentry.AFTER_EXIT) not in Reentry.values:
        errors.add("reentry", f"Choose one of {', '.join(Reentry.values)}.")
    holdout = out.setdefault("holdout_percent", 0)
    if not isinstance(holdout, int) or not 0 <= holdout <= 50:
        errors.add("holdout_percent", "The holdout is a whole percentage from 0 to 50.")
    if out.setdefault("category", Category.MARKETING) not in (
        Category.MARKETING,
        Category.TRANSACTIONAL,
    ):
        errors.add("category", "Choose marketing or transactional.")
    if out.get("exit_segment_on", "left") not in ("left", "entered"):
        errors.add("exit_segment_on", "Choose left or entered.")
    return out


def _clean_steps(
    tenant_id: int, version: dict, steps: list[dict], errors: _Errors
) -> list[tuple[dict, list[dict]]]:
    if not steps:
        errors.add("steps", "A journey needs at least one step.")
    if len(steps) > MAX_STEPS:
        errors.add("steps", f"At most {MAX_STEPS} steps.")
    count = len(steps)
    cleaned = []
    for index, raw in enumerate(steps, start=1):
        prefix = f"steps.{index}"
        step = {k: v for k, v in raw.items() if k in STEP_FIELDS}
        unknown = set(raw) - set(STEP_FIELDS) - {"variants", "position"}
        if unknown:
            errors.add(prefix, f"Unknown fields: {', '.join(sorted(unknown))}.")
        step["position"] = index
        step["name"] = str(step.get("name") or f"Step {index}").strip()[:200]
        _clean_delay(step, version, prefix, errors)
        _clean_condition(tenant_id, step, index, count, prefix, errors)
        variants = _clean_action(
            tenant_id, step, raw.get("variants") or [], version, prefix, errors
        )
        cleaned.append((step, variants))
    return cleaned


def _clean_delay(step: dict, version: dict, prefix: str, errors: _Errors) -> None:
    delay = step.setdefault("delay", 0)
    unit = step.setdefault("delay_unit", DelayUnit.DAYS)
    anchor = step.setdefault("delay_from", DelayFrom.TRIGGER)
    if unit not in DelayUnit.values:
        errors.add(f"{prefix}.delay_unit", "Choose minutes, hours or days.")
    if anchor not in DelayFrom.values:
        errors.add(f"{prefix}.delay_from", "Choose the trigger, the previous step or the family.")
    days = {"minutes": 1 / 1440, "hours": 1 / 24, "days": 1}.get(unit, 1)
    if not isinstance(delay, int) or delay < 0 or delay * days > MAX_DELAY_DAYS:
        errors.add(f"{prefix}.delay", f"A delay is a whole number up to {MAX_DELAY_DAYS} days.")
    window = step.setdefault("family_window", "")
    if anchor == DelayFrom.FAMILY_WINDOW:
        if window not in FamilyWindow.values:
            errors.add(f"{prefix}.family_window", "Choose reorder, upsell or replenishment.")
        if version.get("trigger") not in ORDER_TRIGGERS:
            errors.add(
                f"{prefix}.delay_from",
                "A family window needs a trigger that carries an order (order placed or "
                "family window).",
            )
    start, end = step.get("window_start"), step.get("window_end")
    for name, value in (("window_start", start), ("window_end", end)):
        if value is not None and not isinstance(value, time):
            errors.add(f"{prefix}.{name}", "A send window time looks like 09:00.")
    if (start is None) != (end is None):
        errors.add(f"{prefix}.window_end", "Give both ends of the send window, or neither.")
    elif isinstance(start, time) and isinstance(end, time) and start >= end:
        errors.add(f"{prefix}.window_end", "The send window must end after it starts.")


def _clean_condition(
    tenant_id: int, step: dict, index: int, count: int, prefix: str, errors: _Errors
) -> None:
    condition = step.setdefault("condition", Condition.NONE)
    value = str(step.get("condition_value") or "").strip()
    step["condition_value"] = value
    if condition not in Condition.values:
        errors.add(f"{prefix}.condition", "Unknown condition.")
    elif condition == Condition.IN_SEGMENT:
        if _owned(Segment, tenant_id, value or None, f"{prefix}.condition_value", errors) is None:
            errors.add(f"{prefix}.condition_value", "Choose the segment.")
    elif condition == Condition.TIER and value not in Tier.values:
        errors.add(f"{prefix}.condition_value", f"Choose a tier: {', '.join(Tier.values)}.")
    elif condition in (Condition.HAS_CONSENT, Condition.PREFERRED_CHANNEL) and (
        value not in Channel.values
    ):
        errors.add(f"{prefix}.condition_value", "Choose email, sms or in_app.")
    otherwise = step.setdefault("otherwise", Otherwise.SKIP)
    if otherwise not in Otherwise.values:
        errors.add(f"{prefix}.otherwise", "Choose skip, exit or go to step.")
    goto = step.get("goto_position")
    if otherwise == Otherwise.GOTO:
        # Only forward, so an enrollment always ends and runs each step at most once.
        if not isinstance(goto, int) or not index < goto <= count:
            errors.add(f"{prefix}.goto_position", f"Go to a later step ({index + 1}-{count}).")
    else:
        step["goto_position"] = None


def _clean_action(
    tenant_id: int, step: dict, variants: list[dict], version: dict, prefix: str, errors: _Errors
) -> list[dict]:
    action = step.setdefault("action", Action.EMAIL)
    if action not in Action.values:
        errors.add(f"{prefix}.action", "Unknown action.")
        return []
    category = version.get("category", Category.MARKETING)
    for name, channel in TEMPLATE_FIELDS.items():
        step[name] = _template(
            tenant_id, step.get(name), channel, category, f"{prefix}.{name}", errors
        )
    step["action_segment"] = _owned(
        Segment, tenant_id, step.get("action_segment"), f"{prefix}.action_segment", errors
    )
    step["webhook_url"] = str(step.get("webhook_url") or "").strip()
    step["callback_reason"] = str(step.get("callback_reason") or "").strip()[:200]
    cleaned_variants = []
    if action in SEND_ACTIONS:
        keys = set()
        for number, raw in enumerate(variants, start=1):
            vprefix = f"{prefix}.variants.{number}"
            variant = {k: v for k, v in raw.items() if k in VARIANT_FIELDS}
            key = str(variant.get("key") or "").strip()[:20]
            if not key or key in keys:
                errors.add(f"{vprefix}.key", "Each variant needs its own key (A, B, …).")
            keys.add(key)
            variant["key"] = key
            weight = variant.setdefault("weight", 50)
            if not isinstance(weight, int) or not 1 <= weight <= 1000:
                errors.add(f"{vprefix}.weight", "A weight is a whole number from 1 to 1000.")
            for name, channel in TEMPLATE_FIELDS.items():
                variant[name] = _template(
                    tenant_id, variant.get(name), channel, category, f"{vprefix}.{name}", errors
                )
            channel = variant.setdefault("channel", "") or ""
            if channel not in ("", *TEMPLATE_FIELDS.values()):
                errors.add(f"{vprefix}.channel", "Unknown channel.")
            elif channel:
                if action == Action.SURVEY:
                    errors.add(f"{vprefix}.channel", "A survey goes on the preferred channel.")
                _needs_template(channel, variant, vprefix, errors)
            else:
                _needs_template(action, variant, vprefix, errors)
            start = variant["window_start"] = variant.get("window_start") or None
            end = variant["window_end"] = variant.get("window_end") or None
            if any(v is not None and not isinstance(v, time) for v in (start, end)):
                errors.add(f"{vprefix}.window_start", "A send window time looks like 09:00.")
            elif (start is None) != (end is None) or (start and end and start >= end):
                errors.add(
                    f"{vprefix}.window_start",
                    "Give both ends of the variant's send window (start before end), or neither.",
                )
            cleaned_variants.append(variant)
        if not cleaned_variants:
            _needs_template(action, step, prefix, errors)
    elif variants:
        errors.add(f"{prefix}.variants", "Only send steps have variants.")
    if action in (Action.SEGMENT_ADD, Action.SEGMENT_REMOVE):
        segment = step["action_segment"]
        if segment is None:
            errors.add(f"{prefix}.action_segment", "Choose the list segment.")
        elif segment.kind != getattr(SegmentKind, "LIST", "list"):
            errors.add(
                f"{prefix}.action_segment",
                "Journeys add to and remove from list segments only; rule segments and tiers "
                "follow their rules.",
            )
    if action == Action.WEBHOOK and not step["webhook_url"].startswith(("https://", "http://")):
        errors.add(f"{prefix}.webhook_url", "Give the URL to post to (https://…).")
    if action == Action.CALLBACK and not step["callback_reason"]:
        step["callback_reason"] = step["name"]
    return cleaned_variants


def _template(tenant_id: int, value, channel: str, category: str, field: str, errors: _Errors):
    template = _owned(Template, tenant_id, value, field, errors)
    if template is None:
        return None
    if template.channel != channel:
        errors.add(field, f"Template {template.name!r} is for {template.channel}, not {channel}.")
    elif template.category != category:
        errors.add(
            field,
            f"Template {template.name!r} is {template.category}; this journey sends {category}.",
        )
    return template


def _needs_template(action: str, holder: dict, prefix: str, errors: _Errors) -> None:
    if action in PREFERRED_ACTIONS:
        if not any(holder.get(name) for name in TEMPLATE_FIELDS):
            errors.add(f"{prefix}.email_template", "Choose at least one template.")
        return
    name = {Action.EMAIL: "email_template", Action.SMS: "sms_template"}.get(
        action, "in_app_template"
    )
    if holder.get(name) is None:
        errors.add(f"{prefix}.{name}", "Choose the template to send.")


def _validated(tenant_id: int, version: dict, steps: list[dict]):
    errors = _Errors()
    clean_version = _clean_version(tenant_id, dict(version), errors)
    clean_steps = _clean_steps(tenant_id, clean_version, list(steps), errors)
    errors.raise_if_any()
    return clean_version, clean_steps


def _write_version(journey: Journey, number: int, version: dict, steps) -> JourneyVersion:
    created = JourneyVersion.objects.create(
        tenant_id=journey.tenant_id, journey=journey, number=number, **version
    )
    _write_steps(created, steps)
    return created


def _write_steps(version: JourneyVersion, steps) -> None:
    made = JourneyStep.objects.bulk_create(
        [JourneyStep(tenant_id=version.tenant_id, version=version, **step) for step, _ in steps]
    )
    StepVariant.objects.bulk_create(
        [
            StepVariant(tenant_id=version.tenant_id, step=step_row, **variant)
            for step_row, (_, variants) in zip(made, steps, strict=True)
            for variant in variants
        ]
    )


def _audit(journey: Journey, changes: dict, actor) -> None:
    audit_record(
        tenant=journey.tenant_id,
        action=AuditAction.UPDATE if changes.get("version") else AuditAction.ACTION,
        obj=journey,
        changes=changes,
        user=actor,
    )


def journey_create(
    *,
    tenant: Tenant,
    name: str,
    version: dict,
    steps: list[dict],
    key: str = "",
    description: str = "",
    status: str = JourneyStatus.DRAFT,
    actor=None,
) -> Journey:
    """A new journey with its first version; ``status="active"`` activates it at once."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A journey needs a name.", fields={"name": ["A journey needs a name."]})
    if Journey.objects.for_tenant(tenant).filter(name=name).exists():
        message = f"A journey called {name!r} exists already."
        raise InvalidInput(message, fields={"name": [message]})
    clean_version, clean_steps = _validated(tenant.pk, version, steps)
    with transaction.atomic():
        journey = Journey.objects.create(
            tenant=tenant, name=name[:200], key=key, description=description
        )
        journey.current_version = _write_version(journey, 1, clean_version, clean_steps)
        journey.save(update_fields=["current_version"])
        audit_record(tenant=tenant, action=AuditAction.CREATE, obj=journey, user=actor)
        if status != JourneyStatus.DRAFT:
            journey = journey_set_status(journey=journey, status=status, actor=actor)
    return journey


def journey_update(
    *, journey: Journey, version: dict, steps: list[dict], actor=None, note: str = ""
) -> JourneyVersion:
    """Save a changed definition. A draft nobody has entered is edited in place;
    otherwise the change becomes the next version and enrollments already under
    way finish on the version they started (see ``enrollments_migrate``)."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise InvalidInput("An archived journey cannot be changed.")
    clean_version, clean_steps = _validated(journey.tenant_id, version, steps)
    if note:
        clean_version["note"] = note[:300]
    with transaction.atomic():
        journey = (
            Journey.objects.for_tenant(journey.tenant_id).select_for_update().get(pk=journey.pk)
        )
        current = journey.current_version
        in_use = (
            journey.status != JourneyStatus.DRAFT
            or Enrollment.objects.for_tenant(journey.tenant_id).filter(version=current).exists()
        )
        if current is not None and not in_use:
            for field, value in clean_version.items():
                setattr(current, field, value)
            current.save()
            JourneyStep.objects.for_tenant(journey.tenant_id).filter(version=current).delete()
            _write_steps(current, clean_steps)
            _audit(journey, {"version": [current.number, current.number]}, actor)
            return current
        number = (
            max(
                JourneyVersion.objects.for_tenant(journey.tenant_id)
                .filter(journey=journey)
                .values_list("number", flat=True),
                default=0,
            )
            + 1
        )
        new = _write_version(journey, number, clean_version, clean_steps)
        if journey.status == JourneyStatus.ACTIVE:
            new.activated_at = clock.now()
            new.save(update_fields=["activated_at"])
        journey.current_version = new
        journey.save(update_fields=["current_version"])
        _audit(journey, {"version": [current.number if current else None, number]}, actor)
    logger.info(
        "journeys.version_created tenant_id=%s journey_id=%s version=%s",
        journey.tenant_id,
        journey.pk,
        number,
    )
    return new


def journey_set_status(*, journey: Journey, status: str, actor=None) -> Journey:
    """Activate, pause or archive. Pausing holds in-flight enrollments where they
    are (they resume, catching up, on activation); archiving ends them."""
    from journeys.services.triggers import cursors_ensure

    if status not in JourneyStatus.values:
        raise InvalidInput(f"Unknown status {status!r}.", fields={"status": ["Unknown status."]})
    with transaction.atomic():
        journey = (
            Journey.objects.for_tenant(journey.tenant_id).select_for_update().get(pk=journey.pk)
        )
        old = journey.status
        if status == old:
            return journey
        if status not in STATUS_MOVES[JourneyStatus(old)]:
            message = f"A {old} journey cannot become {status}."
            raise InvalidInput(message, fields={"status": [message]})
        now = clock.now()
        enrollments = Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey)
        if status == JourneyStatus.ACTIVE:
            version = journey.current_version
            if version is None or not version.steps.exists():
                raise InvalidInput("Add a step before activating the journey.")
            if version.activated_at is None:
                version.activated_at = now
                version.save(update_fields=["activated_at"])
            cursors_ensure(tenant_id=journey.tenant_id)
            # Resume: the dispatcher recomputes each due time and catches up.
            enrollments.filter(
                status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT],
                next_run_at__isnull=True,
                finished_at__isnull=True,
            ).update(next_run_at=now)
        elif status == JourneyStatus.PAUSED:
            enrollments.filter(
                status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT]
            ).update(next_run_at=None)
        elif status == JourneyStatus.ARCHIVED:
            enrollments.filter(status=EnrollmentStatus.ACTIVE).update(
                status=EnrollmentStatus.EXITED,
                exit_reason="archived",
                finished_at=now,
                next_run_at=None,
            )
            enrollments.filter(status=EnrollmentStatus.HELD_OUT, finished_at__isnull=True).update(
                finished_at=now, next_run_at=None
            )
        journey.status = status
        journey.save(update_fields=["status"])
        _audit(journey, {"status": [old, status]}, actor)
    logger.info(
        "journeys.status_changed tenant_id=%s journey_id=%s from=%s to=%s",
        journey.tenant_id,
        journey.pk,
        old,
        status,
    )
    return journey


def version_as_spec(version: JourneyVersion) -> tuple[dict, list[dict]]:
    """The definition as data, in the shape ``journey_update`` takes."""
    spec = {field: getattr(version, field) for field in VERSION_FIELDS}
    steps = []
    for step in version.steps.all().prefetch_related("variants"):
        data = {field: getattr(step, field) for field in STEP_FIELDS}
        data["variants"] = [
            {field: getattr(variant, field) for field in VARIANT_FIELDS}
            for variant in step.variants.all()
        ]
        steps.append(data)
    return spec, steps


def enrollments_migrate(
    *, journey: Journey, from_version: JourneyVersion, to_version: JourneyVersion, actor=None
) -> int:
    """Move in-flight enrollments to another version of the same journey. They
    keep their place by position (capped at the new version's last step) and
    their due time is recomputed by the dispatcher."""
    if from_version.journey_id != journey.pk or to_version.journey_id != journey.pk:
        raise InvalidInput("Both versions must belong to this journey.")
    if from_version.pk == to_version.pk:
        return 0
    last = to_version.steps.count()
    if last == 0:
        raise InvalidInput("The target version has no steps.")
    with transaction.atomic():
        journey = (
            Journey.objects.for_tenant(journey.tenant_id).select_for_update().get(pk=journey.pk)
        )
        rows = Enrollment.objects.for_tenant(journey.tenant_id).filter(
            journey=journey,
            version=from_version,
            status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT],
            finished_at__isnull=True,
        )
        rows.filter(position__gt=last).update(position=last)
        moved = rows.update(
            version=to_version,
            next_run_at=clock.now() if journey.status == JourneyStatus.ACTIVE else None,
        )
        audit_record(
            tenant=journey.tenant_id,
            action=AuditAction.ACTION,
            obj=journey,
            changes={"migrated": [from_version.number, to_version.number], "enrollments": moved},
            user=actor,
        )
    return moved
