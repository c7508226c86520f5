"""The callback queue: queueing a callback (journey steps and detractor
surveys call this), and working it (claim, release, reassign, log a contact,
schedule a follow-up, resolve).

States: ``open`` (nobody holds it) → ``claimed`` (an agent holds it) →
``scheduled`` (a follow-up is due at ``follow_up_at``; the agent who set it
keeps it) → ``done``. Every change locks the row (``SELECT … FOR UPDATE``) and
decides from what it reads under the lock, so two agents acting at once are
served one after the other: the second sees the first one's result (two
claims: one wins, the other is told who has it). Each change writes an audit
entry and a ``support`` touchpoint on the customer (``callback.created``,
``callback.claimed``, ``callback.released``, ``callback.reassigned``,
``callback.contacted``, ``callback.follow_up_scheduled``, ``callback.resolved``).

``first_contact_at`` is the first logged contact of any outcome (the agent
called: what the SLA measures); whether the customer was *reached* is in the
contact outcomes (``REACHED_OUTCOMES``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from commerce.models import Customer, TouchpointCategory
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from feedback import sla
from feedback.models import (
    Callback,
    CallbackContact,
    CallbackStatus,
    ContactOutcome,
    SurveyResponse,
)
from feedback.services.settings import feedback_settings
from retention import clock
from retention.errors import Conflict, Forbidden, InvalidInput
from retention.models import (
    ROLE_CAPABILITIES,
    AuditAction,
    Capability,
    Membership,
    Tenant,
    User,
)
from retention.services import audit_record

logger = logging.getLogger(__name__)

REASON_MAX = Callback._meta.get_field("reason").max_length
SOURCE_MAX = Callback._meta.get_field("source").max_length
KEY_MAX = Callback._meta.get_field("idempotency_key").max_length
PRIORITY_RANGE = (-1000, 1000)
NOTES_MAX = 5000
FOLLOW_UP_MAX = timedelta(days=365)
TOUCHPOINT_SOURCE = "support"

# Outcomes that mean the agent spoke with the customer.
REACHED_OUTCOMES = (
    ContactOutcome.REACHED,
    ContactOutcome.RESOLVED,
    ContactOutcome.REFUND_OFFERED,
    ContactOutcome.REPLACEMENT_OFFERED,
    ContactOutcome.ESCALATED,
)
# Roles whose members may work (and be handed) callbacks.
CALLBACK_ROLES = tuple(
    sorted(role for role, caps in ROLE_CAPABILITIES.items() if Capability.WORK_CALLBACKS in caps)
)


def agent_label(user: User | None) -> str:
    """How an agent is named to other agents: their name, else their email."""
    if user is None:
        return "nobody"
    return user.get_full_name().strip() or user.email


# --- queueing -------------------------------------------------------------------------------


def python_weekdays(iso_days: object) -> object:
    """The store's ISO weekdays (1 = Monday … 7 = Sunday) as Python's (0 = Monday
    … 6 = Sunday). Anything that is not a whole number is passed on unchanged,
    for ``sla.business_hours_errors`` to refuse."""
    if not isinstance(iso_days, list | tuple):
        return iso_days
    return [d - 1 if isinstance(d, int) and not isinstance(d, bool) else d for d in iso_days]


def business_hours_of(tenant: Tenant) -> sla.BusinessHours:
    """The store's business hours, from its ``Tenant`` row, their one source
    (owners edit them in the store settings, ``retention.admin.TenantSettingsAdmin``):
    opening ``business_hours_start``, closing ``business_hours_end``, on
    ``business_days`` (ISO weekdays, turned into Python's), in the store's
    ``timezone``. ``tenant`` must be read from the database (its times are
    ``time`` objects). Raises ``sla.InvalidBusinessHours``."""
    return sla.BusinessHours.of(
        timezone=tenant.timezone or "UTC",
        opening=tenant.business_hours_start,
        closing=tenant.business_hours_end,
        days=python_weekdays(tenant.business_days),
    )


def callback_due_by(*, tenant: Tenant | int, now: datetime | None = None) -> datetime:
    """When a callback queued at ``now`` is due: the tenant's first-contact
    minutes (``FeedbackSettings.first_contact_minutes``) of business time within
    the store's business hours (see :func:`business_hours_of` and
    ``feedback.sla``). The hours are read fresh from the tenant's row, so a
    change applies to the next callback queued; callbacks already queued keep
    their ``due_by``. Hours that cannot work (closing not after opening, no
    business day, an unknown timezone) give plain wall-clock minutes and a
    logged warning instead of failing."""
    tenant_id = getattr(tenant, "pk", tenant)
    store = Tenant.objects.only(
        "timezone", "business_hours_start", "business_hours_end", "business_days"
    ).get(pk=tenant_id)
    settings = feedback_settings(tenant_id)
    now = now or clock.now()
    try:
        hours = business_hours_of(store)
    except sla.InvalidBusinessHours as exc:
        # The tenant admin refuses these; a row edited by other means must not
        # stop journeys and surveys from queueing calls: fall back to wall time.
        logger.warning(
            "feedback.invalid_business_hours tenant_id=%s error=%s", tenant_id, exc.fields
        )
        return now + timedelta(minutes=settings.first_contact_minutes)
    return sla.first_contact_due(now=now, minutes=settings.first_contact_minutes, hours=hours)


def _churn_probability(tenant_id: int, customer_id: int) -> float | None:
    """The customer's latest churn probability (None when not scored yet)."""
    from scoring.selectors import churn_probability

    return churn_probability(tenant_id, customer_id)


