"""Journey reads: the list's numbers per journey, per-step figures from the
outbox (sent, delivered, opened, clicked, converted, held out, skipped), the
versions with their customers under way, and the customer a preview is for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.models import OrderStatus
from journeys import selectors
from journeys.models import Enrollment, JourneyStep, StepRun
from journeys.services.definitions import journey_create, journey_update
from messaging.models import Message, Template
from retention import clock
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def template(tenant, name: str, channel: str = "email") -> Template:
    return Template.objects.create(
        tenant=tenant,
        name=name,
        channel=channel,
        category="marketing",
        subject=f"{name} for {{{{ customer.first_name }}}}",
        text=f"Hi {{{{ customer.first_name }}}}, {name}.",
    )


def journey(tenant, name: str, steps: list[dict] | None = None, status: str = "active"):
    steps = steps or [{"name": "Hello", "email_template": template(tenant, f"{name} mail")}]
    return journey_create(
        tenant=tenant,
        name=name,
        status=status,
        version={"trigger": "order_placed", "order_nth": "first"},
        steps=steps,
    )


def enroll(j, customer, status: str = "active", *, is_test: bool = False, version=None, n=0):
    return Enrollment.objects.create(
        tenant_id=j.tenant_id,
        journey=j,
        version=version or j.current_version,
        customer=customer,
        trigger_key=f"t:{customer.pk}:{status}:{n}:{is_test}",
        trigger_at=NOW,
        status=status,
        is_test=is_test,
        finished_at=None if status in ("active", "held_out") else NOW,
    )


# --- journey_counts --------------------------------------------------------------


def test_journey_counts_are_exact_per_status_in_one_query(tenant, django_assert_num_queries):
    welcome, winback, quiet = (journey(tenant, n) for n in ("J welcome", "J winback", "J quiet"))
    people = [CustomerFactory(tenant=tenant) for _ in range(7)]
    for person, status in zip(
        people, ["active", "active", "completed", "exited", "held_out", "failed"], strict=False
    ):
        enroll(welcome, person, status)
    enroll(welcome, people[6], "active", is_test=True)  # a test: not counted
    enroll(winback, people[0], "completed")
    enroll(winback, people[1], "exited")

    with django_assert_num_queries(1):
        counts = selectors.journey_counts(tenant.pk, [welcome.pk, winback.pk, quiet.pk])

    assert counts == {
        welcome.pk: {
            "entered": 6,
            "active": 2,
            "completed": 1,
            "exited": 1,
            "held_out": 1,
            "failed": 1,
        },
        winback.pk: {
            "entered": 2,
            "active": 0,
            "completed": 1,
            "exited": 1,
            "held_out": 0,
            "failed": 0,
        },
        quiet.pk: dict.fromkeys(("entered", "active", "completed", "exited", "held_out"), 0)
        | {"failed": 0},
    }


def test_journey_counts_never_count_another_stores_enrollments(tenant, other_tenant):
    theirs = journey(other_tenant, "J theirs")
    enroll(theirs, CustomerFactory(tenant=other_tenant))

    counts = selectors.journey_counts(tenant.pk, [theirs.pk])

    assert counts[theirs.pk]["entered"] == 0


def test_journey_counts_of_no_journeys_ask_nothing(tenant, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert selectors.journey_counts(tenant.pk, []) == {}


# --- step_figures --------------------------------------------------------------------


def message(tenant, customer, status: str, *, sent_at=None, n: int, channel: str = "email"):
    stamps = {}
    if status in ("delivered", "opened", "clicked"):
        stamps["delivered_at"] = sent_at
    if status in ("opened", "clicked"):
        stamps["opened_at"] = sent_at
    if status == "clicked":
        stamps["clicked_at"] = sent_at
    return Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=channel,
        category="marketing",
        idempotency_key=f"journey:test:{n}",
        source="journey",
        status=status,
        sent_at=sent_at,
        created_at=sent_at or NOW,
        **stamps,
    )


def run(enrollment, step, outcome: str, msg=None, variant: str = ""):
    return StepRun.objects.create(
        tenant_id=enrollment.tenant_id,
        enrollment=enrollment,
        step=step,
        outcome=outcome,
        message=msg,
        variant=variant,
        at=NOW,
    )


@pytest.fixture
def two_steps(tenant):
    j = journey(
        tenant,
        "J figures",
        steps=[
            {"name": "Mail", "email_template": template(tenant, "Fig mail")},
            {
                "name": "Text",
                "delay": 3,
                "action": "sms",
                "sms_template": template(tenant, "Fig sms", "sms"),
            },
        ],
    )
    first, second = (
        JourneyStep.objects.for_tenant(tenant)
        .filter(version=j.current_version)
        .order_by("position")
    )
    return j, first, second


def test_step_figures_are_exact_from_the_outbox_and_orders(
    tenant, other_tenant, two_steps, django_assert_num_queries
):
    j, mail, text = two_steps
    sent_at = NOW - timedelta(days=10)
    statuses = ["queued", "sent", "delivered", "opened", "clicked", "bounced", "suppressed"]
    people = {s: CustomerFactory(tenant=tenant, email=f"{s}@alpha.example") for s in statuses}
    for n, (status, person) in enumerate(people.items()):
        e = enroll(j, person)
        at = None if status in ("queued", "suppressed") else sent_at
        run(e, mail, "queued", message(tenant, person, status, sent_at=at, n=n))
    # Held out and skipped at the first step; skipped at the second.
    for n, outcome in enumerate(["held_out", "held_out", "skipped"]):
        run(enroll(j, CustomerFactory(tenant=tenant), n=n), mail, outcome)
    run(enroll(j, CustomerFactory(tenant=tenant), n=9), text, "skipped")
    # Orders: the clicker converts (3 days after); the opener ordered 8 days
    # after (too late), the deliveree before the send, the sender's order was
    # cancelled; a queued message converts nothing (never sent).
    make_order(people["clicked"], sent_at + timedelta(days=3))
    make_order(people["opened"], sent_at + timedelta(days=8))
    make_order(people["delivered"], sent_at - timedelta(hours=1))
    make_order(people["sent"], sent_at + timedelta(days=1), status=OrderStatus.CANCELLED)
    make_order(people["queued"], NOW - timedelta(days=1))
    # Another store's runs on its own journey are not ours.
    theirs = journey(other_tenant, "J figures")
    someone = CustomerFactory(tenant=other_tenant)
    their_step = JourneyStep.objects.for_tenant(other_tenant).get(version=theirs.current_version)
    run(
        enroll(theirs, someone),
        their_step,
        "queued",
        message(other_tenant, someone, "clicked", sent_at=sent_at, n=99),
    )

    with django_assert_num_queries(3):
        figures = selectors.step_figures(tenant.pk, j.current_version_id)

    zero = dict.fromkeys(selectors.FIGURE_KEYS, 0)
    assert figures == {
        mail.pk: {
            **zero,
            "runs": 10,
            "messages": 7,
            "waiting": 1,
            "sent": 5,
            "delivered": 3,
            "opened": 2,
            "clicked": 1,
            "converted": 1,
            "suppressed": 1,
            "held_out": 2,
            "skipped": 1,
            "variants": {},
        },
        text.pk: {**zero, "runs": 1, "skipped": 1, "variants": {}},
    }


def test_step_figures_break_down_by_variant(tenant):
    a, b = template(tenant, "Var A"), template(tenant, "Var B")
    j = journey(
        tenant,
        "J ab",
        steps=[
            {
                "name": "Offer",
                "variants": [
                    {"key": "A", "weight": 70, "email_template": a},
                    {"key": "B", "weight": 30, "email_template": b},
                ],
            }
        ],
    )
    step = JourneyStep.objects.for_tenant(tenant).get(version=j.current_version)
    for n, (variant, status) in enumerate([("A", "opened"), ("A", "sent"), ("B", "clicked")]):
        person = CustomerFactory(tenant=tenant)
        run(
            enroll(j, person),
            step,
            "queued",
            message(tenant, person, status, sent_at=NOW - timedelta(days=1), n=n),
            variant=variant,
        )

    figures = selectors.step_figures(tenant.pk, j.current_version_id)[step.pk]

    assert (figures["sent"], figures["opened"], figures["clicked"]) == (3, 2, 1)
    assert {k: (v["sent"], v["opened"], v["clicked"]) for k, v in figures["variants"].items()} == {
        "A": (2, 1, 0),
        "B": (1, 1, 1),
    }


# --- versions ----------------------------------------------------------------------------


def test_version_list_counts_customers_under_way_per_version(tenant):
    j = journey(tenant, "J versions")
    v1 = j.current_version
    people = [CustomerFactory(tenant=tenant) for _ in range(4)]
    enroll(j, people[0], "active")
    enroll(j, people[1], "held_out")
    enroll(j, people[2], "completed")
    v2 = journey_update(
        journey=j,
        version={"trigger": "order_placed"},
        steps=[{"name": "New", "email_template": template(tenant, "J versions 2")}],
    )
    enroll(j, people[3], "active", version=v2)

    versions = selectors.version_list(j)

    assert [(v.number, v.in_flight) for v in versions] == [(2, 1), (1, 2)]
    assert versions[1].pk == v1.pk


# --- the customer a preview is for ---------------------------------------------------------


def test_customer_pick_defaults_to_the_last_buyer_then_finds_by_id_or_email(tenant, other_tenant):
    ann = CustomerFactory(tenant=tenant, email="ann@alpha.example")
    bob = CustomerFactory(tenant=tenant, email="bob@alpha.example")
    CustomerFactory(tenant=tenant, email="newest-no-orders@alpha.example")
    make_order(ann, NOW - timedelta(days=1))
    make_order(bob, NOW - timedelta(days=5))
    eve = CustomerFactory(tenant=other_tenant)

    assert selectors.customer_pick(tenant=tenant, lookup="") == (ann, "")
    assert selectors.customer_pick(tenant=tenant, lookup=str(bob.pk)) == (bob, "")
    assert selectors.customer_pick(tenant=tenant, lookup=str(eve.pk)) == (
        None,
        f"No customer with the id {eve.pk} in this store.",
    )
    assert selectors.customer_pick(tenant=tenant, lookup="999999999") == (
        None,
        "No customer with the id 999999999 in this store.",
    )
    assert selectors.customer_pick(tenant=tenant, lookup="nobody")[0] is None
