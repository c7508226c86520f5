"""Rule-segment memberships: set-based refresh records each entry and exit once,
the per-customer refresh agrees with it, previews, and saving a segment."""

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.models import ChannelConsent, ConsentStatus, Customer, Touchpoint
from retention import clock
from retention.errors import Conflict, InvalidInput, NotFound
from retention.models import AuditEntry
from segments import rules
from segments.models import (
    CustomerFamily,
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    SegmentTransition,
    Tier,
)
from segments.services.memberships import (
    segment_delete,
    segment_preview,
    segment_refresh,
    segment_save,
    segments_refresh_all,
    segments_refresh_customer,
)
from segments.services.setup import tier_segments
from tests.factories import CustomerFactory, ProductFamilyFactory, UserFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPEAT = [{"field": "orders_total", "op": "gte", "value": 2}]


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


pytestmark = pytest.mark.usefixtures("eager_tasks")


def buyer(tenant, orders=1, **values):
    customer = CustomerFactory(tenant=tenant)
    set_rfm(customer, orders, **values)
    return customer


def set_rfm(customer, orders, **values):
    defaults = {
        "first_order_at": NOW - timedelta(days=100),
        "last_order_at": NOW - timedelta(days=10),
        "orders_total": orders,
        "frequency": orders,
        "monetary": Decimal("50.00") * orders,
        "r_score": 3,
        "f_score": 3,
        "m_score": 3,
        "tier": Tier.ONE_TIME if orders < 2 else Tier.MID_VALUE_REPEAT,
    }
    CustomerRFM.objects.for_tenant(customer.tenant_id).update_or_create(
        tenant_id=customer.tenant_id, customer=customer, defaults={**defaults, **values}
    )


def rule_segment(tenant, conditions=REPEAT, match="all", **kwargs) -> Segment:
    kwargs.setdefault("name", "Repeat buyers")
    kwargs.setdefault("slug", f"seg-{Segment.objects.for_tenant(tenant).count()}")
    return Segment.objects.create(
        tenant=tenant, kind=SegmentKind.RULE, match=match, conditions=conditions, **kwargs
    )


def member_ids(segment) -> set[int]:
    return set(
        SegmentMembership.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", flat=True)
    )


def transitions(segment) -> list[tuple[int, str, str]]:
    return sorted(
        SegmentTransition.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", "kind", "cause")
    )


# --- segment_refresh ---------------------------------------------------------------------


def test_refresh_enters_members_once_and_counts_them(tenant):
    ann, bob = buyer(tenant, 2), buyer(tenant, 3)
    buyer(tenant, 1)
    segment = rule_segment(tenant)

    assert segment_refresh(segment) == (2, 0)
    assert member_ids(segment) == {ann.pk, bob.pk}
    assert transitions(segment) == sorted(
        [(ann.pk, "entered", "refresh"), (bob.pk, "entered", "refresh")]
    )
    segment.refresh_from_db()
    assert (segment.member_count, segment.counted_at) == (2, NOW)

    # nothing changed: nothing recorded again
    assert segment_refresh(segment, cause="nightly") == (0, 0)
    assert len(transitions(segment)) == 2


def test_a_customer_who_no_longer_matches_leaves_once(tenant):
    ann, bob = buyer(tenant, 2), buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)

    set_rfm(bob, 1)  # e.g. an order refunded
    assert segment_refresh(segment, cause="nightly") == (0, 1)
    assert segment_refresh(segment, cause="nightly") == (0, 0)
    assert member_ids(segment) == {ann.pk}
    assert [t for t in transitions(segment) if t[0] == bob.pk] == [
        (bob.pk, "entered", "refresh"),
        (bob.pk, "left", "nightly"),
    ]
    left = SegmentTransition.objects.for_tenant(tenant).get(customer=bob, kind="left")
    assert left.at == NOW

    set_rfm(bob, 4)
    assert segment_refresh(segment) == (1, 0)
    kinds = [k for c, k, _ in transitions(segment) if c == bob.pk]
    assert sorted(kinds) == ["entered", "entered", "left"]
    segment.refresh_from_db()
    assert segment.member_count == 2


def test_membership_since_is_the_refresh_time(tenant):
    ann = buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)
    membership = SegmentMembership.objects.for_tenant(tenant).get(segment=segment)
    assert (membership.customer_id, membership.since) == (ann.pk, NOW)


