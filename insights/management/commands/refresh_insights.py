"""``manage.py refresh_insights --tenant SLUG [--days N | --recent]``: rebuild
the dashboard's rollups now (the nightly task does the recent days)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max

from commerce.models import Touchpoint
from insights.services.rollups import rollups_backfill, rollups_refresh_recent
from retention import clock
from retention.selectors import tenant_by_slug


class Command(BaseCommand):
    help = (
        "Rebuild the dashboard's daily rollups of one store: its whole history (the last "
        "--days days, default 400) or, with --recent, the days that can still change (what "
        "the nightly task runs). Prints the rows written per table and the time taken."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--days", type=int, default=400, metavar="N")
        parser.add_argument("--recent", action="store_true")
        parser.add_argument(
            "--ahead",
            action="store_true",
            help="Build up to the store's latest activity when that lies ahead of the clock "
            "(the demo's simulated days run into the future); for `make demo`.",
        )

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        if not 1 <= opts["days"] <= 3660:
            raise CommandError("--days must be between 1 and 3660.")
        if opts["ahead"]:
            latest = Touchpoint.objects.for_tenant(tenant).aggregate(at=Max("occurred_at"))["at"]
            if latest is not None and latest > clock.now():
                clock.set_now(latest)
                self.stdout.write(f"Building up to the latest activity, {latest:%Y-%m-%d %H:%M}.")
        started = time.perf_counter()
        if opts["recent"]:
            rows = rollups_refresh_recent(tenant_id=tenant.pk)
        else:
            rows = rollups_backfill(tenant_id=tenant.pk, days=opts["days"])
        seconds = time.perf_counter() - started
        counts = ", ".join(f"{table} {n:,}" for table, n in sorted(rows.items()))
        self.stdout.write(f"{tenant.slug}: rollups rebuilt in {seconds:.1f} s ({counts})")
