"""Queueing a callback: due the tenant's SLA of business time from now, with a
computed priority unless one is given, once per idempotency key, audited and
on the customer's timeline, scoped to the tenant, and listed read-only in the
admin."""

import logging
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import transaction
from django.urls import reverse

from commerce.models import Customer, Touchpoint
from feedback.models import Callback, CallbackStatus, FeedbackSettings
from feedback.services import callback_create, feedback_settings
from retention import clock
from retention.errors import InvalidInput
from retention.models import AuditEntry, Tenant
from tests.factories import CustomerFactory
from tests.retention.tenant_forms import tenant_settings_post, tenant_settings_url

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin (the tenants' zone)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def _create(tenant, customer, key="journey:1:step:2", **kw) -> tuple[Callback, bool]:
    kw.setdefault("reason", "Rated the delivery 2 of 5")
    kw.setdefault("source", "journey")
    return callback_create(tenant=tenant, customer=customer, idempotency_key=key, **kw)


def test_a_callback_is_open_and_due_the_default_sla_from_now(tenant):
    ann = CustomerFactory(tenant=tenant)

    callback, created = _create(tenant, ann, context={"journey_id": 7, "step_id": 3}, priority=5)

    assert created is True
    callback.refresh_from_db()
    assert (callback.customer_id, callback.status, callback.priority) == (
        ann.pk,
        CallbackStatus.OPEN,
        5,
    )
    assert (callback.reason, callback.source) == ("Rated the delivery 2 of 5", "journey")
    assert callback.context == {"journey_id": 7, "step_id": 3}
    assert (callback.created_at, callback.due_by) == (NOW, NOW + timedelta(minutes=15))
    assert (callback.claimed_by, callback.claimed_at, callback.done_at) == (None, None, None)


def test_the_tenants_sla_sets_the_deadline(tenant):
    settings = feedback_settings(tenant)
    settings.first_contact_minutes = 120
    settings.save()

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))

    assert callback.due_by == NOW + timedelta(hours=2)


def test_the_same_key_twice_returns_the_first_callback(tenant):
    ann = CustomerFactory(tenant=tenant)
    first, _ = _create(tenant, ann, reason="First")

    clock.advance(hours=1)
    again, created = _create(tenant, ann, reason="Second", priority=9)

    assert created is False
    assert again.pk == first.pk
    assert (again.reason, again.priority, again.due_by) == (
        "First",
        30,  # computed: no rating, no RFM row
        NOW + timedelta(minutes=15),
    )
    assert Callback.objects.for_tenant(tenant).count() == 1


def test_a_repeated_key_inside_a_transaction_leaves_it_usable(tenant):
    ann = CustomerFactory(tenant=tenant)
    with transaction.atomic():
        _create(tenant, ann)
        _, created = _create(tenant, ann)
        Customer.objects.for_tenant(tenant).filter(pk=ann.pk).update(first_name="Ann")

    assert created is False
    assert Customer.objects.for_tenant(tenant).get(pk=ann.pk).first_name == "Ann"


def test_a_merged_away_customer_is_called_as_the_survivor(tenant):
    survivor, merged = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    Customer.objects.for_tenant(tenant).filter(pk=merged.pk).update(merged_into=survivor)
    merged.refresh_from_db()

    callback, _ = _create(tenant, merged)

    assert callback.customer_id == survivor.pk


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": "  "}, "reason"),
        ({"source": ""}, "source"),
        ({"source": "x" * 51}, "source"),
        ({"key": ""}, "idempotency_key"),
        ({"key": "k" * 201}, "idempotency_key"),
        ({"context": ["not", "an", "object"]}, "context"),
        ({"priority": 1.5}, "priority"),
        ({"priority": 10_000}, "priority"),
    ],
)
def test_bad_input_is_refused_with_the_field(tenant, change, field):
    with pytest.raises(InvalidInput) as err:
        _create(tenant, CustomerFactory(tenant=tenant), **change)

    assert list(err.value.fields) == [field]
    assert Callback.objects.for_tenant(tenant).count() == 0


def test_a_long_reason_is_shortened(tenant):
    callback, _ = _create(tenant, CustomerFactory(tenant=tenant), reason="r" * 300)

    assert callback.reason == "r" * 199 + "…"


def test_overdue_means_open_or_claimed_past_the_deadline(tenant):
    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))
    late = NOW + timedelta(hours=25)

    assert callback.is_overdue(NOW) is False
    assert callback.is_overdue(late) is True
    callback.status = CallbackStatus.CLAIMED
    assert callback.is_overdue(late) is True
    callback.status = CallbackStatus.DONE
    assert callback.is_overdue(late) is False


