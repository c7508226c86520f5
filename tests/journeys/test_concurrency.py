"""Two dispatchers on the same due set act once, on real PostgreSQL connections."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from commerce.models import Customer
from journeys.models import Enrollment, EnrollmentStatus, StepRun
from journeys.services.definitions import journey_create
from journeys.services.dispatch import enrollments_dispatch
from messaging.models import Message, Template
from retention import clock

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_on_the_same_due_set_act_once(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    clock.set_now(NOW)
    template = Template.objects.create(
        tenant=tenant, name="hi", channel="email", subject="Hi", text="Hello", html="<p>Hello</p>"
    )
    journey = journey_create(
        tenant=tenant,
        name="Race",
        status="active",
        version={"trigger": "touchpoint", "value": "signed.up"},
        steps=[{"name": "Hello", "delay": 0, "email_template": template}],
    )
    customers = Customer.objects.bulk_create(
        [Customer(tenant=tenant, email=f"r{n}@shop.example") for n in range(600)]
    )
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                tenant=tenant,
                journey=journey,
                version=journey.current_version,
                customer=c,
                trigger_key=f"t:{c.pk}",
                trigger_at=NOW,
                next_run_at=NOW,
            )
            for c in customers
        ]
    )
    barrier = threading.Barrier(2)
    results: list[int] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(enrollments_dispatch(tenant_id=tenant.pk, batch_size=50))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sum(results) == 600
    assert all(r > 0 for r in results), results  # both took part
    messages = Message.objects.for_tenant(tenant).filter(source="journey")
    assert messages.count() == 600
    assert messages.values("customer_id").distinct().count() == 600
    assert StepRun.objects.for_tenant(tenant).count() == 600
    assert (
        Enrollment.objects.for_tenant(tenant).filter(status=EnrollmentStatus.COMPLETED).count()
        == 600
    )