def test_an_archived_segment_lets_everyone_go(tenant):
    buyer(tenant, 2), buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)
    Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(status=SegmentStatus.ARCHIVED)

    assert segment_refresh(segment) == (0, 2)
    assert member_ids(segment) == set()
    assert segment.member_count == 0


def test_emptied_conditions_match_nobody(tenant):
    buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)
    Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(conditions=[])
    assert segment_refresh(segment) == (0, 1)


def test_a_merged_member_leaves(tenant):
    ann, bob = buyer(tenant, 2), buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)
    bob.merged_into = ann
    bob.save()
    assert segment_refresh(segment, cause="merge") == (0, 1)
    assert member_ids(segment) == {ann.pk}


def test_tier_segments_are_left_to_the_rfm_engine(tenant):
    buyer(tenant, 1)
    tier = tier_segments(tenant)[Tier.ONE_TIME]
    assert segment_refresh(tier) == (0, 0)
    assert not SegmentMembership.objects.for_tenant(tenant).exists()


def test_refresh_never_includes_another_tenants_customers(tenant, other_tenant):
    mine = buyer(tenant, 2)
    theirs = buyer(other_tenant, 2)
    segment = rule_segment(tenant, conditions=[{"field": "orders_total", "op": "lte", "value": 9}])
    CustomerFactory(tenant=other_tenant)  # a non-buyer (0 orders) of the other store

    segment_refresh(segment)
    assert member_ids(segment) == {mine.pk}
    assert not SegmentMembership.objects.unscoped().filter(customer=theirs).exists()
    assert not SegmentTransition.objects.for_tenant(other_tenant).exists()


def test_refresh_all_covers_active_rules_and_archived_ones_with_members(tenant, other_tenant):
    ann = buyer(tenant, 2)
    active = rule_segment(tenant)
    archived = rule_segment(tenant)
    segment_refresh(archived)
    Segment.objects.for_tenant(tenant).filter(pk=archived.pk).update(status="archived")
    rule_segment(tenant, status=SegmentStatus.ARCHIVED)  # empty and archived: skipped
    rule_segment(other_tenant)

    assert segments_refresh_all(tenant) == {active.pk: (1, 0), archived.pk: (0, 1)}
    assert member_ids(active) == {ann.pk}
    assert transitions(active) == [(ann.pk, "entered", "nightly")]
    assert segments_refresh_all(tenant.pk, cause="recompute") == {active.pk: (0, 0)}


def test_refresh_all_skips_a_broken_stored_rule(tenant, caplog):
    buyer(tenant, 2)
    broken = rule_segment(tenant, conditions=[{"field": "gone_field", "op": "eq", "value": 1}])
    fine = rule_segment(tenant)
    assert segments_refresh_all(tenant) == {fine.pk: (1, 0)}
    assert f"segment_id={broken.pk}" in caplog.text


# --- segments_refresh_customer -----------------------------------------------------------


def test_customer_refresh_enters_and_leaves_each_segment(tenant):
    repeat = rule_segment(tenant)
    one_time = rule_segment(tenant, conditions=[{"field": "orders_total", "op": "eq", "value": 1}])
    ann = buyer(tenant, 1)

    moves = segments_refresh_customer(tenant, ann.pk)
    assert [(t.segment_id, t.kind, t.cause) for t in moves] == [(one_time.pk, "entered", "order")]
    assert segments_refresh_customer(tenant, ann.pk) == []

    set_rfm(ann, 2)  # a second order
    moves = segments_refresh_customer(tenant.pk, ann.pk)
    assert sorted((t.segment_id, t.kind) for t in moves) == sorted(
        [(repeat.pk, "entered"), (one_time.pk, "left")]
    )
    assert all(t.pk for t in moves)
    assert member_ids(repeat) == {ann.pk} and member_ids(one_time) == set()
    repeat.refresh_from_db()
    one_time.refresh_from_db()
    assert (repeat.member_count, one_time.member_count) == (1, 0)
    assert transitions(one_time) == [(ann.pk, "entered", "order"), (ann.pk, "left", "order")]


