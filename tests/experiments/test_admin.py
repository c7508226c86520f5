"""Experiments in the admin: design with the sample size, launch, stop,
conclude, the results page with its chart, roles and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from experiments.models import Experiment, ExperimentKind, ExperimentStatus, Exposure, Metric
from experiments.services import experiment_create, experiment_launch
from experiments.services.lifecycle import Arm
from journeys.models import Journey
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    clock.set_now(NOW)


def _welcome(tenant) -> Journey:
    return Journey.objects.for_tenant(tenant).get(key="welcome-series")


def _form(journey, **changes) -> dict:
    data = {
        "name": "Welcome holdout",
        "kind": ExperimentKind.HOLDOUT,
        "hypothesis": "The welcome series brings first-time buyers back.",
        "journey": journey.pk,
        "step_position": "",
        "eligibility_segment": "",
        "primary_metric": Metric.RETENTION_90,
        "conversion_days": 7,
        "horizon_days": 90,
        "exposure_days": 28,
        "baseline_rate": 0.25,
        "minimum_effect": 0.05,
        "power": 0.8,
        "alpha": 0.05,
        "variants-TOTAL_FORMS": 2,
        "variants-INITIAL_FORMS": 0,
        "variants-MIN_NUM_FORMS": 0,
        "variants-MAX_NUM_FORMS": 1000,
        "variants-0-key": "control",
        "variants-0-name": "No welcome",
        "variants-0-weight": 50,
        "variants-0-is_control": "on",
        "variants-1-key": "treatment",
        "variants-1-name": "Welcome",
        "variants-1-weight": 50,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _made(tenant, name="Welcome holdout") -> Experiment:
    return experiment_create(
        tenant=tenant,
        name=name,
        kind=ExperimentKind.HOLDOUT,
        journey=_welcome(tenant),
        hypothesis="Welcome brings them back.",
        arms=[Arm("control", 50, True), Arm("treatment", 50)],
    )


def test_a_marketer_designs_an_experiment_in_the_admin(tenant, marketer_client):
    url = reverse("admin:experiments_experiment_add")
    assert marketer_client.get(url).status_code == 200
    response = marketer_client.post(url, _form(_welcome(tenant)))
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.for_tenant(tenant).get(name="Welcome holdout")
    assert experiment.status == ExperimentStatus.DRAFT
    assert sorted(experiment.variants.values_list("key", "is_control")) == [
        ("control", True),
        ("treatment", False),
    ]
    page = marketer_client.get(reverse("admin:experiments_experiment_change", args=[experiment.pk]))
    text = page.content.decode()
    # The power calculation, before launch: 5% relative on 25% at 80% power.
    assert "19,145 mature customers in the control" in text
    assert "Launch" in text


def test_a_design_without_a_control_is_refused_with_the_reason(tenant, marketer_client):
    data = _form(_welcome(tenant), **{"variants-0-is_control": None})
    response = marketer_client.post(reverse("admin:experiments_experiment_add"), data)
    assert response.status_code == 200
    assert "Mark exactly one variant as the control." in response.content.decode()
    assert not Experiment.objects.for_tenant(tenant).exists()


def test_launch_stop_and_conclude_are_confirmed_posts(tenant, marketer_client):
    experiment = _made(tenant)
    launch = reverse("admin:experiments_experiment_launch", args=[experiment.pk])
    assert "Yes, launch" in marketer_client.get(launch).content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT  # a GET changes nothing
    marketer_client.post(launch, {"confirm": "yes"})
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING and experiment.started_at == NOW
    # The design is frozen once running.
    change = marketer_client.get(
        reverse("admin:experiments_experiment_change", args=[experiment.pk])
    )
    assert 'name="hypothesis"' not in change.content.decode()
    marketer_client.post(
        reverse("admin:experiments_experiment_stop", args=[experiment.pk]), {"confirm": "yes"}
    )
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
    conclude = reverse("admin:experiments_experiment_conclude", args=[experiment.pk])
    response = marketer_client.post(conclude, {"decision": "ship", "note": "x"})
    assert "Say which variant ships." in response.content.decode()
    treatment = experiment.variants.get(key="treatment")
    response = marketer_client.post(
        conclude, {"decision": "ship", "winner": treatment.pk, "note": "Clear win."}
    )
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.CONCLUDED
    assert (experiment.decision, experiment.winner_id) == ("ship", treatment.pk)


def test_launching_on_a_paused_journey_says_why(tenant, marketer_client):
    experiment = _made(tenant)
    Journey.objects.for_tenant(tenant).filter(pk=experiment.journey_id).update(status="paused")
    response = marketer_client.post(
        reverse("admin:experiments_experiment_launch", args=[experiment.pk]),
        {"confirm": "yes"},
        follow=True,
    )
    assert "Activate the journey first" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_results_page_draws_the_chart_from_our_static_files(tenant, viewer_client):
    experiment = experiment_launch(experiment=_made(tenant))
    for index in range(6):
        person = CustomerFactory(tenant=tenant)
        variant = experiment.variants.get(key="control" if index % 2 else "treatment")
        Exposure.objects.create(
            tenant=tenant,
            experiment=experiment,
            variant=variant,
            customer=person,
            exposed_at=NOW - timedelta(days=30),
        )
        if index < 3:
            make_order(person, NOW - timedelta(days=28))
    response = viewer_client.get(
        reverse("admin:experiments_experiment_results", args=[experiment.pk])
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "vendor/chartjs/chart.umd.min.js" in text and "experiments/results.js" in text
    assert 'id="chart-data"' in text and 'id="conversion-chart"' in text
    assert "Sample ratio" in text or "sample ratio" in text
    assert "Too early to decide" in text  # read long before the planned end
    assert finders.find("vendor/chartjs/chart.umd.min.js")
    assert finders.find("experiments/results.js")


def test_a_viewer_reads_results_but_cannot_launch(tenant, viewer_client):
    experiment = _made(tenant)
    launch = reverse("admin:experiments_experiment_launch", args=[experiment.pk])
    assert viewer_client.post(launch, {"confirm": "yes"}).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_another_stores_experiment_is_not_found(tenant, other_tenant, marketer_client):
    theirs = _made(other_tenant, name="Bravo secret plan")
    for name in ("results", "launch", "stop", "conclude", "change"):
        url = reverse(f"admin:experiments_experiment_{name}", args=[theirs.pk])
        response = marketer_client.get(url)
        assert response.status_code == 404, name
        assert "Bravo secret plan" not in response.content.decode()
    listing = marketer_client.get(reverse("admin:experiments_experiment_changelist"))
    assert "Bravo secret plan" not in listing.content.decode()
    # Their journey is not offered in our form either.
    form = marketer_client.get(reverse("admin:experiments_experiment_add")).content.decode()
    assert f'value="{_welcome(other_tenant).pk}"' not in form


def test_an_agent_cannot_design_experiments(tenant):
    agent = login_as(tenant, Role.AGENT)
    response = agent.post(reverse("admin:experiments_experiment_add"), _form(_welcome(tenant)))
    assert response.status_code == 403


def test_the_demo_experiment_is_launched_once(tenant):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("demo_experiments", "--tenant", tenant.slug, stdout=out)
    call_command("demo_experiments", "--tenant", tenant.slug, stdout=out)
    (experiment,) = Experiment.objects.for_tenant(tenant)
    assert experiment.status == ExperimentStatus.RUNNING
    assert "exists already" in out.getvalue()
