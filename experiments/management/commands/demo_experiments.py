"""A running experiment for the demo store (``make demo`` runs it before the
simulated days, so the simulation exposes customers to it): a holdout of the
welcome series, one first-time buyer in five kept out."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from experiments.models import Experiment, ExperimentKind, Metric
from experiments.services import experiment_create, experiment_launch
from experiments.services.lifecycle import Arm
from journeys.models import Journey, JourneyStatus
from retention.selectors import tenant_by_slug

NAME = "Welcome series holdout"


class Command(BaseCommand):
    help = "Create and launch the demo's welcome-series holdout (once)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        if Experiment.objects.for_tenant(tenant).filter(name=NAME).exists():
            self.stdout.write(f"{NAME!r} exists already.")
            return
        journey = Journey.objects.for_tenant(tenant).filter(key="welcome-series").first()
        if journey is None or journey.status != JourneyStatus.ACTIVE:
            raise CommandError(
                "The welcome series is not installed and active: run install_journeys."
            )
        experiment = experiment_create(
            tenant=tenant,
            name=NAME,
            kind=ExperimentKind.HOLDOUT,
            journey=journey,
            hypothesis="The day-0/3/7/14 welcome series makes first-time buyers order again "
            "within 90 days more often than no welcome at all (at least +10% relative).",
            arms=[
                Arm("control", 20, True, "No welcome series"),
                Arm("welcome", 80, name="Welcome"),
            ],
            primary_metric=Metric.RETENTION_90,
            baseline_rate=0.25,
            minimum_effect=0.10,
            exposure_days=60,
        )
        experiment_launch(experiment=experiment)
        self.stdout.write(f"Launched {NAME!r} on {journey.name!r}.")