def callback_priority_for(
    *,
    tenant_id: int,
    customer_id: int,
    survey_response: SurveyResponse | None = None,
    asked_for_call: bool = False,
) -> int:
    """The priority ``callback_create`` gives when the caller gives none: the
    rating, the customer's RFM tier and monetary score, and churn risk (see
    ``feedback.sla.callback_priority``)."""
    from segments.selectors import customer_rfm

    rfm = customer_rfm(tenant_id, customer_id)
    return sla.callback_priority(
        rating=survey_response.rating if survey_response is not None else None,
        tier=rfm.tier if rfm is not None else None,
        monetary_score=rfm.m_score if rfm is not None else None,
        churn_probability=_churn_probability(tenant_id, customer_id),
        asked_for_call=asked_for_call,
    )


def callback_create(
    *,
    tenant: Tenant | int,
    customer: Customer,
    reason: str,
    source: str,
    idempotency_key: str,
    context: dict[str, Any] | None = None,
    priority: int | None = None,
    survey_response: SurveyResponse | None = None,
    asked_for_call: bool = False,
) -> tuple[Callback, bool]:
    """Queue a callback, due the tenant's SLA of business time from now; returns
    (callback, created). Without a ``priority`` it is computed from the rating,
    the customer's value and churn risk. The same ``idempotency_key`` again (a
    retried step, a re-run task) returns the first row unchanged, with created
    False."""
    tenant_id = getattr(tenant, "pk", tenant)
    if customer.tenant_id != tenant_id:
        raise InvalidInput("No such customer in this store.", fields={"customer": "Not found."})
    reason, source, key = _clean(reason, source, idempotency_key, context, priority)
    # A merged-away customer's calls go to the survivor, whose record is current.
    customer_id = customer.merged_into_id or customer.pk
    now = clock.now()
    if priority is None:
        priority = callback_priority_for(
            tenant_id=tenant_id,
            customer_id=customer_id,
            survey_response=survey_response,
            asked_for_call=asked_for_call,
        )
    with transaction.atomic():
        # get_or_create inserts in a savepoint and, on losing a race for the key,
        # reads the winner's row: the caller's transaction stays usable.
        callback, created = Callback.objects.for_tenant(tenant_id).get_or_create(
            tenant_id=tenant_id,
            idempotency_key=key,
            defaults={
                "customer_id": customer_id,
                "reason": reason,
                "source": source,
                "context": context or {},
                "priority": priority,
                "survey_response": survey_response,
                "asked_for_call": asked_for_call,
                "due_by": callback_due_by(tenant=tenant, now=now),
                "created_at": now,
            },
        )
        if created:
            audit_record(
                tenant=tenant_id,
                action=AuditAction.CREATE,
                obj=callback,
                changes={
                    "event": "callback.created",
                    "source": source,
                    "priority": priority,
                    "due_by": callback.due_by.isoformat(),
                },
            )
            _touch(
                callback,
                "callback.created",
                now,
                {"reason": reason, "source": source, "priority": priority},
                external_id=f"callback:{callback.pk}:created",
            )
    if created:
        logger.info(
            "feedback.callback_created tenant_id=%s callback_id=%s customer_id=%s source=%s "
            "priority=%s due_by=%s",
            tenant_id,
            callback.pk,
            customer_id,
            source,
            priority,
            callback.due_by.isoformat(),
        )
    return callback, created


