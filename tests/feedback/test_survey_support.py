"""Shared data for the survey tests (no tests here): a delivered order, an
invitation for it, and what the survey wrote."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from commerce.models import Customer, Fulfillment, FulfillmentStatus, Touchpoint
from feedback.models import Callback, SurveyInvitation
from feedback.services import survey_invite
from retention.models import Tenant
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # a Monday
_fulfillments = itertools.count(1)


def delivered(tenant: Tenant, customer: Customer | None = None, **customer_fields) -> Fulfillment:
    """A delivered parcel of a new order (of a new customer unless given)."""
    customer = customer or CustomerFactory(tenant=tenant, **customer_fields)
    order = make_order(customer, NOW)
    return Fulfillment.objects.create(
        tenant=tenant,
        order=order,
        external_id=f"F{next(_fulfillments)}",
        status=FulfillmentStatus.DELIVERED,
        delivered_at=NOW,
    )


def invite(
    tenant: Tenant, *, channel: str = "email", customer: Customer | None = None, **customer_fields
) -> SurveyInvitation:
    fulfillment = delivered(tenant, customer, **customer_fields)
    invitation, _ = survey_invite(
        tenant=tenant,
        customer=fulfillment.order.customer,
        fulfillment=fulfillment,
        channel=channel,
    )
    return invitation


def survey_touchpoints(tenant: Tenant) -> list[tuple[int, str, dict]]:
    return list(
        Touchpoint.objects.for_tenant(tenant)
        .filter(source="survey")
        .order_by("id")
        .values_list("customer_id", "kind", "properties")
    )


def callbacks(tenant: Tenant) -> list[tuple]:
    return list(
        Callback.objects.for_tenant(tenant)
        .order_by("id")
        .values_list(
            "customer_id", "reason", "source", "idempotency_key", "survey_response_id",
            "asked_for_call",
        )
    )  # fmt: skip
