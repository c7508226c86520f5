"""Working a callback: claim, release, reassign, log a contact, schedule a
follow-up, resolve. Each change is an audit entry and a touchpoint; who may do
what follows the roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.models import Touchpoint
from feedback.models import Callback, CallbackContact, CallbackStatus
from feedback.services.callbacks import (
    callback_claim,
    callback_log_contact,
    callback_reassign,
    callback_release,
    callback_resolve,
    callback_schedule_follow_up,
)
from retention import clock
from retention.errors import Conflict, Forbidden, InvalidInput
from retention.models import AuditEntry, Role
from tests.factories import UserFactory
from tests.feedback.callback_factories import person, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.fixture
def ann(tenant):
    return person(tenant, Role.AGENT, "Ann Agent")


@pytest.fixture
def bob(tenant):
    return person(tenant, Role.AGENT, "Bob Agent")


def _fresh(callback: Callback) -> Callback:
    return Callback.objects.for_tenant(callback.tenant_id).get(pk=callback.pk)


def _events(callback: Callback) -> list[tuple]:
    """(event, actor id) of the callback's audit entries, oldest first."""
    return [
        (e.changes.get("event"), e.actor_user_id)
        for e in AuditEntry.objects.for_tenant(callback.tenant_id)
        .filter(object_type="feedback.callback", object_id=str(callback.pk))
        .order_by("at", "id")
    ]


def _kinds(callback: Callback) -> list[str]:
    return list(
        Touchpoint.objects.for_tenant(callback.tenant_id)
        .filter(customer_id=callback.customer_id, source="support")
        .order_by("id")
        .values_list("kind", flat=True)
    )


# --- claim ---------------------------------------------------------------------------------


def test_an_agent_claims_an_open_callback(tenant, ann):
    callback = queue(tenant)

    clock.advance(minutes=2)
    callback_claim(callback=callback, agent=ann)

    row = _fresh(callback)
    assert (row.status, row.claimed_by_id, row.claimed_at) == (
        CallbackStatus.CLAIMED,
        ann.pk,
        NOW + timedelta(minutes=2),
    )
    assert _events(callback) == [("callback.created", None), ("callback.claimed", ann.pk)]
    claimed = AuditEntry.objects.for_tenant(tenant).filter(action="action").get()
    assert claimed.changes["status"] == ["open", "claimed"]
    assert claimed.changes["claimed_by"] == [None, "Ann Agent"]
    assert _kinds(callback) == ["callback.created", "callback.claimed"]
    touch = Touchpoint.objects.for_tenant(tenant).get(kind="callback.claimed")
    assert touch.properties == {"callback_id": callback.pk, "status": "claimed", "agent_id": ann.pk}
    assert touch.category == "support"


def test_a_callback_someone_holds_cannot_be_claimed_and_says_who_has_it(tenant, ann, bob):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    with pytest.raises(Conflict) as err:
        callback_claim(callback=callback, agent=bob)

    assert err.value.message == "Already claimed by Ann Agent."
    assert err.value.fields == {"claimed_by": "Ann Agent"}
    assert _fresh(callback).claimed_by_id == ann.pk


def test_a_holder_without_a_name_is_named_by_email(tenant, bob):
    nameless = person(tenant, Role.AGENT, email="nameless@alpha.example")
    callback = queue(tenant)
    callback_claim(callback=callback, agent=nameless)

    with pytest.raises(Conflict, match=r"Already claimed by nameless@alpha\.example\."):
        callback_claim(callback=callback, agent=bob)


def test_claiming_ones_own_callback_again_changes_nothing(tenant, ann):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)
    clock.advance(minutes=5)

    callback_claim(callback=callback, agent=ann)

    assert _fresh(callback).claimed_at == NOW
    assert _events(callback) == [("callback.created", None), ("callback.claimed", ann.pk)]


