"""Score every customer of a tenant now (or as of a date) and print the bands."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from retention.errors import InvalidInput
from scoring.management.commands._common import as_of_arg, horizon_arg, tenant_arg
from scoring.models import ChurnScoreHistory, RiskBand
from scoring.services.runs import CHUNK_SIZE, churn_score


class Command(BaseCommand):
    help = (
        "Score every customer of one tenant as of --as-of (default now) with the active "
        "model, training one first if no model fits that date; writes the current score and "
        "history, and records the next best action of every customer whose band changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--as-of", help="YYYY-MM-DD (store timezone) or an ISO time")
        parser.add_argument("--horizon-days", type=int, help="Default: the tenant's setting (90)")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)

    def handle(self, *args, **opts):
        tenant = tenant_arg(opts["tenant"])
        try:
            run = churn_score(
                tenant.pk,
                as_of=as_of_arg(opts["as_of"], tenant),
                horizon_days=horizon_arg(opts["horizon_days"]),
                chunk_size=max(1000, opts["chunk_size"]),
            )
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        version = run.model_version
        self.stdout.write(
            f"Scored {run.scored:,} customers of {tenant.slug} as of "
            f"{run.as_of:%Y-%m-%d %H:%M} with model v{version.version} "
            f"({version.get_kind_display()}) in {run.seconds.get('wall', 0):.1f} s; "
            f"{run.entered:,} entered a band"
        )
        bands = dict(
            ChurnScoreHistory.objects.for_tenant(tenant)
            .filter(as_of=run.as_of)
            .values_list("band")
            .annotate(n=Count("id"))
        )
        for band in RiskBand:
            self.stdout.write(f"  {band.label:<8} {bands.get(band.value, 0):>12,}")