def _clean(reason: Any, source: Any, key: Any, context: Any, priority: Any) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    reason = reason.strip() if isinstance(reason, str) else ""
    source = source.strip() if isinstance(source, str) else ""
    key = key.strip() if isinstance(key, str) else ""
    if not reason:
        errors["reason"] = "Say why the customer should be called."
    elif len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "…"  # a long reason is shortened, not refused
    if not source or len(source) > SOURCE_MAX:
        errors["source"] = f"Give the source in 1-{SOURCE_MAX} characters."
    if not key or len(key) > KEY_MAX:
        errors["idempotency_key"] = f"Give a key of 1-{KEY_MAX} characters."
    if context is not None and not isinstance(context, dict):
        errors["context"] = "Give an object."
    if priority is not None and (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
    ):
        errors["priority"] = f"Give a whole number from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}."
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)
    return reason, source, key


# --- who may do what ------------------------------------------------------------------------


def _member_can(tenant_id: int, user: User, capability: str) -> bool:
    if not user.is_active:
        return False
    if user.is_superuser:
        return True  # platform operators act in any store they pick
    membership = Membership.objects.for_tenant(tenant_id).filter(user=user).first()
    return membership is not None and membership.can(capability)


def may_work_callbacks(*, tenant: Tenant | int, user: User) -> bool:
    return _member_can(getattr(tenant, "pk", tenant), user, Capability.WORK_CALLBACKS)


def may_reassign(*, tenant: Tenant | int, user: User) -> bool:
    """Owners and marketers (the CONFIGURE capability) may hand a callback to
    someone else or take it from its holder; there is no lead role."""
    return _member_can(getattr(tenant, "pk", tenant), user, Capability.CONFIGURE)


def _require_worker(tenant_id: int, user: User) -> None:
    if not _member_can(tenant_id, user, Capability.WORK_CALLBACKS):
        raise Forbidden("You may not work the callback queue of this store.")


# --- working a callback ---------------------------------------------------------------------


def _locked(callback: Callback) -> Callback:
    """The row, locked until the transaction ends; read fresh."""
    return Callback.objects.for_tenant(callback.tenant_id).select_for_update().get(pk=callback.pk)


def _holder(callback: Callback) -> User | None:
    if callback.claimed_by_id is None:
        return None
    return User.objects.filter(pk=callback.claimed_by_id).first()


def _refuse_if_closed(callback: Callback) -> None:
    if callback.status == CallbackStatus.DONE:
        raise Conflict("This callback is already resolved.", code="resolved")
    if callback.status == CallbackStatus.CANCELLED:
        raise Conflict("This callback was cancelled.", code="cancelled")


def _refuse_if_held_by_other(callback: Callback, agent: User) -> None:
    if callback.claimed_by_id is not None and callback.claimed_by_id != agent.pk:
        holder = agent_label(_holder(callback))
        raise Conflict(
            f"Already claimed by {holder}.", code="claimed", fields={"claimed_by": holder}
        )


def _save(
    callback: Callback,
    *,
    by: User | None,
    event: str,
    now: datetime,
    values: dict[str, Any],
    audit_extra: dict[str, Any] | None = None,
    touch: dict[str, Any] | None = None,
    external_id: str | None = None,
) -> Callback:
    """Write ``values``, then the audit entry and the touchpoint (same transaction)."""
    changes: dict[str, Any] = {"event": event}
    for field, new in values.items():
        old = getattr(callback, field)
        if old != new:
            changes[field] = [_audit_value(field, old), _audit_value(field, new)]
        setattr(callback, field, new)
    if values:
        callback.save(update_fields=list(values))
    changes.update(audit_extra or {})
    audit_record(
        tenant=callback.tenant_id, action=AuditAction.ACTION, obj=callback, changes=changes, user=by
    )
    properties = {"callback_id": callback.pk, "status": callback.status}
    if by is not None:
        properties["agent_id"] = by.pk
    _touch(callback, event, now, {**properties, **(touch or {})}, external_id=external_id)
    logger.info(
        "feedback.%s tenant_id=%s callback_id=%s agent_id=%s status=%s",
        event.replace(".", "_"),
        callback.tenant_id,
        callback.pk,
        getattr(by, "pk", None),
        callback.status,
    )
    return callback


