"""The shipped journeys: every new store gets them, active, with friendly
templates that render; installing is cheap, idempotent and per tenant."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from commerce.models import Channel
from journeys.defaults import JOURNEYS, TEMPLATES
from journeys.models import Journey, JourneyStatus, JourneyStep, TriggerCursor
from journeys.services.definitions import journey_create, version_as_spec
from journeys.services.setup import journeys_install_defaults, on_tenant_created
from messaging.models import Template
from messaging.services.templates import sms_segments, template_render
from retention import clock
from retention.services import TENANT_CREATED_HOOKS, tenant_create
from segments.models import Segment, SegmentKind, Tier
from tests.factories import CustomerFactory, ProductFactory, make_order

KEYS = {j.key for j in JOURNEYS}
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def installed(tenant) -> dict[str, Journey]:
    journeys_install_defaults(tenant=tenant)  # a no-op once the tenant hook has run
    return {
        j.key: j
        for j in Journey.objects.for_tenant(tenant)
        .filter(key__in=KEYS)
        .select_related("current_version")
    }


def test_tenant_created_hook_is_registered():
    assert on_tenant_created in TENANT_CREATED_HOOKS


def test_a_new_store_starts_with_every_shipped_journey_active(tenant):
    journeys = installed(tenant)

    assert set(journeys) == KEYS
    assert len(KEYS) == 19
    for key, journey in journeys.items():
        assert journey.status == JourneyStatus.ACTIVE, key
        assert journey.current_version.number == 1
        assert journey.current_version.activated_at is not None
    steps = {
        key: list(
            JourneyStep.objects.for_tenant(tenant)
            .filter(version=j.current_version)
            .values_list("name", flat=True)
        )
        for key, j in journeys.items()
    }
    assert steps["welcome-series"] == [
        "Day 0: thanks and what happens next",
        "Day 3: tips and care",
        "Day 7: returns, delivery and help",
        "Day 14: loyalty points and an offer",
    ]
    assert steps["abandoned-cart"] == [
        "1 hour: you left something",
        "23 hours: still thinking it over?",
    ]
    assert [len(steps[k]) for k in ("reorder", "upsell", "replenishment")] == [1, 1, 1]
    assert len(steps["ninety-day-plan"]) == 3
    # The trigger feeds start at activation, not at the beginning of history.
    assert set(TriggerCursor.objects.for_tenant(tenant).values_list("feed", flat=True)) == {
        "touchpoints",
        "transitions",
    }


def test_installed_journeys_are_what_journey_create_makes_of_the_shipped_specs(tenant):
    """The bulk install skips journey_create's row-by-row checks; this is the check."""
    journeys = installed(tenant)
    templates = {t.name: t for t in Template.objects.for_tenant(tenant)}
    tiers = {s.tier: s for s in Segment.objects.for_tenant(tenant).filter(kind=SegmentKind.TIER)}
    for spec in JOURNEYS:
        version = {
            k: tiers[v] if k in ("segment", "entry_segment", "exit_segment") else v
            for k, v in spec.version.items()
        }
        steps = [
            {
                k: templates[TEMPLATES[v].name] if k.endswith("_template") and v else v
                for k, v in step.items()
            }
            for step in spec.steps
        ]
        made = journey_create(
            tenant=tenant, name=f"{spec.name} by hand", version=version, steps=steps
        )

        assert version_as_spec(journeys[spec.key].current_version) == version_as_spec(
            made.current_version
        ), spec.key


def test_journeys_wait_for_daytime_except_deliveries_and_carts(tenant):
    journeys = installed(tenant)
    for key, journey in journeys.items():
        windows = set(
            JourneyStep.objects.for_tenant(tenant)
            .filter(version=journey.current_version)
            .values_list("window_start", "window_end")
        )
        immediate = key.startswith("delivery-") or key == "abandoned-cart"
        assert windows == ({(None, None)} if immediate else {(time(9), time(20))}), key


def test_delivery_updates_are_transactional_on_the_preferred_channel(tenant):
    journeys = installed(tenant)
    statuses = {}
    for key in KEYS:
        if not key.startswith("delivery-"):
            continue
        version = journeys[key].current_version
        step = JourneyStep.objects.for_tenant(tenant).get(version=version)
        statuses[version.fulfillment_status] = version.reentry
        assert version.category == "transactional"
        assert step.action == "preferred"
        for field in ("email_template", "sms_template", "in_app_template"):
            assert getattr(step, field).category == "transactional"
    assert statuses == dict.fromkeys(
        ["packed", "shipped", "out_for_delivery", "delivered", "delayed"], "every"
    )