@pytest.mark.parametrize("role", [Role.AGENT, Role.MARKETER, Role.OWNER])
def test_agents_marketers_and_owners_may_claim(tenant, role):
    worker = person(tenant, role)
    callback = queue(tenant)

    callback_claim(callback=callback, agent=worker)

    assert _fresh(callback).claimed_by_id == worker.pk


def test_viewers_and_strangers_may_not_claim(tenant, other_tenant):
    callback = queue(tenant)
    viewer = person(tenant, Role.VIEWER)
    outsider = person(other_tenant, Role.AGENT)

    for who in (viewer, outsider, UserFactory()):
        with pytest.raises(Forbidden):
            callback_claim(callback=callback, agent=who)

    assert _fresh(callback).status == CallbackStatus.OPEN
    assert _events(callback) == [("callback.created", None)]


def test_a_resolved_callback_cannot_be_claimed(tenant, ann, bob):
    callback = queue(tenant)
    callback_resolve(callback=callback, agent=ann)

    with pytest.raises(Conflict, match="already resolved"):
        callback_claim(callback=callback, agent=bob)


# --- release and reassign ------------------------------------------------------------------


def test_the_holder_releases_a_callback_back_to_the_queue(tenant, ann):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    callback_release(callback=callback, agent=ann)

    row = _fresh(callback)
    assert (row.status, row.claimed_by_id, row.claimed_at) == (CallbackStatus.OPEN, None, None)
    assert _events(callback)[-1] == ("callback.released", ann.pk)
    assert _kinds(callback)[-1] == "callback.released"


def test_another_agent_cannot_release_but_an_owner_can(tenant, ann, bob):
    owner = person(tenant, Role.OWNER, "Olga Owner")
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    with pytest.raises(Forbidden, match="Claimed by Ann Agent"):
        callback_release(callback=callback, agent=bob)
    callback_release(callback=callback, agent=owner)

    assert _fresh(callback).claimed_by_id is None


def test_releasing_a_scheduled_follow_up_keeps_it_scheduled_for_anyone(tenant, ann):
    callback = queue(tenant)
    callback_schedule_follow_up(callback=callback, agent=ann, follow_up_at=NOW + timedelta(hours=3))

    callback_release(callback=callback, agent=ann)

    row = _fresh(callback)
    assert (row.status, row.claimed_by_id, row.follow_up_at) == (
        CallbackStatus.SCHEDULED,
        None,
        NOW + timedelta(hours=3),
    )


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER])
def test_owners_and_marketers_reassign_to_someone_who_works_callbacks(tenant, ann, bob, role):
    boss = person(tenant, role, "Boss Person")
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    callback_reassign(callback=callback, to_agent=bob, by=boss)

    row = _fresh(callback)
    assert (row.status, row.claimed_by_id) == (CallbackStatus.CLAIMED, bob.pk)
    entry = AuditEntry.objects.for_tenant(tenant).filter(actor_user=boss).get()
    assert entry.changes["event"] == "callback.reassigned"
    assert entry.changes["claimed_by"] == ["Ann Agent", "Bob Agent"]
    touch = Touchpoint.objects.for_tenant(tenant).get(kind="callback.reassigned")
    assert touch.properties["to_agent_id"] == bob.pk


def test_reassigning_an_open_callback_hands_it_over(tenant, bob):
    owner = person(tenant, Role.OWNER)
    callback = queue(tenant)

    callback_reassign(callback=callback, to_agent=bob, by=owner)

    assert (_fresh(callback).status, _fresh(callback).claimed_by_id) == ("claimed", bob.pk)


def test_agents_cannot_reassign(tenant, ann, bob):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    with pytest.raises(Forbidden, match="owner or a marketer"):
        callback_reassign(callback=callback, to_agent=bob, by=ann)

    assert _fresh(callback).claimed_by_id == ann.pk


