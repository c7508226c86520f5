"""RFM scores, tiers and their transitions: the full recompute and the
per-customer refresh agree, edges are exact, and nothing leaks across tenants."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.models import OrderStatus, PriceTier
from retention import clock
from segments.models import CustomerFamily, CustomerRFM, SegmentTransition, Tier
from segments.services.families import families_rebuild
from segments.services.rfm import (
    Edges,
    customer_refresh,
    quintile,
    rfm_recompute,
    score,
)
from segments.services.setup import segment_settings, tier_segments
from tests.factories import CustomerFactory, ProductFamilyFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the SQL engine is PostgreSQL's"
)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def rfm(customer) -> CustomerRFM | None:
    return CustomerRFM.objects.for_tenant(customer.tenant_id).filter(customer=customer).first()


def buyer(tenant, *totals, days_ago=10, **kwargs):
    customer = CustomerFactory(tenant=tenant)
    for i, total in enumerate(totals):
        make_order(customer, NOW - timedelta(days=days_ago + i), total, **kwargs)
    return customer


def snapshot(tenant) -> dict:
    fields = ("customer_id", "first_order_at", "last_order_at", "orders_total", "frequency")
    fields += ("monetary", "r_score", "f_score", "m_score", "tier")
    return {r["customer_id"]: r for r in CustomerRFM.objects.for_tenant(tenant).values(*fields)}


# --- definitions ----------------------------------------------------------------


def test_quintile_splits_ranks_into_fifths():
    assert [quintile(r, 10) for r in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [quintile(r, 5) for r in range(1, 6)] == [1, 2, 3, 4, 5]
    assert quintile(1, 1) == 1
    assert sum(1 for r in range(1, 101) if quintile(r, 100) == 5) == 20


def test_score_against_edges_counts_the_edges_passed():
    assert score(7, [2, 4, None, None]) == 3
    assert score(4, [2, 4, 6, 8]) == 2  # equal to an edge is not above it
    assert score(1, []) == 1


def test_edges_are_the_kth_values_that_separate_the_quintiles(tenant):
    for v in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100):
        buyer(tenant, str(v))
    rfm_recompute(tenant)
    # n = 10: a value needs more than 2, 4, 6, 8 values below it for scores 2-5.
    assert Edges.load(segment_settings(tenant).boundaries).monetary == [
        Decimal("20.00"),
        Decimal("40.00"),
        Decimal("60.00"),
        Decimal("80.00"),
    ]


def test_edges_survive_a_round_trip_through_json():
    edges = Edges(recency=[NOW, None], frequency=[1, 2], monetary=[Decimal("9.50"), None])
    assert Edges.load(edges.dump()) == edges


# --- full recompute -------------------------------------------------------------


def test_ties_share_a_score_and_distinct_values_fill_the_quintiles(tenant):
    equal = [buyer(tenant, "100.00") for _ in range(4)]
    others = [buyer(tenant, str(v)) for v in (10, 20, 30, 40, 50, 60)]
    rfm_recompute(tenant)
    assert {rfm(c).m_score for c in equal} == {rfm(equal[0]).m_score}
    # Ten buyers, the four biggest tied at the top: ranks 7..10 share rank 7.
    assert rfm(equal[0]).m_score == quintile(7, 10) == 4
    assert [rfm(c).m_score for c in others] == [1, 1, 2, 2, 3, 3]


def test_tier_edges_are_exact(tenant):
    settings = segment_settings(tenant)
    assert (settings.repeat_min_orders, settings.high_value_min_monetary_score) == (2, 4)
    small = [buyer(tenant, "10.00", "10.00") for _ in range(6)]  # repeat, low spend
    big = [buyer(tenant, "500.00", "500.00") for _ in range(4)]  # repeat, top spend
    once = buyer(tenant, "2000.00")  # one order, even the biggest spend
    rfm_recompute(tenant)
    assert {rfm(c).tier for c in small} == {Tier.MID_VALUE_REPEAT}
    assert {rfm(c).m_score for c in big} == {4}  # ranks 7-10 of 11 tie at 7 -> 4
    assert {rfm(c).tier for c in big} == {Tier.HIGH_VALUE_REPEAT}
    assert rfm(once).tier == Tier.ONE_TIME and rfm(once).m_score == 5

    settings.high_value_min_monetary_score = 5
    settings.save()
    rfm_recompute(tenant)
    assert {rfm(c).tier for c in big} == {Tier.MID_VALUE_REPEAT}
    settings.repeat_min_orders = 3
    settings.save()
    rfm_recompute(tenant)
    assert {rfm(c).tier for c in small + big} == {Tier.ONE_TIME}


def test_window_edge_counts_an_order_placed_exactly_at_its_start(tenant):
    start = NOW - timedelta(days=365)
    on_edge = CustomerFactory(tenant=tenant)
    make_order(on_edge, start, "40.00")
    make_order(on_edge, NOW - timedelta(days=1), "10.00")
    outside = CustomerFactory(tenant=tenant)
    make_order(outside, start - timedelta(seconds=1), "40.00")
    make_order(outside, NOW - timedelta(days=1), "10.00")
    rfm_recompute(tenant)
    assert (rfm(on_edge).frequency, rfm(on_edge).monetary) == (2, Decimal("50.00"))
    assert (rfm(outside).frequency, rfm(outside).monetary) == (1, Decimal("10.00"))
    assert rfm(outside).orders_total == 2
    assert rfm(outside).first_order_at == start - timedelta(seconds=1)


def test_lapsed_buyers_keep_a_row_with_nothing_in_the_window(tenant):
    lapsed = buyer(tenant, "80.00", "80.00", days_ago=400)
    rfm_recompute(tenant)
    row = rfm(lapsed)
    assert (row.frequency, row.monetary, row.tier) == (0, Decimal("0.00"), Tier.ONE_TIME)
    assert row.orders_total == 2


def test_cancelled_and_refunded_orders_do_not_count(tenant):
    customer = buyer(tenant, "30.00")
    make_order(customer, NOW - timedelta(days=2), "99.00", status=OrderStatus.CANCELLED)
    make_order(customer, NOW - timedelta(days=3), "99.00", status=OrderStatus.REFUNDED)
    only_cancelled = buyer(tenant, "50.00", status=OrderStatus.CANCELLED)
    rfm_recompute(tenant)
    assert (rfm(customer).orders_total, rfm(customer).monetary) == (1, Decimal("30.00"))
    assert rfm(only_cancelled) is None


@needs_postgres
def test_sql_and_python_engines_agree_on_a_fixed_history(tenant):
    for i in range(25):
        buyer(tenant, *[str(10 + (i * 7) % 90)] * (1 + i % 4), days_ago=(i * 37) % 500)
    sql = rfm_recompute(tenant, engine="sql")
    by_sql, edges_sql = snapshot(tenant), segment_settings(tenant).boundaries
    CustomerRFM.objects.for_tenant(tenant).delete()
    py = rfm_recompute(tenant, engine="python")
    assert snapshot(tenant) == by_sql
    assert segment_settings(tenant).boundaries == edges_sql
    assert (py.buyers, py.changed, py.transitions) == (sql.buyers, sql.changed, sql.transitions)


history = st.lists(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=500),  # days ago
            st.sampled_from(["5.00", "20.00", "20.00", "75.50", "300.00"]),
            st.sampled_from([OrderStatus.PAID, OrderStatus.PAID, OrderStatus.CANCELLED]),
        ),
        min_size=0,
        max_size=4,
    ),
    min_size=1,
    max_size=12,
)


def _load(tenant, customers_orders):
    customers = []
    for orders in customers_orders:
        customer = CustomerFactory(tenant=tenant)
        for days_ago, total, status in orders:
            make_order(customer, NOW - timedelta(days=days_ago), total, status=status)
        customers.append(customer)
    return customers


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=history)
def test_engines_agree_on_any_history(tenant, data):
    CustomerRFM.objects.for_tenant(tenant).delete()
    _load(tenant, data)
    rfm_recompute(tenant, engine="sql")
    by_sql = snapshot(tenant)
    CustomerRFM.objects.for_tenant(tenant).delete()
    rfm_recompute(tenant, engine="python")
    assert snapshot(tenant) == by_sql


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=history, later=history)
def test_incremental_refresh_equals_full_recompute_for_the_same_data(tenant, data, later):
    """After a full recompute, refreshing any customer changes nothing; after new
    orders, each refreshed customer's measures equal what a full recompute finds,
    and their scores are the full recompute's scores for those edges."""
    customers = _load(tenant, data)
    rfm_recompute(tenant)
    before = snapshot(tenant)
    transitions = SegmentTransition.objects.for_tenant(tenant).count()
    for customer in customers:
        customer_refresh(tenant, customer.pk)
    assert snapshot(tenant) == before
    assert SegmentTransition.objects.for_tenant(tenant).count() == transitions

    edges = Edges.load(segment_settings(tenant).boundaries)
    for customer, orders in zip(customers, later, strict=False):
        for days_ago, total, status in orders:
            make_order(customer, NOW - timedelta(days=days_ago), total, status=status)
        customer_refresh(tenant, customer.pk)
    incremental = snapshot(tenant)
    rfm_recompute(tenant)
    full = snapshot(tenant)
    measures = ("first_order_at", "last_order_at", "orders_total", "frequency", "monetary")
    assert set(incremental) == set(full)
    for customer_id, row in full.items():
        assert {k: incremental[customer_id][k] for k in measures} == {k: row[k] for k in measures}
        expected = edges.scores(row["last_order_at"], row["frequency"], row["monetary"])
        got = incremental[customer_id]
        assert (got["r_score"], got["f_score"], got["m_score"]) == expected


