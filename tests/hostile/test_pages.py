"""Hostile input to the forms of the pages for people: the shopper
preferences page ``/u/<token>/``, the survey ``/s/<token>/``, the order page's
checkout feedback, and the agents' callback queue actions ``/agent/callbacks/…``.
A bad value gets the form again with an error (4xx or 200), never a 5xx, and
a refused form writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from commerce.tokens import preferences_page_path
from feedback.models import Callback, CallbackContact, SurveyResponse
from feedback.services import survey_url
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.factories import CustomerFactory
from tests.feedback.callback_factories import queue
from tests.feedback.test_survey_support import invite
from tests.hostile import corpus
from tests.hostile.conftest import HYPOTHESIS, assert_no_5xx, counts

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin


@pytest.fixture(autouse=True)
def _setup(settings):
    clock.set_now(NOW)
    settings.PUBLIC_BASE_URL = "https://retention.example"


def _client() -> Client:
    return Client(raise_request_exception=False)


HOSTILE_TOKENS = [
    "x",
    "x" * 5000,
    "%00",
    "' OR 1=1 --",
    "{{ settings.SECRET_KEY }}",
    "..%2F..%2Fetc",
    "😀",
    "eyJ0IjoxfQ:1abc:def",
]


def test_hostile_tokens_are_a_page_not_found(db):
    before = counts()
    for prefix in ("u", "s", "o"):
        for token in HOSTILE_TOKENS:
            for method in ("get", "post"):
                response = getattr(_client(), method)(f"/{prefix}/{token}/")
                # The order page takes no POST: it may say so before it reads the token.
                allowed = (404, 405) if (prefix, method) == ("o", "post") else (404,)
                assert response.status_code in allowed, (prefix, token, method)
    assert counts() == before


# --- preferences -----------------------------------------------------------------------------


@pytest.fixture
def preferences_path(tenant) -> str:
    customer = CustomerFactory(tenant=tenant, email="ann@example.com", phone="+4915112345678")
    return preferences_page_path(customer)


def test_preferences_form_with_nasty_values(preferences_path):
    for field in ("channel", "status", "action", "List-Unsubscribe"):
        for value in corpus.FORM_FIELD_VALUES:
            before = counts()
            response = _client().post(preferences_path, {field: value})
            assert_no_5xx(response)
            assert response.status_code in (400, 409), (field, value[:20], response.status_code)
            assert counts() == before
    for value in corpus.FORM_FIELD_VALUES:
        response = _client().get(preferences_path, {"saved": value})
        assert response.status_code == 200
        assert value not in response.content.decode() or value.isalnum()


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_preferences_form(preferences_path, data):
    fields = data.draw(
        st.dictionaries(
            st.sampled_from(["channel", "status", "action", "List-Unsubscribe", "x"]),
            st.one_of(corpus.form_text, st.sampled_from(["email", "sms", "opted_in", "opted_out"])),
        )
    )
    response = _client().post(preferences_path, fields)
    assert_no_5xx(response)
    assert response.status_code in (200, 302, 400, 409)


# --- survey ----------------------------------------------------------------------------------

SURVEY_FIELDS = ("rating", "highlights", "highlight_text", "wants", "comment")
VALID_ANSWER = {
    "rating": "4",
    "highlights": ["fast_delivery"],
    "highlight_text": "Quick",
    "wants": "nothing",
    "comment": "Thanks",
}


def _survey_path(invitation) -> str:
    return survey_url(invitation).removeprefix("https://retention.example")


def test_survey_form_with_nasty_values_shows_the_form_again(tenant):
    invitation = invite(tenant)
    path = _survey_path(invitation)
    for field in SURVEY_FIELDS:
        for value in corpus.FORM_FIELD_VALUES:
            answer = {**VALID_ANSWER, field: value}
            before = counts()
            response = _client().post(path, answer)
            assert_no_5xx(response)
            if response.status_code == 302:  # a fine answer (an odd but storable comment)
                assert "\x00" not in value and field in ("highlight_text", "comment")
                SurveyResponse.objects.for_tenant(tenant).filter(invitation=invitation).delete()
                continue
            assert response.status_code == 422, (field, value[:20], response.status_code)
            assert counts() == before
    assert not SurveyResponse.objects.for_tenant(tenant).exists()


def test_a_nul_character_in_the_survey_comment_is_a_form_error(tenant):
    invitation = invite(tenant)
    before = counts()
    response = _client().post(_survey_path(invitation), {**VALID_ANSWER, "comment": "ok\x00then"})
    assert response.status_code == 422
    assert "NUL" in response.content.decode() or "character" in response.content.decode()
    assert counts() == before


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_survey_form(tenant, data):
    invitation = invite(tenant)
    answer = {
        **VALID_ANSWER,
        **data.draw(
            st.dictionaries(
                st.sampled_from(SURVEY_FIELDS),
                st.one_of(corpus.form_text, st.lists(corpus.form_text, max_size=3)),
            )
        ),
    }
    before = counts()
    response = _client().post(_survey_path(invitation), answer)
    assert_no_5xx(response)
    if response.status_code != 302:
        assert response.status_code == 422
        assert counts() == before


# --- the callback queue ------------------------------------------------------------------------

ACTION_FIELDS = {
    "reassign": ["to_agent"],
    "contact": ["outcome", "notes", "follow_up_at"],
    "follow-up": ["follow_up_at"],
    "resolve": ["note"],
}
VALID_FORM = {
    "to_agent": "",
    "outcome": "no_answer",
    "notes": "Left a message",
    "follow_up_at": "2026-06-02T10:00",
    "note": "Sorted",
}


@pytest.fixture
def agent(tenant) -> Client:
    client = login_as(tenant, Role.AGENT, email="ann@alpha.example")
    client.raise_request_exception = False
    return client


def _rows(tenant) -> tuple:
    return (
        list(Callback.objects.for_tenant(tenant).order_by("pk").values()),
        list(CallbackContact.objects.for_tenant(tenant).order_by("pk").values()),
    )


@pytest.mark.parametrize("action", sorted(ACTION_FIELDS))
def test_callback_actions_with_nasty_values(tenant, agent, action):
    callback = queue(tenant)
    url = reverse("agent-callback-action", args=[callback.pk, action])
    for field in ACTION_FIELDS[action]:
        for value in corpus.FORM_FIELD_VALUES:
            before = _rows(tenant)
            response = agent.post(url, {**VALID_FORM, field: value}, HTTP_X_REQUESTED_WITH="fetch")
            assert_no_5xx(response)
            if response.status_code == 200:
                continue  # a storable odd value (notes that quote SQL) was taken
            assert response.status_code in (400, 404, 409, 422), (field, value[:20])
            assert _rows(tenant) == before, (field, value[:20])
            if "\x00" in value:
                assert response.status_code == 422


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_callback_actions(tenant, agent, data):
    callback = queue(tenant)
    action = data.draw(st.sampled_from([*sorted(ACTION_FIELDS), "claim", "release"]))
    form = {
        **VALID_FORM,
        **data.draw(st.dictionaries(st.sampled_from(list(VALID_FORM)), corpus.form_text)),
    }
    fetch = data.draw(st.booleans())
    extra = {"HTTP_X_REQUESTED_WITH": "fetch"} if fetch else {}
    response = agent.post(
        reverse("agent-callback-action", args=[callback.pk, action]), form, **extra
    )
    assert_no_5xx(response)
    assert response.status_code in ((200, 400, 404, 409, 422) if fetch else (302,))


def test_queue_filters_and_next_urls_are_safe(tenant, agent):
    callback = queue(tenant)
    for value in corpus.FORM_FIELD_VALUES:
        response = agent.get(reverse("agent-callbacks"), {"show": value, "overdue": value})
        assert response.status_code == 200
        response = agent.post(
            reverse("agent-callback-action", args=[callback.pk, "release"]), {"next": value}
        )
        assert response.status_code == 302
        # Never off to another site: a path here, or the callback's own page.
        assert not response["Location"].startswith(("//", "http:", "https:", "javascript:"))