def test_customer_refresh_ignores_tiers_archived_and_other_tenants(tenant, other_tenant):
    tier_segments(tenant)
    rule_segment(tenant, status=SegmentStatus.ARCHIVED)
    rule_segment(other_tenant)
    ann = buyer(tenant, 2)
    assert segments_refresh_customer(tenant, ann.pk) == []


def test_a_tombstone_leaves_on_customer_refresh(tenant):
    segment = rule_segment(tenant)
    ann, bob = buyer(tenant, 2), buyer(tenant, 2)
    segments_refresh_customer(tenant, bob.pk)
    bob.merged_into = ann
    bob.save()
    moves = segments_refresh_customer(tenant, bob.pk, cause="merge")
    assert [(t.customer_id, t.kind, t.cause) for t in moves] == [(bob.pk, "left", "merge")]
    assert member_ids(segment) == set()


def test_customer_refresh_is_a_few_queries_for_twenty_segments(
    tenant, django_assert_max_num_queries
):
    family = ProductFamilyFactory(tenant=tenant, slug="coffee")
    kinds = [[{"field": "orders_total", "op": "gte", "value": n % 3}] for n in range(5)] + [
        [{"field": "family_bought", "op": "eq", "value": family.pk, "within_days": 30}],
        [
            {
                "field": "touchpoint",
                "op": "has",
                "value": {"kind": "message.opened", "within_days": 7, "min_count": 2},
            }
        ],
        [{"field": "consent", "op": "eq", "value": {"channel": "email", "status": "unknown"}}],
        [{"field": "days_since_last_order", "op": "between", "value": [5, 20]}],
        [{"field": "tier", "op": "in", "value": ["mid_value_repeat"]}],
    ]
    for n in range(20):
        rule_segment(tenant, conditions=kinds[n % len(kinds)], match="any")
    ann = buyer(tenant, 2)

    with django_assert_max_num_queries(16):
        # all but the family and touchpoint rules (2 of the 10 kinds) take her in
        assert len(segments_refresh_customer(tenant, ann.pk)) == 16
    timings = []
    for orders in (1, 2, 1, 2, 1):
        set_rfm(ann, orders)
        started = time.perf_counter()
        segments_refresh_customer(tenant, ann.pk)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05


@pytest.fixture
def vip_field():
    """A field another app registers with a compiler only (no Python evaluator)."""
    yield rules.register_condition(
        "vip_email",
        label="VIP email",
        ops=("eq",),
        value_type="choice",
        choices=[("yes", "Yes")],
        compile=lambda c, ctx: Q(
            Exists(
                Customer.objects.for_tenant(ctx.tenant_id).filter(
                    pk=OuterRef("pk"), email__endswith="@vip.example"
                )
            )
        ),
    )
    rules.REGISTRY.pop("vip_email")


def test_customer_refresh_asks_the_database_for_fields_without_an_evaluator(tenant, vip_field):
    vip_repeat = rule_segment(tenant, conditions=[*REPEAT, {"field": "vip_email", "value": "yes"}])
    repeat = rule_segment(tenant)
    ann = CustomerFactory(tenant=tenant, email="ann@vip.example")
    set_rfm(ann, 2)
    bob = buyer(tenant, 2)

    assert {t.segment_id for t in segments_refresh_customer(tenant, ann.pk)} == {
        vip_repeat.pk,
        repeat.pk,
    }
    assert {t.segment_id for t in segments_refresh_customer(tenant, bob.pk)} == {repeat.pk}
    assert segment_refresh(vip_repeat) == (0, 0)


# --- the two refreshes agree (property) --------------------------------------------------

FAMILIES = ("coffee", "tea")

