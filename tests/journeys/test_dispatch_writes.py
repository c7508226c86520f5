"""What the dispatcher writes for a batch: one message and one step run per
enrollment and step, however often the batch is replayed, and the same rows on
PostgreSQL (set-based statements) as on the portable ORM path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from commerce.models import Customer
from journeys.models import Enrollment, StepRun
from journeys.services.definitions import journey_create
from journeys.services.dispatch import enrollments_dispatch
from messaging.models import Message, Template
from retention import clock

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
NAMES = ("Ada", "Bo", "")


def _setup(tenant) -> list[Enrollment]:
    """Three customers due at step 1 (an email now) of a two-step journey."""
    templates = [
        Template.objects.create(
            tenant=tenant,
            name=f"step-{n}",
            channel="email",
            subject="Hi {{ customer.first_name|default:'there' }}",
            text=f"Step {n} for " + "{{ customer.first_name }}.",
            html=f"<p>Step {n}</p>",
        )
        for n in (1, 2)
    ]
    journey = journey_create(
        tenant=tenant,
        name="Two steps",
        status="active",
        version={"trigger": "touchpoint", "value": "signed.up"},
        steps=[
            {"name": "Now", "delay": 0, "email_template": templates[0]},
            {"name": "Later", "delay": 3, "email_template": templates[1]},
        ],
    )
    customers = [
        Customer.objects.create(tenant=tenant, email=f"c{i}@shop.example", first_name=name)
        for i, name in enumerate(NAMES)
    ]
    return [
        Enrollment.objects.create(
            tenant=tenant,
            journey=journey,
            version=journey.current_version,
            customer=customer,
            trigger_key=f"t:{customer.pk}",
            trigger_at=NOW - timedelta(minutes=5),
            next_run_at=NOW - timedelta(minutes=5),
        )
        for customer in customers
    ]


def test_a_replayed_batch_writes_no_second_message_or_run(tenant):
    clock.set_now(NOW)
    rows = _setup(tenant)
    assert enrollments_dispatch(tenant_id=tenant.pk) == 3
    first = dict(StepRun.objects.for_tenant(tenant).values_list("enrollment_id", "message_id"))

    # The same batch again, as after a crash between the outbox write and the
    # enrollment update: the rows are back where they were.
    Enrollment.objects.for_tenant(tenant).update(
        position=1, next_run_at=NOW - timedelta(minutes=5), last_step_at=None
    )
    assert enrollments_dispatch(tenant_id=tenant.pk) == 3

    assert Message.objects.for_tenant(tenant).count() == 3
    assert StepRun.objects.for_tenant(tenant).count() == 3
    again = dict(StepRun.objects.for_tenant(tenant).values_list("enrollment_id", "message_id"))
    assert again == first
    assert set(first) == {r.pk for r in rows}
    for run in StepRun.objects.for_tenant(tenant).select_related("message", "enrollment"):
        assert run.message.customer_id == run.enrollment.customer_id
        assert run.message.idempotency_key == (
            f"journey:{run.enrollment_id}:{run.enrollment.version_id}:{run.step_id}"
        )
    assert set(Enrollment.objects.for_tenant(tenant).values_list("position", flat=True)) == {2}


ENROLLMENT_FIELDS = (
    "status",
    "position",
    "next_run_at",
    "last_step_at",
    "finished_at",
    "attempts",
    "exit_reason",
    "last_error",
)
RUN_FIELDS = ("variant", "outcome", "at", "detail")
# A message's own fields; ids and the key differ between two stores by design.
MESSAGE_FIELDS = [
    f.attname
    for f in Message._meta.concrete_fields
    if not f.attname.endswith("id") and f.attname not in ("idempotency_key", "context")
]


def _state(tenant) -> list[tuple[dict, dict, dict]]:
    """Per enrollment (by customer name): its row, its run and its message,
    without the ids that differ between two stores."""
    out = []
    runs = (
        StepRun.objects.for_tenant(tenant)
        .select_related("enrollment__customer", "message")
        .order_by("enrollment__customer__first_name")
    )
    for run in runs:
        message = run.message
        out.append(
            (
                {f: getattr(run.enrollment, f) for f in ENROLLMENT_FIELDS},
                {f: getattr(run, f) for f in RUN_FIELDS},
                {f: getattr(message, f) for f in MESSAGE_FIELDS}
                | {"context": sorted(message.context), "variant": message.context["variant"]},
            )
        )
    return out


def test_postgresql_and_the_portable_path_write_the_same_rows(tenant, other_tenant, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the set-based statements are PostgreSQL's")
    clock.set_now(NOW)
    _setup(tenant)
    _setup(other_tenant)

    assert enrollments_dispatch(tenant_id=tenant.pk) == 3
    # Django's vendor switch, not ours: the same dispatch takes the ORM path.
    monkeypatch.setattr(connection, "vendor", "portable")
    assert enrollments_dispatch(tenant_id=other_tenant.pk) == 3

    unnest, orm = _state(tenant), _state(other_tenant)
    assert len(unnest) == 3
    assert unnest == orm
    enrollment, run, message = unnest[0]
    assert enrollment["position"] == 2
    assert enrollment["next_run_at"] == NOW - timedelta(minutes=5) + timedelta(days=3)
    assert run["outcome"] == "queued"
    assert message["subject"] == "Hi there"
