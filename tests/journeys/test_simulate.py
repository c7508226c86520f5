"""``manage.py simulate``: days of store activity through the real platform, and
every shipped journey firing end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from commerce.models import Customer, Order, PriceTier, TouchpointCategory
from commerce.services.touchpoints import touchpoint_record
from journeys.defaults import ABANDONED_CART, JOURNEYS, WELCOME_SERIES
from journeys.models import StepRun
from journeys.services.setup import journeys_install_defaults
from messaging.models import Message
from retention import clock
from tests.factories import CustomerFactory, ProductFactory, ProductFamilyFactory, make_order

# Tomorrow morning: after the shipped journeys were activated (triggers before
# that do not count), at the same time of day whenever the suite runs.
START = (datetime.now(UTC) + timedelta(days=1)).replace(hour=6, minute=30, second=0, microsecond=0)
DAYS = 12


def short_windows_store(tenant, *, past_buyers: int = 0) -> None:
    """A store whose one family comes round quickly, so the reorder, upsell and
    replenishment windows (and the expensive tier's) fall inside the run; with
    ``past_buyers`` who ordered once a month ago (the first ranking of the run
    puts them in the one-time tier, and most of them do not order again)."""
    journeys_install_defaults(tenant=tenant)  # a no-op once the tenant hook has run
    family = ProductFamilyFactory(
        tenant=tenant,
        name="Coffee",
        slug="coffee",
        reorder_days=1,
        upsell_days=2,
        replenishment_days=3,
        expensive_min_days=2,
        expensive_max_days=4,
    )
    for sku, name, price, tier in (
        ("COF-1", "House blend beans 250 g", "9.90", PriceTier.STANDARD),
        ("COF-2", "Espresso roast 250 g", "10.90", PriceTier.STANDARD),
        ("COF-9", "Geisha reserve beans 1 kg", "79.00", PriceTier.EXPENSIVE),
    ):
        ProductFactory(
            tenant=tenant, family=family, sku=sku, name=name, price=Decimal(price), price_tier=tier
        )
    for _ in range(past_buyers):
        make_order(CustomerFactory(tenant=tenant), START - timedelta(days=30), families=(family,))


def simulate_json(tenant, *args) -> dict:
    out = StringIO()
    call_command("simulate", "--tenant", tenant.slug, *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def sent(report: dict) -> dict[str, dict[str, int]]:
    """journey -> step -> sent over the whole run."""
    out: dict[str, dict[str, int]] = {}
    for journey in report["journeys"]:
        steps = out.setdefault(journey["name"], {})
        for step in journey["steps"]:
            steps[step["name"]] = steps.get(step["name"], 0) + step["sent"]
    return out


def scorer_picked(tenant, kind: str, customers) -> None:
    """The next-best-action touchpoints the nightly churn scorer writes (the
    simulation does not score): they start the win-back and nudge journeys."""
    for customer in customers:
        touchpoint_record(
            tenant=tenant,
            customer=customer,
            category=TouchpointCategory.PRODUCT,
            kind=kind,
            source="scoring",
            properties={"band": "high", "p_churn": 0.8, "reasons": []},
        )


def test_every_shipped_journey_fires_end_to_end_in_a_simulation(tenant):
    """One run of DAYS days (long enough for the one-time buyers' day-10 guide):
    everything is asserted on it, since it is the slowest test here."""
    short_windows_store(tenant, past_buyers=20)
    clock.set_now(START)
    past = list(Customer.objects.for_tenant(tenant).order_by("pk"))
    scorer_picked(tenant, "next_action.winback", past[:3])
    scorer_picked(tenant, "next_action.nudge", past[3:6])

    report = simulate_json(tenant, "--days", str(DAYS), "--seed", "3")

    totals = sent(report)
    assert {j.name for j in JOURNEYS} <= set(totals)
    for journey in JOURNEYS:
        first_step = journey.steps[0]["name"]
        assert totals[journey.name].get(first_step, 0) > 0, journey.name
    assert totals[WELCOME_SERIES.name]["Day 7: returns, delivery and help"] > 0
    assert totals[ABANDONED_CART.name]["23 hours: still thinking it over?"] > 0

    # The documented shape; a step appears once per day it acted.
    assert set(report) == {"journeys"}
    for journey in report["journeys"]:
        assert set(journey) == {"name", "steps"}
        days = [(step["name"], step["day"]) for step in journey["steps"]]
        assert len(days) == len(set(days))
        for step in journey["steps"]:
            assert set(step) == {"name", "day", "sent", "suppressed", "held_out"}
            assert 1 <= step["day"] <= DAYS
            assert all(type(step[k]) is int for k in ("sent", "suppressed", "held_out"))

    # The numbers are every step run of the run, read back from the database.
    runs = StepRun.objects.for_tenant(tenant)
    reported = sum(
        s["sent"] + s["suppressed"] + s["held_out"] for j in report["journeys"] for s in j["steps"]
    )
    assert reported == runs.exclude(outcome__in=["skipped", "failed"]).count()
    assert (
        Message.objects.for_tenant(tenant).filter(source="journey").count()
        == runs.filter(message__isnull=False).count()
    )
    # The clock stays where the run ended: the next full hour after START, plus DAYS.
    assert clock.now() == START.replace(hour=7, minute=0) + timedelta(days=DAYS)


def test_the_same_seed_gives_the_same_store_activity(tenant, other_tenant):
    for store in (tenant, other_tenant):
        short_windows_store(store)
        clock.set_now(START)
        simulate_json(store, "--days", "2", "--seed", "7")

    def orders(store):
        return sorted(
            (o.placed_at, str(o.total), o.lines.count())
            for o in Order.objects.for_tenant(store).prefetch_related("lines")
        )

    assert orders(tenant) == orders(other_tenant)
    assert len(orders(tenant)) >= 4


def test_the_text_report_names_journeys_and_leaves_other_tenants_alone(tenant, other_tenant):
    short_windows_store(tenant)
    journeys_install_defaults(tenant=other_tenant)
    clock.set_now(START)
    out = StringIO()

    call_command("simulate", "--tenant", tenant.slug, "--days", "1", stdout=out)

    text = out.getvalue()
    assert "Simulated 1 days of alpha" in text
    for journey in JOURNEYS:
        assert f"\n{journey.name}\n" in text
    assert Order.objects.for_tenant(tenant).count() >= 2
    assert Order.objects.for_tenant(other_tenant).count() == 0
    assert StepRun.objects.for_tenant(other_tenant).count() == 0
    assert Message.objects.for_tenant(other_tenant).count() == 0


def test_an_unknown_tenant_or_a_bad_day_count_is_refused(tenant):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("simulate", "--tenant", "nope", "--days", "1")
    with pytest.raises(CommandError, match="--days"):
        call_command("simulate", "--tenant", tenant.slug, "--days", "0")


def test_with_a_provider_configured_it_sends_only_when_told_to(tenant, settings):
    settings.SENDGRID_API_KEY = "SG.fake-key"

    with pytest.raises(CommandError, match="--send"):
        call_command("simulate", "--tenant", tenant.slug, "--days", "1")

    assert Order.objects.for_tenant(tenant).count() == 0