condition = st.one_of(
    st.builds(
        lambda field, op, v: {"field": field, "op": op, "value": v},
        st.sampled_from(["r_score", "f_score", "m_score"]),
        st.sampled_from(["eq", "gte", "lte"]),
        st.integers(1, 5),
    ),
    st.builds(
        lambda op, v: {"field": "days_since_last_order", "op": op, "value": v},
        st.sampled_from(["gte", "lte"]),
        st.integers(0, 6),
    ),
    st.builds(
        lambda op, v: {"field": "orders_total", "op": op, "value": v},
        st.sampled_from(["eq", "gte", "lte"]),
        st.integers(0, 4),
    ),
    st.builds(
        lambda lo, hi: {"field": "monetary", "op": "between", "value": [lo, lo + hi]},
        st.integers(0, 20),
        st.integers(0, 20),
    ),
    st.builds(
        lambda tier: {"field": "tier", "op": "in", "value": [tier]}, st.sampled_from(Tier.values)
    ),
    st.builds(
        lambda field, slug, days: {"field": field, "op": "eq", "value": slug, "within_days": days},
        st.sampled_from(["family_bought", "family_not_bought"]),
        st.sampled_from(FAMILIES),
        st.sampled_from([None, 1, 3]),
    ),
    st.builds(
        lambda status: {
            "field": "consent",
            "op": "eq",
            "value": {"channel": "email", "status": status},
        },
        st.sampled_from(ConsentStatus.values),
    ),
    st.builds(
        lambda op, days, n: {
            "field": "touchpoint",
            "op": op,
            "value": {"kind": "message.clicked", "within_days": days, "min_count": n},
        },
        st.sampled_from(["has", "has_not"]),
        st.sampled_from([1, 3]),
        st.integers(1, 2),
    ),
)

# Times are hours ago, often exactly on a day boundary, where the edges are.
hours_ago = st.one_of(st.integers(0, 6).map(lambda days: 24 * days), st.integers(0, 150))

customer_data = st.fixed_dictionaries(
    {
        "rfm": st.none()
        | st.fixed_dictionaries(
            {
                "orders": st.integers(1, 4),
                "hours": hours_ago,
                "monetary": st.integers(0, 20),
                "score": st.integers(1, 5),
                "tier": st.sampled_from(Tier.values),
            }
        ),
        "families": st.dictionaries(st.sampled_from(FAMILIES), hours_ago, max_size=2),
        "consent": st.none() | st.sampled_from(ConsentStatus.values),
        "clicks": st.lists(hours_ago, max_size=3),
        "tombstone": st.booleans(),
    }
)


def _load(tenant, customers: list[dict]) -> list:
    families = {slug: ProductFamilyFactory(tenant=tenant, slug=slug) for slug in FAMILIES}
    created = []
    for data in customers:
        customer = CustomerFactory(tenant=tenant)
        created.append(customer)
        if data["tombstone"] and len(created) > 1:
            customer.merged_into = created[0]
            customer.save()
        if data["rfm"]:
            r = data["rfm"]
            set_rfm(
                customer,
                r["orders"],
                last_order_at=NOW - timedelta(hours=r["hours"]),
                monetary=Decimal(r["monetary"]),
                r_score=r["score"],
                f_score=6 - r["score"],
                m_score=r["score"],
                tier=r["tier"],
            )
        for slug, hours in data["families"].items():
            at = NOW - timedelta(hours=hours)
            CustomerFamily.objects.create(
                tenant=tenant,
                customer=customer,
                family=families[slug],
                orders=1,
                spend=Decimal(10),
                first_at=at,
                last_at=at,
            )
        if data["consent"]:
            ChannelConsent.objects.create(
                tenant=tenant, customer=customer, channel="email", status=data["consent"]
            )
        for hours in data["clicks"]:
            Touchpoint.objects.create(
                tenant=tenant,
                customer=customer,
                category="marketing",
                kind="message.clicked",
                occurred_at=NOW - timedelta(hours=hours),
            )
    return created


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    customers=st.lists(customer_data, min_size=1, max_size=5),
    rule_sets=st.lists(
        st.tuples(st.sampled_from(["all", "any"]), st.lists(condition, max_size=3)),
        min_size=1,
        max_size=3,
    ),
)
def test_per_customer_refresh_equals_the_set_based_refresh(tenant, customers, rule_sets):
    with transaction.atomic():
        created = _load(tenant, customers)
        segments = [
            rule_segment(tenant, conditions=conditions, match=match)
            for match, conditions in rule_sets
        ]
        for customer in created:
            segments_refresh_customer(tenant, customer.pk)
        for segment in segments:
            expected = set(
                rules.members_queryset(tenant, segment.match, segment.conditions).values_list(
                    "pk", flat=True
                )
            )
            assert member_ids(segment) == expected
            # The set-based refresh finds nothing left to do.
            assert segment_refresh(segment) == (0, 0)
            assert segment.member_count == len(expected)
        transaction.set_rollback(True)