# --- transitions --------------------------------------------------------------------


def transitions(customer):
    return list(
        SegmentTransition.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer)
        .order_by("id")
        .values_list("segment__tier", "kind", "cause")
    )


def test_tier_transitions_are_recorded_once(tenant):
    customer = buyer(tenant, "20.00")
    for _ in range(4):
        buyer(tenant, "100.00")
    rfm_recompute(tenant)
    rfm_recompute(tenant)
    assert transitions(customer) == [(Tier.ONE_TIME, "entered", "recompute")]

    make_order(customer, NOW - timedelta(days=1), "20.00")
    customer_refresh(tenant, customer.pk)
    customer_refresh(tenant, customer.pk)
    rfm_recompute(tenant)
    assert rfm(customer).tier == Tier.MID_VALUE_REPEAT
    assert transitions(customer)[1:] == [
        (Tier.ONE_TIME, "left", "order"),
        (Tier.MID_VALUE_REPEAT, "entered", "order"),
    ]


def test_a_customer_whose_only_order_is_cancelled_leaves_the_tier(tenant):
    customer = buyer(tenant, "20.00")
    rfm_recompute(tenant)
    customer.orders.update(status=OrderStatus.CANCELLED)
    rfm_recompute(tenant)
    assert rfm(customer) is None
    assert transitions(customer)[-1] == (Tier.ONE_TIME, "left", "recompute")


