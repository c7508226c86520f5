"""The queue page: open, claimed and due follow-ups, by priority then deadline,
with SLA countdowns and breaches marked, and the mine / unclaimed / all and
overdue filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from feedback.models import Callback
from feedback.services.callbacks import (
    callback_claim,
    callback_log_contact,
    callback_resolve,
    callback_schedule_follow_up,
)
from feedback.views_agent import countdown
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.factories import CustomerFactory
from tests.feedback.callback_factories import person, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin: due +15 min


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.fixture
def client(tenant):
    return login_as(tenant, Role.AGENT, email="ann@alpha.example")


def _named(tenant, name: str, **kw) -> Callback:
    first, last = name.split()
    return queue(tenant, CustomerFactory(tenant=tenant, first_name=first, last_name=last), **kw)


def _names(response) -> list[str]:
    """Customer names in the order the queue lists them."""
    return re.findall(r'<a class="name" href="[^"]+">([^<]+)</a>', response.content.decode())


def _page(client, **params):
    response = client.get(reverse("agent-callbacks"), params)
    assert response.status_code == 200
    return response


def test_the_queue_is_sorted_by_priority_then_due_time(tenant, client):
    _named(tenant, "Low Early", priority=10)
    clock.advance(minutes=1)
    _named(tenant, "High Late", priority=50)
    clock.set_now(NOW - timedelta(minutes=1))
    _named(tenant, "High Early", priority=50)
    clock.set_now(NOW)

    assert _names(_page(client)) == ["High Early", "High Late", "Low Early"]


def test_done_callbacks_and_follow_ups_not_yet_due_are_not_in_the_queue(tenant, client):
    ann = client.user
    _named(tenant, "Still Open")
    done = _named(tenant, "All Done")
    callback_resolve(callback=done, agent=ann)
    later = _named(tenant, "Call Later")
    callback_schedule_follow_up(callback=later, agent=ann, follow_up_at=NOW + timedelta(hours=2))

    page = _page(client)

    assert _names(page) == ["Still Open"]
    assert b"Your scheduled follow-ups" in page.content
    assert b"Call Later" in page.content  # listed under the agent's own follow-ups


def test_a_scheduled_follow_up_comes_back_due_at_its_time(tenant, client):
    ann = client.user
    callback = _named(tenant, "Call Later", priority=5)
    callback_log_contact(
        callback=callback, agent=ann, outcome="no_answer", follow_up_at=NOW + timedelta(hours=2)
    )
    _named(tenant, "Someone Else", priority=1)

    clock.advance(hours=2, minutes=3)
    page = _page(client).content.decode()

    assert _names(_page(client)) == ["Call Later", "Someone Else"]
    row = page[page.index(f'id="callback-{callback.pk}"') :].split("</li>")[0]
    assert "overdue by 3 min" in row
    assert "Follow-up late" in row
    assert 'data-deadline="2026-06-01T16:00:00+02:00"' in row  # the follow-up, in Berlin time


def test_countdowns_say_due_in_or_overdue_by_and_breaches_are_marked(tenant, client):
    fresh = _named(tenant, "Fresh One", priority=9)
    clock.set_now(NOW - timedelta(minutes=18))
    late = _named(tenant, "Late One", priority=1)
    clock.set_now(NOW + timedelta(minutes=8))

    page = _page(client).content.decode()

    fresh_row = page[page.index(f'id="callback-{fresh.pk}"') :].split("</li>")[0]
    late_row = page[page.index(f'id="callback-{late.pk}"') :].split("</li>")[0]
    assert "due in 7 min" in fresh_row and "SLA breached" not in fresh_row
    assert f'<li class="row" id="callback-{fresh.pk}"' in page
    assert "overdue by 11 min" in late_row and "SLA breached" in late_row
    assert f'<li class="row is-late" id="callback-{late.pk}"' in page


def test_a_contacted_callback_has_no_countdown(tenant, client):
    callback = _named(tenant, "Spoken To")
    callback_log_contact(callback=callback, agent=client.user, outcome="reached")
    clock.advance(hours=3)

    page = _page(client).content.decode()

    row = page[page.index(f'id="callback-{callback.pk}"') :].split("</li>")[0]
    assert "data-deadline" not in row and "overdue" not in row
    assert "Claimed by ann@alpha.example" in row


def test_filters_mine_unclaimed_all_and_overdue_only(tenant, client):
    bob = person(tenant, Role.AGENT, "Bob Agent")
    mine = _named(tenant, "My Call", priority=3)
    callback_claim(callback=mine, agent=client.user)
    bobs = _named(tenant, "Bobs Call", priority=2)
    callback_claim(callback=bobs, agent=bob)
    clock.set_now(NOW - timedelta(hours=1))
    _named(tenant, "Old Unclaimed", priority=1)
    clock.set_now(NOW)
    _named(tenant, "New Unclaimed", priority=0)

    assert _names(_page(client)) == ["My Call", "Bobs Call", "Old Unclaimed", "New Unclaimed"]
    assert _names(_page(client, show="mine")) == ["My Call"]
    assert _names(_page(client, show="unclaimed")) == ["Old Unclaimed", "New Unclaimed"]
    assert _names(_page(client, overdue="1")) == ["Old Unclaimed"]
    assert _names(_page(client, show="mine", overdue="1")) == []
    assert _names(_page(client, show="nonsense")) == _names(_page(client))
    body = _page(client).content.decode()
    assert re.search(r'aria-current="page">All <span class="count">4</span>', body)
    assert re.search(r'>Mine <span class="count">1</span>', body)
    assert re.search(r'>Unclaimed <span class="count">2</span>', body)
    assert re.search(r'>Overdue only <span class="count">1</span>', body)


def test_claimed_rows_say_who_has_them_and_only_unclaimed_rows_offer_claim(tenant, client):
    bob = person(tenant, Role.AGENT, "Bob Agent")
    held = _named(tenant, "Held Call")
    callback_claim(callback=held, agent=bob)
    free = _named(tenant, "Free Call")

    page = _page(client).content.decode()

    held_row = page[page.index(f'id="callback-{held.pk}"') :].split("</li>")[0]
    free_row = page[page.index(f'id="callback-{free.pk}"') :].split("</li>")[0]
    assert "Claimed by Bob Agent" in held_row and "/claim/" not in held_row
    assert f'action="/agent/callbacks/{free.pk}/claim/"' in free_row


def test_the_queue_shows_only_this_stores_callbacks(tenant, other_tenant, client):
    _named(tenant, "Our Customer")
    _named(other_tenant, "Their Customer")

    assert _names(_page(client)) == ["Our Customer"]


def test_the_queue_reads_a_fixed_number_of_queries_however_long(tenant, client):
    bob = person(tenant, Role.AGENT, "Bob Agent")

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            _page(client)
        return len(queries)

    callback_claim(callback=_named(tenant, "First One"), agent=bob)
    few = measure()
    for n in range(10):
        callback = _named(tenant, f"Customer N{n}")
        if n % 2:
            callback_claim(callback=callback, agent=bob)

    assert measure() == few


def test_the_page_loads_its_script_and_styles_from_our_own_static_files(tenant, client):
    page = _page(client).content.decode()

    assert '<script src="/static/feedback/agent.js" defer></script>' in page
    assert '<link rel="stylesheet" href="/static/feedback/agent.css">' in page
    assert "https://" not in page  # no CDN
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page


@pytest.mark.parametrize(
    ("delta", "text", "late"),
    [
        (timedelta(minutes=7), "due in 7 min", False),
        (timedelta(minutes=7, seconds=59), "due in 7 min", False),
        (timedelta(seconds=30), "due now", False),
        (timedelta(0), "due now", False),
        (timedelta(seconds=-1), "overdue by 1 min", True),
        (timedelta(minutes=-3), "overdue by 3 min", True),
        (timedelta(hours=2, minutes=5), "due in 2 h 5 min", False),
        (timedelta(hours=3), "due in 3 h", False),
        (timedelta(days=2, hours=1, minutes=10), "due in 2 d 1 h", False),
        (timedelta(days=-1), "overdue by 1 d", True),
    ],
)
def test_countdown_wording(delta, text, late):
    assert countdown(NOW + delta, NOW) == (text, late)
    assert countdown(None, NOW) == ("", False)