def test_tier_follow_ups_start_from_the_stores_own_tier_segments(tenant, other_tenant):
    journeys = installed(tenant)
    installed(other_tenant)
    tiers = {s.tier: s for s in Segment.objects.for_tenant(tenant).filter(kind=SegmentKind.TIER)}

    for key, tier in (
        ("high-value-repeat-follow-up", Tier.HIGH_VALUE_REPEAT),
        ("mid-value-repeat-follow-up", Tier.MID_VALUE_REPEAT),
        ("one-time-follow-up", Tier.ONE_TIME),
    ):
        version = journeys[key].current_version
        assert version.trigger == "segment_entered"
        assert version.segment == tiers[tier]
        assert version.exit_on_order is True


def test_imported_history_starts_no_tier_follow_up_but_a_new_order_does(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    from commerce.services.orders import order_upsert, orders_bulk_loaded
    from journeys.models import Enrollment
    from journeys.services.engine import journeys_tick
    from segments.models import SegmentTransition

    one_time = installed(tenant)["one-time-follow-up"]
    clock.set_now(one_time.current_version.activated_at + timedelta(minutes=1))
    for n in range(3):  # last year's buyers, loaded in bulk (a CSV import, the demo seed)
        make_order(CustomerFactory(tenant=tenant), clock.now() - timedelta(days=100 + n))
    with django_capture_on_commit_callbacks(execute=True):
        orders_bulk_loaded(tenant)
    clock.advance(minutes=1)
    journeys_tick(tenant_id=tenant.pk)

    moves = SegmentTransition.objects.for_tenant(tenant)
    assert set(moves.values_list("cause", flat=True)) == {"import"}
    assert moves.count() == 3
    assert not Enrollment.objects.for_tenant(tenant).filter(journey=one_time).exists()

    with django_capture_on_commit_callbacks(execute=True):
        order_upsert(
            tenant=tenant,
            source="api",
            data={
                "id": "new-1",
                "customer": {"id": "n-1", "email": "new@shop.example"},
                "placed_at": clock.now(),
                "total": Decimal("20.00"),
                "currency": "EUR",
                "lines": [{"sku": "A-1", "quantity": 1, "unit_price": Decimal("20.00")}],
            },
        )
    clock.advance(minutes=1)
    journeys_tick(tenant_id=tenant.pk)

    enrolled = Enrollment.objects.for_tenant(tenant).filter(journey=one_time)
    assert list(enrolled.values_list("customer__email", flat=True)) == ["new@shop.example"]


def test_family_window_journeys_wait_for_the_family_and_exit_on_an_order(tenant):
    journeys = installed(tenant)
    for window in ("reorder", "upsell", "replenishment"):
        version = journeys[window].current_version
        step = JourneyStep.objects.for_tenant(tenant).get(version=version)
        assert (version.trigger, version.family_window, version.exit_on_order) == (
            "family_window",
            window,
            True,
        )
        assert (step.delay_from, step.family_window) == ("family", window)


def test_the_next_best_action_journeys_start_from_the_scorers_touchpoints(tenant):
    journeys = installed(tenant)
    winback, nudge = journeys["winback-incentive"], journeys["content-nudge"]

    assert (winback.name, nudge.name) == ("Win-back with an incentive", "Content nudge")
    for journey, kind, cooldown in (
        (winback, "next_action.winback", 90),
        (nudge, "next_action.nudge", 30),
    ):
        version = journey.current_version
        assert (version.trigger, version.value) == ("touchpoint", kind)
        assert (version.reentry, version.reentry_cooldown_days) == ("cooldown", cooldown)
        assert (version.exit_on_order, version.exit_on_unsubscribe) == (True, True)
        assert version.category == "marketing"
    steps = {
        journey.key: list(
            JourneyStep.objects.for_tenant(tenant)
            .filter(version=journey.current_version)
            .order_by("position")
            .select_related("email_template", "sms_template", "in_app_template")
        )
        for journey in (winback, nudge)
    }
    assert [(s.name, s.delay, s.action) for s in steps["winback-incentive"]] == [
        ("Day 0: we miss you, 15% off", 0, "email"),
        ("Day 4: your 15% is waiting", 4, "preferred"),
        ("Day 10: last chance", 10, "email"),
    ]
    [tips] = steps["content-nudge"]
    assert (tips.delay, tips.action) == (0, "preferred")
    for step in (*steps["winback-incentive"], tips):
        for field in ("email_template", "sms_template", "in_app_template"):
            template = getattr(step, field)
            assert template is None or template.category == "marketing"
    reminder = steps["winback-incentive"][1]
    assert (reminder.sms_template.channel, reminder.in_app_template.channel) == ("sms", "in_app")


def test_a_scorer_winback_touchpoint_sends_the_offer_and_an_order_ends_the_journey(tenant):
    from commerce.models import TouchpointCategory
    from commerce.services.touchpoints import touchpoint_record
    from journeys.models import Enrollment
    from journeys.services.engine import journeys_tick
    from messaging.models import Message

    winback = installed(tenant)["winback-incentive"]
    start = winback.current_version.activated_at + timedelta(days=1)
    clock.set_now(start.replace(hour=10, minute=0))  # Berlin's daytime, after activation
    ada = CustomerFactory(tenant=tenant, first_name="Ada", timezone="Europe/Berlin")
    bob = CustomerFactory(tenant=tenant, first_name="Bob", timezone="Europe/Berlin")
    for customer, kind in ((ada, "next_action.winback"), (bob, "next_action.nudge")):
        touchpoint_record(
            tenant=tenant,
            customer=customer,
            category=TouchpointCategory.PRODUCT,
            kind=kind,
            source="scoring",
            properties={"band": "high", "p_churn": 0.83, "reasons": ["no order in 120 days"]},
        )
    clock.advance(minutes=5)
    journeys_tick(tenant_id=tenant.pk)

    [offer] = Message.objects.for_tenant(tenant).filter(context__journey_id=winback.pk)
    assert offer.customer_id == ada.pk
    assert offer.subject == "Ada, we miss you: 15% off your next order"
    assert "COMEBACK15" in offer.body_text
    nudged = Enrollment.objects.for_tenant(tenant).get(journey__key="content-nudge")
    assert nudged.customer_id == bob.pk

    clock.advance(days=1)
    order = make_order(ada, clock.now())
    touchpoint_record(
        tenant=tenant,
        customer=ada,
        category=TouchpointCategory.COMMERCE,
        kind="order.placed",
        source="commerce",
        properties={"order_id": order.pk},
    )
    clock.advance(minutes=5)
    journeys_tick(tenant_id=tenant.pk)

    enrollment = Enrollment.objects.for_tenant(tenant).get(journey=winback)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "ordered")


