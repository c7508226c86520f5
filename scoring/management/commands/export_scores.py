"""Export a tenant's current churn scores to CSV."""

from __future__ import annotations

import csv
import sys

from django.core.management.base import BaseCommand

from scoring.export import export_rows
from scoring.management.commands._common import tenant_arg

HEADER = (
    "customer_id", "email", "p_churn", "expected_orders", "risk_band", "reasons",
    "next_action", "model_version", "as_of",
)  # fmt: skip


class Command(BaseCommand):
    help = (
        "Write every current churn score of one tenant to FILE ('-' for stdout) as CSV, "
        "riskiest first: customer_id (the storefront's id as imported, else the platform id), "
        "email, p_churn, expected_orders, risk_band, reasons (joined by ' | '), next_action, "
        "model_version, as_of."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("file", help="Output CSV path, or - for stdout")

    def handle(self, *args, **opts):
        tenant = tenant_arg(opts["tenant"])
        out = sys.stdout if opts["file"] == "-" else open(opts["file"], "w", newline="")  # noqa: SIM115
        try:
            writer = csv.writer(out)
            writer.writerow(HEADER)
            n = 0
            for row in export_rows(tenant.pk):
                writer.writerow(row)
                n += 1
        finally:
            if out is not sys.stdout:
                out.close()
        if opts["file"] != "-":
            self.stdout.write(f"Wrote {n:,} scores of {tenant.slug} to {opts['file']}")