@needs_postgres
def test_a_full_recompute_records_tier_moves_in_both_engines(tenant):
    for engine in ("sql", "python"):
        SegmentTransition.objects.for_tenant(tenant).delete()
        CustomerRFM.objects.for_tenant(tenant).delete()
        customer = buyer(tenant, "20.00")
        rfm_recompute(tenant, engine=engine)
        make_order(customer, NOW - timedelta(days=1), "20.00")
        rfm_recompute(tenant, engine=engine)
        assert transitions(customer) == [
            (Tier.ONE_TIME, "entered", "recompute"),
            (Tier.ONE_TIME, "left", "recompute"),
            (Tier.MID_VALUE_REPEAT, "entered", "recompute"),
        ]


# --- category flags -------------------------------------------------------------------


def test_category_flags_rank_families_by_spend_and_pick_the_price_tier(tenant):
    coffee, tea, mugs = (ProductFamilyFactory(tenant=tenant) for _ in range(3))
    customer = CustomerFactory(tenant=tenant)
    make_order(customer, NOW - timedelta(days=5), "90.00", families=(coffee,))
    make_order(customer, NOW - timedelta(days=4), "40.00", families=(tea, mugs))
    make_order(
        customer, NOW - timedelta(days=3), "200.00", families=(tea,), price_tier=PriceTier.EXPENSIVE
    )
    result = customer_refresh(tenant, customer.pk)
    assert result.rfm.top_families == [tea.pk, coffee.pk, mugs.pk]
    assert result.rfm.price_tier == PriceTier.EXPENSIVE
    bought = CustomerFamily.objects.for_tenant(tenant).get(customer=customer, family=tea)
    assert (bought.orders, bought.spend, bought.expensive_spend) == (
        2,
        Decimal("220.00"),
        Decimal("200.00"),
    )
    # The tenant-wide rebuild finds the same.
    CustomerFamily.objects.for_tenant(tenant).delete()
    families_rebuild(tenant)
    assert rfm(customer).top_families == [tea.pk, coffee.pk, mugs.pk]
    assert CustomerFamily.objects.for_tenant(tenant).count() == 3


