"""The read-only admin lists of survey invitations and responses: this store's
rows only, filters, a link to the customer, nothing editable."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from feedback.models import SurveyInvitation, SurveyResponse
from feedback.services import survey_answer
from retention import clock
from tests.feedback.test_survey_support import NOW, invite


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


INVITATIONS = reverse("admin:feedback_surveyinvitation_changelist")
RESPONSES = reverse("admin:feedback_surveyresponse_changelist")


def _answers(tenant):
    """A detractor by SMS, a promoter on the web, and one unanswered invitation."""
    sad = invite(tenant, email="sad@alpha.example", channel="sms")
    survey_answer(
        invitation=sad, rating=2, channel="sms", sms_body="2 box crushed", highlight_text="crushed"
    )
    happy = invite(tenant, email="happy@alpha.example")
    survey_answer(invitation=happy, rating=5, channel="web", comment="Lovely")
    waiting = invite(tenant, email="waiting@alpha.example")
    return sad, happy, waiting


def test_responses_are_listed_with_a_link_to_the_customer(tenant, other_tenant, viewer_client):
    sad, _, _ = _answers(tenant)
    theirs = invite(other_tenant, email="theirs@bravo.example")
    survey_answer(invitation=theirs, rating=1, channel="web", comment="Their words")

    response = viewer_client.get(RESPONSES)

    assert response.status_code == 200
    body = response.content.decode()
    assert "sad@alpha.example" in body and "happy@alpha.example" in body
    assert "theirs@bravo.example" not in body and "Their words" not in body
    customer_url = reverse("admin:commerce_customer_change", args=[sad.customer_id])
    assert f'href="{customer_url}"' in body
    assert "crushed" in body and "Lovely" in body


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("classification__exact=detractor", "sad@", "happy@"),
        ("channel__exact=web", "happy@", "sad@"),
        ("rating__exact=5", "happy@", "sad@"),
    ],
)
def test_responses_filter_by_class_channel_and_rating(tenant, viewer_client, query, shown, hidden):
    _answers(tenant)

    body = viewer_client.get(f"{RESPONSES}?{query}").content.decode()

    assert shown in body and hidden not in body


def test_responses_filter_by_date(tenant, viewer_client):
    _answers(tenant)
    SurveyResponse.objects.for_tenant(tenant).filter(customer__email="sad@alpha.example").update(
        answered_at=NOW - timedelta(days=20)
    )
    clock.set_now(NOW + timedelta(hours=1))

    # What the filter's "Past 7 days" link sends.
    query = urlencode({"answered_at__gte": "2026-05-25 00:00:00+00:00"})
    body = viewer_client.get(f"{RESPONSES}?{query}").content.decode()

    assert "happy@" in body and "sad@" not in body


def test_invitations_are_listed_with_whether_they_were_answered(
    tenant, other_tenant, viewer_client
):
    _answers(tenant)
    invite(other_tenant, email="theirs@bravo.example")

    everything = viewer_client.get(INVITATIONS).content.decode()
    waiting = viewer_client.get(f"{INVITATIONS}?answered=no").content.decode()
    answered = viewer_client.get(f"{INVITATIONS}?answered=yes").content.decode()

    assert all(f"{who}@alpha.example" in everything for who in ("sad", "happy", "waiting"))
    assert "theirs@bravo.example" not in everything
    assert "waiting@" in waiting and "sad@" not in waiting and "happy@" not in waiting
    assert "waiting@" not in answered and "sad@" in answered
    assert everything.count('alt="True"') == 2


def test_expired_unanswered_invitations_can_be_listed(tenant, viewer_client):
    _answers(tenant)
    clock.advance(days=31)
    invite(tenant, email="fresh@alpha.example")

    body = viewer_client.get(f"{INVITATIONS}?answered=expired").content.decode()

    assert "waiting@" in body
    assert "sad@" not in body and "fresh@" not in body


def test_another_tenants_rows_answer_404_and_nothing_can_be_changed(
    tenant, other_tenant, owner_client
):
    theirs = invite(other_tenant)
    their_answer = survey_answer(invitation=theirs, rating=3, channel="web")
    ours = invite(tenant)
    our_answer = survey_answer(invitation=ours, rating=3, channel="web")

    for name, obj in (("surveyinvitation", theirs), ("surveyresponse", their_answer)):
        url = reverse(f"admin:feedback_{name}_change", args=[obj.pk])
        assert owner_client.get(url).status_code == 404

    for name, obj in (("surveyinvitation", ours), ("surveyresponse", our_answer)):
        assert (
            owner_client.get(reverse(f"admin:feedback_{name}_change", args=[obj.pk])).status_code
            == 200
        )
        assert owner_client.get(reverse(f"admin:feedback_{name}_add")).status_code == 403
        assert (
            owner_client.post(
                reverse(f"admin:feedback_{name}_delete", args=[obj.pk]), {"post": "yes"}
            ).status_code
            == 403
        )
    owner_client.post(
        reverse("admin:feedback_surveyresponse_change", args=[our_answer.pk]), {"rating": "5"}
    )
    our_answer.refresh_from_db()
    assert our_answer.rating == 3
    assert SurveyInvitation.objects.for_tenant(tenant).count() == 1