EDGE_CONDITIONS = [
    *(
        {"field": "days_since_last_order", "op": op, "value": v}
        for op in ("gte", "lte")
        for v in range(4)
    ),
    {"field": "days_since_last_order", "op": "between", "value": [1, 2]},
    *(
        {"field": field, "op": "eq", "value": "coffee", "within_days": days}
        for field in ("family_bought", "family_not_bought")
        for days in (None, 1, 2, 3)
    ),
    *(
        {
            "field": "touchpoint",
            "op": op,
            "value": {"kind": "message.clicked", "within_days": days, "min_count": n},
        }
        for op in ("has", "has_not")
        for days in (1, 2, 3)
        for n in (1, 2)
    ),
    *(
        {"field": "consent", "op": "eq", "value": {"channel": "email", "status": status}}
        for status in ConsentStatus.values
    ),
    *({"field": "monetary", "op": op, "value": "10.00"} for op in ("gte", "lte")),
    {"field": "monetary", "op": "between", "value": ["0", "9.99"]},
    *(
        {"field": "orders_total", "op": op, "value": n}
        for op in ("eq", "gte", "lte")
        for n in (1, 2)
    ),
    *({"field": "m_score", "op": op, "value": 3} for op in ("eq", "gte", "lte")),
    {"field": "orders_total", "op": "eq", "value": 0},
    {"field": "tier", "op": "in", "value": ["one_time"]},
]


def test_python_and_sql_agree_on_every_edge(tenant):
    """Customers exactly on, just before and just after each day boundary, for
    every field the per-customer refresh tests in Python."""
    coffee = ProductFamilyFactory(tenant=tenant, slug="coffee")
    customers = [CustomerFactory(tenant=tenant)]  # a non-buyer
    statuses = [None, *ConsentStatus.values]
    for days in range(4):
        for tick in (-1, 0, 1):
            at = NOW - timedelta(days=days, microseconds=tick)
            customer = CustomerFactory(tenant=tenant)
            n = len(customers)
            set_rfm(
                customer,
                n % 3 + 1,
                last_order_at=at,
                monetary=[0, 9.99, 10, 10.01][n % 4],
                m_score=n % 5 + 1,
            )
            CustomerFamily.objects.create(
                tenant=tenant,
                customer=customer,
                family=coffee,
                orders=1,
                spend=1,
                first_at=at,
                last_at=at,
            )
            for _ in range(n % 2 + 1):
                Touchpoint.objects.create(
                    tenant=tenant,
                    customer=customer,
                    category="marketing",
                    kind="message.clicked",
                    occurred_at=at,
                )
            if statuses[n % 4]:
                ChannelConsent.objects.create(
                    tenant=tenant, customer=customer, channel="email", status=statuses[n % 4]
                )
            customers.append(customer)
    facts = {c.pk: rules.CustomerFacts(tenant.pk, c.pk, NOW) for c in customers}

    for condition in EDGE_CONDITIONS:
        in_sql = set(
            rules.members_queryset(tenant, "all", [condition]).values_list("pk", flat=True)
        )
        in_python = {pk for pk, f in facts.items() if rules.evaluate_rule(f, "all", [condition])}
        assert in_python == in_sql, condition
        assert 0 < len(in_sql) < len(customers), condition  # the edge is inside the data


# --- preview ----------------------------------------------------------------------------------


def test_preview_counts_and_samples_newest_first(tenant, other_tenant):
    buyers = [buyer(tenant, 2) for _ in range(4)]
    buyers[0].first_name, buyers[0].last_name = "Ann", "Lee"
    buyers[0].save()
    buyer(tenant, 1)
    buyer(other_tenant, 2)

    preview = segment_preview(tenant, match="all", conditions=REPEAT, sample=3)
    assert preview.count == 4
    assert [m.id for m in preview.sample] == [b.pk for b in reversed(buyers)][:3]
    full = segment_preview(tenant, match="all", conditions=REPEAT, sample=10)
    assert full.as_dict()["sample"][-1] == {
        "id": buyers[0].pk,
        "email": buyers[0].email,
        "name": "Ann Lee",
    }


def test_preview_validates_first(tenant):
    with pytest.raises(InvalidInput) as caught:
        segment_preview(
            tenant, match="all", conditions=[{"field": "family_bought", "value": "nope"}]
        )
    assert caught.value.fields == {"conditions[0].op": caught.value.fields["conditions[0].op"]}
    with pytest.raises(InvalidInput) as caught:
        segment_preview(
            tenant, match="all", conditions=[{"field": "family_bought", "op": "eq", "value": "x"}]
        )
    assert caught.value.fields == {"conditions[0].value": "Unknown product family 'x'."}