def test_installing_again_changes_nothing_and_keeps_a_marketers_edits(tenant):
    journeys = installed(tenant)
    welcome = journeys["welcome-series"]
    welcome.name = "Our welcome"
    welcome.status = JourneyStatus.ARCHIVED
    welcome.save(update_fields=["name", "status"])
    template = Template.objects.for_tenant(tenant).get(name=TEMPLATES["welcome-0"].name)
    template.subject = "Edited"
    template.save(update_fields=["subject"])
    counts = (
        Journey.objects.for_tenant(tenant).count(),
        Template.objects.for_tenant(tenant).count(),
        JourneyStep.objects.for_tenant(tenant).count(),
    )

    assert journeys_install_defaults(tenant=tenant) == 0

    assert counts == (
        Journey.objects.for_tenant(tenant).count(),
        Template.objects.for_tenant(tenant).count(),
        JourneyStep.objects.for_tenant(tenant).count(),
    )
    welcome.refresh_from_db()
    assert (welcome.name, welcome.status) == ("Our welcome", JourneyStatus.ARCHIVED)
    template.refresh_from_db()
    assert template.subject == "Edited"


def test_a_deleted_shipped_journey_comes_back_reusing_its_templates(tenant):
    journeys = installed(tenant)
    Journey.objects.for_tenant(tenant).filter(pk=journeys["upsell"].pk).delete()
    templates = Template.objects.for_tenant(tenant).count()

    assert journeys_install_defaults(tenant=tenant) == 1

    assert Template.objects.for_tenant(tenant).count() == templates
    assert set(installed(tenant)) == KEYS


def test_names_a_store_already_uses_get_a_suffix(tenant):
    Journey.objects.for_tenant(tenant).filter(key__in=KEYS).delete()
    Template.objects.for_tenant(tenant).filter(name=TEMPLATES["cart-1"].name).delete()
    Journey.objects.create(tenant=tenant, name="Abandoned cart reminder")
    Template.objects.create(
        tenant=tenant, name=TEMPLATES["cart-1"].name, channel="sms", category="marketing", text="x"
    )

    assert journeys_install_defaults(tenant=tenant) == len(KEYS)

    cart = Journey.objects.for_tenant(tenant).get(key="abandoned-cart")
    assert cart.name == "Abandoned cart reminder (shipped)"
    first = JourneyStep.objects.for_tenant(tenant).get(version=cart.current_version, position=1)
    assert first.email_template.name == f"{TEMPLATES['cart-1'].name} (shipped)"
    assert first.email_template.channel == "email"


def test_install_only_touches_its_own_tenant(tenant, other_tenant):
    installed(other_tenant)
    Journey.objects.for_tenant(tenant).filter(key__in=KEYS).delete()
    before = Journey.objects.for_tenant(other_tenant).count()

    assert journeys_install_defaults(tenant=tenant) == len(KEYS)

    assert Journey.objects.for_tenant(other_tenant).count() == before
    for journey in installed(tenant).values():
        step = JourneyStep.objects.for_tenant(tenant).filter(version=journey.current_version)[0]
        template = step.email_template or step.sms_template or step.in_app_template
        assert template.tenant_id == tenant.pk


