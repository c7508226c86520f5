"""The admin: the read-only callback list links to the agents' page and shows
the contact log; owners and marketers edit the store's own feedback settings,
with clear errors for hours or thresholds that cannot work."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from django.urls import reverse

from feedback.models import FeedbackSettings
from feedback.services import feedback_settings
from feedback.services.callbacks import callback_log_contact
from retention import clock
from retention.models import AuditEntry, Role
from tests.conftest import login_as
from tests.feedback.callback_factories import person, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def _settings_url(row: FeedbackSettings) -> str:
    return reverse("admin:feedback_feedbacksettings_change", args=[row.pk])


GOOD = {
    "first_contact_minutes": "30",
    "opening_time": "08:00",
    "closing_time": "18:00",
    "business_days": ["0", "1", "2", "3", "4", "5"],
    "survey_valid_days": "14",
    "promoter_min_rating": "5",
    "neutral_min_rating": "3",
}


# --- callbacks -----------------------------------------------------------------------------


def test_the_callback_list_links_each_row_to_the_agent_page(tenant, agent_client):
    callback = queue(tenant)

    page = agent_client.get(reverse("admin:feedback_callback_changelist")).content.decode()

    assert f'<a href="/agent/callbacks/{callback.pk}/">Work it</a>' in page


def test_a_callback_shows_its_contact_log_read_only(tenant, owner_client):
    callback = queue(tenant)
    agent = person(tenant, Role.AGENT, "Ann Agent")
    callback_log_contact(callback=callback, agent=agent, outcome="no_answer", notes="Rang twice")

    page = owner_client.get(
        reverse("admin:feedback_callback_change", args=[callback.pk])
    ).content.decode()

    assert "Rang twice" in page
    assert "No answer" in page
    assert 'name="contacts-0-notes"' not in page  # shown, not editable
    assert 'name="contacts-MAX_NUM_FORMS" value="0"' in page  # nothing can be added


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER])
def test_the_settings_list_goes_to_the_stores_own_row(tenant, other_tenant, role):
    client = login_as(tenant, role)
    theirs = feedback_settings(other_tenant)

    response = client.get(reverse("admin:feedback_feedbacksettings_changelist"))

    ours = FeedbackSettings.objects.for_tenant(tenant).get()
    assert (response.status_code, response["Location"]) == (302, _settings_url(ours))
    assert client.get(_settings_url(theirs)).status_code == 404


def test_owners_save_hours_days_and_thresholds(tenant, owner_client):
    row = feedback_settings(tenant)

    response = owner_client.post(_settings_url(row), {**GOOD, "_save": "Save"})

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.first_contact_minutes, row.opening_time, row.closing_time) == (
        30,
        time(8),
        time(18),
    )
    assert row.business_days == [0, 1, 2, 3, 4, 5]
    assert (row.survey_valid_days, row.promoter_min_rating, row.neutral_min_rating) == (14, 5, 3)
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="feedback.feedbacksettings")
    assert entry.changes["business_days"] == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]]


def test_the_form_shows_business_days_as_checkboxes_monday_to_sunday(tenant, marketer_client):
    row = feedback_settings(tenant)

    page = marketer_client.get(_settings_url(row)).content.decode()

    for n, name in enumerate(
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    ):
        assert f'type="checkbox" name="business_days" value="{n}"' in page
        assert name in page
    assert 'value="0" id="id_business_days_0" checked' in page
    assert 'value="5" id="id_business_days_5" checked' not in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"opening_time": "17:00", "closing_time": "09:00"}, "Closing must be after opening"),
        ({"opening_time": "09:00", "closing_time": "09:00"}, "Closing must be after opening"),
        ({"business_days": []}, "Choose at least one business day."),
        ({"promoter_min_rating": "4", "neutral_min_rating": "5"}, "Must not be above the promoter"),
        ({"first_contact_minutes": "0"}, "greater than or equal to 1"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_a_clear_error(
    tenant, owner_client, change, message
):
    row = feedback_settings(tenant)

    response = owner_client.post(_settings_url(row), {**GOOD, **change, "_save": "Save"})

    assert response.status_code == 200
    assert message in response.content.decode()
    row.refresh_from_db()
    assert (row.first_contact_minutes, row.business_days) == (15, [0, 1, 2, 3, 4])


def test_agents_see_the_settings_but_cannot_change_them(tenant, agent_client):
    row = feedback_settings(tenant)

    assert agent_client.get(_settings_url(row)).status_code == 200
    response = agent_client.post(_settings_url(row), {**GOOD, "_save": "Save"})

    assert response.status_code == 403
    row.refresh_from_db()
    assert row.first_contact_minutes == 15
