"""The beat's journeys tick queues one tick per tenant with an active journey,
however many active journeys the tenant has."""

from __future__ import annotations

from journeys.models import Journey, JourneyStatus
from journeys.services.triggers import journeys_with_scan_work


def test_tick_fans_out_once_per_tenant_not_once_per_journey(tenant, other_tenant):
    # given two stores with the default journeys (active), one with all paused
    assert Journey.objects.for_tenant(tenant).filter(status=JourneyStatus.ACTIVE).count() > 1
    Journey.objects.for_tenant(other_tenant).update(status=JourneyStatus.PAUSED)

    # then the tick's fan-out names the store with active journeys, once
    assert journeys_with_scan_work() == [tenant.pk]
