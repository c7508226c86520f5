"""Survey services: invitations (one per delivery, expiring), their links, and
answers (validated, classified by the tenant's thresholds, recorded once, with
touchpoints, next-purchase signals and callbacks)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from commerce.models import Channel, ChannelConsent, ConsentStatus, Customer, Touchpoint
from commerce.services.customers import customer_merge
from feedback.models import (
    Callback,
    FeedbackSettings,
    SurveyClass,
    SurveyInvitation,
    SurveyResponse,
)
from feedback.services import (
    SurveyAnswered,
    SurveyExpired,
    customer_has_unsubscribed,
    feedback_settings,
    feedback_thresholds_validate,
    survey_answer,
    survey_classify,
    survey_invitation_for_token,
    survey_invitation_message_set,
    survey_invite,
    survey_url,
)
from feedback.tokens import survey_token
from messaging.models import Category, Message, Suppression, SuppressionReason
from messaging.services.templates import template_render, template_save
from retention import clock
from retention.errors import InvalidInput
from tests.factories import CustomerFactory, make_order
from tests.feedback.test_survey_support import (
    NOW,
    callbacks,
    delivered,
    invite,
    survey_touchpoints,
)


@pytest.fixture(autouse=True)
def _fixed_clock(settings):
    clock.set_now(NOW)
    settings.PUBLIC_BASE_URL = "https://retention.example"


def _answer(invitation, rating=4, channel="web", **kw) -> SurveyResponse:
    return survey_answer(invitation=invitation, rating=rating, channel=channel, **kw)


# --- invitations ------------------------------------------------------------------------------


def test_an_invitation_is_for_the_delivery_and_expires_after_the_valid_days(tenant):
    fulfillment = delivered(tenant)
    ann = fulfillment.order.customer

    invitation, created = survey_invite(
        tenant=tenant, customer=ann, fulfillment=fulfillment, channel="sms"
    )

    assert created is True
    invitation.refresh_from_db()
    assert (invitation.customer_id, invitation.order_id, invitation.fulfillment_id) == (
        ann.pk,
        fulfillment.order_id,
        fulfillment.pk,
    )
    assert (invitation.channel, invitation.source, invitation.question_set) == (
        "sms",
        "journey",
        "delivery-v1",
    )
    assert (invitation.created_at, invitation.expires_at) == (NOW, NOW + timedelta(days=30))
    assert invitation.retry_prompted_at is None


def test_the_tenants_valid_days_set_the_expiry(tenant):
    row = feedback_settings(tenant)
    row.survey_valid_days = 7
    row.save()

    assert invite(tenant).expires_at == NOW + timedelta(days=7)


def test_one_invitation_per_delivery(tenant):
    fulfillment = delivered(tenant)
    ann = fulfillment.order.customer
    first, _ = survey_invite(tenant=tenant, customer=ann, fulfillment=fulfillment, channel="email")
    clock.advance(days=2)

    again, created = survey_invite(
        tenant=tenant, customer=ann, fulfillment=fulfillment, channel="sms", source="manual"
    )

    assert created is False
    assert again.pk == first.pk
    assert (again.channel, again.source, again.created_at) == ("email", "journey", NOW)
    assert SurveyInvitation.objects.for_tenant(tenant).count() == 1


def test_without_a_delivery_each_call_makes_an_invitation(tenant):
    ann = CustomerFactory(tenant=tenant)
    order = make_order(ann, NOW)

    first, created_first = survey_invite(
        tenant=tenant, customer=ann, order=order, channel="email", source="manual"
    )
    second, created_second = survey_invite(tenant=tenant, customer=ann, channel="in_app")

    assert created_first is created_second is True
    assert first.pk != second.pk
    assert (first.order_id, second.order_id) == (order.pk, None)


def test_two_invitations_at_once_for_one_delivery_make_one(transactional_db, tenant):
    fulfillment = delivered(tenant)
    ann = fulfillment.order.customer
    barrier, results = threading.Barrier(4), []

    def run():
        try:
            barrier.wait()
            results.append(
                survey_invite(tenant=tenant, customer=ann, fulfillment=fulfillment, channel="sms")
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({invitation.pk for invitation, _ in results}) == 1
    assert SurveyInvitation.objects.for_tenant(tenant).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"source": "s" * 51}, "source"),
    ],
)
def test_bad_invitations_are_refused_with_the_field(tenant, change, field):
    fulfillment = delivered(tenant)
    kwargs = {"channel": "email", **change}

    with pytest.raises(InvalidInput) as err:
        survey_invite(
            tenant=tenant, customer=fulfillment.order.customer, fulfillment=fulfillment, **kwargs
        )

    assert list(err.value.fields) == [field]
    assert SurveyInvitation.objects.for_tenant(tenant).count() == 0


def test_another_tenants_customer_or_delivery_is_refused(tenant, other_tenant):
    ours, theirs = delivered(tenant), delivered(other_tenant)

    with pytest.raises(InvalidInput) as err:
        survey_invite(
            tenant=tenant, customer=theirs.order.customer, fulfillment=theirs, channel="email"
        )
    assert set(err.value.fields) == {"customer", "fulfillment"}

    with pytest.raises(InvalidInput) as err:
        survey_invite(
            tenant=tenant, customer=ours.order.customer, order=theirs.order, channel="email"
        )
    assert set(err.value.fields) == {"order"}

    with pytest.raises(InvalidInput) as err:
        survey_invite(
            tenant=tenant,
            customer=ours.order.customer,
            fulfillment=ours,
            order=make_order(ours.order.customer, NOW),
            channel="email",
        )
    assert err.value.fields == {"order": "The fulfillment belongs to another order."}
    assert SurveyInvitation.objects.for_tenant(tenant).count() == 0
    assert SurveyInvitation.objects.for_tenant(other_tenant).count() == 0


def test_the_link_is_absolute_stable_and_leads_back_to_the_invitation(tenant):
    invitation = invite(tenant)

    url = survey_url(invitation)

    token = survey_token(tenant_id=tenant.pk, invitation_id=invitation.pk)
    assert url == f"https://retention.example/s/{token}/"
    assert survey_url(invitation) == url
    found = survey_invitation_for_token(token)
    assert found.pk == invitation.pk
    assert found.tenant == tenant


def test_a_token_naming_another_tenant_or_an_inactive_store_finds_nothing(tenant, other_tenant):
    invitation = invite(tenant)

    assert (
        survey_invitation_for_token(
            survey_token(tenant_id=other_tenant.pk, invitation_id=invitation.pk)
        )
        is None
    )
    tenant.is_active = False
    tenant.save()
    assert (
        survey_invitation_for_token(survey_token(tenant_id=tenant.pk, invitation_id=invitation.pk))
        is None
    )


def test_the_message_that_carried_the_invitation_is_remembered_once(tenant):
    invitation = invite(tenant)
    first, second = (
        Message.objects.create(
            tenant=tenant,
            customer=invitation.customer,
            channel=Channel.EMAIL,
            category=Category.TRANSACTIONAL,
            idempotency_key=f"survey-test:{n}",
        )
        for n in (1, 2)
    )

    assert survey_invitation_message_set(invitation=invitation, message_id=first.pk) is True
    assert survey_invitation_message_set(invitation=invitation, message_id=second.pk) is False
    invitation.refresh_from_db()
    assert invitation.message_id == first.pk


def test_a_template_may_show_the_survey_link(tenant):
    invitation = invite(tenant, first_name="Ann")
    template = template_save(
        tenant=tenant,
        name="Delivery survey",
        channel="sms",
        category="transactional",
        text="Hi {{ customer.first_name }}, how was it? {{ links.survey }}",
    )

    content = template_render(
        template=template,
        customer=invitation.customer,
        extra={"links": {"survey": survey_url(invitation)}},
    )

    assert content.text == f"Hi Ann, how was it? {survey_url(invitation)}"
    assert template_render(template=template, customer=invitation.customer).text == (
        "Hi Ann, how was it?"
    )


# --- classes and thresholds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rating", "expected"),
    [(1, "detractor"), (2, "detractor"), (3, "detractor"), (4, "neutral"), (5, "promoter")],
)
def test_default_classes(rating, expected):
    assert survey_classify(rating=rating, promoter_min_rating=5, neutral_min_rating=4) == expected


@pytest.mark.parametrize(
    ("promoter", "neutral", "classes"),
    [
        (4, 3, ["detractor", "detractor", "neutral", "promoter", "promoter"]),
        (5, 2, ["detractor", "neutral", "neutral", "neutral", "promoter"]),
        (4, 4, ["detractor", "detractor", "detractor", "promoter", "promoter"]),
        (1, 1, ["promoter"] * 5),
    ],
)
def test_tenant_thresholds_move_the_classes(promoter, neutral, classes):
    assert [
        survey_classify(rating=r, promoter_min_rating=promoter, neutral_min_rating=neutral)
        for r in range(1, 6)
    ] == classes


def test_thresholds_are_checked():
    feedback_thresholds_validate(promoter_min_rating=5, neutral_min_rating=4)
    feedback_thresholds_validate(promoter_min_rating=4, neutral_min_rating=4)

    with pytest.raises(InvalidInput) as err:
        feedback_thresholds_validate(promoter_min_rating=3, neutral_min_rating=4)
    assert err.value.fields == {"neutral_min_rating": "Must not be above the promoter rating (3)."}

    with pytest.raises(InvalidInput) as err:
        feedback_thresholds_validate(promoter_min_rating=6, neutral_min_rating=0)
    assert err.value.fields == {
        "promoter_min_rating": "Give a rating from 1 to 5.",
        "neutral_min_rating": "Give a rating from 1 to 5.",
    }

    with pytest.raises(InvalidInput) as err:
        feedback_thresholds_validate(promoter_min_rating=True, neutral_min_rating="4")
    assert set(err.value.fields) == {"promoter_min_rating", "neutral_min_rating"}


def test_an_answer_is_classified_by_its_tenants_thresholds(tenant, other_tenant):
    FeedbackSettings.objects.create(
        tenant=other_tenant, promoter_min_rating=4, neutral_min_rating=3
    )

    ours = _answer(invite(tenant), rating=4)
    theirs = _answer(invite(other_tenant), rating=4)

    assert (ours.classification, theirs.classification) == ("neutral", "promoter")


# --- answering --------------------------------------------------------------------------------


def test_an_answer_is_stored_with_its_class_and_touchpoints(tenant):
    invitation = invite(tenant)
    ann = invitation.customer

    response = _answer(
        invitation,
        rating="5",
        highlights=["price", "fast_delivery", "price"],
        highlight_text="  Quick!  ",
        wants="promotion",
        comment="Lovely tea.",
    )

    response.refresh_from_db()
    assert (response.customer_id, response.invitation_id, response.rating) == (
        ann.pk,
        invitation.pk,
        5,
    )
    assert response.classification == SurveyClass.PROMOTER
    assert response.highlights == ["fast_delivery", "price"]  # in the question's order, once
    assert (response.highlight_text, response.wants, response.comment) == (
        "Quick!",
        "promotion",
        "Lovely tea.",
    )
    assert (response.channel, response.sms_body, response.answered_at) == ("web", "", NOW)
    ids = {
        "response_id": response.pk,
        "invitation_id": invitation.pk,
        "rating": 5,
        "fulfillment_id": invitation.fulfillment_id,
        "order_id": invitation.order_id,
    }
    assert survey_touchpoints(tenant) == [
        (ann.pk, "survey.answered", {**ids, "classification": "promoter", "channel": "web"}),
        (ann.pk, "survey.promoter", ids),
        (ann.pk, "signal.wants_promotion", ids),
    ]
    assert set(
        Touchpoint.objects.for_tenant(tenant)
        .filter(source="survey")
        .values_list("category", "occurred_at")
    ) == {("support", NOW), ("marketing", NOW)}
    assert callbacks(tenant) == []


@pytest.mark.parametrize("want", ["tip", "promotion", "demo"])
def test_a_wish_becomes_a_next_purchase_signal(tenant, want):
    _answer(invite(tenant), rating=4, wants=want)

    assert [kind for _, kind, _ in survey_touchpoints(tenant)] == [
        "survey.answered",
        "survey.neutral",
        f"signal.wants_{want}",
    ]


@pytest.mark.parametrize("want", ["", "nothing"])
def test_no_wish_means_no_signal(tenant, want):
    _answer(invite(tenant), rating=4, wants=want)

    assert [kind for _, kind, _ in survey_touchpoints(tenant)] == [
        "survey.answered",
        "survey.neutral",
    ]


def test_an_answer_without_a_delivery_leaves_its_ids_out(tenant):
    ann = CustomerFactory(tenant=tenant)
    invitation, _ = survey_invite(tenant=tenant, customer=ann, channel="email")

    response = _answer(invitation, rating=5)

    assert survey_touchpoints(tenant)[1] == (
        ann.pk,
        "survey.promoter",
        {"response_id": response.pk, "invitation_id": invitation.pk, "rating": 5},
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": ""}, "rating"),
        ({"rating": "4.5"}, "rating"),
        ({"rating": "9" * 5000}, "rating"),
        ({"rating": "\u0664"}, "rating"),
        ({"rating": True}, "rating"),
        ({"rating": None}, "rating"),
        ({"highlights": ["fast_delivery", "teleportation"]}, "highlights"),
        ({"highlights": "fast_delivery"}, "highlights"),
        ({"highlight_text": "x" * 501}, "highlight_text"),
        ({"comment": "x" * 2001}, "comment"),
        ({"comment": None}, "comment"),
        ({"wants": "a pony"}, "wants"),
        ({"channel": "email"}, "channel"),
        ({"sms_body": "x" * 1601}, "sms_body"),
    ],
)
def test_bad_answers_are_refused_with_the_field_and_store_nothing(tenant, change, field):
    invitation = invite(tenant)

    with pytest.raises(InvalidInput) as err:
        _answer(invitation, **{"rating": 4, **change})

    assert list(err.value.fields) == [field]
    assert err.value.message.startswith(f"{field}: ")
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    assert survey_touchpoints(tenant) == []


def test_every_bad_field_is_reported_at_once(tenant):
    with pytest.raises(InvalidInput) as err:
        _answer(invite(tenant), rating=9, wants="?", comment="x" * 3000)

    assert set(err.value.fields) == {"rating", "wants", "comment"}


def test_an_answered_invitation_refuses_a_second_answer_and_stores_nothing_twice(tenant):
    invitation = invite(tenant)
    first = _answer(invitation, rating=2)
    clock.advance(minutes=5)

    with pytest.raises(SurveyAnswered) as err:
        _answer(invitation, rating=5)

    assert (err.value.status, err.value.code) == (409, "survey_answered")
    assert list(SurveyResponse.objects.for_tenant(tenant).values_list("pk", "rating")) == [
        (first.pk, 2)
    ]
    assert len(survey_touchpoints(tenant)) == 2
    assert len(callbacks(tenant)) == 1


def test_an_expired_invitation_refuses_its_answer(tenant):
    invitation = invite(tenant)
    clock.advance(days=30)

    with pytest.raises(SurveyExpired) as err:
        _answer(invitation)

    assert (err.value.status, err.value.code) == (410, "survey_expired")
    assert SurveyResponse.objects.for_tenant(tenant).count() == 0
    assert survey_touchpoints(tenant) == []


def test_a_second_before_expiry_still_counts(tenant):
    invitation = invite(tenant)
    clock.advance(days=30, seconds=-1)

    assert _answer(invitation).rating == 4


def test_two_answers_at_once_store_one(transactional_db, tenant):
    invitation = invite(tenant)
    barrier, outcomes = threading.Barrier(3), []

    def run(rating):
        try:
            barrier.wait()
            outcomes.append(_answer(invitation, rating=rating, wants="callback").rating)
        except SurveyAnswered:
            outcomes.append("answered")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes, key=str)[-2:] == ["answered", "answered"]
    assert SurveyResponse.objects.for_tenant(tenant).count() == 1
    assert len(survey_touchpoints(tenant)) == 2
    assert len(callbacks(tenant)) == 1


# --- callbacks --------------------------------------------------------------------------------


def test_a_detractor_is_queued_for_a_callback(tenant):
    invitation = invite(tenant)

    response = _answer(invitation, rating=2)

    assert callbacks(tenant) == [
        (
            invitation.customer_id,
            "Rated the delivery 2 of 5",
            "survey",
            f"survey:{response.pk}",
            response.pk,
            False,
        )
    ]
    callback = Callback.objects.for_tenant(tenant).get()
    assert callback.context == {
        "survey_response_id": response.pk,
        "invitation_id": invitation.pk,
        "rating": 2,
        "classification": "detractor",
        "order_id": invitation.order_id,
        "fulfillment_id": invitation.fulfillment_id,
    }


def test_anyone_who_asks_for_a_call_is_queued(tenant):
    response = _answer(invite(tenant), rating=5, wants="callback")

    assert callbacks(tenant) == [
        (response.customer_id, "Asked for a call back", "survey", f"survey:{response.pk}",
         response.pk, True),
    ]  # fmt: skip
    assert [kind for _, kind, _ in survey_touchpoints(tenant)] == [
        "survey.answered",
        "survey.promoter",
    ]  # a call back is a callback, not a signal


def test_a_detractor_who_asks_is_queued_once_with_both_reasons(tenant):
    _answer(invite(tenant), rating=1, wants="callback")

    assert [(reason, asked) for _, reason, _, _, _, asked in callbacks(tenant)] == [
        ("Rated the delivery 1 of 5 and asked for a call back", True)
    ]


@pytest.mark.parametrize("rating", [4, 5])
def test_neutrals_and_promoters_who_do_not_ask_are_not_called(tenant, rating):
    _answer(invite(tenant), rating=rating, wants="demo")

    assert callbacks(tenant) == []


def _unsubscribe_all(customer: Customer) -> None:
    for channel in Channel.values:
        ChannelConsent.objects.create(
            tenant_id=customer.tenant_id,
            customer=customer,
            channel=channel,
            status=ConsentStatus.OPTED_OUT,
            source="preferences_page",
        )


def test_a_detractor_who_unsubscribed_is_called_only_if_they_asked(tenant):
    quiet = invite(tenant)
    _unsubscribe_all(quiet.customer)
    asking = invite(tenant)
    _unsubscribe_all(asking.customer)

    _answer(quiet, rating=1)
    response = _answer(asking, rating=1, wants="callback")

    assert [(customer_id, asked) for customer_id, *_, asked in callbacks(tenant)] == [
        (asking.customer_id, True)
    ]
    assert callbacks(tenant)[0][4] == response.pk
    # The quiet one's answer is still recorded and classified.
    assert list(
        SurveyResponse.objects.for_tenant(tenant)
        .filter(customer=quiet.customer)
        .values_list("classification", flat=True)
    ) == ["detractor"]


def test_a_detractor_who_texted_stop_is_not_called_unless_asked(tenant):
    invitation = invite(tenant, phone="+4915112345678", email="")
    Suppression.objects.create(
        tenant=tenant,
        channel=Channel.SMS,
        address="+4915112345678",
        reason=SuppressionReason.SMS_STOP,
    )

    _answer(invitation, rating=3)

    assert callbacks(tenant) == []


def test_unsubscribed_means_a_no_somewhere_and_a_yes_nowhere(tenant):
    ann = CustomerFactory(tenant=tenant, email="ann@shop.example", phone="+4915100000001")

    def consent(channel, status):
        ChannelConsent.objects.update_or_create(
            tenant=tenant, customer=ann, channel=channel, defaults={"status": status}
        )

    assert customer_has_unsubscribed(ann) is False  # nothing said
    consent(Channel.EMAIL, ConsentStatus.OPTED_OUT)
    assert customer_has_unsubscribed(ann) is True
    consent(Channel.SMS, ConsentStatus.OPTED_IN)
    assert customer_has_unsubscribed(ann) is False  # still gets marketing texts
    consent(Channel.SMS, ConsentStatus.UNKNOWN)
    consent(Channel.EMAIL, ConsentStatus.UNKNOWN)
    for reason, expected in (
        (SuppressionReason.BOUNCE, False),  # the address does not work: not their choice
        (SuppressionReason.MANUAL, False),
        (SuppressionReason.UNSUBSCRIBE, True),
        (SuppressionReason.SPAM_REPORT, True),
    ):
        Suppression.objects.update_or_create(
            tenant=tenant,
            channel=Channel.EMAIL,
            address="ann@shop.example",
            defaults={"reason": reason},
        )
        assert customer_has_unsubscribed(ann) is expected, reason


def test_another_tenants_suppression_of_the_same_address_does_not_count(tenant, other_tenant):
    ann = CustomerFactory(tenant=tenant, email="ann@shop.example")
    Suppression.objects.create(
        tenant=other_tenant,
        channel=Channel.EMAIL,
        address="ann@shop.example",
        reason=SuppressionReason.UNSUBSCRIBE,
    )

    assert customer_has_unsubscribed(ann) is False


def test_an_answer_writes_only_its_own_tenants_rows(tenant, other_tenant):
    invite(other_tenant)

    _answer(invite(tenant), rating=1, wants="promotion")

    assert SurveyResponse.objects.for_tenant(other_tenant).count() == 0
    assert Callback.objects.for_tenant(other_tenant).count() == 0
    assert survey_touchpoints(other_tenant) == []
    assert len(survey_touchpoints(tenant)) == 3


# --- merges -----------------------------------------------------------------------------------


def test_a_merged_customers_survey_moves_to_the_survivor(tenant):
    invitation = invite(tenant)
    merged = invitation.customer
    response = _answer(invitation, rating=4)
    survivor = CustomerFactory(tenant=tenant)

    customer_merge(survivor=survivor, merged=merged, reason="same person")

    invitation.refresh_from_db()
    response.refresh_from_db()
    assert invitation.customer_id == response.customer_id == survivor.pk


def test_an_invitation_of_a_merged_away_customer_is_answered_as_the_survivor(tenant):
    invitation = invite(tenant)
    survivor = CustomerFactory(tenant=tenant)
    Customer.objects.for_tenant(tenant).filter(pk=invitation.customer_id).update(
        merged_into=survivor
    )

    response = _answer(invitation, rating=2)

    assert response.customer_id == survivor.pk
    assert {customer_id for customer_id, _, _ in survey_touchpoints(tenant)} == {survivor.pk}
    assert callbacks(tenant)[0][0] == survivor.pk
