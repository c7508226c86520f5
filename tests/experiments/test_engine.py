"""Experiments in the journey engine, on the real database: the assignment
hash, journey holdouts (who is held out, who is exposed and when), step
variants (copy, channel, send time), an experiment's life from launch to
promotion, and tenant isolation."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from scipy.stats import chi2_contingency, chisquare

from commerce.models import Customer, Order, TouchpointCategory
from commerce.services.orders import order_upsert
from commerce.services.touchpoints import touchpoint_record
from experiments.assignment import variant_for
from experiments.models import Decision, Experiment, ExperimentStatus, Exposure, Variant
from experiments.services import (
    experiment_conclude,
    experiment_create,
    experiment_launch,
    experiment_stop,
)
from experiments.services.lifecycle import Arm
from journeys.models import (
    Enrollment,
    EnrollmentStatus,
    Journey,
    JourneyStatus,
    StepOutcome,
    StepRun,
)
from journeys.services.definitions import journey_create, journey_set_status, journey_update
from journeys.services.dispatch import enrollments_dispatch
from journeys.services.engine import journeys_tick
from messaging.models import Message
from retention import clock
from retention.errors import Conflict, InvalidInput
from segments.services.lists import list_segment_create, segment_member_add, segment_member_remove
from tests.factories import CustomerFactory
from tests.journeys.test_engine import START, order_data, run_for, sends, template

CUSTOMER_IDS = range(1, 100_001)
HOLDOUT = [Arm("control", 50, is_control=True), Arm("treatment", 50)]
AB = [Arm("A", 50, is_control=True), Arm("B", 50)]


# --- helpers ----------------------------------------------------------------------


def signup_journey(tenant, *, name: str = "Welcome", value: str = "signed.up", steps=None, **kw):
    """An active journey started by a tracked event, entered on every event."""
    steps = steps or [{"name": "Hello", "email_template": template(tenant, f"{name}-hello")}]
    return journey_create(
        tenant=tenant,
        name=name,
        status=kw.pop("status", "active"),
        version={"trigger": "touchpoint", "value": value, "reentry": "every", **kw},
        steps=steps,
    )


def customers(tenant, n: int, **fields) -> list[Customer]:
    return [CustomerFactory(tenant=tenant, first_name="Ada", **fields) for _ in range(n)]


def track(tenant, people, kind: str = "signed.up") -> None:
    for customer in people:
        touchpoint_record(
            tenant=tenant,
            customer=customer,
            category=TouchpointCategory.PRODUCT,
            kind=kind,
            source="app",
        )


def create(tenant, journey, *, name="Holdout", kind="holdout", arms=HOLDOUT, **fields):
    return experiment_create(
        tenant=tenant,
        name=name,
        kind=kind,
        journey=journey,
        hypothesis="The journey raises 90-day retention by at least 5% (relative).",
        arms=arms,
        **fields,
    )


def launched(tenant, journey, **kw) -> Experiment:
    return experiment_launch(experiment=create(tenant, journey, **kw))


def arm_of(experiment: Experiment, customer_id: int) -> str:
    """The arm the hash gives, with the arms as the engine reads them (by key)."""
    arms = tuple(
        Variant.objects.for_tenant(experiment.tenant_id)
        .filter(experiment=experiment)
        .order_by("key")
        .values_list("key", "weight")
    )
    return variant_for(experiment.tenant_id, experiment.pk, customer_id, arms)


def exposures(experiment: Experiment) -> dict[int, Exposure]:
    rows = (
        Exposure.objects.for_tenant(experiment.tenant_id)
        .filter(experiment=experiment)
        .select_related("variant")
    )
    return {e.customer_id: e for e in rows}


def enrollments(journey: Journey) -> list[Enrollment]:
    return list(
        Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey).order_by("id")
    )


def subjects_by_customer(journey: Journey) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for message in sends(journey):
        out[message.customer_id].append(message.subject)
    return dict(out)


def variant_step(tenant, name: str, *, b: dict | None = None, **step) -> dict:
    """A send step whose variants A and B have their own email copy (B's
    fields overridden by ``b``)."""
    return {
        "name": name,
        "variants": [
            {"key": "A", "email_template": template(tenant, f"{name}-a")},
            {"key": "B", "email_template": template(tenant, f"{name}-b"), **(b or {})},
        ],
        **step,
    }


# --- 1. assignment ------------------------------------------------------------------


def test_assignment_is_the_same_whatever_the_order_of_the_calls():
    arms = (("A", 50), ("B", 50))
    ids = list(range(1, 5001))
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)

    forwards = {c: variant_for(3, 11, c, arms) for c in ids}
    # Interleaved with another experiment's calls, in another order, twice.
    mixed = {}
    for c in shuffled:
        variant_for(3, 12, c, arms)
        mixed[c] = variant_for(3, 11, c, arms)
    again = {c: variant_for(3, 11, c, arms) for c in reversed(ids)}

    assert forwards == mixed == again
    assert set(forwards.values()) == {"A", "B"}


@pytest.mark.parametrize("weights", [(50, 50), (90, 10)])
def test_assignment_splits_customers_by_the_weights(weights):
    arms = (("control", weights[0]), ("treatment", weights[1]))
    counts = Counter(variant_for(1, 42, c, arms) for c in CUSTOMER_IDS)

    observed = [counts["control"], counts["treatment"]]
    expected = [len(CUSTOMER_IDS) * w / sum(weights) for w in weights]
    assert sum(observed) == len(CUSTOMER_IDS)
    assert chisquare(observed, expected).pvalue > 0.001


def test_two_experiments_assign_independently():
    arms = (("A", 50), ("B", 50))
    pairs = Counter(
        (variant_for(1, 10, c, arms), variant_for(1, 11, c, arms)) for c in CUSTOMER_IDS
    )

    table = [[pairs[(a, b)] for b in "AB"] for a in "AB"]
    assert sum(map(sum, table)) == len(CUSTOMER_IDS)
    assert chi2_contingency(table).pvalue > 0.001


# --- 2. journey holdout ---------------------------------------------------------------


def test_a_holdout_keeps_its_control_out_of_the_journey_and_exposes_everyone_at_the_trigger(
    tenant,
):
    clock.set_now(START)
    journey = journey_create(
        tenant=tenant,
        name="Thanks",
        status="active",
        version={"trigger": "order_placed", "reentry": "every"},
        steps=[
            {"name": "Thanks", "email_template": template(tenant, "thanks")},
            {"name": "Tips", "delay": 2, "email_template": template(tenant, "tips")},
        ],
    )
    experiment = launched(tenant, journey)
    for n in range(200):
        clock.advance(seconds=20)
        order_upsert(tenant=tenant, data=order_data(f"o-{n}", f"c-{n}"), source="api")

    journeys_tick(tenant_id=tenant.pk)
    clock.advance(days=2)
    journeys_tick(tenant_id=tenant.pk)

    rows = enrollments(journey)
    seen = exposures(experiment)
    assert len(rows) == 200
    assert set(seen) == {r.customer_id for r in rows}
    assert Exposure.objects.for_tenant(tenant).filter(experiment=experiment).count() == 200
    placed = dict(Order.objects.for_tenant(tenant).values_list("pk", "placed_at"))
    for row in rows:
        exposure, arm = seen[row.customer_id], arm_of(experiment, row.customer_id)
        assert exposure.variant.key == arm
        assert exposure.exposed_at == row.trigger_at == placed[row.context["order_id"]]
        assert exposure.source == row.trigger_key
        expected = EnrollmentStatus.HELD_OUT if arm == "control" else EnrollmentStatus.COMPLETED
        assert row.status == expected
    control = {c for c, e in seen.items() if e.variant.key == "control"}
    treatment = set(seen) - control
    assert 60 <= len(control) <= 140
    assert not Message.objects.for_tenant(tenant).filter(customer_id__in=control).exists()
    assert subjects_by_customer(journey) == {
        c: ["thanks for Ada", "tips for Ada"] for c in treatment
    }
    # The control walked both steps without acting, on the record.
    held_runs = StepRun.objects.for_tenant(tenant).filter(outcome=StepOutcome.HELD_OUT)
    assert held_runs.count() == 2 * len(control)
    assert set(held_runs.values_list("enrollment__customer_id", flat=True)) == control

    # A second order from ten of each arm: the first exposure and the arm stand.
    first = {c: (e.pk, e.variant_id, e.exposed_at) for c, e in seen.items()}
    again = sorted(control)[:10] + sorted(treatment)[:10]
    emails = dict(Customer.objects.for_tenant(tenant).values_list("pk", "email"))
    clock.advance(days=1)
    for n, customer_id in enumerate(again):
        external = emails[customer_id].split("@")[0]
        order_upsert(tenant=tenant, data=order_data(f"again-{n}", external), source="api")
    journeys_tick(tenant_id=tenant.pk)

    after = exposures(experiment)
    assert {c: (e.pk, e.variant_id, e.exposed_at) for c, e in after.items()} == first
    second = [r for r in enrollments(journey) if r.trigger_at > START + timedelta(days=2)]
    assert sorted(r.customer_id for r in second) == sorted(again)
    for row in second:
        held = row.customer_id in control
        assert row.status == (EnrollmentStatus.HELD_OUT if held else EnrollmentStatus.ACTIVE)
    assert not Message.objects.for_tenant(tenant).filter(customer_id__in=control).exists()
    assert sorted(c for c, s in subjects_by_customer(journey).items() if len(s) == 3) == sorted(
        treatment & set(again)
    )


def test_a_trigger_read_again_by_the_scan_changes_no_exposure(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    experiment = launched(tenant, journey)
    journeys_tick(tenant_id=tenant.pk)
    people = customers(tenant, 20)
    track(tenant, people)
    clock.advance(minutes=1)
    journeys_tick(tenant_id=tenant.pk)
    first = {c: (e.pk, e.variant_id, e.exposed_at) for c, e in exposures(experiment).items()}

    clock.advance(minutes=1)  # within the scan's look-back: the same touchpoints again
    journeys_tick(tenant_id=tenant.pk)

    assert set(first) == {c.pk for c in people}
    assert {c: (e.pk, e.variant_id, e.exposed_at) for c, e in exposures(experiment).items()} == (
        first
    )
    assert len(enrollments(journey)) == 20


# --- 3. eligibility segment ---------------------------------------------------------


def test_customers_outside_the_eligibility_segment_go_through_the_journey_unexposed(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    beta = list_segment_create(tenant=tenant, name="Beta testers")
    people = customers(tenant, 60)
    inside, outside = people[:30], people[30:]
    for customer in inside:
        segment_member_add(tenant_id=tenant.pk, segment=beta, customer_id=customer.pk)
    experiment = launched(tenant, journey, eligibility_segment=beta)

    track(tenant, people)
    journeys_tick(tenant_id=tenant.pk)

    seen = exposures(experiment)
    assert set(seen) == {c.pk for c in inside}
    status = {r.customer_id: r.status for r in enrollments(journey)}
    sent = subjects_by_customer(journey)
    for customer in outside:
        assert status[customer.pk] == EnrollmentStatus.COMPLETED
        assert sent[customer.pk] == ["Welcome-hello for Ada"]
    control = {c for c, e in seen.items() if e.variant.key == "control"}
    assert control and control != {c.pk for c in inside}
    for customer in inside:
        held = customer.pk in control
        assert status[customer.pk] == (
            EnrollmentStatus.HELD_OUT if held else EnrollmentStatus.COMPLETED
        )
        assert (customer.pk in sent) is not held

    # Leaving the segment does not take an exposed customer out of their arm.
    leaver = next(c for c in inside if c.pk in control)
    segment_member_remove(tenant_id=tenant.pk, segment=beta, customer_id=leaver.pk)
    clock.advance(hours=1)
    track(tenant, [leaver])
    journeys_tick(tenant_id=tenant.pk)
    latest = enrollments(journey)[-1]
    assert (latest.customer_id, latest.status) == (leaver.pk, EnrollmentStatus.HELD_OUT)
    assert leaver.pk not in subjects_by_customer(journey)


# --- 4. before the launch -------------------------------------------------------------


def test_entries_from_before_the_launch_are_not_exposures(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    early, unread, after = customers(tenant, 20), customers(tenant, 20), customers(tenant, 20)
    track(tenant, early)
    journeys_tick(tenant_id=tenant.pk)
    clock.advance(minutes=10)
    track(tenant, unread)  # happened before the launch, read by the scan after it
    clock.advance(minutes=10)
    experiment = launched(tenant, journey)
    clock.advance(minutes=10)
    track(tenant, after)

    journeys_tick(tenant_id=tenant.pk)

    seen = exposures(experiment)
    assert set(seen) == {c.pk for c in after}
    assert all(e.exposed_at >= experiment.started_at for e in seen.values())
    before = {c.pk for c in early + unread}
    rows = [r for r in enrollments(journey) if r.customer_id in before]
    assert len(rows) == 40
    assert {r.status for r in rows} == {EnrollmentStatus.COMPLETED}
    assert before <= set(subjects_by_customer(journey))


# --- 5. step experiments ----------------------------------------------------------------


def _offer_journey(tenant) -> Journey:
    return signup_journey(
        tenant,
        name="Onboarding",
        steps=[
            {"name": "Hello", "email_template": template(tenant, "hello")},
            variant_step(tenant, "Offer", delay=2),
            {"name": "Follow-up", "delay": 5, "email_template": template(tenant, "follow-up")},
        ],
    )


def test_a_step_experiment_picks_each_customers_variant_and_exposes_them_when_it_sends(tenant):
    clock.set_now(START)
    journey = _offer_journey(tenant)
    experiment = launched(tenant, journey, name="Offer copy", kind="step", step_position=2, arms=AB)
    people = customers(tenant, 40)
    track(tenant, people)
    clock.advance(hours=1)
    track(tenant, people)  # every customer enters twice
    journeys_tick(tenant_id=tenant.pk)
    assert len(enrollments(journey)) == 80
    assert not Exposure.objects.for_tenant(tenant).exists()  # entering is not the treatment

    sent_at = clock.advance(days=2)
    journeys_tick(tenant_id=tenant.pk)

    runs = StepRun.objects.for_tenant(tenant).filter(step__position=2).select_related("message")
    assert runs.count() == 80
    for run in runs:
        arm = arm_of(experiment, run.message.customer_id)
        assert (run.variant, run.outcome) == (arm, StepOutcome.QUEUED)
        assert run.message.subject == f"Offer-{arm.lower()} for Ada"
        assert run.message.context["variant"] == arm
    seen = exposures(experiment)
    assert set(seen) == {c.pk for c in people}
    assert {c: e.variant.key for c, e in seen.items()} == {
        c.pk: arm_of(experiment, c.pk) for c in people
    }
    assert {e.exposed_at for e in seen.values()} == {sent_at}
    assert {e.variant.key for e in seen.values()} == {"A", "B"}

    # The same batch again, as after a crash before the enrollments moved on.
    first = {c: (e.pk, e.variant_id, e.exposed_at) for c, e in seen.items()}
    clock.advance(hours=1)
    Enrollment.objects.for_tenant(tenant).filter(journey=journey).update(
        position=2, next_run_at=clock.now() - timedelta(minutes=5)
    )
    assert enrollments_dispatch(tenant_id=tenant.pk) == 80

    after = exposures(experiment)
    assert {c: (e.pk, e.variant_id, e.exposed_at) for c, e in after.items()} == first
    assert Message.objects.for_tenant(tenant).count() == 160
    assert StepRun.objects.for_tenant(tenant).count() == 160
    assert {r.position for r in enrollments(journey)} == {3}


def test_a_channel_variant_sends_its_customers_an_sms(tenant):
    clock.set_now(START)
    sms = template(tenant, "offer-sms", channel="sms")
    journey = signup_journey(
        tenant, steps=[variant_step(tenant, "Offer", b={"channel": "sms", "sms_template": sms})]
    )
    experiment = launched(
        tenant, journey, name="Email or SMS", kind="step", step_position=1, arms=AB
    )
    people = [
        CustomerFactory(tenant=tenant, first_name="Ada", phone=f"+4915100000{n:03d}")
        for n in range(40)
    ]
    track(tenant, people)

    journeys_tick(tenant_id=tenant.pk)

    messages = {m.customer_id: m for m in sends(journey)}
    assert set(messages) == {c.pk for c in people}
    for customer in people:
        arm, message = arm_of(experiment, customer.pk), messages[customer.pk]
        if arm == "B":
            assert (message.channel, message.template_id, message.to_address) == (
                "sms",
                sms.pk,
                customer.phone,
            )
        else:
            assert (message.channel, message.subject) == ("email", "Offer-a for Ada")
    assert {m.channel for m in messages.values()} == {"email", "sms"}
    assert set(exposures(experiment)) == {c.pk for c in people}


def test_a_send_time_variant_sends_inside_its_window_in_the_customers_timezone(tenant):
    clock.set_now(START)  # 10:00 in Berlin, 05:00 in New York
    evening = {"window_start": time(18, 0), "window_end": time(20, 0)}
    journey = signup_journey(tenant, steps=[variant_step(tenant, "Offer", b=evening)])
    experiment = launched(tenant, journey, name="Send time", kind="step", step_position=1, arms=AB)
    people = customers(tenant, 20, timezone="Europe/Berlin")
    people += customers(tenant, 20, timezone="America/New_York")
    track(tenant, people)

    journeys_tick(tenant_id=tenant.pk)
    run_for(tenant, days=1)

    messages = {m.customer_id: m for m in sends(journey)}
    seen = exposures(experiment)
    assert set(messages) == set(seen) == {c.pk for c in people}
    arms = Counter()
    for customer in people:
        arm, message = arm_of(experiment, customer.pk), messages[customer.pk]
        arms[(arm, customer.timezone)] += 1
        local = message.created_at.astimezone(ZoneInfo(customer.timezone))
        if arm == "B":
            assert message.subject == "Offer-b for Ada"
            assert local.date() == START.astimezone(local.tzinfo).date()
            assert time(18, 0) <= local.time() <= time(20, 0)
        else:
            assert (message.subject, message.created_at) == ("Offer-a for Ada", START)
        assert seen[customer.pk].exposed_at == message.created_at
    assert len(arms) == 4  # both arms in both timezones


@pytest.mark.parametrize(
    ("b", "field", "problem"),
    [
        ({"channel": "sms"}, "sms_template", "Choose the template to send."),
        ({"channel": "fax"}, "channel", "Unknown channel."),
        ({"window_start": time(18, 0)}, "window_start", "Give both ends"),
        ({"window_start": time(20, 0), "window_end": time(18, 0)}, "window_start", "Give both"),
    ],
)
def test_a_variants_channel_and_send_window_are_checked(tenant, b, field, problem):
    with pytest.raises(InvalidInput) as err:
        signup_journey(tenant, steps=[variant_step(tenant, "Offer", b=b)])

    [message] = err.value.fields[f"steps.1.variants.2.{field}"]
    assert message.startswith(problem)
    assert not Journey.objects.for_tenant(tenant).filter(name="Welcome").exists()


# --- 6. lifecycle -------------------------------------------------------------------------


def test_launch_refuses_a_journey_that_is_not_active(tenant):
    clock.set_now(START)
    draft = signup_journey(tenant, name="Draft", status="draft")
    paused = signup_journey(tenant, name="Paused")
    journey_set_status(journey=paused, status=JourneyStatus.PAUSED)

    for journey in (draft, paused):
        experiment = create(tenant, journey, name=f"Holdout on {journey.name}")
        with pytest.raises(InvalidInput) as err:
            experiment_launch(experiment=experiment)
        assert err.value.message == (
            "Activate the journey first: a paused or draft journey exposes nobody."
        )
        experiment.refresh_from_db()
        assert (experiment.status, experiment.started_at) == (ExperimentStatus.DRAFT, None)


def test_a_journey_runs_one_holdout_at_a_time(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    first = launched(tenant, journey, name="First")
    second = create(tenant, journey, name="Second")

    with pytest.raises(InvalidInput) as err:
        experiment_launch(experiment=second)
    assert err.value.fields == {"journey": ["'First' is already running there; stop it first."]}
    with pytest.raises(Conflict) as err:
        experiment_launch(experiment=first)
    assert err.value.message == "A running experiment cannot become running."

    experiment_stop(experiment=first)
    assert experiment_launch(experiment=second).status == ExperimentStatus.RUNNING


def test_a_step_experiment_tests_the_steps_own_variants(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant, steps=[variant_step(tenant, "Offer")])

    with pytest.raises(InvalidInput) as err:
        create(tenant, journey, kind="step", step_position=1, arms=[*AB[:1], Arm("C", 50)])
    assert err.value.fields == {"variants": ["The step's variants are A, B; C is not one of them."]}
    assert not Experiment.objects.for_tenant(tenant).exists()

    # Valid when created; the journey changed before the launch.
    experiment = create(tenant, journey, kind="step", step_position=1, arms=AB)
    step = variant_step(tenant, "Offer v2")
    step["variants"][1]["key"] = "C"
    journey_update(
        journey=journey, version={"trigger": "touchpoint", "value": "signed.up"}, steps=[step]
    )
    with pytest.raises(InvalidInput) as err:
        experiment_launch(experiment=experiment)
    assert err.value.message == "The step's variants are A, C; B is not one of them."


@pytest.mark.parametrize(
    ("value", "hours", "problem"),
    [
        (
            "signed.up",
            24,
            "A check-in journey starts from a milestone (onboarding.completed, "
            "first_value.reached, feature.activated): set its trigger to that tracked event.",
        ),
        (
            "onboarding.completed",
            49,
            "The check-in (step 1) must come within 48 hours of the milestone.",
        ),
    ],
)
def test_a_checkin_needs_a_milestone_trigger_and_a_check_in_within_48_hours(
    tenant, value, hours, problem
):
    clock.set_now(START)
    step = {"name": "How is it going?", "delay": hours, "delay_unit": "hours"}
    journey = signup_journey(
        tenant, value=value, steps=[{**step, "email_template": template(tenant, "check-in")}]
    )

    with pytest.raises(InvalidInput) as err:
        create(tenant, journey, name="Check-in", kind="checkin")
    assert err.value.fields == {"journey": [problem]}


def test_a_checkin_after_a_milestone_holds_out_its_control(tenant):
    clock.set_now(START)
    journey = signup_journey(
        tenant,
        value="onboarding.completed",
        steps=[
            {"name": "Tip", "email_template": template(tenant, "tip")},
            {
                "name": "Check in",
                "delay": 48,
                "delay_unit": "hours",
                "email_template": template(tenant, "check-in"),
            },
        ],
    )
    experiment = launched(tenant, journey, name="Check-in", kind="checkin")
    people = customers(tenant, 30)
    track(tenant, people, kind="onboarding.completed")
    track(tenant, people, kind="signed.up")  # not a milestone of this journey

    journeys_tick(tenant_id=tenant.pk)

    seen = exposures(experiment)
    assert set(seen) == {c.pk for c in people}
    rows = {r.customer_id: r for r in enrollments(journey)}
    assert all(seen[c].exposed_at == rows[c].trigger_at for c in seen)
    control = {c for c, e in seen.items() if e.variant.key == "control"}
    assert {c for c, r in rows.items() if r.status == EnrollmentStatus.HELD_OUT} == control
    assert set(subjects_by_customer(journey)) == set(seen) - control


def test_after_the_stop_the_journey_treats_everyone_again(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    experiment = launched(tenant, journey)
    during, later = customers(tenant, 30), customers(tenant, 30)
    track(tenant, during)
    journeys_tick(tenant_id=tenant.pk)
    control = {c for c, e in exposures(experiment).items() if e.variant.key == "control"}
    assert control

    stopped_at = clock.advance(hours=1)
    stopped = experiment_stop(experiment=experiment)
    clock.advance(hours=1)
    returning = [c for c in during if c.pk in control]
    track(tenant, later + returning)
    journeys_tick(tenant_id=tenant.pk)

    assert (stopped.status, stopped.stopped_at) == (ExperimentStatus.STOPPED, stopped_at)
    assert set(exposures(experiment)) == {c.pk for c in during}
    after = [r for r in enrollments(journey) if r.trigger_at > stopped_at]
    assert sorted(r.customer_id for r in after) == sorted(c.pk for c in later + returning)
    assert {r.status for r in after} == {EnrollmentStatus.COMPLETED}
    sent = subjects_by_customer(journey)
    assert all(sent[c.pk] == ["Welcome-hello for Ada"] for c in later + returning)


@pytest.mark.parametrize(
    "b",
    [
        {"window_start": time(18, 0), "window_end": time(20, 0)},
        {"channel": "sms"},
    ],
)
def test_shipping_a_step_winner_makes_it_the_steps_only_content(tenant, b):
    clock.set_now(START)
    sms = template(tenant, "offer-sms", channel="sms")
    journey = signup_journey(
        tenant, steps=[variant_step(tenant, "Offer", b={**b, "sms_template": sms})]
    )
    old = journey.current_version
    experiment = launched(tenant, journey, name="Offer", kind="step", step_position=1, arms=AB)
    winner = Variant.objects.for_tenant(tenant).get(experiment=experiment, key="B")
    chosen = old.steps.get().variants.get(key="B")

    concluded = experiment_conclude(
        experiment=experiment, decision=Decision.SHIP, winner=winner, promote=True
    )

    journey = Journey.objects.for_tenant(tenant).get(pk=journey.pk)
    version = journey.current_version
    assert (version.number, journey.status) == (2, JourneyStatus.ACTIVE)
    step = version.steps.get()
    assert not step.variants.exists()
    assert (step.email_template, step.sms_template) == (chosen.email_template, sms)
    assert step.action == (b.get("channel") or "email")
    assert (step.window_start, step.window_end) == (
        b.get("window_start"),
        b.get("window_end"),
    )
    assert old.steps.get().variants.count() == 2  # in-flight enrollments keep theirs
    assert (concluded.status, concluded.decision, concluded.winner) == (
        ExperimentStatus.CONCLUDED,
        Decision.SHIP,
        winner,
    )
    assert concluded.promoted_at == concluded.concluded_at == concluded.stopped_at == START


def test_a_conclusion_names_a_decision_and_a_winner_of_its_own(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    draft = create(tenant, journey, name="Draft")
    experiment = launched(tenant, journey, name="Running")
    stranger = Variant.objects.for_tenant(tenant).get(experiment=draft, key="treatment")

    with pytest.raises(Conflict) as err:
        experiment_conclude(experiment=draft, decision=Decision.INCONCLUSIVE)
    assert err.value.message == "A draft experiment cannot become concluded."
    for decision, winner, problem in [
        ("", None, "Choose a decision."),
        (Decision.SHIP, None, "Say which variant ships."),
        (Decision.SHIP, stranger, "The winner must be one of this experiment's variants."),
    ]:
        with pytest.raises(InvalidInput) as err:
            experiment_conclude(experiment=experiment, decision=decision, winner=winner)
        assert err.value.message == problem
    experiment.refresh_from_db()
    assert (experiment.status, experiment.decision) == (ExperimentStatus.RUNNING, "")


def test_keeping_the_control_of_a_holdout_pauses_the_journey(tenant):
    clock.set_now(START)
    journey = signup_journey(tenant)
    experiment = launched(tenant, journey)

    concluded = experiment_conclude(
        experiment=experiment, decision=Decision.KEEP_CONTROL, promote=True
    )

    journey.refresh_from_db()
    assert journey.status == JourneyStatus.PAUSED
    assert (concluded.winner.key, concluded.decision) == ("control", Decision.KEEP_CONTROL)
    track(tenant, customers(tenant, 5))
    journeys_tick(tenant_id=tenant.pk)
    assert enrollments(journey) == []


# --- 7. tenants ---------------------------------------------------------------------------


def test_each_tenants_experiment_exposes_only_its_own_customers(tenant, other_tenant):
    clock.set_now(START)
    setup = {}
    for store in (tenant, other_tenant):
        journey = signup_journey(store)
        experiment = launched(store, journey)
        people = customers(store, 20)
        track(store, people)
        setup[store.pk] = (experiment, {c.pk for c in people})

    journeys_tick(tenant_id=tenant.pk)
    journeys_tick(tenant_id=other_tenant.pk)

    for store in (tenant, other_tenant):
        experiment, people = setup[store.pk]
        rows = Exposure.objects.for_tenant(store)
        assert set(rows.values_list("experiment_id", "customer_id")) == {
            (experiment.pk, c) for c in people
        }
        # Platform-wide on purpose: nothing of this experiment in another tenant.
        anywhere = Exposure.objects.unscoped().filter(experiment=experiment)
        assert set(anywhere.values_list("tenant_id", flat=True)) == {store.pk}
        assert all(e.variant.experiment_id == experiment.pk for e in rows.select_related("variant"))


def test_an_experiment_cannot_be_put_on_another_tenants_journey(tenant, other_tenant):
    clock.set_now(START)
    theirs = signup_journey(other_tenant)

    with pytest.raises(InvalidInput) as err:
        create(tenant, theirs)

    assert err.value.fields == {"journey": ["Choose one of this store's journeys."]}
    assert not Experiment.objects.for_tenant(tenant).exists()
    assert not Experiment.objects.for_tenant(other_tenant).exists()
