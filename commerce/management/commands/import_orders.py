"""Import an orders CSV (generic or Shopify export) for one tenant."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from commerce.importer import FORMATS, GENERIC_HEADER, ImportFileError, orders_import
from retention.models import Tenant


class Command(BaseCommand):
    help = (
        "Import orders from a CSV file, one row per order line. Generic header: "
        f"{','.join(GENERIC_HEADER)}. Dates in ISO 8601 or YYYYMMDD (naive = the tenant's "
        "timezone). Rejected rows go to a report (line,reason); the rest is imported. "
        "Re-running the same file adds nothing. Needs PostgreSQL."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The CSV file (UTF-8)")
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="The store's slug")
        parser.add_argument(
            "--format",
            choices=sorted(FORMATS),
            default="generic",
            help="generic (the header above) or shopify (Shopify's orders export)",
        )
        parser.add_argument(
            "--source",
            help="Storefront name for customer and order ids "
            "(default: storefront; shopify for --format shopify)",
        )
        parser.add_argument(
            "--report",
            type=Path,
            metavar="PATH",
            help="Where to write rejected rows (default: FILE's name with .rejected.csv)",
        )

    def handle(self, *args, **opts):
        if connection.vendor != "postgresql":
            raise CommandError(
                "import_orders needs PostgreSQL (it streams rows with COPY); the embedded "
                "SQLite database cannot. Set DATABASE_URL, e.g. "
                "DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention"
            )
        path: Path = opts["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        verbosity = opts["verbosity"]
        bar = tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"import {path.name}",
            file=sys.stderr,
            disable=verbosity == 0,
        )

        def progress(step: str, amount: int) -> None:
            if step == "read":
                bar.update(amount)
            else:
                bar.set_description(f"import {path.name}: {step}")

        try:
            result = orders_import(
                tenant=tenant,
                path=path,
                fmt=opts["format"],
                source=opts["source"],
                report_path=opts["report"],
                progress=progress,
                log=self.stderr.write if verbosity >= 2 else None,
            )
        except ImportFileError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        rows = [
            ("rows read", result.rows_read),
            ("rows imported", result.rows_imported),
            ("rows already imported", result.rows_existing),
            ("rows rejected", result.rows_rejected),
            ("customers created", result.customers_created),
            ("identities created", result.identities_created),
            ("orders created", result.orders_created),
            ("lines created", result.lines_created),
            ("product families created", result.families_created),
            ("products created", result.products_created),
        ]
        for label, value in rows:
            self.stdout.write(f"{label + ':':<26}{value}")
        self.stdout.write(f"{'seconds:':<26}{result.seconds:.2f}")
        self.stdout.write(f"{'rows/s:':<26}{result.rows_per_second:,.0f}")
        if result.rows_rejected:
            self.stdout.write(
                self.style.WARNING(f"Rejected rows with reasons: {result.report_path}")
            )
