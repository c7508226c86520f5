"""The whole loop through the real entry points: a parcel is delivered, the
shipped survey journey invites the customer 4 hours later with a link (or an
SMS they can answer), the answer is classified, a detractor who asks for a call
lands in the agents' queue, and an agent claims, calls and resolves it."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from commerce.services.orders import fulfillment_update, order_upsert
from feedback.models import (
    Callback,
    CallbackStatus,
    SurveyInvitation,
    SurveyResponse,
)
from journeys.models import Journey, StepRun
from journeys.services.engine import journeys_tick
from messaging.models import Message, MessagingSettings
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.messaging.signing import twilio_post

TOKEN = "twilio-auth-token-for-tests"
BASE = "https://retention.example"
STORE_NUMBER = "+4930901820"
SHOPPER = "+4915112340077"


@pytest.fixture(autouse=True)
def _public(settings):
    settings.PUBLIC_BASE_URL = BASE
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def morning(tenant):
    """09:00 in Berlin on a Tuesday after the shipped journeys were activated."""
    activated = Journey.objects.for_tenant(tenant).get(key="post-delivery-survey")
    at = activated.current_version.activated_at + timedelta(days=1)
    while at.weekday() != 1:
        at += timedelta(days=1)
    clock.set_now(at.replace(hour=8, minute=0, second=0, microsecond=0))  # CET: 09:00
    return clock.now()


def deliver(tenant, *, order_id: str, preferred: str = "email") -> None:
    order_upsert(
        tenant=tenant,
        source="api",
        data={
            "id": order_id,
            "customer": {
                "id": "c-77",
                "email": "ada@shop.example",
                "phone": SHOPPER,
                "first_name": "Ada",
                "timezone": "Europe/Berlin",
                "preferred_channel": preferred,
                "consent": {
                    "email": {"status": "opted_in", "source": "checkout"},
                    "sms": {"status": "opted_in", "source": "checkout"},
                },
            },
            "placed_at": clock.now() - timedelta(days=2),
            "total": Decimal("30.00"),
            "currency": "EUR",
            "lines": [{"sku": "A-1", "quantity": 1, "unit_price": Decimal("30.00")}],
        },
    )
    data = {"id": f"F-{order_id}", "order_id": order_id, "status": "delivered"}
    fulfillment_update(tenant=tenant, source="api", data=data)


def hours(tenant, n: int) -> None:
    for _ in range(n):
        clock.advance(hours=1)
        journeys_tick(tenant_id=tenant.pk)


def survey_messages(tenant):
    survey = Journey.objects.for_tenant(tenant).get(key="post-delivery-survey")
    return Message.objects.for_tenant(tenant).filter(context__journey_id=survey.pk)


def test_delivered_to_resolved_through_the_survey_page(tenant, morning):
    deliver(tenant, order_id="o-1")
    hours(tenant, 3)
    assert not survey_messages(tenant).exists()  # not before 4 hours
    hours(tenant, 1)

    message = survey_messages(tenant).get()
    invitation = SurveyInvitation.objects.for_tenant(tenant).get()
    assert (message.channel, invitation.channel, invitation.message_id) == (
        "email",
        "email",
        message.pk,
    )
    link = re.search(rf"{BASE}(/s/[\w-]+/)", message.body_text).group(1)

    shopper = Client()
    assert shopper.get(link).status_code == 200
    thanks = shopper.post(link, {"rating": "2", "wants": "callback", "comment": "Box was wet"})
    assert thanks.status_code == 302
    answer = SurveyResponse.objects.for_tenant(tenant).get()
    assert (answer.rating, answer.classification, answer.channel) == (2, "detractor", "web")
    assert shopper.post(link, {"rating": "5"}).status_code == 409  # a link answers once

    callback = Callback.objects.for_tenant(tenant).get()
    assert (callback.survey_response, callback.asked_for_call) == (answer, True)
    assert callback.due_by == clock.now() + timedelta(minutes=15)  # Tuesday, open

    agent = login_as(tenant, Role.AGENT, email="ann@alpha.example")
    queue = agent.get("/agent/callbacks/").content.decode()
    assert f"/agent/callbacks/{callback.pk}/" in queue
    base = f"/agent/callbacks/{callback.pk}"
    assert agent.post(f"{base}/claim/").status_code == 302
    agent.post(f"{base}/contact/", {"outcome": "reached", "notes": "Sending a new box"})
    agent.post(f"{base}/resolve/", {"note": "Replacement sent"})

    callback.refresh_from_db()
    assert callback.status == CallbackStatus.DONE
    assert callback.first_contact_at == clock.now()
    assert callback.claimed_by == agent.user


def test_an_sms_invitation_is_answered_by_text(tenant, morning):
    MessagingSettings.objects.update_or_create(tenant=tenant, defaults={"sms_from": STORE_NUMBER})
    deliver(tenant, order_id="o-2", preferred="sms")
    hours(tenant, 4)

    message = survey_messages(tenant).get()
    assert message.channel == "sms"
    assert re.search(rf"{BASE}/s/[\w-]+/", message.body_text)

    params = {"MessageSid": "SM" + "7" * 32, "From": SHOPPER, "To": STORE_NUMBER, "Body": "5 fast"}
    reply = twilio_post(Client(), TOKEN, BASE, "/hooks/twilio/inbound/", params)

    assert reply.status_code == 200
    answer = SurveyResponse.objects.for_tenant(tenant).get()
    assert (answer.rating, answer.classification, answer.channel) == (5, "promoter", "sms")
    assert not Callback.objects.for_tenant(tenant).exists()


def test_a_delivery_is_surveyed_once_even_by_two_survey_journeys(tenant, morning):
    from journeys.services.definitions import journey_create
    from messaging.models import Template

    shipped = Journey.objects.for_tenant(tenant).get(key="post-delivery-survey")
    email = Template.objects.for_tenant(tenant).get(name="Survey: how did we do? (email)")
    copy = journey_create(
        tenant=tenant,
        name="My own survey",
        status="active",
        version={"trigger": "fulfillment", "fulfillment_status": "delivered", "reentry": "every"},
        steps=[{"name": "Ask", "delay": 4, "delay_unit": "hours", "action": "survey",
                "email_template": email}],
    )  # fmt: skip
    deliver(tenant, order_id="o-3")
    clock.advance(minutes=20)
    fulfillment_update(  # the storefront sends "delivered" again
        tenant=tenant, source="api", data={"id": "F-o-3", "order_id": "o-3", "status": "delivered"}
    )
    hours(tenant, 6)

    assert SurveyInvitation.objects.for_tenant(tenant).count() == 1
    runs = StepRun.objects.for_tenant(tenant).filter(step__action="survey")
    assert sorted(runs.values_list("outcome", "detail")) == [
        ("queued", ""),
        ("skipped", "already invited for this delivery"),
    ]
    sent = Message.objects.for_tenant(tenant).filter(context__journey_id__in=[shipped.pk, copy.pk])
    assert sent.count() == 1
