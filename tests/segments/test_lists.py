"""List segments: members added and removed one at a time (journey steps),
each change recorded once, counts kept by F(), and no rule refresh touching them."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from commerce.models import Customer
from retention import clock
from retention.errors import InvalidInput
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    SegmentTransition,
    Tier,
)
from segments.services.lists import (
    list_memberships_move,
    list_segment_create,
    segment_member_add,
    segment_member_remove,
)
from segments.services.memberships import (
    segment_refresh,
    segments_refresh_all,
    segments_refresh_customer,
)
from segments.services.setup import tier_segments
from tests.factories import CustomerFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def list_segment(tenant, name="VIP callers") -> Segment:
    return list_segment_create(tenant=tenant, name=name)


def member_ids(segment) -> set[int]:
    return set(
        SegmentMembership.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", flat=True)
    )


def transitions(segment) -> list[tuple[int, str, str]]:
    return list(
        SegmentTransition.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .order_by("id")
        .values_list("customer_id", "kind", "cause")
    )


def count(segment) -> int:
    segment.refresh_from_db()
    return segment.member_count


# --- add and remove ----------------------------------------------------------------------


def test_list_segment_create_makes_an_empty_list_segment(tenant):
    segment = list_segment_create(tenant=tenant, name="Asked for a demo", description="From calls")

    assert (segment.kind, segment.slug, segment.status) == (
        SegmentKind.LIST,
        "asked-for-a-demo",
        SegmentStatus.ACTIVE,
    )
    assert (segment.description, segment.member_count, segment.conditions) == ("From calls", 0, [])


def test_list_segment_create_refuses_a_taken_slug(tenant):
    list_segment(tenant, name="Asked for a demo")

    with pytest.raises(InvalidInput) as err:
        list_segment_create(tenant=tenant, name="Other", slug="asked-for-a-demo")

    assert "slug" in err.value.fields
    assert Segment.objects.for_tenant(tenant).filter(kind=SegmentKind.LIST).count() == 1


def test_adding_twice_makes_one_membership_and_one_entry(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)

    assert segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk) is True
    clock.advance(hours=1)
    assert segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk) is False

    assert member_ids(segment) == {ann.pk}
    assert transitions(segment) == [(ann.pk, "entered", "journey")]
    membership = SegmentMembership.objects.for_tenant(tenant).get(segment=segment)
    assert membership.since == NOW
    assert count(segment) == 1
    assert segment.counted_at == NOW


def test_adding_by_segment_id_with_a_cause(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)

    assert segment_member_add(
        tenant_id=tenant.pk, segment=segment.pk, customer_id=ann.pk, cause="admin"
    )

    assert transitions(segment) == [(ann.pk, "entered", "admin")]


def test_removing_a_member_records_one_exit(tenant):
    segment = list_segment(tenant)
    ann, bob = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    for customer in (ann, bob):
        segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=customer.pk)

    clock.advance(days=1)
    assert segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)

    assert member_ids(segment) == {bob.pk}
    assert transitions(segment) == [
        (ann.pk, "entered", "journey"),
        (bob.pk, "entered", "journey"),
        (ann.pk, "left", "journey"),
    ]
    left = SegmentTransition.objects.for_tenant(tenant).get(segment=segment, kind="left")
    assert left.at == NOW + timedelta(days=1)
    assert count(segment) == 1


def test_removing_a_customer_who_is_not_in_writes_nothing(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)
    segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)
    segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)

    assert segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk) is False

    assert member_ids(segment) == set()
    assert [kind for _, kind, _ in transitions(segment)] == ["entered", "left"]
    assert count(segment) == 0


def test_entering_again_after_leaving_is_a_new_entry(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)
    segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)
    segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)

    assert segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)

    assert [kind for _, kind, _ in transitions(segment)] == ["entered", "left", "entered"]
    assert count(segment) == 1


@pytest.mark.parametrize("service", [segment_member_add, segment_member_remove])
def test_rule_and_tier_segments_are_refused(tenant, service):
    ann = CustomerFactory(tenant=tenant)
    rule = Segment.objects.create(tenant=tenant, name="Rule", slug="rule", kind=SegmentKind.RULE)
    tier = tier_segments(tenant.pk)[Tier.ONE_TIME]

    for segment in (rule, tier):
        with pytest.raises(InvalidInput) as err:
            service(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)
        assert err.value.fields == {"segment": "Not a list segment."}

    assert SegmentMembership.objects.for_tenant(tenant).count() == 0
    assert SegmentTransition.objects.for_tenant(tenant).count() == 0


def test_an_archived_list_segment_takes_no_one_but_lets_members_go(tenant):
    segment = list_segment(tenant)
    ann, bob = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)
    Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(status=SegmentStatus.ARCHIVED)

    with pytest.raises(InvalidInput) as err:
        segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=bob.pk)
    assert err.value.fields == {"segment": "Archived."}
    assert segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)

    assert member_ids(segment) == set()
    assert [kind for _, kind, _ in transitions(segment)] == ["entered", "left"]


def test_a_cause_longer_than_the_column_is_refused(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)

    with pytest.raises(InvalidInput):
        segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk, cause="x" * 21)

    assert member_ids(segment) == set()


def test_a_merged_away_customer_is_added_as_the_survivor(tenant):
    segment = list_segment(tenant)
    survivor, merged = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    Customer.objects.for_tenant(tenant).filter(pk=merged.pk).update(merged_into=survivor)

    assert segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=merged.pk)
    assert segment_member_remove(tenant_id=tenant.pk, segment=segment, customer_id=merged.pk)

    assert transitions(segment) == [
        (survivor.pk, "entered", "journey"),
        (survivor.pk, "left", "journey"),
    ]


def test_list_memberships_move_to_the_survivor_of_a_merge(tenant):
    lists = [list_segment(tenant, name=f"List {n}") for n in range(3)]
    rule = Segment.objects.create(tenant=tenant, name="Rule", slug="rule", kind=SegmentKind.RULE)
    survivor, merged = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    for segment in lists[:2]:
        segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=merged.pk)
    segment_member_add(tenant_id=tenant.pk, segment=lists[1], customer_id=survivor.pk)
    SegmentMembership.objects.create(tenant=tenant, segment=rule, customer=merged)

    entered = list_memberships_move(
        tenant_id=tenant.pk, merged_id=merged.pk, survivor_id=survivor.pk
    )

    assert entered == 1
    assert member_ids(lists[0]) == {merged.pk, survivor.pk}
    assert member_ids(lists[1]) == {merged.pk, survivor.pk}
    assert member_ids(lists[2]) == set()
    assert member_ids(rule) == {merged.pk}  # the survivor's refresh re-derives rule segments
    assert transitions(lists[0])[-1] == (survivor.pk, "entered", "merge")
    assert (count(lists[0]), count(lists[1])) == (2, 2)


# --- two tenants ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", [segment_member_add, segment_member_remove])
def test_another_tenants_segment_is_refused(tenant, other_tenant, service):
    theirs = list_segment(other_tenant)
    ann = CustomerFactory(tenant=tenant)
    segment_member_add(
        tenant_id=other_tenant.pk,
        segment=theirs,
        customer_id=CustomerFactory(tenant=other_tenant).pk,
    )

    with pytest.raises(InvalidInput) as err:
        service(tenant_id=tenant.pk, segment=theirs, customer_id=ann.pk)

    assert err.value.fields == {"segment": "Not found."}
    assert len(member_ids(theirs)) == 1
    assert len(transitions(theirs)) == 1
    assert count(theirs) == 1


@pytest.mark.parametrize("service", [segment_member_add, segment_member_remove])
def test_another_tenants_customer_is_refused(tenant, other_tenant, service):
    ours = list_segment(tenant)
    stranger = CustomerFactory(tenant=other_tenant)

    with pytest.raises(InvalidInput) as err:
        service(tenant_id=tenant.pk, segment=ours, customer_id=stranger.pk)

    assert err.value.fields == {"customer": "Not found."}
    assert member_ids(ours) == set()
    assert transitions(ours) == []
    assert count(ours) == 0


# --- rule refresh leaves list segments alone -------------------------------------------------


def test_rule_refreshes_leave_list_members_in_place(tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)
    segment_member_add(tenant_id=tenant.pk, segment=segment, customer_id=ann.pk)
    CustomerRFM.objects.create(
        tenant=tenant,
        customer=ann,
        first_order_at=NOW - timedelta(days=30),
        last_order_at=NOW - timedelta(days=3),
        orders_total=1,
        frequency=1,
        monetary=Decimal("40.00"),
        r_score=3,
        f_score=1,
        m_score=2,
        tier=Tier.ONE_TIME,
    )

    assert segment_refresh(segment) == (0, 0)
    assert segment.pk not in segments_refresh_all(tenant)
    assert all(t.segment_id != segment.pk for t in segments_refresh_customer(tenant, ann.pk))

    assert member_ids(segment) == {ann.pk}
    assert transitions(segment) == [(ann.pk, "entered", "journey")]
    assert count(segment) == 1


# --- concurrency -----------------------------------------------------------------------------


def _at_once(calls) -> list:
    """Run the calls in threads released together; each uses its own connection."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_adds_and_removes_of_one_customer_change_it_once(transactional_db, tenant):
    segment, ann = list_segment(tenant), CustomerFactory(tenant=tenant)

    def add():
        return segment_member_add(tenant_id=tenant.pk, segment=segment.pk, customer_id=ann.pk)

    def remove():
        return segment_member_remove(tenant_id=tenant.pk, segment=segment.pk, customer_id=ann.pk)

    assert sorted(_at_once([add] * 4)) == [False, False, False, True]
    assert sorted(_at_once([remove] * 4)) == [False, False, False, True]

    assert [kind for _, kind, _ in transitions(segment)] == ["entered", "left"]
    assert member_ids(segment) == set()
    assert count(segment) == 0


# --- the admin shows list segments --------------------------------------------------------


def test_a_list_segments_admin_page_opens_and_lists_its_kind(tenant, marketer_client):
    from django.urls import reverse

    segment = list_segment(tenant)
    segment_member_add(
        tenant_id=tenant.pk, segment=segment, customer_id=CustomerFactory(tenant=tenant).pk
    )

    page = marketer_client.get(reverse("admin:segments_segment_change", args=[segment.pk]))
    listed = marketer_client.get(reverse("admin:segments_segment_changelist") + "?kind__exact=list")

    assert page.status_code == listed.status_code == 200
    assert b"VIP callers" in listed.content and b"List segment" in listed.content
