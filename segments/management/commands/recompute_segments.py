"""Run a tenant's full segment recompute now and print what it found."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from retention.models import Tenant
from segments.models import Tier
from segments.services.families import families_rebuild
from segments.services.memberships import segments_refresh_all
from segments.services.rfm import rfm_recompute, tier_counts_store


class Command(BaseCommand):
    help = (
        "Recompute every customer's RFM scores and tier for one tenant (re-ranking the "
        "quintiles), then category flags and rule segments; prints counts per tier and "
        "the time each step took."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument(
            "--skip-families",
            action="store_true",
            help="Skip rebuilding category flags from every order line (they are kept "
            "current per order anyway; the rebuild repairs bulk loads).",
        )

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        result = rfm_recompute(tenant)
        self.stdout.write(
            f"RFM and tiers for {tenant.slug}: {result.buyers:,} buyers in "
            f"{result.seconds:.2f} s ({result.changed:,} rows changed, "
            f"{result.removed:,} removed, {result.transitions:,} tier transitions)"
        )
        counts = tier_counts_store(tenant)
        for tier in Tier:
            self.stdout.write(f"  {tier.label:<20} {counts[tier.value]:>12,}")
        if not opts["skip_families"]:
            started = time.perf_counter()
            rows = families_rebuild(tenant)
            self.stdout.write(
                f"Category flags: {rows:,} customer-family rows in "
                f"{time.perf_counter() - started:.2f} s"
            )
        started = time.perf_counter()
        refreshed = segments_refresh_all(tenant, cause="recompute")
        entered = sum(e for e, _ in refreshed.values())
        left = sum(x for _, x in refreshed.values())
        self.stdout.write(
            f"Rule segments: {len(refreshed)} refreshed ({entered:,} entered, {left:,} left) "
            f"in {time.perf_counter() - started:.2f} s"
        )
