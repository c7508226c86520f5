"""``manage.py experiment_report --tenant SLUG NAME [--json]``: an experiment's
results, as its page shows them."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from experiments.models import Experiment
from experiments.report_text import report_lines
from experiments.results import experiment_results
from retention.selectors import tenant_by_slug


class Command(BaseCommand):
    help = (
        "Print an experiment's results: per variant the exposed, mature and maturing "
        "customers and the rate with its 95% interval; each treatment's lift vs the control "
        "(absolute and relative, with intervals) and p-value; the sample-ratio check; the "
        "planned sample size, and a warning when read before the planned end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("name", help="The experiment's name")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON")

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        experiment = (
            Experiment.objects.for_tenant(tenant)
            .select_related("journey", "winner")
            .filter(name=opts["name"])
            .first()
        )
        if experiment is None:
            names = list(Experiment.objects.for_tenant(tenant).values_list("name", flat=True))
            raise CommandError(
                f"No experiment called {opts['name']!r} in {tenant.slug}. "
                + (f"Its experiments: {', '.join(names)}." if names else "It has none yet.")
            )
        report = experiment_results(experiment)
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write("\n".join(report_lines(report)))