def test_installing_for_a_new_store_takes_a_few_queries(db, django_assert_max_num_queries):
    created = tenant_create(slug="gamma", name="Gamma Store")
    Journey.objects.for_tenant(created.tenant).delete()
    Template.objects.for_tenant(created.tenant).delete()

    with django_assert_max_num_queries(25):
        assert journeys_install_defaults(tenant=created.tenant) == len(KEYS)


def test_every_shipped_template_renders_for_a_customer_with_an_order(tenant):
    clock.set_now(NOW)
    installed(tenant)
    customer = CustomerFactory(
        tenant=tenant, first_name="Mia", phone="+4915112345678", timezone="Europe/Berlin"
    )
    product = ProductFactory(tenant=tenant, name="House blend beans 250 g", price=Decimal("9.90"))
    order = make_order(customer, NOW, "24.80", families=(product.family,))
    templates = {t.name: t for t in Template.objects.for_tenant(tenant)}

    for spec in TEMPLATES.values():
        template = templates[spec.name]
        for context in ({"order": order, "product": product}, {}):
            content = template_render(template=template, customer=customer, **context)
            text = f"{content.subject}\n{content.text}"
            assert "{{" not in text and "{%" not in text, spec.key
            assert "None" not in text, spec.key
            if spec.channel == Channel.SMS:
                # GSM-7 and at most two segments with a real order link in it.
                length = sms_segments(content.text)
                assert (length.encoding, length.segments <= 2) == ("GSM-7", True), spec.key
        if spec.channel != Channel.SMS:
            assert content.subject, spec.key
    welcome = template_render(
        template=templates[TEMPLATES["welcome-0"].name], customer=customer, order=order
    )
    assert welcome.subject == "Thanks for your order, Mia!"
    assert "Hi Mia," in welcome.text
    assert f"order {order.number or order.external_id}" in welcome.text


def test_marketing_email_says_how_to_unsubscribe_and_sms_how_to_stop():
    for spec in TEMPLATES.values():
        if spec.category != "marketing":
            continue
        if spec.channel == "email":
            assert "{{ links.unsubscribe }}" in spec.text, spec.key
        if spec.channel == "sms":
            assert spec.text.endswith("Reply STOP to opt out"), spec.key


@pytest.mark.parametrize("how", [["--tenant", "alpha"], ["--all"]])
def test_install_journeys_command_installs_what_is_missing(tenant, other_tenant, how):
    Journey.objects.for_tenant(tenant).filter(key__in=["reorder", "upsell"]).delete()
    installed(other_tenant)

    call_command("install_journeys", *how)

    keys = Journey.objects.for_tenant(tenant).filter(key__in=KEYS).values_list("key", flat=True)
    assert sorted(keys) == sorted(KEYS)


def test_the_abandoned_cart_reminder_lists_the_cart_and_its_recovery_link(tenant):
    from commerce.services.orders import cart_upsert, carts_mark_abandoned
    from journeys.services.engine import journeys_tick
    from messaging.models import Message

    cart_journey = installed(tenant)["abandoned-cart"]
    start = cart_journey.current_version.activated_at + timedelta(days=1)
    clock.set_now(start.replace(hour=9, minute=0, second=0, microsecond=0))  # 10:00 Berlin
    cart_upsert(
        tenant=tenant,
        source="api",
        data={
            "id": "cart-9",
            "customer": {
                "id": "c-9",
                "email": "ada@shop.example",
                "first_name": "Ada",
                "consent": {"email": {"status": "opted_in", "source": "checkout"}},
            },
            "currency": "EUR",
            "items": [
                {
                    "sku": "BEANS-1",
                    "name": "House beans",
                    "quantity": 2,
                    "unit_price": Decimal("12.00"),
                },
                {"sku": "MUG-1", "quantity": 1, "unit_price": Decimal("9.00")},
            ],
            "recovery_url": "https://shop.example/cart/recover/9",
        },
    )
    for _ in range(3):  # abandoned after an hour, reminded an hour later
        clock.advance(hours=1)
        carts_mark_abandoned(tenant=tenant)
        journeys_tick(tenant_id=tenant.pk)

    [reminder] = Message.objects.for_tenant(tenant).filter(context__journey_id=cart_journey.pk)
    assert "In your cart:\n  2 x House beans\n  1 x MUG-1" in reminder.body_text
    assert "Pick up where you stopped: https://shop.example/cart/recover/9" in reminder.body_text