# --- business hours ------------------------------------------------------------------------


def test_a_callback_queued_on_friday_evening_is_due_monday_after_opening(tenant):
    clock.set_now(datetime(2026, 6, 5, 18, 30, tzinfo=UTC))  # Friday 20:30 in Berlin

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))

    assert callback.due_by == datetime(2026, 6, 8, 7, 15, tzinfo=UTC)  # Monday 09:15 CEST


def _set_hours(tenant: Tenant, **hours) -> None:
    """The store's business hours, as an owner saves them in its settings."""
    Tenant.objects.filter(pk=tenant.pk).update(**hours)


def test_the_tenants_opening_hours_and_days_set_the_deadline(tenant):
    _set_hours(
        tenant,
        business_hours_start=time(8),
        business_hours_end=time(12),
        business_days=[1, 3],  # ISO: Monday and Wednesday
    )

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))  # Monday 14:00, closed

    assert callback.due_by == datetime(2026, 6, 3, 6, 15, tzinfo=UTC)  # Wednesday 08:15


def test_a_callback_queued_on_a_closed_tuesday_is_due_at_wednesdays_opening(tenant):
    _set_hours(
        tenant,
        business_hours_start=time(8),
        business_hours_end=time(12),
        business_days=[1, 3],  # ISO: Monday and Wednesday
    )
    clock.set_now(datetime(2026, 6, 2, 8, 0, tzinfo=UTC))  # Tuesday 10:00 in Berlin

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))

    assert callback.due_by == datetime(2026, 6, 3, 6, 15, tzinfo=UTC)  # Wednesday 08:15


def test_the_tenants_days_are_iso_weekdays_so_7_is_sunday(tenant):
    _set_hours(tenant, business_days=[7])

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))  # Monday 14:00

    assert callback.due_by == datetime(2026, 6, 7, 7, 15, tzinfo=UTC)  # Sunday 09:15 CEST


def test_the_tenants_days_are_iso_weekdays_so_1_is_monday(tenant):
    _set_hours(tenant, business_days=[1])
    clock.set_now(datetime(2026, 6, 1, 16, 0, tzinfo=UTC))  # Monday 18:00, after closing

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))

    assert callback.due_by == datetime(2026, 6, 8, 7, 15, tzinfo=UTC)  # next Monday 09:15


