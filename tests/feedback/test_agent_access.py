"""Who may open the agents' screens: signed-in members of the store who work
callbacks (agents, marketers, owners); viewers get 403, strangers a login, and
a callback of another store is a 404 with nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from feedback.models import Callback, CallbackStatus
from retention import clock
from retention.middleware import SESSION_KEY
from retention.models import AuditEntry, Role
from tests.conftest import login_as
from tests.factories import UserFactory
from tests.feedback.callback_factories import queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def _pages(callback: Callback) -> list[str]:
    return [reverse("agent-callbacks"), reverse("agent-callback", args=[callback.pk])]


@pytest.mark.parametrize("role", [Role.AGENT, Role.MARKETER, Role.OWNER])
def test_members_who_work_callbacks_see_the_queue_and_a_callback(tenant, role):
    client = login_as(tenant, role)
    callback = queue(tenant, reason="Unhappy with the delivery")

    for url in _pages(callback):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Unhappy with the delivery" in response.content


def test_a_viewer_gets_403_and_cannot_act(tenant):
    client = login_as(tenant, Role.VIEWER)
    callback = queue(tenant)

    for url in _pages(callback):
        response = client.get(url)
        assert response.status_code == 403
        assert b"cannot work the callback queue" in response.content
    response = client.post(reverse("agent-callback-action", args=[callback.pk, "claim"]))

    assert response.status_code == 403
    assert Callback.objects.for_tenant(tenant).get(pk=callback.pk).status == CallbackStatus.OPEN


def test_anonymous_people_are_sent_to_the_login(tenant):
    callback = queue(tenant)

    for url in _pages(callback):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=/agent/callbacks/")


def test_another_stores_callback_is_a_404_and_nothing_changes(tenant, other_tenant):
    client = login_as(tenant, Role.OWNER)
    theirs = queue(other_tenant, reason="Their customer")
    before = AuditEntry.objects.for_tenant(other_tenant).count()

    assert client.get(reverse("agent-callback", args=[theirs.pk])).status_code == 404
    for action in ("claim", "release", "contact", "follow-up", "resolve", "reassign"):
        response = client.post(
            reverse("agent-callback-action", args=[theirs.pk, action]),
            {"outcome": "resolved", "to_agent": client.user.pk},
        )
        assert response.status_code == 404, action
    assert b"Their customer" not in client.get(reverse("agent-callbacks")).content

    row = Callback.objects.for_tenant(other_tenant).get(pk=theirs.pk)
    assert (row.status, row.claimed_by_id) == (CallbackStatus.OPEN, None)
    assert AuditEntry.objects.for_tenant(other_tenant).count() == before


def test_a_missing_callback_and_an_unknown_action_are_404s(tenant, agent_client):
    callback = queue(tenant)

    assert agent_client.get(reverse("agent-callback", args=[999_999])).status_code == 404
    response = agent_client.post(reverse("agent-callback-action", args=[callback.pk, "delete"]))
    assert response.status_code == 404


def test_actions_need_post(tenant, agent_client):
    callback = queue(tenant)

    response = agent_client.get(reverse("agent-callback-action", args=[callback.pk, "claim"]))

    assert response.status_code == 405
    assert Callback.objects.for_tenant(tenant).get(pk=callback.pk).status == CallbackStatus.OPEN


def test_a_person_in_two_stores_works_the_one_chosen(tenant, other_tenant):
    client = login_as(tenant, Role.AGENT, email="both@example.com")
    login_as(other_tenant, Role.AGENT, email="both@example.com")
    ours = queue(tenant, reason="Alpha customer")
    theirs = queue(other_tenant, reason="Bravo customer")
    session = client.session
    session[SESSION_KEY] = other_tenant.pk
    session.save()

    page = client.get(reverse("agent-callbacks")).content

    assert b"Bravo customer" in page and b"Alpha customer" not in page
    assert client.get(reverse("agent-callback", args=[theirs.pk])).status_code == 200
    assert client.get(reverse("agent-callback", args=[ours.pk])).status_code == 404


def test_an_operator_must_pick_a_store_first(tenant):
    operator = UserFactory(email="op@platform.example", is_superuser=True)
    client = Client()
    client.force_login(operator)

    assert client.get(reverse("agent-callbacks")).status_code == 403
    session = client.session
    session[SESSION_KEY] = tenant.pk
    session.save()
    assert client.get(reverse("agent-callbacks")).status_code == 200
