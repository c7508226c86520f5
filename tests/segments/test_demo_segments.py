"""`demo_segments` gives the demo store example rule segments, once."""

from datetime import timedelta

from django.core.management import call_command

from commerce.models import ProductFamily
from commerce.services.orders import orders_bulk_loaded
from retention import clock
from segments.models import Segment, SegmentKind
from tests.factories import CustomerFactory, make_order


def test_demo_segments_creates_the_examples_once_and_fills_them(
    tenant, capsys, eager_tasks, django_capture_on_commit_callbacks
):
    coffee = ProductFamily.objects.create(tenant=tenant, name="Coffee", slug="coffee")
    lapsing = CustomerFactory(tenant=tenant)
    for days in (90, 120):
        make_order(lapsing, clock.now() - timedelta(days=days), families=(coffee,))
    with django_capture_on_commit_callbacks(execute=True):
        orders_bulk_loaded(tenant)  # as the demo seed does: RFM and category flags

    call_command("demo_segments", "--tenant", tenant.slug)
    call_command("demo_segments", "--tenant", tenant.slug)

    rules = Segment.objects.for_tenant(tenant).filter(kind=SegmentKind.RULE)
    assert rules.count() == 4
    assert rules.get(slug="lapsing-repeat-buyers").member_count == 1
    assert rules.get(slug="coffee-refill").member_count == 1
    assert "Lapsing repeat buyers" in capsys.readouterr().out
