"""The callback queue: queueing a callback (journey steps and detractor
surveys call this), and working it (claim, release, reassign, log a contact,
schedule a follow-up, resolve)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from commerce.models import Customer
from feedback.models import Callback, SurveyResponse
from feedback.services.settings import feedback_settings
from retention import clock
from retention.errors import InvalidInput
from retention.models import Tenant

logger = logging.getLogger(__name__)

REASON_MAX = Callback._meta.get_field("reason").max_length
SOURCE_MAX = Callback._meta.get_field("source").max_length
KEY_MAX = Callback._meta.get_field("idempotency_key").max_length
PRIORITY_RANGE = (-1000, 1000)


def callback_create(
    *,
    tenant: Tenant | int,
    customer: Customer,
    reason: str,
    source: str,
    idempotency_key: str,
    context: dict[str, Any] | None = None,
    priority: int = 0,
    survey_response: SurveyResponse | None = None,
    asked_for_call: bool = False,
) -> tuple[Callback, bool]:
    """Queue a callback, due the tenant's SLA from now; returns (callback,
    created). The same ``idempotency_key`` again (a retried step, a re-run
    task) returns the first row unchanged, with created False."""
    tenant_id = getattr(tenant, "pk", tenant)
    if customer.tenant_id != tenant_id:
        raise InvalidInput("No such customer in this store.", fields={"customer": "Not found."})
    reason, source, key = _clean(reason, source, idempotency_key, context, priority)
    # A merged-away customer's calls go to the survivor, whose record is current.
    customer_id = customer.merged_into_id or customer.pk
    now = clock.now()
    sla = timedelta(minutes=feedback_settings(tenant_id).first_contact_minutes)
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
            "due_by": now + sla,
            "created_at": now,
        },
    )
    if created:
        logger.info(
            "feedback.callback_created tenant_id=%s callback_id=%s customer_id=%s source=%s",
            tenant_id,
            callback.pk,
            customer_id,
            source,
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
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
    ):
        errors["priority"] = f"Give a whole number from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}."
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)
    return reason, source, key
