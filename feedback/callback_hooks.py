"""Where the callback queue listens to the rest of the platform (wired in
``apps.ready``)."""

from __future__ import annotations

import logging

from commerce.models import Customer

logger = logging.getLogger(__name__)


def register() -> None:
    """Add the callback hooks to the other apps' hook lists (idempotent)."""
    from commerce.services.customers import CUSTOMER_MERGE_HOOKS

    if on_customer_merged not in CUSTOMER_MERGE_HOOKS:
        CUSTOMER_MERGE_HOOKS.append(on_customer_merged)


def on_customer_merged(survivor: Customer, merged: Customer) -> dict[str, int]:
    """Inside the merge transaction: the merged customer's callbacks, survey
    invitations and responses become the survivor's, so agents see one history
    and the metrics count one customer. Nothing here is unique per customer,
    so the rows move as they are."""
    from feedback.models import Callback, SurveyInvitation, SurveyResponse

    tenant_id = survivor.tenant_id
    moved = {
        "callbacks": Callback.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
        "survey_invitations": SurveyInvitation.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
        "survey_responses": SurveyResponse.objects.for_tenant(tenant_id)
        .filter(customer=merged)
        .update(customer=survivor),
    }
    logger.info(
        "feedback.customer_merged tenant_id=%s survivor=%s merged=%s moved=%s",
        tenant_id,
        survivor.pk,
        merged.pk,
        moved,
    )
    return moved
