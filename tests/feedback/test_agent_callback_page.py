"""One callback's page: the customer panel, the survey answer, a tel: link,
and the actions — plain forms that redirect back with a flash message, or,
sent by the page's script, answered with the changed fragment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from commerce.models import DeliveryEvent, Fulfillment, FulfillmentStatus
from feedback.models import Callback, CallbackContact, CallbackStatus
from feedback.services.callbacks import callback_claim
from messaging.models import Message
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.factories import CustomerFactory, make_order
from tests.feedback.callback_factories import answer, delivered, person, queue, rfm

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.fixture
def ann(tenant):
    client = login_as(tenant, Role.AGENT, email="ann@alpha.example")
    client.user.first_name, client.user.last_name = "Ann", "Agent"
    client.user.save()
    return client


@pytest.fixture
def zoe(tenant):
    return CustomerFactory(tenant=tenant, first_name="Zoe", last_name="Zed", phone="+4915112345678")


def _url(callback: Callback, action: str = "") -> str:
    if action:
        return reverse("agent-callback-action", args=[callback.pk, action])
    return reverse("agent-callback", args=[callback.pk])


def _fresh(callback: Callback) -> Callback:
    return Callback.objects.for_tenant(callback.tenant_id).get(pk=callback.pk)


# --- the page ------------------------------------------------------------------------------


def test_the_page_shows_the_customer_panel_the_answer_and_a_tel_link(tenant, ann, zoe):
    on_time = delivered(zoe, NOW - timedelta(days=2))
    late_order = make_order(zoe, NOW - timedelta(days=9), total="80.00")
    Fulfillment.objects.create(
        tenant=tenant,
        order=late_order,
        external_id="F-late",
        status=FulfillmentStatus.DELIVERED,
        carrier="DHL",
        estimated_delivery_end=NOW - timedelta(days=6),
        delivered_at=NOW - timedelta(days=3),
    )
    stuck = Fulfillment.objects.create(
        tenant=tenant,
        order=make_order(zoe, NOW - timedelta(days=5)),
        external_id="F-stuck",
        status=FulfillmentStatus.SHIPPED,
    )
    DeliveryEvent.objects.create(
        tenant=tenant, fulfillment=stuck, status=FulfillmentStatus.DELAYED, at=NOW
    )
    rfm(zoe, "high_value_repeat", m_score=5)
    response = answer(zoe, 2)
    response.highlights = ["slow_delivery", "damaged_or_wrong"]
    response.comment = "The box was crushed."
    response.wants = "callback"
    response.save()
    Message.objects.create(
        tenant=tenant,
        customer=zoe,
        channel="email",
        category="transactional",
        idempotency_key="m1",
        subject="Your order is on its way",
        status="sent",
    )
    callback = queue(tenant, zoe, survey_response=response, reason="Rated the delivery 2 of 5")

    page = ann.get(_url(callback)).content.decode()

    assert "<h1>Zoe Zed</h1>" in page
    assert '<a class="btn call-btn" href="tel:+4915112345678">Call +4915112345678</a>' in page
    assert "<strong>2 of 5</strong> · Detractor" in page
    assert "What stood out: Slow delivery, Damaged or wrong item" in page
    assert "Would like: A call back" in page
    assert "The box was crushed." in page
    assert "3 · 180.00 EUR spent" in page
    assert "High-value repeat (RFM 445)" in page
    assert "<dt>Churn risk</dt><dd>not scored yet</dd>" in page
    assert "Delivered 3 days late" in page
    assert "Delayed on the way" in page
    assert "2 late or failed deliveries in the latest orders" in page
    assert str(on_time.order) in page
    assert "Your order is on its way" in page
    assert "first contact due" in page and "due in 15 min" in page


def test_a_customer_without_a_phone_number_is_said_so(tenant, ann):
    callback = queue(tenant, CustomerFactory(tenant=tenant, phone=""))

    page = ann.get(_url(callback)).content.decode()

    assert "No phone number on file." in page and "tel:" not in page


def test_forms_have_labels_for_every_field(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    page = ann.get(_url(callback)).content.decode()

    for field_id in (
        f"outcome-{callback.pk}",
        f"notes-{callback.pk}",
        f"contact-follow-up-{callback.pk}",
        f"follow-up-{callback.pk}",
        f"note-{callback.pk}",
    ):
        assert f'<label for="{field_id}"' in page
        assert f'id="{field_id}"' in page


def test_only_owners_and_marketers_see_the_reassign_form(tenant, ann, zoe):
    callback = queue(tenant, zoe)
    owner = login_as(tenant, Role.OWNER)

    assert "/reassign/" not in ann.get(_url(callback)).content.decode()
    assert "/reassign/" in owner.get(_url(callback)).content.decode()


# --- actions without JavaScript ------------------------------------------------------------


def test_claim_redirects_back_with_a_flash_message(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(_url(callback, "claim"), {"next": "/agent/callbacks/?show=mine"})

    assert (response.status_code, response["Location"]) == (302, "/agent/callbacks/?show=mine")
    assert _fresh(callback).claimed_by_id == ann.user.pk
    page = ann.get(response["Location"]).content.decode()
    assert "Claimed: it is yours now." in page


def test_an_outside_next_url_is_ignored(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(_url(callback, "claim"), {"next": "https://evil.example/"})

    assert response["Location"] == _url(callback)


def test_the_loser_of_a_claim_sees_who_has_it(tenant, ann, zoe):
    bob = person(tenant, Role.AGENT, "Bob Agent")
    callback = queue(tenant, zoe)
    callback_claim(callback=callback, agent=bob)

    response = ann.post(_url(callback, "claim"), follow=True)

    assert "Already claimed by Bob Agent." in response.content.decode()
    assert _fresh(callback).claimed_by_id == bob.pk


def test_log_a_contact_with_a_follow_up_in_store_time(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(
        _url(callback, "contact"),
        {"outcome": "no_answer", "notes": "Voicemail full", "follow_up_at": "2026-06-02T10:30"},
        follow=True,
    )

    assert "Logged: No answer. Follow-up scheduled." in response.content.decode()
    row = _fresh(callback)
    assert row.status == CallbackStatus.SCHEDULED
    assert row.follow_up_at == datetime(2026, 6, 2, 8, 30, tzinfo=UTC)  # 10:30 CEST
    assert row.first_contact_at == NOW
    contact = CallbackContact.objects.for_tenant(tenant).get()
    assert (contact.outcome, contact.notes, contact.agent_id) == (
        "no_answer",
        "Voicemail full",
        ann.user.pk,
    )


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("contact", {"outcome": ""}, "Choose an outcome."),
        ("contact", {"outcome": "reached", "follow_up_at": "soon"}, "Give the follow-up as a"),
        ("contact", {"outcome": "reached", "follow_up_at": "2026-05-01T10:00"}, "in the future"),
        ("follow-up", {"follow_up_at": ""}, "Give the follow-up time."),
        ("reassign", {"to_agent": "me"}, "Only an owner or a marketer can reassign"),
    ],
)
def test_a_refused_action_flashes_the_reason_and_changes_nothing(
    tenant, ann, zoe, action, data, message
):
    callback = queue(tenant, zoe)
    data = {k: ann.user.pk if v == "me" else v for k, v in data.items()}

    response = ann.post(_url(callback, action), data, follow=True)

    assert message in response.content.decode()
    row = _fresh(callback)
    assert (row.status, row.claimed_by_id) == (CallbackStatus.OPEN, None)
    assert CallbackContact.objects.for_tenant(tenant).count() == 0


def test_schedule_a_follow_up_then_release_then_resolve(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    ann.post(_url(callback, "follow-up"), {"follow_up_at": "2026-06-01T16:00"})
    assert (_fresh(callback).status, _fresh(callback).follow_up_at) == (
        CallbackStatus.SCHEDULED,
        datetime(2026, 6, 1, 14, 0, tzinfo=UTC),
    )
    ann.post(_url(callback, "release"))
    assert _fresh(callback).claimed_by_id is None
    response = ann.post(_url(callback, "resolve"), {"note": "Sorted by email"}, follow=True)

    assert "Resolved." in response.content.decode()
    assert (_fresh(callback).status, _fresh(callback).done_at) == (CallbackStatus.DONE, NOW)


def test_an_owner_reassigns_to_an_agent(tenant, ann, zoe):
    owner = login_as(tenant, Role.OWNER)
    callback = queue(tenant, zoe)

    response = owner.post(_url(callback, "reassign"), {"to_agent": ann.user.pk}, follow=True)

    assert "Reassigned to Ann Agent." in response.content.decode()
    assert _fresh(callback).claimed_by_id == ann.user.pk


def test_reassigning_to_someone_outside_the_store_is_refused(tenant, other_tenant, zoe):
    owner = login_as(tenant, Role.OWNER)
    stranger = person(other_tenant, Role.AGENT, "Sam Stranger")
    callback = queue(tenant, zoe)

    response = owner.post(_url(callback, "reassign"), {"to_agent": stranger.pk}, follow=True)

    assert "Choose a member who works callbacks." in response.content.decode()
    assert _fresh(callback).claimed_by_id is None


# --- actions sent by the script ------------------------------------------------------------


def test_a_fetched_action_answers_the_work_panel_with_the_message(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(_url(callback, "claim"), {"fragment": "panel"}, **FETCH)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith('<section id="work-panel"')
    assert "<html" not in body
    assert '<p class="flash success" role="status" tabindex="-1" data-flash>' in body
    assert "Claimed: it is yours now." in body
    assert "held by <strong>you</strong>" in body
    assert _fresh(callback).claimed_by_id == ann.user.pk


def test_a_fetched_claim_from_the_queue_answers_the_row(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(
        _url(callback, "claim"), {"fragment": "row", "next": "/agent/callbacks/"}, **FETCH
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith(f'<li class="row" id="callback-{callback.pk}"')
    assert "Claimed by Ann Agent" in body and "/claim/" not in body


def test_a_fetched_claim_that_lost_answers_409_with_who_has_it(tenant, ann, zoe):
    bob = person(tenant, Role.AGENT, "Bob Agent")
    callback = queue(tenant, zoe)
    callback_claim(callback=callback, agent=bob)

    response = ann.post(_url(callback, "claim"), {"fragment": "row"}, **FETCH)

    assert response.status_code == 409
    body = response.content.decode()
    assert '<p class="flash error" role="alert" tabindex="-1" data-flash>' in body
    assert "Already claimed by Bob Agent." in body
    assert "Claimed by Bob Agent" in body


def test_a_fetched_contact_with_bad_input_answers_422_and_keeps_the_panel(tenant, ann, zoe):
    callback = queue(tenant, zoe)

    response = ann.post(
        _url(callback, "contact"), {"fragment": "panel", "outcome": "shouted"}, **FETCH
    )

    assert response.status_code == 422
    assert "Choose an outcome." in response.content.decode()
    assert CallbackContact.objects.for_tenant(tenant).count() == 0
