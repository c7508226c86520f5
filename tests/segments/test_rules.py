"""Rule-segment conditions: every field and operator with its edges, match
any/all, validation errors with their paths, tombstones and tenant isolation."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Exists, OuterRef, Q

from commerce.models import ChannelConsent, Customer, Touchpoint
from retention import clock
from retention.errors import InvalidInput
from segments import rules
from segments.models import CustomerFamily, CustomerRFM, Tier
from tests.factories import CustomerFactory, ProductFamilyFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def rfm(customer, **values) -> CustomerRFM:
    defaults = {
        "first_order_at": NOW - timedelta(days=100),
        "last_order_at": NOW - timedelta(days=10),
        "orders_total": 1,
        "frequency": 1,
        "monetary": Decimal("50.00"),
        "r_score": 3,
        "f_score": 3,
        "m_score": 3,
        "tier": Tier.ONE_TIME,
        "price_tier": "standard",
    }
    return CustomerRFM.objects.create(
        tenant_id=customer.tenant_id, customer=customer, **{**defaults, **values}
    )


def buyer(tenant, **values) -> Customer:
    customer = CustomerFactory(tenant=tenant)
    rfm(customer, **values)
    return customer


def members(tenant, *conditions, match="all") -> set[int]:
    return set(rules.members_queryset(tenant, match, list(conditions)).values_list("pk", flat=True))


def cond(field, op, value, **extra) -> dict:
    return {"field": field, "op": op, "value": value, **extra}


def errors_of(tenant, conditions) -> dict:
    with pytest.raises(InvalidInput) as caught:
        rules.validate_conditions(tenant, conditions)
    return caught.value.fields


# --- RFM fields ------------------------------------------------------------------------


def test_tier_in_one_or_several(tenant):
    high = buyer(tenant, tier=Tier.HIGH_VALUE_REPEAT)
    mid = buyer(tenant, tier=Tier.MID_VALUE_REPEAT)
    buyer(tenant, tier=Tier.ONE_TIME)
    CustomerFactory(tenant=tenant)  # never ordered: no tier

    assert members(tenant, cond("tier", "in", ["high_value_repeat"])) == {high.pk}
    assert members(tenant, cond("tier", "in", ["high_value_repeat", "mid_value_repeat"])) == {
        high.pk,
        mid.pk,
    }


@pytest.mark.parametrize("field", ["r_score", "f_score", "m_score"])
@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 3, {3}),
        ("gte", 3, {3, 4, 5}),
        ("lte", 3, {1, 2, 3}),
        ("between", [2, 4], {2, 3, 4}),
        ("between", [5, 5], {5}),
        ("gte", 1, {1, 2, 3, 4, 5}),
    ],
)
def test_scores_with_their_edges(tenant, field, op, value, expected):
    by_score = {score: buyer(tenant, **{field: score}).pk for score in range(1, 6)}
    CustomerFactory(tenant=tenant)  # no RFM row: no score, never a member

    assert members(tenant, cond(field, op, value)) == {by_score[s] for s in expected}


def test_days_since_last_order_counts_whole_days_like_the_customer_page(tenant):
    ago = {
        "29d23h": timedelta(days=29, hours=23),
        "30d": timedelta(days=30),
        "30d23h": timedelta(days=30, hours=23, minutes=59),
        "31d": timedelta(days=31),
    }
    ids = {name: buyer(tenant, last_order_at=NOW - delta).pk for name, delta in ago.items()}
    CustomerFactory(tenant=tenant)  # never ordered: no recency at all

    def named(*names):
        return {ids[n] for n in names}

    assert members(tenant, cond("days_since_last_order", "gte", 30)) == named(
        "30d", "30d23h", "31d"
    )
    assert members(tenant, cond("days_since_last_order", "lte", 30)) == named(
        "29d23h", "30d", "30d23h"
    )
    assert members(tenant, cond("days_since_last_order", "between", [30, 30])) == named(
        "30d", "30d23h"
    )
    assert members(tenant, cond("days_since_last_order", "gte", 0)) == set(ids.values())


def test_days_since_last_order_moves_with_the_clock(tenant):
    customer = buyer(tenant, last_order_at=NOW - timedelta(days=5))
    rule = cond("days_since_last_order", "gte", 7)
    assert members(tenant, rule) == set()
    clock.set_now(NOW + timedelta(days=2))
    assert members(tenant, rule) == {customer.pk}


@pytest.mark.parametrize("field", ["orders_total", "frequency"])
@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 2, {2}),
        ("gte", 2, {2, 3}),
        ("lte", 2, {0, 1, 2}),
        ("between", [1, 2], {1, 2}),
        ("eq", 0, {0}),
        ("gte", 1, {1, 2, 3}),
    ],
)
def test_order_counts_treat_non_buyers_as_zero(tenant, field, op, value, expected):
    by_count = {n: buyer(tenant, **{field: n}).pk for n in (1, 2, 3)}
    by_count[0] = CustomerFactory(tenant=tenant).pk  # no RFM row: 0 orders

    assert members(tenant, cond(field, op, value)) == {by_count[n] for n in expected}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gte", "100.00", {"100.00", "100.01"}),
        ("gte", 100, {"100.00", "100.01"}),
        ("lte", "100", {"0", "99.99", "100.00"}),
        ("between", ["99.99", "100.00"], {"99.99", "100.00"}),
        ("between", [0.5, 99.99], {"99.99"}),
    ],
)
def test_monetary_edges_are_exact(tenant, op, value, expected):
    spend = {v: buyer(tenant, monetary=Decimal(v)).pk for v in ("99.99", "100.00", "100.01")}
    spend["0"] = CustomerFactory(tenant=tenant).pk

    assert members(tenant, cond("monetary", op, value)) == {spend[v] for v in expected}


def test_price_tier(tenant):
    pricey = buyer(tenant, price_tier="expensive")
    buyer(tenant, price_tier="standard")
    buyer(tenant, price_tier="")
    assert members(tenant, cond("price_tier", "eq", "expensive")) == {pricey.pk}


# --- families ------------------------------------------------------------------------


def bought(customer, family, *, days_ago: float) -> None:
    at = NOW - timedelta(days=days_ago)
    CustomerFamily.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        family=family,
        orders=1,
        spend=Decimal("20.00"),
        first_at=at,
        last_at=at,
    )


@pytest.fixture
def coffee_buyers(tenant):
    coffee = ProductFamilyFactory(tenant=tenant, name="Coffee", slug="coffee")
    tea = ProductFamilyFactory(tenant=tenant, name="Tea", slug="tea")
    recent, lapsed, tea_only = (CustomerFactory(tenant=tenant) for _ in range(3))
    bought(recent, coffee, days_ago=10)
    bought(lapsed, coffee, days_ago=100)
    bought(tea_only, tea, days_ago=5)
    never = CustomerFactory(tenant=tenant)
    return {
        "coffee": coffee,
        "tea": tea,
        "recent": recent.pk,
        "lapsed": lapsed.pk,
        "tea_only": tea_only.pk,
        "never": never.pk,
    }


def test_family_bought_and_not_bought_by_slug_or_id(tenant, coffee_buyers):
    c = coffee_buyers
    by_slug = rules.validate_conditions(tenant, [cond("family_bought", "eq", "coffee")])
    assert by_slug == [cond("family_bought", "eq", c["coffee"].pk)]
    assert members(tenant, *by_slug) == {c["recent"], c["lapsed"]}
    assert members(tenant, cond("family_bought", "eq", c["coffee"].pk)) == {
        c["recent"],
        c["lapsed"],
    }
    assert members(tenant, cond("family_not_bought", "eq", c["coffee"].pk)) == {
        c["tea_only"],
        c["never"],
    }
    assert members(tenant, cond("family_bought", "in", [c["coffee"].pk, c["tea"].pk])) == {
        c["recent"],
        c["lapsed"],
        c["tea_only"],
    }


def test_family_within_days(tenant, coffee_buyers):
    c = coffee_buyers
    recent_coffee = cond("family_bought", "eq", c["coffee"].pk, within_days=30)
    assert members(tenant, recent_coffee) == {c["recent"]}
    # not bought coffee in the last 30 days: lapsed coffee buyers and everyone else
    lapsed = cond("family_not_bought", "eq", c["coffee"].pk, within_days=30)
    assert members(tenant, lapsed) == {c["lapsed"], c["tea_only"], c["never"]}
    # the window edge: bought exactly 100 days ago is not "in the last 100 days"
    assert members(tenant, cond("family_bought", "eq", c["coffee"].pk, within_days=100)) == {
        c["recent"]
    }
    assert members(tenant, cond("family_bought", "eq", c["coffee"].pk, within_days=101)) == {
        c["recent"],
        c["lapsed"],
    }


def test_family_of_another_tenant_is_unknown(tenant, other_tenant):
    theirs = ProductFamilyFactory(tenant=other_tenant, slug="secret-blend")
    errors = errors_of(tenant, [cond("family_bought", "eq", theirs.pk)])
    assert errors == {"conditions[0].value": f"Unknown product family '{theirs.pk}'."}
    errors = errors_of(tenant, [cond("tier", "in", ["one_time"]), cond("family_bought", "eq", "x")])
    assert errors == {"conditions[1].value": "Unknown product family 'x'."}


# --- consent and touchpoints ---------------------------------------------------------


def test_consent_by_channel_and_status(tenant):
    opted_in, opted_out, unknown_row, no_row = (CustomerFactory(tenant=tenant) for _ in range(4))
    for customer, status in ((opted_in, "opted_in"), (opted_out, "opted_out")):
        ChannelConsent.objects.create(
            tenant=tenant, customer=customer, channel="email", status=status, source="checkout"
        )
    ChannelConsent.objects.create(
        tenant=tenant, customer=unknown_row, channel="email", status="unknown", source="api"
    )
    ChannelConsent.objects.create(
        tenant=tenant, customer=no_row, channel="sms", status="opted_in", source="checkout"
    )

    def consent(channel, status):
        return members(tenant, cond("consent", "eq", {"channel": channel, "status": status}))

    assert consent("email", "opted_in") == {opted_in.pk}
    assert consent("email", "opted_out") == {opted_out.pk}
    assert consent("email", "unknown") == {unknown_row.pk, no_row.pk}
    assert consent("sms", "opted_in") == {no_row.pk}


def touch(customer, kind, *, days_ago: float) -> None:
    Touchpoint.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        category="marketing",
        kind=kind,
        occurred_at=NOW - timedelta(days=days_ago),
    )


def test_touchpoint_within_days_and_min_count_as_time_moves(tenant):
    once, twice, old, other_kind = (CustomerFactory(tenant=tenant) for _ in range(4))
    touch(once, "message.clicked", days_ago=1)
    touch(twice, "message.clicked", days_ago=2)
    touch(twice, "message.clicked", days_ago=6)
    touch(old, "message.clicked", days_ago=20)
    touch(other_kind, "message.opened", days_ago=1)

    def clicked(op="has", **value):
        return members(
            tenant, cond("touchpoint", op, {"kind": "message.clicked", "within_days": 7, **value})
        )

    assert clicked() == {once.pk, twice.pk}
    assert clicked(min_count=2) == {twice.pk}
    assert clicked("has_not") == {old.pk, other_kind.pk}
    assert clicked("has_not", min_count=2) == {once.pk, old.pk, other_kind.pk}

    clock.set_now(NOW + timedelta(days=1, hours=12))  # `once` clicked 2.5 days ago now
    assert clicked() == {once.pk, twice.pk}
    clock.set_now(NOW + timedelta(days=5))  # twice's clicks: 7 and 11 days ago
    assert clicked() == {once.pk}
    assert clicked(min_count=2) == set()


# --- combining, empties, tombstones, tenants -----------------------------------------------


def test_match_all_and_any(tenant):
    loyal = buyer(tenant, tier=Tier.HIGH_VALUE_REPEAT, r_score=5)
    lapsing = buyer(tenant, tier=Tier.HIGH_VALUE_REPEAT, r_score=1)
    fresh = buyer(tenant, tier=Tier.ONE_TIME, r_score=5)
    buyer(tenant, tier=Tier.ONE_TIME, r_score=1)
    rule = [cond("tier", "in", ["high_value_repeat"]), cond("r_score", "gte", 4)]

    assert members(tenant, *rule, match="all") == {loyal.pk}
    assert members(tenant, *rule, match="any") == {loyal.pk, lapsing.pk, fresh.pk}


def test_empty_conditions_match_nobody(tenant):
    buyer(tenant)
    assert members(tenant, match="all") == set()
    assert members(tenant, match="any") == set()
    assert rules.validate_conditions(tenant, []) == []


def test_merged_tombstones_are_never_members(tenant):
    survivor = buyer(tenant, orders_total=3)
    tombstone = buyer(tenant, orders_total=3)
    tombstone.merged_into = survivor
    tombstone.save()
    non_buyer_tombstone = CustomerFactory(tenant=tenant, merged_into=survivor)

    assert members(tenant, cond("orders_total", "gte", 3)) == {survivor.pk}
    assert non_buyer_tombstone.pk not in members(tenant, cond("orders_total", "eq", 0))


def test_a_rule_never_reaches_another_tenants_customers(tenant, other_tenant):
    mine = buyer(tenant, tier=Tier.ONE_TIME)
    buyer(other_tenant, tier=Tier.ONE_TIME)
    CustomerFactory(tenant=other_tenant)  # a non-buyer: orders_total 0 elsewhere
    assert members(tenant, cond("tier", "in", ["one_time"])) == {mine.pk}
    assert members(tenant, cond("orders_total", "lte", 5)) == {mine.pk}


# --- validation -------------------------------------------------------------------------


def test_validation_normalises(tenant):
    assert rules.validate_conditions(
        tenant,
        [
            {"field": "tier", "value": "one_time"},  # the only op is implied
            cond("monetary", "between", [10, "20.5"]),
            cond("r_score", "gte", "4"),  # from an HTML input
            cond("touchpoint", "has", {"kind": "message.opened", "within_days": 7}),
        ],
    ) == [
        cond("tier", "in", ["one_time"]),
        cond("monetary", "between", ["10.00", "20.50"]),
        cond("r_score", "gte", 4),
        cond("touchpoint", "has", {"kind": "message.opened", "within_days": 7, "min_count": 1}),
    ]


@pytest.mark.parametrize(
    ("condition", "path", "message_part"),
    [
        ({"field": "favourite_colour", "op": "eq", "value": 1}, "field", "Unknown field"),
        ({"op": "eq", "value": 1}, "field", "Choose a field"),
        (cond("r_score", "in", [1]), "op", "does not apply to r_score"),
        (cond("r_score", "gte", 6), "value", "from 1 to 5"),
        (cond("r_score", "gte", True), "value", "whole number"),
        (cond("r_score", "between", [4, 2]), "value", "low value"),
        (cond("r_score", "between", 3), "value", "[low, high]"),
        (cond("days_since_last_order", "eq", 3), "op", "does not apply"),
        (cond("monetary", "gte", "lots"), "value", "amount"),
        (cond("monetary", "gte", -1), "value", "from 0"),
        (cond("tier", "in", ["vip"]), "value", "Unknown tier 'vip'"),
        (cond("tier", "in", []), "value", "at least one"),
        (cond("price_tier", "eq", "luxury"), "value", "Unknown price tier"),
        (cond("consent", "eq", {"channel": "fax", "status": "opted_in"}), "value.channel", "fax"),
        (cond("consent", "eq", {"channel": "sms"}), "value.status", "required"),
        (cond("consent", "eq", "email"), "value", "object"),
        (cond("touchpoint", "has", {"kind": "message.opened"}), "value.within_days", "required"),
        (
            cond("touchpoint", "has", {"kind": "x y", "within_days": 3}),
            "value.kind",
            "touchpoint kind",
        ),
        (
            cond("touchpoint", "has", {"kind": "a", "within_days": 3, "min_count": 0}),
            "value.min_count",
            "from 1",
        ),
        (cond("family_bought", "eq", 1, within_days=0), "within_days", "from 1"),
        (cond("tier", "in", ["one_time"], within_days=3), "within_days", "Unknown key"),
        ({"field": "r_score", "op": "eq"}, "value", "required"),
        ("tier = 1; DROP TABLE x", "", "Give an object"),
    ],
)
def test_bad_conditions_name_the_field_path(tenant, condition, path, message_part):
    errors = errors_of(tenant, [cond("tier", "in", ["one_time"]), condition])
    key = "conditions[1]" + (f".{path}" if path else "")
    assert list(errors) == [key]
    assert message_part in errors[key]


def test_every_bad_condition_is_reported_at_once(tenant):
    errors = errors_of(tenant, [cond("r_score", "eq", 9), cond("nope", "eq", 1)])
    assert set(errors) == {"conditions[0].value", "conditions[1].field"}


@pytest.mark.parametrize("conditions", [{"field": "tier"}, "[]", None])
def test_conditions_must_be_a_list(tenant, conditions):
    assert errors_of(tenant, conditions) == {"conditions": "Give a list of conditions."}


def test_unknown_match_is_rejected(tenant):
    with pytest.raises(InvalidInput) as caught:
        rules.members_queryset(tenant, "most", [])
    assert caught.value.fields == {"match": "Choose all or any."}


# --- the registry ------------------------------------------------------------------------


@pytest.fixture
def vip_field():
    field = rules.register_condition(
        "is_vip_email",
        label="VIP email domain",
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
    yield field
    rules.REGISTRY.pop("is_vip_email")


def test_other_apps_register_conditions(tenant, vip_field):
    vip = CustomerFactory(tenant=tenant, email="a@vip.example")
    CustomerFactory(tenant=tenant)
    assert members(tenant, cond("is_vip_email", "eq", "yes")) == {vip.pk}
    assert "is_vip_email" in {f["name"] for f in rules.field_catalogue(tenant)}
    with pytest.raises(ValueError, match="already registered"):
        rules.register_condition(
            "is_vip_email", label="x", ops=("eq",), value_type="integer", compile=vip_field.compile
        )


def test_catalogue_offers_only_this_tenants_families(tenant, other_tenant):
    ProductFamilyFactory(tenant=tenant, name="Coffee")
    ProductFamilyFactory(tenant=other_tenant, name="Secret tea")
    catalogue = {f["name"]: f for f in rules.field_catalogue(tenant)}
    assert [label for _, label in catalogue["family_bought"]["choices"]] == ["Coffee"]
    assert catalogue["r_score"]["ops"][0] == ["eq", "is"]


def test_describe_conditions_reads_like_a_sentence(tenant):
    coffee = ProductFamilyFactory(tenant=tenant, name="Coffee")
    lines = rules.describe_conditions(
        tenant,
        "all",
        [
            cond("days_since_last_order", "gte", 30),
            cond("family_bought", "eq", coffee.pk, within_days=90),
            cond("tier", "in", ["one_time"]),
        ],
    )
    assert lines == [
        "Days since last order at least 30",
        "Bought product family is Coffee in the last 90 days",
        "Tier is one of One-time",
    ]
