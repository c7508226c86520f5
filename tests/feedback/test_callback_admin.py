"""The admin: the read-only callback list links to the agents' page and shows
the contact log; owners and marketers edit the store's own feedback settings,
with clear errors for thresholds that cannot work, and see the store's business
hours there read-only, with a link to the store settings where owners edit them."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from django.urls import reverse

from feedback.models import FeedbackSettings
from feedback.services import feedback_settings
from feedback.services.callbacks import callback_log_contact
from retention import clock
from retention.models import AuditEntry, Role, Tenant
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


def test_owners_save_the_sla_minutes_and_thresholds(tenant, owner_client):
    row = feedback_settings(tenant)

    response = owner_client.post(_settings_url(row), {**GOOD, "_save": "Save"})

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.first_contact_minutes, row.survey_valid_days) == (30, 14)
    assert (row.promoter_min_rating, row.neutral_min_rating) == (5, 3)
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="feedback.feedbacksettings")
    assert entry.changes["first_contact_minutes"] == [15, 30]


def test_the_settings_show_the_stores_business_hours_read_only_with_a_link(tenant, marketer_client):
    Tenant.objects.filter(pk=tenant.pk).update(
        business_hours_start=time(8, 30), business_hours_end=time(18), business_days=[1, 2, 3, 7]
    )
    row = feedback_settings(tenant)

    page = marketer_client.get(_settings_url(row)).content.decode()

    store_url = reverse("admin:retention_tenant_change", args=[tenant.pk])
    assert "Mon-Wed, Sun, 08:30-18:00 (Europe/Berlin)." in page
    assert f'<a href="{store_url}">Edit them in the store settings</a>' in page
    assert "only owners may change them" in page
    for field in ("opening_time", "closing_time", "business_days"):
        assert f'name="{field}"' not in page


def test_the_settings_list_shows_the_stores_business_hours(tenant, client, django_user_model):
    feedback_settings(tenant)
    client.force_login(django_user_model.objects.create_superuser("op@example.com", "pw-op-123"))

    page = client.get(reverse("admin:feedback_feedbacksettings_changelist")).content.decode()

    assert '<td class="field-hours">Mon-Fri, 09:00-17:00 (Europe/Berlin)</td>' in page


def test_hours_that_cannot_work_are_flagged_on_the_settings_page(tenant, owner_client):
    Tenant.objects.filter(pk=tenant.pk).update(business_days=[])
    row = feedback_settings(tenant)

    page = owner_client.get(_settings_url(row)).content.decode()

    assert "no business days, 09:00-17:00 (Europe/Berlin)." in page
    assert "These hours cannot work, so due times count plain minutes." in page


def test_hours_posted_to_the_feedback_settings_are_ignored(tenant, owner_client):
    row = feedback_settings(tenant)

    response = owner_client.post(
        _settings_url(row),
        {**GOOD, "opening_time": "06:00", "business_days": ["6"], "_save": "Save"},
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.business_hours_start, tenant.business_days) == (time(9), [1, 2, 3, 4, 5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
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
    assert (row.first_contact_minutes, row.neutral_min_rating) == (15, 4)


def test_agents_see_the_settings_but_cannot_change_them(tenant, agent_client):
    row = feedback_settings(tenant)

    assert agent_client.get(_settings_url(row)).status_code == 200
    response = agent_client.post(_settings_url(row), {**GOOD, "_save": "Save"})

    assert response.status_code == 403
    row.refresh_from_db()
    assert row.first_contact_minutes == 15