def test_preview_of_no_conditions_is_empty(tenant):
    buyer(tenant, 2)
    assert segment_preview(tenant, match="any", conditions=[]).count == 0


# --- save and delete --------------------------------------------------------------------------


def test_save_creates_a_rule_segment_and_refreshes_it_after_commit(
    tenant, django_capture_on_commit_callbacks
):
    ann = buyer(tenant, 2)
    family = ProductFamilyFactory(tenant=tenant, slug="coffee")
    user = UserFactory()
    data = {
        "name": "  Repeat coffee fans ",
        "match": "any",
        "conditions": [*REPEAT, {"field": "family_bought", "op": "eq", "value": "coffee"}],
    }
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        segment = segment_save(tenant=tenant, data=data, actor=user)
    assert len(callbacks) == 1
    assert (segment.name, segment.slug, segment.kind) == (
        "Repeat coffee fans",
        "repeat-coffee-fans",
        "rule",
    )
    assert segment.conditions[1]["value"] == family.pk
    assert member_ids(segment) == {ann.pk}
    audit = AuditEntry.objects.for_tenant(tenant).get(object_id=str(segment.pk))
    assert (audit.action, audit.actor_user) == ("create", user)


def test_only_rule_changes_refresh(tenant, django_capture_on_commit_callbacks):
    segment = segment_save(tenant=tenant, data={"name": "Repeat", "conditions": REPEAT})
    with django_capture_on_commit_callbacks() as callbacks:
        segment_save(tenant=tenant, data={"name": "Repeaters"}, segment=segment)
    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks:
        segment_save(tenant=tenant, data={"status": "archived"}, segment=segment)
    assert len(callbacks) == 1
    segment.refresh_from_db()
    assert (segment.name, segment.status, segment.conditions) == ("Repeaters", "archived", REPEAT)


def test_slug_is_unique_per_tenant(tenant, other_tenant):
    segment_save(tenant=tenant, data={"name": "VIP", "slug": "vip"})
    segment_save(tenant=other_tenant, data={"name": "VIP", "slug": "vip"})
    with pytest.raises(InvalidInput) as caught:
        segment_save(tenant=tenant, data={"name": "VIP 2", "slug": "vip"})
    assert caught.value.fields == {
        "slug": "A segment with the slug 'vip' already exists in this store."
    }


def test_save_reports_every_bad_field(tenant):
    with pytest.raises(InvalidInput) as caught:
        segment_save(
            tenant=tenant,
            data={
                "name": "",
                "slug": "Not A Slug",
                "match": "most",
                "conditions": [{"field": "r_score", "op": "gte", "value": 9}],
            },
        )
    assert set(caught.value.fields) == {"name", "slug", "match", "conditions[0].value"}
    assert not Segment.objects.for_tenant(tenant).filter(kind="rule").exists()


def test_tier_segments_cannot_be_edited_or_deleted(tenant):
    tier = tier_segments(tenant)[Tier.HIGH_VALUE_REPEAT]
    with pytest.raises(Conflict, match="cannot be edited"):
        segment_save(tenant=tenant, data={"name": "Whales"}, segment=tier)
    with pytest.raises(Conflict):
        segment_delete(segment=tier)
    with pytest.raises(InvalidInput):
        segment_save(tenant=tenant, data={"name": "Fake tier", "kind": "tier"})
    tier.refresh_from_db()
    assert tier.name == "High-value repeat"


def test_another_tenants_segment_cannot_be_saved(tenant, other_tenant):
    theirs = segment_save(tenant=other_tenant, data={"name": "Theirs"})
    with pytest.raises(NotFound):
        segment_save(tenant=tenant, data={"name": "Mine now"}, segment=theirs)


def test_delete_a_rule_segment(tenant):
    buyer(tenant, 2)
    segment = rule_segment(tenant)
    segment_refresh(segment)
    segment_delete(segment=segment, actor=UserFactory())
    assert not Segment.objects.for_tenant(tenant).filter(kind="rule").exists()
    assert not SegmentMembership.objects.for_tenant(tenant).exists()
