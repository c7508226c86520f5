"""Experiment results against a hand-computed fixture, the report command, and
tenant isolation of what is counted."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from commerce.models import OrderStatus, Touchpoint
from experiments.models import ExperimentKind, ExperimentStatus, Exposure, Metric
from experiments.results import experiment_results
from experiments.services import experiment_create
from experiments.services.lifecycle import Arm
from journeys.models import Journey
from retention import clock
from tests.factories import CustomerFactory, make_order

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=120)
DAY = timedelta(days=1)


def _experiment(tenant, name="Welcome holdout"):
    journey = Journey.objects.for_tenant(tenant).get(key="welcome-series")
    experiment = experiment_create(
        tenant=tenant,
        name=name,
        kind=ExperimentKind.HOLDOUT,
        journey=journey,
        hypothesis="The welcome series brings first-time buyers back.",
        arms=[Arm("control", 50, True, "No welcome"), Arm("treatment", 50)],
        primary_metric=Metric.RETENTION_30,
        conversion_days=7,
        horizon_days=90,
        exposure_days=14,
    )
    experiment.status = ExperimentStatus.RUNNING
    experiment.started_at = T0 - DAY
    experiment.save()
    return experiment


def _expose(experiment, key, at=T0, **customer):
    person = CustomerFactory(tenant=experiment.tenant, **customer)
    Exposure.objects.create(
        tenant=experiment.tenant,
        experiment=experiment,
        variant=experiment.variants.get(key=key),
        customer=person,
        exposed_at=at,
    )
    return person


@pytest.fixture
def fixture(tenant, other_tenant):
    """Control: orders at +3 d, +20 d, +45 d and none (one clicked a message).
    Treatment: +1 d and +10 d; +1 d; +100 d; none; and one exposed 3 days
    before the as-of date (still maturing). Noise that must not count: an
    order before the exposure, a cancelled order, the other tenant's orders."""
    experiment = _experiment(tenant)
    c = [_expose(experiment, "control") for _ in range(4)]
    make_order(c[0], T0 + 3 * DAY, "10.00")
    make_order(c[1], T0 + 20 * DAY, "20.00")
    make_order(c[2], T0 + 45 * DAY, "30.00")
    make_order(c[3], T0 - 5 * DAY, "99.00")  # before exposure
    make_order(c[3], T0 + 2 * DAY, "99.00", status=OrderStatus.CANCELLED)
    Touchpoint.objects.create(
        tenant=tenant,
        customer=c[0],
        source="messaging",
        category="marketing",
        kind="message.clicked",
        occurred_at=T0 + 2 * DAY,
    )
    t = [_expose(experiment, "treatment") for _ in range(4)]
    make_order(t[0], T0 + 1 * DAY, "15.00")
    make_order(t[0], T0 + 10 * DAY, "15.00")
    make_order(t[1], T0 + 1 * DAY, "40.00")
    make_order(t[2], T0 + 100 * DAY, "70.00")
    late = _expose(experiment, "treatment", at=AS_OF - 3 * DAY)
    make_order(late, AS_OF - 2 * DAY, "5.00")
    # The other tenant: an experiment of the same name, its own customers.
    theirs = _experiment(other_tenant)
    for _ in range(3):
        person = _expose(theirs, "treatment")
        make_order(person, T0 + DAY, "500.00")
    return experiment


def _metric(report, key):
    return next(m for m in report["metrics"] if m["metric"] == key)


def _rows(metric):
    return {row["key"]: row for row in metric["variants"]}


def test_each_metric_matches_the_hand_count(fixture):
    report = experiment_results(fixture, as_of=AS_OF)
    expected = {
        # metric: (control successes/value, treatment)
        Metric.CONVERSION: (1, 2),
        Metric.RETENTION_30: (2, 2),
        Metric.RETENTION_60: (3, 2),
        Metric.RETENTION_90: (3, 2),
        Metric.RESPONSE_RATE: (1, 0),
    }
    for key, (control, treatment) in expected.items():
        rows = _rows(_metric(report, key))
        assert (rows["control"]["successes"], rows["control"]["n"]) == (control, 4), key
        assert (rows["treatment"]["successes"], rows["treatment"]["n"]) == (treatment, 4), key
        assert rows["treatment"]["maturing"] == 1, key
        assert rows["control"]["maturing"] == 0
    repeat = _rows(_metric(report, Metric.REPEAT_PURCHASES))
    assert repeat["control"]["value"] == pytest.approx(3 / 4)
    assert repeat["treatment"]["value"] == pytest.approx(3 / 4)  # 2 + 1 + 0 (day 100) + 0
    revenue = _rows(_metric(report, Metric.REVENUE))
    assert revenue["control"]["value"] == pytest.approx(60 / 4)
    assert revenue["treatment"]["value"] == pytest.approx(70 / 4)
    assert {v["key"]: v["exposed"] for v in report["variants"]} == {"control": 4, "treatment": 5}


def test_lift_and_intervals_are_reported_per_treatment(fixture):
    report = experiment_results(fixture, as_of=AS_OF)
    conversion = _metric(report, Metric.CONVERSION)
    (lift,) = conversion["lifts"]
    assert lift["key"] == "treatment"
    assert lift["absolute"] == pytest.approx(0.25)
    assert lift["relative"] == pytest.approx(1.0)
    assert lift["absolute_low"] < 0.25 < lift["absolute_high"]
    assert 0 < lift["p_value"] <= 1
    assert not lift["significant"]  # four customers a side prove nothing
    for row in conversion["variants"]:
        assert row["low"] <= row["value"] <= row["high"]


def test_early_reads_carry_a_warning_and_a_provisional_verdict(fixture):
    early = experiment_results(fixture, as_of=T0 + 10 * DAY)
    assert early["peeking"]["early"]
    assert "planned end" in early["peeking"]["message"]
    assert early["verdict"].startswith("Provisional")
    # At 10 days nobody's 30-day window has closed: all maturing, none counted.
    rows = _rows(early["primary"])
    assert rows["control"]["n"] == 0 and rows["control"]["maturing"] == 4


def test_chart_is_cumulative_conversion_with_bands(fixture):
    chart = experiment_results(fixture, as_of=AS_OF)["chart"]
    assert chart["days"] and len(chart["series"]) == 2
    control = next(s for s in chart["series"] if s["key"] == "control")
    final = control["points"][-1]
    assert (final["n"], final["rate"]) == (4, 0.25)
    counts = [p["n"] for p in control["points"]]
    assert counts == sorted(counts)  # cumulative
    assert all(p["low"] <= p["rate"] <= p["high"] for p in control["points"] if p["n"])


def test_report_command_prints_the_page_numbers(fixture):
    clock.set_now(AS_OF)
    out = StringIO()
    call_command("experiment_report", "--tenant", "alpha", "Welcome holdout", stdout=out)
    text = out.getvalue()
    assert "Retention at 30 days" in text
    assert "Sample ratio" in text and "Verdict:" in text
    assert "treatment vs control" in text
    data = StringIO()
    call_command("experiment_report", "--tenant", "alpha", "Welcome holdout", "--json", stdout=data)
    report = json.loads(data.getvalue())
    assert report == experiment_results(fixture, as_of=AS_OF)


def test_report_command_names_what_is_missing(fixture):
    with pytest.raises(CommandError, match="Welcome holdout"):
        call_command("experiment_report", "--tenant", "alpha", "Nope")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("experiment_report", "--tenant", "nope", "Welcome holdout")
