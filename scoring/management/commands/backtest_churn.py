"""Backtest the churn model of a tenant at a past date against two baselines."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from retention.errors import InvalidInput
from scoring.management.commands._common import as_of_arg, horizon_arg, tenant_arg
from scoring.services.backtest import churn_backtest

FIGURES = (
    ("ROC AUC", "roc_auc", "{:.4f}"),
    ("PR AUC", "pr_auc", "{:.4f}"),
    ("Brier score", "brier", "{:.4f}"),
    ("log loss", "log_loss", "{:.4f}"),
    ("top-decile lift", "top_decile_lift", "{:.2f}"),
    ("predicted orders", "predicted_orders", "{:,.1f}"),
    ("actual orders", "actual_orders", "{:,}"),
    ("orders error %", "orders_error_pct", "{:+.2f}"),
)
COLUMNS = (("model", "model"), ("recency", "recency alone"), ("btyd", "BTYD alone"))


class Command(BaseCommand):
    help = (
        "Train with data before --as-of only (on the as-of date one horizon earlier), score "
        "every customer as of --as-of, and compare with what happened in the horizon after "
        "it; prints ROC AUC, PR AUC, Brier score, log loss, calibration by decile, top-decile "
        "lift and predicted against actual orders for the model and two baselines (recency "
        "alone, buy-till-you-die alone). The trained version is stored, inactive, with the "
        "figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument(
            "--as-of", required=True, help="YYYY-MM-DD (store timezone); its horizon must be past"
        )
        parser.add_argument("--horizon-days", type=int, help="Default: the tenant's setting (90)")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
        parser.add_argument("--no-save", action="store_true", help="Do not store the version")

    def handle(self, *args, **opts):
        tenant = tenant_arg(opts["tenant"])
        try:
            report, _ = churn_backtest(
                tenant.pk,
                as_of=as_of_arg(opts["as_of"], tenant),
                horizon_days=horizon_arg(opts["horizon_days"]),
                save=not opts["no_save"],
            )
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"Backtest of {tenant.slug} as of {report['as_of'][:10]} "
            f"({report['horizon_days']}-day horizon): {report['n']:,} customers scored; "
            f"model trained as of {report['train_as_of'][:10]} on {report['train_n']:,} "
            f"customers ({report['kind']}) in {report['seconds']['train']:.1f} s"
        )
        present = [(key, label) for key, label in COLUMNS if key in report]
        self.stdout.write(f"{'':<18}" + "".join(f"{label:>16}" for _, label in present))
        for label, key, fmt in FIGURES:
            cells = []
            for column, _ in present:
                value = report[column].get(key)
                cells.append(f"{'n/a' if value is None else fmt.format(value):>16}")
            self.stdout.write(f"{label:<18}" + "".join(cells))
        self.stdout.write("Calibration of the model by decile of predicted risk:")
        self.stdout.write(f"  {'decile':>6} {'n':>8} {'predicted':>10} {'actual':>8}")
        for row in report["model"]["calibration"]:
            self.stdout.write(
                f"  {row['decile']:>6} {row['n']:>8,} {row['predicted']:>10.3f} "
                f"{row['actual']:>8.3f}"
            )
        if "model_version" in report:
            self.stdout.write(f"Stored as model v{report['model_version']} (inactive).")
