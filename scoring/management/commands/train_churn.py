"""Train a tenant's churn model now and print what it learned."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from retention.errors import InvalidInput
from scoring.management.commands._common import as_of_arg, horizon_arg, tenant_arg
from scoring.services.train import churn_train


class Command(BaseCommand):
    help = (
        "Train the churn model of one tenant on everything before --as-of (default now): "
        "features as of one horizon earlier, labels from the horizon that followed. The new "
        "version becomes active unless --inactive. Small stores get the buy-till-you-die "
        "model alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--as-of", help="YYYY-MM-DD (store timezone) or an ISO time")
        parser.add_argument("--horizon-days", type=int, help="Default: the tenant's setting (90)")
        parser.add_argument("--inactive", action="store_true", help="Store without activating")

    def handle(self, *args, **opts):
        tenant = tenant_arg(opts["tenant"])
        try:
            version = churn_train(
                tenant.pk,
                as_of=as_of_arg(opts["as_of"], tenant),
                horizon_days=horizon_arg(opts["horizon_days"]),
                activate=not opts["inactive"],
            )
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        seconds = version.metrics.get("seconds", {})
        self.stdout.write(
            f"Model v{version.version} for {tenant.slug}: {version.get_kind_display()}"
            f"{' (active)' if version.is_active else ''}\n"
            f"  trained as of {version.train_as_of:%Y-%m-%d %H:%M}, labels to "
            f"{version.label_end:%Y-%m-%d %H:%M} ({version.horizon_days}-day horizon)\n"
            f"  {version.n_train:,} customers, {version.n_buyers:,} buyers, churn rate "
            f"{(version.base_rate or 0):.1%}\n"
            f"  load and features {seconds.get('load_features', 0):.1f} s, "
            f"training {seconds.get('train', 0):.1f} s\n  {version.notes}"
        )
        selection = {k: v for k, v in version.metrics.get("selection", {}).items()
                     if isinstance(v, dict)}  # fmt: skip
        for kind, figures in selection.items():
            self.stdout.write(
                f"  holdout {kind:<6} log loss {figures['log_loss']:.4f}  "
                f"ROC AUC {figures.get('roc_auc') or float('nan'):.4f}"
            )
        top = list(version.importances.items())[:8]
        if top:
            self.stdout.write("  top features: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
