"""seed_demo: a consistent, deterministic demo history, in one tenant only."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import F, Sum

from commerce import demo_data
from commerce.identity import normalize_email, normalize_phone
from commerce.management.commands.seed_demo import TABLES, demo_seed
from commerce.models import (
    Cart,
    ChannelConsent,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    Fulfillment,
    Order,
    OrderLine,
    Product,
    ProductFamily,
    Return,
    Touchpoint,
)
from retention import clock
from retention.services import tenant_create

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
N = 200
MODELS = [*TABLES.values(), ProductFamily, Product]


def seed(tenant, *, seed: int = 1, customers: int = N, **options) -> str:
    out = StringIO()
    with clock.travel_to(NOW):
        call_command(
            "seed_demo", tenant=tenant.slug, customers=customers, seed=seed, stdout=out, **options
        )
    return out.getvalue()


def counts(tenant) -> dict[str, int]:
    return {m.__name__: m.objects.for_tenant(tenant).count() for m in MODELS}


def fingerprint(tenant) -> dict:
    """Everything about a seeded tenant except its ids."""
    return {
        "counts": counts(tenant),
        "orders": list(
            Order.objects.for_tenant(tenant)
            .order_by("external_id")
            .values_list("customer__email", "external_id", "placed_at", "status", "total")
        ),
        "lines": list(
            OrderLine.objects.for_tenant(tenant)
            .order_by("order__external_id", "sku", "quantity", "total")
            .values_list("order__external_id", "sku", "family__slug", "quantity", "total")
        ),
        "events": list(
            DeliveryEvent.objects.for_tenant(tenant)
            .order_by("fulfillment__external_id", "at")
            .values_list("fulfillment__external_id", "status", "at")
        ),
        "carts": list(
            Cart.objects.for_tenant(tenant)
            .order_by("external_id")
            .values_list("external_id", "status", "total", "items", "order__external_id")
        ),
        "touchpoints": list(
            Touchpoint.objects.for_tenant(tenant)
            .order_by("customer__email", "occurred_at", "kind", "properties")
            .values_list("customer__email", "kind", "occurred_at", "properties")
        ),
        "customers": list(
            Customer.objects.for_tenant(tenant)
            .order_by("email")
            .values_list("email", "phone", "timezone", "created_at", "preferred_channel")
        ),
    }


def test_every_kind_of_row_is_created(tenant):
    out = seed(tenant)

    assert all(n > 0 for n in counts(tenant).values()), counts(tenant)
    assert "Seeded" in out and "touchpoint" in out and "order" in out
    assert Customer.objects.for_tenant(tenant).count() == N
    families = {f.slug: f for f in ProductFamily.objects.for_tenant(tenant)}
    assert len(families) == 8
    assert families["coffee"].replenishment_days == 21
    assert families["skincare"].replenishment_days == 42
    assert {f.slug for f in families["coffee"].related.all()} == {"tea"}
    products = Product.objects.for_tenant(tenant)
    assert products.count() == 60
    assert products.filter(price_tier="expensive").count() == 12
    kinds = dict(Touchpoint.objects.for_tenant(tenant).values_list("kind", "category").distinct())
    assert kinds == {
        "onboarding.completed": "product",
        "feature.activated": "product",
        "first_value.reached": "product",
        "ticket.opened": "support",
        "ticket.answered": "support",
        "message.sent": "marketing",
        "message.opened": "marketing",
        "message.clicked": "marketing",
    }
    for answered in Touchpoint.objects.for_tenant(tenant).filter(kind="ticket.answered"):
        assert answered.properties["response_seconds"] > 0
    statuses = set(DeliveryEvent.objects.for_tenant(tenant).values_list("status", flat=True))
    assert statuses >= {"packed", "shipped", "delayed", "out_for_delivery", "delivered"}
    assert set(Cart.objects.for_tenant(tenant).values_list("status", flat=True)) >= {
        "abandoned",
        "converted",
    }
    assert Order.objects.for_tenant(tenant).filter(status="cancelled").exists()
    identities = CustomerIdentity.objects.for_tenant(tenant)
    assert identities.filter(kind="email").count() == N
    assert identities.filter(kind="external", source="storefront").count() == N
    assert (
        identities.filter(kind="phone").count()
        == Customer.objects.for_tenant(tenant).exclude(phone="").count()
    )
    consent = set(ChannelConsent.objects.for_tenant(tenant).values_list("channel", "status"))
    assert {("email", "opted_in"), ("email", "opted_out"), ("sms", "opted_out")} <= consent
    # Buy-till-you-die: many one-time buyers, some heavy repeat buyers.
    per_customer = np.bincount(
        list(Order.objects.for_tenant(tenant).values_list("customer_id", flat=True))
    )
    per_customer = per_customer[per_customer > 0]
    assert (per_customer == 1).mean() > 0.2
    assert per_customer.max() >= 10


def test_money_adds_up(tenant):
    seed(tenant)

    for line in OrderLine.objects.for_tenant(tenant):
        assert line.total == line.unit_price * line.quantity - line.discount
    orders = Order.objects.for_tenant(tenant).annotate(
        lines_total=Sum("lines__total"),
        lines_gross=Sum(F("lines__unit_price") * F("lines__quantity")),
        lines_discount=Sum("lines__discount"),
    )
    for o in orders:
        assert o.subtotal == o.lines_gross
        assert o.discount_total == o.lines_discount
        assert o.total == o.lines_total + o.shipping_total + o.tax_total + o.fee_total
        assert (
            o.total == o.subtotal - o.discount_total + o.shipping_total + o.tax_total + o.fee_total
        )
    assert orders.filter(discount_total__gt=0).exists()
    assert orders.filter(shipping_total__gt=0).exists()
    for r in Return.objects.for_tenant(tenant).select_related("order"):
        assert Decimal(0) < r.refund_amount <= r.order.total
        assert r.created_at <= NOW
        assert r.lines[0]["sku"]


def test_every_reference_stays_in_the_tenant(tenant):
    seed(tenant)

    def strays(model, path):
        return model.objects.for_tenant(tenant).exclude(**{path: tenant}).count()

    assert strays(Order, "customer__tenant") == 0
    assert strays(OrderLine, "order__tenant") == 0
    assert strays(OrderLine, "product__tenant") == 0
    assert strays(OrderLine, "family__tenant") == 0
    assert strays(Fulfillment, "order__tenant") == 0
    assert strays(DeliveryEvent, "fulfillment__tenant") == 0
    assert strays(Cart, "customer__tenant") == 0
    assert strays(Return, "order__tenant") == 0
    assert strays(Touchpoint, "customer__tenant") == 0
    assert strays(CustomerIdentity, "customer__tenant") == 0
    assert strays(ChannelConsent, "customer__tenant") == 0
    # Converted carts belong to their order's customer.
    converted = Cart.objects.for_tenant(tenant).filter(status="converted")
    assert converted.exclude(order__customer=F("customer")).count() == 0


def test_deliveries_move_forward_in_time(tenant):
    seed(tenant)

    progress = ["packed", "shipped", "delayed", "out_for_delivery", "delivered"]
    fulfillments = Fulfillment.objects.for_tenant(tenant).prefetch_related("events")
    for f in fulfillments:
        events = list(f.events.all())
        assert [e.status for e in events] == sorted((e.status for e in events), key=progress.index)
        assert all(e.at <= NOW for e in events)
        assert f.estimated_delivery_start < f.estimated_delivery_end
        if f.status == "delivered":
            assert f.delivered_at > f.shipped_at
            late = any(e.status == "delayed" for e in events)
            assert (f.delivered_at > f.estimated_delivery_end) == late
        else:
            assert f.delivered_at is None
    assert not Fulfillment.objects.for_tenant(tenant).filter(order__status="cancelled").exists()
    assert Order.objects.for_tenant(tenant).filter(placed_at__gt=NOW).count() == 0
    assert (
        Order.objects.for_tenant(tenant).filter(placed_at__lt=NOW - timedelta(days=365)).count()
        == 0
    )


def test_abandoned_carts_have_no_order(tenant):
    seed(tenant)

    abandoned = Cart.objects.for_tenant(tenant).filter(status="abandoned")
    assert abandoned.exists()
    for cart in abandoned:
        assert cart.order_id is None
        assert cart.abandoned_at == cart.updated_at + timedelta(minutes=60)
        assert cart.items and cart.total == sum(
            Decimal(i["unit_price"]) * i["quantity"] for i in cart.items
        )
    assert not Cart.objects.for_tenant(tenant).filter(status="converted", order=None).exists()


def test_same_seed_same_history_whichever_writer(tenant, other_tenant):
    seed(tenant, seed=5)
    seed(other_tenant, seed=5, writer="orm")
    third = tenant_create(slug="charlie", currency="EUR").tenant
    seed(third, seed=6)

    assert fingerprint(tenant) == fingerprint(other_tenant)
    assert fingerprint(tenant)["orders"] != fingerprint(third)["orders"]


def test_reference_checks_pass_when_postgres_runs_them(tenant):
    with clock.travel_to(NOW):
        spec = demo_data.DemoSpec(customers=50, days=120, seed=2, now=clock.now())
        written = demo_seed(tenant=tenant, spec=spec, check_references=True)

    assert written["customer"] == 50
    assert Order.objects.for_tenant(tenant).count() == written["order"]


def test_a_seeded_tenant_is_refused_unless_if_empty(tenant):
    seed(tenant)
    before = counts(tenant)

    with pytest.raises(CommandError, match="already has customers"):
        seed(tenant, seed=2)
    out = seed(tenant, seed=2, if_empty=True)

    assert "already seeded" in out
    assert counts(tenant) == before


def test_unknown_tenant_and_bad_sizes_are_refused(tenant):
    with pytest.raises(CommandError, match="Unknown tenant 'nope'"):
        call_command("seed_demo", tenant="nope", customers=10)
    with pytest.raises(CommandError, match="--customers"):
        call_command("seed_demo", tenant=tenant.slug, customers=0)
    with pytest.raises(CommandError, match="--days"):
        call_command("seed_demo", tenant=tenant.slug, customers=10, days=5)


def test_the_other_tenant_gets_nothing(tenant, other_tenant):
    seed(tenant)

    assert all(n == 0 for n in counts(other_tenant).values())


# --- the generator alone (no database) ------------------------------------------


def test_contact_points_are_normalised_and_unique():
    spec = demo_data.DemoSpec(customers=3_000, days=90, seed=3, now=NOW)
    (chunk,) = demo_data.generate(spec)
    customers = chunk.tables["customer"]

    emails = [e.decode() for e in customers["email"]]
    phones = [p.decode() for p in customers["phone"] if p]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)
    assert all(normalize_email(e) == e for e in emails)
    assert all(normalize_phone(p) == p for p in phones)
    assert 0.4 < len(phones) / len(emails) < 0.7


def test_buying_behaviour_carries_churn_signal():
    """Customers whose last parcel came late, or who bought long ago, buy again
    less often: what a churn model must be able to learn."""
    spec = demo_data.DemoSpec(customers=20_000, days=365, seed=4, now=NOW)
    (chunk,) = demo_data.generate(spec)
    orders, ful = chunk.tables["order"], chunk.tables["fulfillment"]
    cutoff = np.datetime64(NOW.replace(tzinfo=None) - timedelta(days=90), "us")
    before = orders["placed_at"] < cutoff
    n = len(chunk.tables["customer"]["email"])
    bought_after = np.bincount(orders["customer_id"][~before], minlength=n) > 0
    last = np.full(n, -1)
    last[orders["customer_id"][before]] = np.flatnonzero(before)  # orders run by customer, time
    buyers = last >= 0
    late_of_order = np.zeros(len(before), bool)
    late_of_order[ful["order_id"]] = ful["delivered_at"] > ful["estimated_delivery_end"]
    late = late_of_order[last[buyers]]
    returned = bought_after[buyers]
    recency = cutoff - orders["placed_at"][last[buyers]]
    recent = recency < np.timedelta64(30, "D")

    assert returned[late].mean() < 0.75 * returned[~late].mean()
    assert returned[recent].mean() > 2 * returned[~recent].mean()
    # About ten order lines and three to four orders per customer.
    assert 8 < len(chunk.tables["line"]["order_id"]) / n < 12
    assert 2.5 < len(orders["placed_at"]) / n < 4.5