def test_the_target_must_work_callbacks_in_this_store(tenant, other_tenant):
    owner = person(tenant, Role.OWNER)
    viewer = person(tenant, Role.VIEWER, "Vic Viewer")
    elsewhere = person(other_tenant, Role.AGENT, "Eve Else")
    callback = queue(tenant)

    for target in (viewer, elsewhere):
        with pytest.raises(InvalidInput) as err:
            callback_reassign(callback=callback, to_agent=target, by=owner)
        assert err.value.fields == {"to_agent": "Choose a member who works callbacks."}

    assert _fresh(callback).claimed_by_id is None


# --- contacts, follow-ups, resolving -------------------------------------------------------


def test_the_first_contact_sets_first_contact_at_and_later_ones_do_not(tenant, ann):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    clock.advance(minutes=9)
    first = callback_log_contact(callback=callback, agent=ann, outcome="no_answer")
    clock.advance(minutes=30)
    callback_log_contact(callback=callback, agent=ann, outcome="reached", notes="  Sorry!  ")

    row = _fresh(callback)
    assert row.first_contact_at == NOW + timedelta(minutes=9)
    assert row.status == CallbackStatus.CLAIMED
    contacts = CallbackContact.objects.for_tenant(tenant).filter(callback=callback)
    assert [(c.outcome, c.notes, c.agent_id, c.at) for c in contacts] == [
        ("no_answer", "", ann.pk, NOW + timedelta(minutes=9)),
        ("reached", "Sorry!", ann.pk, NOW + timedelta(minutes=39)),
    ]
    assert first.pk == contacts[0].pk
    assert _kinds(callback) == [
        "callback.created",
        "callback.claimed",
        "callback.contacted",
        "callback.contacted",
    ]
    reached = (
        Touchpoint.objects.for_tenant(tenant)
        .filter(kind="callback.contacted")
        .order_by("id")
        .last()
    )
    assert reached.properties["outcome"] == "reached"
    assert reached.properties["reached"] is True


def test_logging_a_contact_on_an_unheld_callback_takes_it(tenant, ann):
    callback = queue(tenant)

    callback_log_contact(callback=callback, agent=ann, outcome="left_message")

    row = _fresh(callback)
    assert (row.status, row.claimed_by_id, row.claimed_at) == ("claimed", ann.pk, NOW)


def test_logging_a_contact_on_someone_elses_callback_is_refused(tenant, ann, bob):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    with pytest.raises(Conflict, match="Already claimed by Ann Agent"):
        callback_log_contact(callback=callback, agent=bob, outcome="reached")

    assert CallbackContact.objects.for_tenant(tenant).count() == 0


def test_outcome_resolved_closes_the_callback(tenant, ann):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)
    clock.advance(minutes=4)

    callback_log_contact(callback=callback, agent=ann, outcome="resolved", notes="Refund sent")

    row = _fresh(callback)
    assert (row.status, row.done_at, row.first_contact_at) == (
        CallbackStatus.DONE,
        NOW + timedelta(minutes=4),
        NOW + timedelta(minutes=4),
    )
    assert _kinds(callback)[-2:] == ["callback.contacted", "callback.resolved"]


def test_a_contact_with_a_follow_up_schedules_the_next_call(tenant, ann):
    callback = queue(tenant)
    later = NOW + timedelta(days=1)

    contact = callback_log_contact(
        callback=callback, agent=ann, outcome="no_answer", follow_up_at=later
    )

    row = _fresh(callback)
    assert (row.status, row.follow_up_at, row.claimed_by_id) == ("scheduled", later, ann.pk)
    assert contact.follow_up_at == later


