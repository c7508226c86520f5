"""The hosted survey page /s/<token>/: the questions on one screen, the answer
recorded once, a thank-you worded by class, and clear pages for bad, expired
and answered links."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from commerce.models import Channel, ChannelConsent, ConsentStatus
from feedback.models import Highlight, SurveyResponse, Want
from feedback.services import survey_answer, survey_url
from feedback.tokens import survey_token
from retention import clock
from tests.feedback.test_survey_support import NOW, callbacks, invite, survey_touchpoints

NOT_FOUND_TEXT = "This survey link is not valid"
EXPIRED_TEXT = "This survey has closed"
ANSWERED_TEXT = "Thanks, we already have your answers"


@pytest.fixture(autouse=True)
def _fixed_clock(settings):
    clock.set_now(NOW)
    settings.PUBLIC_BASE_URL = "https://retention.example"


def _path(invitation) -> str:
    return survey_url(invitation).removeprefix("https://retention.example")


def _headers(response, referrer_policy: str = "no-referrer") -> None:
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Robots-Tag"] == "noindex"
    assert response["Referrer-Policy"] == referrer_policy


def _responses(tenant) -> list[tuple]:
    return list(
        SurveyResponse.objects.for_tenant(tenant).values_list(
            "invitation_id", "rating", "highlights", "highlight_text", "wants", "comment", "channel"
        )
    )


def test_the_page_shows_the_three_questions_and_a_comment_in_one_form(tenant):
    invitation = invite(tenant, first_name="Ann")

    response = Client().get(_path(invitation))

    assert response.status_code == 200
    _headers(response, "strict-origin")
    body = response.content.decode()
    assert "Alpha Store" in body and "Hi Ann" in body
    assert body.count("<form") == 1 and 'method="post"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert "<script" not in body
    assert 'name="viewport"' in body
    for value in range(1, 6):
        assert f'type="radio" name="rating" value="{value}"' in body
    for value, label in Highlight.choices:
        assert f'type="checkbox" name="highlights" value="{value}"' in body
        assert label in body
    for value in Want.values:
        assert f'type="radio" name="wants" value="{value}"' in body
    assert 'name="highlight_text"' in body and 'name="comment"' in body


def test_answering_records_it_and_thanks_the_customer(tenant):
    invitation = invite(tenant, first_name="Ann")
    client = Client()

    response = client.post(
        _path(invitation),
        {
            "rating": "5",
            "highlights": ["fast_delivery", "product_quality"],
            "highlight_text": "Quick",
            "wants": "tip",
            "comment": "Thanks!",
        },
    )

    assert response.status_code == 302
    _headers(response)
    assert response["Location"] == f"{_path(invitation)}thanks/"
    assert _responses(tenant) == [
        (invitation.pk, 5, ["fast_delivery", "product_quality"], "Quick", "tip", "Thanks!", "web")
    ]
    assert [kind for _, kind, _ in survey_touchpoints(tenant)] == [
        "survey.answered",
        "survey.promoter",
        "signal.wants_tip",
    ]
    thanks = client.get(response["Location"])
    assert thanks.status_code == 200
    _headers(thanks)
    body = thanks.content.decode()
    assert "Thank you, Ann!" in body
    assert "We are so glad your order went well." in body
    assert "We have noted that you would like a tailored tip." in body
    assert "will call" not in body and "in touch" not in body


def test_only_the_rating_is_required(tenant):
    invitation = invite(tenant)

    response = Client().post(_path(invitation), {"rating": "4"})

    assert response.status_code == 302
    assert _responses(tenant) == [(invitation.pk, 4, [], "", "", "", "web")]


def _thanks(tenant, data, *, unsubscribed=False) -> str:
    invitation = invite(tenant)
    if unsubscribed:
        for channel in Channel.values:
            ChannelConsent.objects.create(
                tenant=tenant,
                customer=invitation.customer,
                channel=channel,
                status=ConsentStatus.OPTED_OUT,
            )
    client = Client()
    client.post(_path(invitation), data)
    return client.get(f"{_path(invitation)}thanks/").content.decode()


def test_a_detractor_is_told_someone_will_be_in_touch(tenant):
    body = _thanks(tenant, {"rating": "2"})

    assert "We are sorry your order was not what it should have been." in body
    assert "Someone from Alpha Store will be in touch soon to put it right." in body
    assert len(callbacks(tenant)) == 1


def test_someone_who_asked_is_told_they_will_be_called(tenant):
    body = _thanks(tenant, {"rating": "4", "wants": "callback"})

    assert "Your answers help Alpha Store do better." in body
    assert "Someone from Alpha Store will call you soon." in body


def test_an_unsubscribed_detractor_who_did_not_ask_is_promised_no_call(tenant):
    body = _thanks(tenant, {"rating": "1"}, unsubscribed=True)

    assert "We are sorry" in body
    assert "Someone from" not in body
    assert callbacks(tenant) == []


def test_a_form_with_errors_comes_back_with_messages_and_what_was_given(tenant):
    invitation = invite(tenant)

    response = Client().post(
        _path(invitation),
        {
            "highlights": ["slow_delivery"],
            "highlight_text": "Late <again>",
            "wants": "a pony",
            "comment": "Box was wet",
        },
    )

    assert response.status_code == 422
    _headers(response, "strict-origin")
    body = response.content.decode()
    assert "Please check your answers" in body
    assert "Choose how it went, from 1 to 5." in body
    assert "Choose one of the options." in body
    assert 'value="slow_delivery" checked' in body
    assert 'value="fast_delivery" checked' not in body
    assert 'value="Late &lt;again&gt;"' in body  # escaped
    assert ">Box was wet</textarea>" in body
    assert _responses(tenant) == []


def test_a_too_long_comment_is_refused_with_its_message(tenant):
    invitation = invite(tenant)

    response = Client().post(_path(invitation), {"rating": "3", "comment": "x" * 2001})

    assert response.status_code == 422
    assert "Please keep it to 2000 characters." in response.content.decode()
    assert 'value="3" checked' in response.content.decode()
    assert _responses(tenant) == []


# --- bad, expired and answered links ----------------------------------------------------------


def test_a_tampered_or_unknown_link_gets_a_friendly_404(tenant):
    invitation = invite(tenant)
    token = survey_token(tenant_id=tenant.pk, invitation_id=invitation.pk)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    unknown = survey_token(tenant_id=tenant.pk, invitation_id=invitation.pk + 1000)

    for bad in (tampered, unknown, "nonsense", token[:-3]):
        for response in (
            Client().get(f"/s/{bad}/"),
            Client().post(f"/s/{bad}/", {"rating": "5"}),
            Client().get(f"/s/{bad}/thanks/"),
        ):
            assert response.status_code == 404
            assert NOT_FOUND_TEXT in response.content.decode()
            _headers(response)
    assert _responses(tenant) == []


def test_a_link_naming_another_tenant_gets_404_and_changes_nothing(tenant, other_tenant):
    theirs = invite(other_tenant)
    # Our tenant id with their invitation id, correctly signed: still nobody.
    mixed = survey_token(tenant_id=tenant.pk, invitation_id=theirs.pk)

    assert Client().get(f"/s/{mixed}/").status_code == 404
    assert Client().post(f"/s/{mixed}/", {"rating": "1"}).status_code == 404

    assert _responses(tenant) == _responses(other_tenant) == []
    assert callbacks(tenant) == callbacks(other_tenant) == []


def test_an_expired_link_gets_410_and_records_nothing(tenant):
    invitation = invite(tenant)
    clock.advance(days=31)

    shown = Client().get(_path(invitation))
    posted = Client().post(_path(invitation), {"rating": "5"})

    for response in (shown, posted):
        assert response.status_code == 410
        assert EXPIRED_TEXT in response.content.decode()
        assert "Alpha Store" in response.content.decode()
        _headers(response)
    assert _responses(tenant) == []


def test_an_answered_link_says_so_and_a_second_answer_changes_nothing(tenant):
    invitation = invite(tenant)
    survey_answer(invitation=invitation, rating=2, channel="sms", sms_body="2")
    clock.advance(days=40)  # answered, then expired: still "we have your answers"

    shown = Client().get(_path(invitation))
    posted = Client().post(_path(invitation), {"rating": "5"})

    assert (shown.status_code, posted.status_code) == (200, 409)
    for response in (shown, posted):
        body = response.content.decode()
        assert ANSWERED_TEXT in body
        assert "You rated this delivery 2 of 5 by text message on 1 June 2026." in body
        _headers(response)
    assert [r[1] for r in _responses(tenant)] == [2]
    assert len(callbacks(tenant)) == 1


def test_the_thanks_page_of_an_unanswered_survey_leads_to_the_questions(tenant):
    invitation = invite(tenant)

    response = Client().get(f"{_path(invitation)}thanks/")

    assert response.status_code == 302
    assert response["Location"] == _path(invitation)


def test_the_form_keeps_csrf_protection(tenant):
    invitation = invite(tenant)
    client = Client(enforce_csrf_checks=True)

    assert client.post(_path(invitation), {"rating": "5"}).status_code == 403
    assert _responses(tenant) == []

    client.get(_path(invitation))  # sets the CSRF cookie, as the browser would
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        _path(invitation),
        {"rating": "5", "csrfmiddlewaretoken": csrf},
        HTTP_ORIGIN="http://testserver",
    )
    assert response.status_code == 302
    assert [r[1] for r in _responses(tenant)] == [5]


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_not_allowed(tenant, method):
    invitation = invite(tenant)

    response = getattr(Client(), method)(_path(invitation))

    assert response.status_code == 405
    _headers(response)


def test_an_inactive_stores_link_gets_404(tenant):
    invitation = invite(tenant)
    tenant.is_active = False
    tenant.save()

    assert Client().get(_path(invitation)).status_code == 404


def test_a_link_works_until_the_last_second(tenant):
    invitation = invite(tenant)
    clock.set_now(invitation.expires_at - timedelta(seconds=1))

    assert Client().get(_path(invitation)).status_code == 200
