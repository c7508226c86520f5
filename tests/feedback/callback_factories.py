"""Hand-made rows for the callback queue tests: people, survey answers, RFM
rows and callbacks, written straight to the tables where the code under test
only reads them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from commerce.models import Customer, Fulfillment, FulfillmentStatus
from feedback.models import (
    Callback,
    SurveyClass,
    SurveyInvitation,
    SurveyResponse,
)
from feedback.services.callbacks import callback_create
from retention import clock
from retention.models import Role, Tenant, User
from segments.models import CustomerRFM
from tests.factories import CustomerFactory, MembershipFactory, UserFactory, make_order

CLASS_OF = {1: "detractor", 2: "detractor", 3: "detractor", 4: "neutral", 5: "promoter"}


def person(tenant: Tenant, role: str = Role.AGENT, name: str = "", email: str = "") -> User:
    first, _, last = name.partition(" ")
    user = UserFactory(
        email=email or f"{(first or role).lower()}@{tenant.slug}.example",
        first_name=first,
        last_name=last,
    )
    MembershipFactory(tenant=tenant, user=user, role=role)
    return user


def delivered(customer: Customer, at: datetime) -> Fulfillment:
    order = make_order(customer, at - timedelta(days=3))
    return Fulfillment.objects.create(
        tenant_id=customer.tenant_id,
        order=order,
        external_id=f"F{order.pk}",
        status=FulfillmentStatus.DELIVERED,
        delivered_at=at,
    )


def invite(
    customer: Customer,
    *,
    channel: str = "email",
    at: datetime | None = None,
    fulfillment: Fulfillment | None = None,
) -> SurveyInvitation:
    at = at or clock.now()
    return SurveyInvitation.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        fulfillment=fulfillment,
        order=fulfillment.order if fulfillment else None,
        channel=channel,
        created_at=at,
        expires_at=at + timedelta(days=30),
    )


def answer(
    customer: Customer,
    rating: int,
    *,
    at: datetime | None = None,
    invitation: SurveyInvitation | None = None,
    classification: str = "",
    channel: str = "web",
) -> SurveyResponse:
    at = at or clock.now()
    invitation = invitation or invite(customer, at=at - timedelta(hours=1))
    return SurveyResponse.objects.create(
        tenant_id=customer.tenant_id,
        invitation=invitation,
        customer=customer,
        rating=rating,
        classification=classification or CLASS_OF[rating],
        channel=channel,
        answered_at=at,
    )


def rfm(customer: Customer, tier: str, m_score: int) -> CustomerRFM:
    now = clock.now()
    return CustomerRFM.objects.create(
        tenant_id=customer.tenant_id,
        customer_id=customer.pk,
        first_order_at=now - timedelta(days=300),
        last_order_at=now - timedelta(days=10),
        orders_total=3,
        frequency=3,
        monetary=Decimal("300.00"),
        r_score=4,
        f_score=4,
        m_score=m_score,
        tier=tier,
    )


_keys = iter(range(1, 10**9))


def queue(tenant: Tenant, customer: Customer | None = None, **kw) -> Callback:
    kw.setdefault("reason", "Rated the delivery 2 of 5")
    kw.setdefault("source", "survey")
    kw.setdefault("idempotency_key", f"test:{next(_keys)}")
    customer = customer or CustomerFactory(tenant=tenant)
    callback, _ = callback_create(tenant=tenant, customer=customer, **kw)
    return callback


__all__ = ["SurveyClass", "answer", "delivered", "invite", "person", "queue", "rfm"]
