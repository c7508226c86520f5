"""Roles gate what each person may do in the admin."""

import pytest
from django.urls import reverse

from journeys.models import Journey
from retention.models import Role
from tests.conftest import login_as
from tests.factories import JourneyFactory


@pytest.fixture
def journey(tenant):
    return JourneyFactory(tenant=tenant, name="Welcome series")


def _edit(client, journey):
    return client.post(
        reverse("admin:journeys_journey_change", args=[journey.pk]),
        {"name": "Edited", "status": "active", "description": ""},
    )


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
def test_agents_and_viewers_can_read_but_not_change_journeys(tenant, journey, role):
    client = login_as(tenant, role)
    assert client.get(reverse("admin:journeys_journey_changelist")).status_code == 200
    page = client.get(reverse("admin:journeys_journey_change", args=[journey.pk]))
    assert page.status_code == 200  # read-only view
    assert 'name="_save"' not in page.content.decode()
    assert _edit(client, journey).status_code == 403
    assert client.get(reverse("admin:journeys_journey_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:journeys_journey_delete", args=[journey.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    journey.refresh_from_db()
    assert journey.name == "Welcome series"


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER])
def test_owners_and_marketers_change_journeys(tenant, journey, role):
    client = login_as(tenant, role)
    assert _edit(client, journey).status_code == 302
    journey.refresh_from_db()
    assert journey.name == "Edited"


@pytest.mark.parametrize("role", [Role.MARKETER, Role.AGENT, Role.VIEWER])
def test_only_owners_manage_the_team_and_keys(tenant, role):
    client = login_as(tenant, role)
    assert client.get(reverse("admin:retention_membership_add")).status_code == 403
    assert client.get(reverse("admin:retention_apikey_add")).status_code == 403
    assert client.get(reverse("admin:retention_apikey_changelist")).status_code == 403


def test_owner_issues_api_key_shown_once(owner_client, tenant):
    from retention.models import ApiKey
    from retention.selectors import api_key_authenticate

    resp = owner_client.post(
        reverse("admin:retention_apikey_add"),
        {"name": "Storefront", "scopes": '["read"]'},
        follow=True,
    )
    assert resp.status_code == 200
    key = ApiKey.objects.for_tenant(tenant).get(name="Storefront")
    shown = [str(m) for m in resp.context["messages"]]
    raw = next(m for m in shown if key.prefix in m).split("<code>")[1].split("</code>")[0]
    assert api_key_authenticate(raw=raw) == key
    assert raw not in key.key_hash  # only the hash is stored
    # the change page never shows it again
    page = owner_client.get(reverse("admin:retention_apikey_change", args=[key.pk]))
    assert raw not in page.content.decode()


def test_journey_count_unchanged_after_forbidden_add(tenant):
    client = login_as(tenant, Role.AGENT)
    client.post(reverse("admin:journeys_journey_add"), {"name": "Nope", "status": "draft"})
    assert not Journey.objects.for_tenant(tenant).filter(name="Nope").exists()