# --- tenancy and commands ------------------------------------------------------------------


def test_recompute_ranks_within_one_tenant_and_touches_no_other(tenant, other_tenant):
    mine = [buyer(tenant, str(v)) for v in (10, 20, 30, 40, 50)]
    theirs = [buyer(other_tenant, str(v)) for v in (1000, 2000)]
    rfm_recompute(tenant)
    assert [rfm(c).m_score for c in mine] == [1, 2, 3, 4, 5]
    assert all(rfm(c) is None for c in theirs)
    rfm_recompute(other_tenant)
    assert [rfm(c).m_score for c in theirs] == [1, 5]
    assert [rfm(c).m_score for c in mine] == [1, 2, 3, 4, 5]
    assert (
        SegmentTransition.objects.for_tenant(other_tenant)
        .filter(segment__in=tier_segments(tenant).values())
        .count()
        == 0
    )


def test_recompute_segments_command_prints_tiers_and_time(tenant, capsys):
    buyer(tenant, "10.00")
    buyer(tenant, "10.00", "10.00")
    call_command("recompute_segments", "--tenant", tenant.slug)
    out = capsys.readouterr().out
    assert "2 buyers in" in out
    tiers = tier_segments(tenant)
    assert tiers[Tier.ONE_TIME].member_count == 1
    assert tiers[Tier.HIGH_VALUE_REPEAT].member_count == 1  # spends the most
    assert "One-time" in out and "Mid-value repeat" in out
    assert "Category flags" in out and "Rule segments" in out


def test_recompute_segments_command_rejects_an_unknown_tenant(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No tenant"):
        call_command("recompute_segments", "--tenant", "nope")


def test_category_flags_clear_when_the_only_family_order_is_cancelled(tenant):
    coffee = ProductFamilyFactory(tenant=tenant)
    customer = CustomerFactory(tenant=tenant)
    with_coffee = make_order(customer, NOW - timedelta(days=5), "90.00", families=(coffee,))
    make_order(customer, NOW - timedelta(days=4), "10.00")  # no family lines
    assert customer_refresh(tenant, customer.pk).rfm.top_families == [coffee.pk]
    with_coffee.status = OrderStatus.CANCELLED
    with_coffee.save()
    row = customer_refresh(tenant, customer.pk).rfm
    assert (row.top_families, row.price_tier) == ([], "")
    families_rebuild(tenant)  # the tenant-wide rebuild agrees, and writes nothing new
    assert rfm(customer).top_families == []