def _audit_value(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "claimed_by":
        return agent_label(value) if isinstance(value, User) else value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _touch(
    callback: Callback,
    kind: str,
    at: datetime,
    properties: dict[str, Any],
    external_id: str | None = None,
) -> None:
    touchpoints_record_many(
        tenant_id=callback.tenant_id,
        source=TOUCHPOINT_SOURCE,
        items=[
            TouchpointIn(
                customer_id=callback.customer_id,
                category=TouchpointCategory.SUPPORT,
                kind=kind,
                occurred_at=at,
                properties=properties,
                external_id=external_id,
            )
        ],
    )


def callback_claim(*, callback: Callback, agent: User) -> Callback:
    """Take an open (or scheduled, unheld) callback. Safe against a race: of two
    agents claiming at once, one wins and the other gets a Conflict naming the
    winner. Claiming one's own callback again changes nothing."""
    _require_worker(callback.tenant_id, agent)
    with transaction.atomic():
        locked = _locked(callback)
        _refuse_if_closed(locked)
        _refuse_if_held_by_other(locked, agent)
        if locked.status == CallbackStatus.CLAIMED:
            return locked  # already ours: a double click
        now = clock.now()
        return _save(
            locked,
            by=agent,
            event="callback.claimed",
            now=now,
            values={"status": CallbackStatus.CLAIMED, "claimed_by": agent, "claimed_at": now},
        )


def callback_release(*, callback: Callback, agent: User) -> Callback:
    """Give a callback back to the queue. Its holder may, and so may an owner or
    marketer. A scheduled follow-up stays scheduled, for anyone to pick up."""
    _require_worker(callback.tenant_id, agent)
    with transaction.atomic():
        locked = _locked(callback)
        _refuse_if_closed(locked)
        if locked.claimed_by_id is None:
            return locked
        if locked.claimed_by_id != agent.pk and not may_reassign(
            tenant=locked.tenant_id, user=agent
        ):
            raise Forbidden(
                f"Claimed by {agent_label(_holder(locked))}: only they, an owner or a marketer "
                "can release it."
            )
        status = (
            CallbackStatus.SCHEDULED
            if locked.status == CallbackStatus.SCHEDULED
            else CallbackStatus.OPEN
        )
        return _save(
            locked,
            by=agent,
            event="callback.released",
            now=clock.now(),
            values={"status": status, "claimed_by": None, "claimed_at": None},
        )


def callback_reassign(*, callback: Callback, to_agent: User, by: User) -> Callback:
    """Hand a callback to ``to_agent`` (a member who may work callbacks). Only
    owners and marketers may: there is no lead role."""
    tenant_id = callback.tenant_id
    if not may_reassign(tenant=tenant_id, user=by):
        raise Forbidden("Only an owner or a marketer can reassign callbacks.")
    if (
        not to_agent.is_active
        or not Membership.objects.for_tenant(tenant_id)
        .filter(
            user=to_agent,
            role__in=CALLBACK_ROLES,
        )
        .exists()
    ):
        # Not named: the id may be another store's person.
        raise InvalidInput(
            "Choose a member who works callbacks.",
            fields={"to_agent": "Choose a member who works callbacks."},
        )
    with transaction.atomic():
        locked = _locked(callback)
        _refuse_if_closed(locked)
        if locked.claimed_by_id == to_agent.pk:
            return locked
        status = (
            CallbackStatus.SCHEDULED
            if locked.status == CallbackStatus.SCHEDULED
            else CallbackStatus.CLAIMED
        )
        return _save(
            locked,
            by=by,
            event="callback.reassigned",
            now=clock.now(),
            values={"status": status, "claimed_by": to_agent, "claimed_at": clock.now()},
            touch={"to_agent_id": to_agent.pk},
        )


def _clean_follow_up(follow_up_at: Any, now: datetime) -> datetime:
    if not isinstance(follow_up_at, datetime) or follow_up_at.tzinfo is None:
        raise InvalidInput(
            "Give the follow-up as a date and time.",
            fields={"follow_up_at": "Give a date and time."},
        )
    if follow_up_at <= now:
        raise InvalidInput(
            "The follow-up must be in the future.",
            fields={"follow_up_at": "Choose a time in the future."},
        )
    if follow_up_at > now + FOLLOW_UP_MAX:
        raise InvalidInput(
            "The follow-up must be within a year.",
            fields={"follow_up_at": "Choose a time within a year."},
        )
    return follow_up_at


def _take(locked: Callback, agent: User, now: datetime, values: dict[str, Any]) -> None:
    """Working an unheld callback takes it (as a claim would)."""
    _refuse_if_held_by_other(locked, agent)
    if locked.claimed_by_id is None:
        values.update(claimed_by=agent, claimed_at=now)


def callback_log_contact(
    *,
    callback: Callback,
    agent: User,
    outcome: str,
    notes: str = "",
    follow_up_at: datetime | None = None,
) -> CallbackContact:
    """Record one attempt to reach the customer. The first sets
    ``first_contact_at``; outcome ``resolved`` closes the callback; a
    ``follow_up_at`` schedules the next call (it returns to the queue then);
    otherwise the agent keeps it, claimed. An unheld callback is taken."""
    _require_worker(callback.tenant_id, agent)
    if outcome not in ContactOutcome.values:
        raise InvalidInput("Choose an outcome.", fields={"outcome": "Choose an outcome."})
    notes = _clean_notes(notes, "notes")
    now = clock.now()
    if follow_up_at is not None:
        if outcome == ContactOutcome.RESOLVED:
            raise InvalidInput(
                "A resolved callback needs no follow-up.",
                fields={"follow_up_at": "Leave empty when resolved."},
            )
        follow_up_at = _clean_follow_up(follow_up_at, now)
    with transaction.atomic():
        locked = _locked(callback)
        _refuse_if_closed(locked)
        values: dict[str, Any] = {}
        _take(locked, agent, now, values)
        contact = CallbackContact.objects.create(
            tenant_id=locked.tenant_id,
            callback=locked,
            agent=agent,
            outcome=outcome,
            notes=notes,
            follow_up_at=follow_up_at,
            at=now,
        )
        if locked.first_contact_at is None:
            values["first_contact_at"] = now
        if outcome == ContactOutcome.RESOLVED:
            values.update(status=CallbackStatus.DONE, done_at=now, follow_up_at=None)
        elif follow_up_at is not None:
            values.update(status=CallbackStatus.SCHEDULED, follow_up_at=follow_up_at)
        else:
            values.update(status=CallbackStatus.CLAIMED, follow_up_at=None)
        _save(
            locked,
            by=agent,
            event="callback.contacted",
            now=now,
            values=values,
            audit_extra={"outcome": outcome, "contact_id": contact.pk},
            touch={
                "outcome": outcome,
                "reached": outcome in REACHED_OUTCOMES,
                "follow_up_at": follow_up_at.isoformat() if follow_up_at else None,
            },
            external_id=f"callback-contact:{contact.pk}",
        )
        if outcome == ContactOutcome.RESOLVED:
            _touch(
                locked,
                "callback.resolved",
                now,
                {"callback_id": locked.pk, "agent_id": agent.pk, "outcome": outcome},
                external_id=f"callback:{locked.pk}:resolved",
            )
    return contact


def callback_schedule_follow_up(
    *, callback: Callback, agent: User, follow_up_at: datetime
) -> Callback:
    """Call again at ``follow_up_at``: the callback leaves the queue until then
    and comes back due at that time, still held by ``agent``."""
    _require_worker(callback.tenant_id, agent)
    now = clock.now()
    follow_up_at = _clean_follow_up(follow_up_at, now)
    with transaction.atomic():
        locked = _locked(callback)
        _refuse_if_closed(locked)
        values: dict[str, Any] = {"status": CallbackStatus.SCHEDULED, "follow_up_at": follow_up_at}
        _take(locked, agent, now, values)
        return _save(
            locked,
            by=agent,
            event="callback.follow_up_scheduled",
            now=now,
            values=values,
            touch={"follow_up_at": follow_up_at.isoformat()},
        )


def _clean_notes(value: str, field: str) -> str:
    """An agent's free text, stripped; too long, or with a NUL character (which
    PostgreSQL text and jsonb cannot store), is a field error."""
    value = (value or "").strip()
    if len(value) > NOTES_MAX:
        raise InvalidInput(
            f"Keep the {field} under {NOTES_MAX} characters.",
            fields={field: f"At most {NOTES_MAX} characters."},
        )
    if "\x00" in value:
        raise InvalidInput(
            f"Remove the NUL character (\\x00) from the {field}.",
            fields={field: "Remove the NUL character (\\x00)."},
        )
    return value


def callback_resolve(*, callback: Callback, agent: User, note: str = "") -> Callback:
    """Close the callback (nothing more to do). Resolving it again changes
    nothing; a callback someone else holds is theirs to resolve."""
    _require_worker(callback.tenant_id, agent)
    note = _clean_notes(note, "note")
    with transaction.atomic():
        locked = _locked(callback)
        if locked.status == CallbackStatus.DONE:
            return locked
        _refuse_if_closed(locked)
        now = clock.now()
        values: dict[str, Any] = {
            "status": CallbackStatus.DONE,
            "done_at": now,
            "follow_up_at": None,
        }
        _take(locked, agent, now, values)
        return _save(
            locked,
            by=agent,
            event="callback.resolved",
            now=now,
            values=values,
            audit_extra={"note": note} if note else None,
            external_id=f"callback:{locked.pk}:resolved",
        )