def test_a_contact_after_a_follow_up_clears_it(tenant, ann):
    callback = queue(tenant)
    callback_log_contact(
        callback=callback, agent=ann, outcome="no_answer", follow_up_at=NOW + timedelta(hours=1)
    )
    clock.advance(hours=1)

    callback_log_contact(callback=callback, agent=ann, outcome="reached")

    row = _fresh(callback)
    assert (row.status, row.follow_up_at) == (CallbackStatus.CLAIMED, None)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"outcome": "shouted"}, "outcome"),
        ({"outcome": "reached", "notes": "x" * 5001}, "notes"),
        ({"outcome": "reached", "follow_up_at": NOW - timedelta(minutes=1)}, "follow_up_at"),
        ({"outcome": "reached", "follow_up_at": NOW + timedelta(days=400)}, "follow_up_at"),
        ({"outcome": "reached", "follow_up_at": datetime(2026, 7, 1, 9)}, "follow_up_at"),
        ({"outcome": "resolved", "follow_up_at": NOW + timedelta(days=1)}, "follow_up_at"),
    ],
)
def test_bad_contacts_are_refused_with_the_field(tenant, ann, kw, field):
    callback = queue(tenant)

    with pytest.raises(InvalidInput) as err:
        callback_log_contact(callback=callback, agent=ann, **kw)

    assert list(err.value.fields) == [field]
    assert CallbackContact.objects.for_tenant(tenant).count() == 0
    assert _fresh(callback).status == CallbackStatus.OPEN


def test_scheduling_a_follow_up_without_a_contact(tenant, ann):
    callback = queue(tenant)
    at = NOW + timedelta(hours=5)

    callback_schedule_follow_up(callback=callback, agent=ann, follow_up_at=at)

    row = _fresh(callback)
    assert (row.status, row.follow_up_at, row.claimed_by_id, row.first_contact_at) == (
        CallbackStatus.SCHEDULED,
        at,
        ann.pk,
        None,
    )
    assert _events(callback)[-1] == ("callback.follow_up_scheduled", ann.pk)


def test_resolving_closes_it_and_resolving_again_changes_nothing(tenant, ann):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    callback_resolve(callback=callback, agent=ann, note="Customer emailed: sorted")
    clock.advance(minutes=1)
    callback_resolve(callback=callback, agent=ann)

    row = _fresh(callback)
    assert (row.status, row.done_at) == (CallbackStatus.DONE, NOW)
    assert _events(callback)[-1] == ("callback.resolved", ann.pk)
    assert len(_events(callback)) == 3
    entry = AuditEntry.objects.for_tenant(tenant).filter(changes__event="callback.resolved").get()
    assert entry.changes["note"] == "Customer emailed: sorted"
    assert _kinds(callback).count("callback.resolved") == 1


def test_someone_elses_callback_cannot_be_resolved(tenant, ann, bob):
    callback = queue(tenant)
    callback_claim(callback=callback, agent=ann)

    with pytest.raises(Conflict, match="Already claimed by Ann Agent"):
        callback_resolve(callback=callback, agent=bob)


def test_a_resolved_callback_takes_no_more_contacts(tenant, ann):
    callback = queue(tenant)
    callback_resolve(callback=callback, agent=ann)

    with pytest.raises(Conflict, match="already resolved"):
        callback_log_contact(callback=callback, agent=ann, outcome="reached")
    with pytest.raises(Conflict, match="already resolved"):
        callback_schedule_follow_up(
            callback=callback, agent=ann, follow_up_at=NOW + timedelta(hours=1)
        )


def test_every_state_change_is_audited_with_its_touchpoint(tenant, ann, bob):
    owner = person(tenant, Role.OWNER)
    callback = queue(tenant)

    callback_claim(callback=callback, agent=ann)
    callback_reassign(callback=callback, to_agent=bob, by=owner)
    callback_log_contact(callback=callback, agent=bob, outcome="no_answer")
    callback_schedule_follow_up(callback=callback, agent=bob, follow_up_at=NOW + timedelta(hours=2))
    callback_release(callback=callback, agent=bob)
    callback_claim(callback=callback, agent=ann)
    callback_log_contact(callback=callback, agent=ann, outcome="resolved")

    events = [e for e, _ in _events(callback)]
    assert events == [
        "callback.created",
        "callback.claimed",
        "callback.reassigned",
        "callback.contacted",
        "callback.follow_up_scheduled",
        "callback.released",
        "callback.claimed",
        "callback.contacted",
    ]
    assert _kinds(callback) == [*events, "callback.resolved"]