def test_the_tenants_timezone_sets_the_deadline(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(timezone="America/New_York")
    tenant.refresh_from_db()

    callback, _ = _create(tenant, CustomerFactory(tenant=tenant))  # 08:00 in New York

    assert callback.due_by == datetime(2026, 6, 1, 13, 15, tzinfo=UTC)  # 09:15 EDT


def test_a_change_of_hours_moves_the_due_time_of_new_callbacks_only(tenant, owner_client):
    clock.set_now(datetime(2026, 6, 1, 5, 0, tzinfo=UTC))  # Monday 07:00 in Berlin, closed
    before, _ = _create(tenant, CustomerFactory(tenant=tenant), key="before")
    assert before.due_by == datetime(2026, 6, 1, 7, 15, tzinfo=UTC)  # 09:15

    response = owner_client.post(
        tenant_settings_url(tenant),
        tenant_settings_post(tenant, business_hours_start="06:00", business_hours_end="14:00"),
    )
    assert response.status_code == 302
    # ``tenant`` still holds the old hours: the service reads the row, not the object.
    after, _ = _create(tenant, CustomerFactory(tenant=tenant), key="after")

    before.refresh_from_db()
    assert before.due_by == datetime(2026, 6, 1, 7, 15, tzinfo=UTC)  # unchanged
    assert after.due_by == datetime(2026, 6, 1, 5, 15, tzinfo=UTC)  # open since 06:00: 07:15


@pytest.mark.parametrize(
    "hours",
    [
        {"business_hours_start": time(17), "business_hours_end": time(9)},
        {"business_hours_start": time(9), "business_hours_end": time(9)},
        {"business_days": []},
        {"business_days": [0, 8]},
        {"business_days": ["1"]},
    ],
)
def test_stored_hours_that_cannot_work_fall_back_to_wall_time_instead_of_failing(
    tenant, caplog, hours
):
    _set_hours(tenant, **hours)

    with caplog.at_level(logging.WARNING, logger="feedback.services.callbacks"):
        callback, created = _create(tenant, CustomerFactory(tenant=tenant))

    assert created is True
    assert callback.due_by == NOW + timedelta(minutes=15)
    assert [r.getMessage().split(" error=")[0] for r in caplog.records] == [
        f"feedback.invalid_business_hours tenant_id={tenant.pk}"
    ]


# --- audit and timeline --------------------------------------------------------------------


def test_a_new_callback_is_audited_and_on_the_customers_timeline_once(tenant):
    ann = CustomerFactory(tenant=tenant)

    callback, _ = _create(tenant, ann, priority=7)
    _create(tenant, ann, priority=7)  # the same key again

    entries = AuditEntry.objects.for_tenant(tenant).filter(object_type="feedback.callback")
    assert [(e.action, e.object_id, e.actor_user_id) for e in entries] == [
        ("create", str(callback.pk), None)
    ]
    assert entries[0].changes == {
        "event": "callback.created",
        "source": "journey",
        "priority": 7,
        "due_by": (NOW + timedelta(minutes=15)).isoformat(),
    }
    touchpoints = Touchpoint.objects.for_tenant(tenant).filter(customer=ann)
    assert [(t.category, t.kind, t.source, t.occurred_at) for t in touchpoints] == [
        ("support", "callback.created", "support", NOW)
    ]
    assert touchpoints[0].properties == {
        "reason": "Rated the delivery 2 of 5",
        "source": "journey",
        "priority": 7,
    }


# --- two tenants ---------------------------------------------------------------------------


def test_another_tenants_customer_is_refused(tenant, other_tenant):
    stranger = CustomerFactory(tenant=other_tenant)

    with pytest.raises(InvalidInput) as err:
        _create(tenant, stranger)

    assert err.value.fields == {"customer": "Not found."}
    assert Callback.objects.for_tenant(tenant).count() == 0
    assert Callback.objects.for_tenant(other_tenant).count() == 0


def test_keys_and_slas_are_per_tenant(tenant, other_tenant):
    FeedbackSettings.objects.create(tenant=other_tenant, first_contact_minutes=240)

    ours, created_ours = _create(tenant, CustomerFactory(tenant=tenant), key="same")
    theirs, created_theirs = _create(other_tenant, CustomerFactory(tenant=other_tenant), key="same")

    assert created_ours is created_theirs is True
    assert ours.pk != theirs.pk
    # Theirs: three hours to closing at 17:00, the fourth on Tuesday from 09:00.
    assert (ours.due_by, theirs.due_by) == (
        NOW + timedelta(minutes=15),
        datetime(2026, 6, 2, 8, 0, tzinfo=UTC),
    )


def test_each_store_counts_in_its_own_business_hours(tenant, other_tenant):
    _set_hours(other_tenant, business_hours_start=time(15), business_hours_end=time(20))

    ours, _ = _create(tenant, CustomerFactory(tenant=tenant))  # Monday 14:00 in Berlin
    theirs, _ = _create(other_tenant, CustomerFactory(tenant=other_tenant))

    assert (ours.due_by, theirs.due_by) == (
        NOW + timedelta(minutes=15),
        datetime(2026, 6, 1, 13, 15, tzinfo=UTC),  # 15:15, after their opening
    )


# --- admin ---------------------------------------------------------------------------------


def test_the_admin_lists_this_tenants_callbacks_with_the_overdue_flag(
    tenant, other_tenant, agent_client
):
    _create(tenant, CustomerFactory(tenant=tenant, email="ann@alpha.example"), reason="Ours")
    _create(other_tenant, CustomerFactory(tenant=other_tenant), reason="Theirs")
    clock.advance(hours=30)

    response = agent_client.get(reverse("admin:feedback_callback_changelist"))

    assert response.status_code == 200
    assert b"Ours" in response.content and b"Theirs" not in response.content
    assert b"ann@alpha.example" in response.content
    assert b'alt="True"' in response.content  # the overdue icon


def test_another_tenants_callback_answers_404_and_none_can_be_edited(
    tenant, other_tenant, owner_client
):
    theirs, _ = _create(other_tenant, CustomerFactory(tenant=other_tenant))
    ours, _ = _create(tenant, CustomerFactory(tenant=tenant), reason="Ours")

    assert (
        owner_client.get(reverse("admin:feedback_callback_change", args=[theirs.pk])).status_code
        == 404
    )
    owner_client.post(reverse("admin:feedback_callback_change", args=[ours.pk]), {"status": "done"})
    ours.refresh_from_db()
    assert ours.status == CallbackStatus.OPEN
    assert owner_client.get(reverse("admin:feedback_callback_add")).status_code == 403
