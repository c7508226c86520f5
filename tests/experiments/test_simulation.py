"""The whole experiment path checked against a known truth.

``simulate --experiment-effect NAME=E`` makes customers exposed to a treatment
arm place repeat orders at (1 + E) times the untreated rate. End to end (real
ingestion, trigger scan, held-out enrollments, exposures, the metric SQL and
the statistics) a large injected effect must come out as a clear win whose
interval covers it, and holdout customers must never get the journey.

Whether the statistics keep their promises over many runs (the interval
covers +10% about 95% of the time; with no effect about 5% of runs show a
"significant" difference) is checked on the simulator's own outcome model
(``journeys.simulation.effects.inject`` with ``experiments.assignment``),
hundreds of seeds, without the platform around it: one platform run takes
tens of seconds.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from commerce.models import Customer
from experiments import stats
from experiments.assignment import variant_for
from experiments.models import ExperimentKind, Exposure, Metric
from experiments.services import experiment_create, experiment_launch
from experiments.services.lifecycle import Arm
from journeys.models import Enrollment, EnrollmentStatus, Journey, JourneyStatus
from journeys.services.definitions import journey_create
from journeys.simulation.effects import inject
from messaging.models import Message, Template
from tests.factories import make_order

NAME = "Thank-you holdout"


def _store(tenant) -> Journey:
    """4,000 customers of whom 300 bought a month ago: the simulated store's
    repeat orders (a share of all customers) fall on few buyers, so each
    exposed customer orders about once in the 14-day horizon. Only the journey
    under test runs (the shipped ones are paused to keep the run short)."""
    now = datetime.now(UTC)
    Customer.objects.bulk_create(
        [Customer(tenant=tenant, email=f"c{i}@shop.example") for i in range(4000)],
        batch_size=1000,
    )
    for customer in Customer.objects.for_tenant(tenant).order_by("pk")[:300]:
        make_order(customer, now - timedelta(days=30))
    Journey.objects.for_tenant(tenant).update(status=JourneyStatus.PAUSED)
    thanks = Template.objects.create(
        tenant=tenant,
        name="Thanks",
        channel="email",
        category="marketing",
        subject="Thanks",
        text="Thanks for your order, {{ customer.first_name }}.",
    )
    return journey_create(
        tenant=tenant,
        name="Thank you",
        status=JourneyStatus.ACTIVE,
        version={"trigger": "order_placed"},
        steps=[{"name": "Thanks", "email_template": thanks}],
    )


def _launch(tenant, journey):
    experiment = experiment_create(
        tenant=tenant,
        name=NAME,
        kind=ExperimentKind.HOLDOUT,
        journey=journey,
        hypothesis="Thanking buyers brings them back sooner.",
        arms=[Arm("control", 50, True), Arm("treatment", 50)],
        primary_metric=Metric.REPEAT_PURCHASES,
        horizon_days=14,
        exposure_days=14,
    )
    return experiment_launch(experiment=experiment)


def test_a_known_effect_comes_out_of_the_whole_platform(tenant):
    journey = _store(tenant)
    experiment = _launch(tenant, journey)
    out = StringIO()
    call_command(
        "simulate",
        "--tenant",
        tenant.slug,
        "--days",
        "28",
        "--seed",
        "3",
        "--experiment-effect",
        f"{NAME}=1.0",
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue())["experiments"][NAME]
    assert report["injected_effect"] == 1.0
    results = report["results"]
    (lift,) = results["primary"]["lifts"]
    rows = {row["key"]: row for row in results["primary"]["variants"]}
    assert min(rows["control"]["n"], rows["treatment"]["n"]) > 100
    assert lift["relative_low"] < 1.0 < lift["relative_high"]  # covers the truth
    assert lift["significant"] and lift["p_value"] < 0.001 and lift["relative_low"] > 0.3
    assert not results["srm"]["mismatch"]
    # Holdout customers never received the journey, however often they ordered.
    control = set(
        Exposure.objects.for_tenant(tenant)
        .filter(experiment=experiment, variant__is_control=True)
        .values_list("customer_id", flat=True)
    )
    assert control
    assert (
        not Message.objects.for_tenant(tenant)
        .filter(customer_id__in=control, context__journey_id=journey.pk)
        .exists()
    )
    held = Enrollment.objects.for_tenant(tenant).filter(journey=journey, customer_id__in=control)
    assert held.exists() and not held.exclude(status=EnrollmentStatus.HELD_OUT).exists()
    treated = Exposure.objects.for_tenant(tenant).filter(
        experiment=experiment, variant__is_control=False
    )
    assert (
        Message.objects.for_tenant(tenant)
        .filter(customer_id__in=treated.values("customer_id"), context__journey_id=journey.pk)
        .exists()
    )


def test_simulate_refuses_a_bad_effect(tenant):
    with pytest.raises(CommandError, match="NAME=EFFECT"):
        call_command("simulate", "--tenant", tenant.slug, "--days", "1", "--experiment-effect", "x")
    with pytest.raises(CommandError, match="No experiment called 'Nope'"):
        call_command(
            "simulate", "--tenant", tenant.slug, "--days", "1", "--experiment-effect", "Nope=0.1"
        )


def test_simulate_refuses_an_experiment_that_is_not_running(tenant):
    journey = Journey.objects.for_tenant(tenant).get(key="welcome-series")
    experiment_create(
        tenant=tenant,
        name="Draft",
        kind=ExperimentKind.HOLDOUT,
        journey=journey,
        hypothesis="h",
        arms=[Arm("control", 50, True), Arm("treatment", 50)],
    )
    with pytest.raises(CommandError, match="launch it first"):
        call_command(
            "simulate", "--tenant", tenant.slug, "--days", "1", "--experiment-effect", "Draft=0.1"
        )


# --- the statistics over many seeds, on the simulator's outcome model ------------------------


def _one_run(seed: int, effect: float, customers: int, days: int, daily_rate: float):
    """``customers`` exposed at once, split 50/50 by the experiment hash; each
    day ``daily_rate`` of them place a repeat order (drawn uniformly, as the
    store does) and every draw that lands on a treated customer goes through
    ``inject``. Returns the per-customer repeat orders of control and treatment."""
    rng = random.Random(f"{seed}:base")
    effect_rng = random.Random(f"{seed}:effect")
    arms = (("control", 50), ("treatment", 50))
    treated = [c for c in range(customers) if variant_for(1, seed, c, arms) == "treatment"]
    is_treated = np.zeros(customers, dtype=bool)
    is_treated[treated] = True
    orders = np.zeros(customers)
    for _ in range(days):
        for _ in range(int(customers * daily_rate)):
            who = rng.randrange(customers)
            if not is_treated[who]:
                orders[who] += 1
                continue
            keep, extra = inject(effect_rng, effect, treated)
            orders[who] += keep
            for other in extra:
                orders[other] += 1
    return orders[~is_treated], orders[is_treated]


def _lift(control, treatment):
    return stats.mean_lift(stats.mean_from_values(control), stats.mean_from_values(treatment))


def test_with_no_effect_about_five_percent_of_seeds_show_a_difference():
    runs = 400
    positives = sum(
        _lift(*_one_run(seed, 0.0, 1000, 10, 0.05)).p_value < 0.05 for seed in range(runs)
    )
    # 5% of 400 is 20; a binomial 99.9% band is about 8-35.
    assert 8 <= positives <= 35, positives


def test_a_ten_percent_effect_is_covered_and_found():
    lifts = [_lift(*_one_run(seed, 0.10, 4000, 30, 0.05)) for seed in range(60)]
    covered = sum(lift.relative_low <= 0.10 <= lift.relative_high for lift in lifts)
    found = sum(lift.p_value < 0.05 and lift.relative > 0 for lift in lifts)
    assert covered >= 52, covered  # ~95% of 60, with binomial slack
    assert found >= 54, found  # 2,000 customers an arm, 1.5 orders each: power ~99%
    one = lifts[0]
    assert one.relative_low <= 0.10 <= one.relative_high and one.p_value < 0.01
