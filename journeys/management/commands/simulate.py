"""``manage.py simulate --tenant SLUG --days N [--seed S] [--json]``: move the
clock forward day by day with new store activity, and print what each journey
step did on each simulated day (see ``journeys.simulation``)."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

from django.core.management.base import BaseCommand, CommandError

from journeys.simulation import Run, journey_report, simulate, simulated_before
from journeys.simulation.effects import Effects, parse_effect
from messaging.models import Message
from retention.errors import DomainError
from retention.selectors import tenant_by_slug

MAX_DAYS = 120


class Command(BaseCommand):
    help = (
        "Simulate N days of a store from now (or its latest activity): new orders, "
        "deliveries, abandoned carts and product events go through ingestion, segments are "
        "refreshed and the journeys tick every simulated hour. Prints, per journey and "
        "step, what was sent, suppressed and held out on each day (--json for machines)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--days", type=int, required=True, metavar="N")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0)")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")
        parser.add_argument(
            "--once",
            action="store_true",
            help="Do nothing if the store was simulated before (for `make demo`, which may "
            "run again).",
        )
        parser.add_argument(
            "--experiment-effect",
            action="append",
            default=[],
            metavar="NAME=EFFECT",
            help="Inject a known relative effect on the repeat orders of customers exposed to a "
            "treatment arm of the running experiment NAME (0.10 = +10%%), to check the "
            "experiment's results find it. Repeatable.",
        )
        parser.add_argument(
            "--send",
            action="store_true",
            help="Allow provider calls: needed when an email or SMS provider is configured, "
            "since the simulated messages would really go out.",
        )

    def handle(self, *args, **opts):
        from messaging.services.send import ready_channels

        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        if not 1 <= opts["days"] <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        live = [c for c in ready_channels() if c != "in_app"]
        if live and not opts["send"]:
            raise CommandError(
                f"A provider is configured for {', '.join(live)}: the simulated customers' "
                "messages would really be sent. Pass --send if that is what you want."
            )
        try:
            effects = dict(parse_effect(text) for text in opts["experiment_effect"])
            if effects:
                Effects(tenant, effects, seed=opts["seed"])  # names and states, before the run
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self._before: dict[str, int] = {}
        if opts["once"] and simulated_before(tenant):
            self.stdout.write(f"{tenant.slug} was simulated before; nothing to do (--once).")
            return
        quiet = opts["json"] or opts["verbosity"] < 2
        started = time.perf_counter()
        if quiet:
            # Per-message and per-order INFO events would drown the report.
            logging.disable(logging.INFO)
        try:
            run = simulate(
                tenant=tenant,
                days=opts["days"],
                seed=opts["seed"],
                progress=None if opts["json"] else self._progress,
                experiment_effects=effects,
            )
        finally:
            if quiet:
                logging.disable(logging.NOTSET)
        report = journey_report(tenant=tenant, start=run.start, end=run.end)
        if effects:
            from experiments.models import Experiment
            from experiments.results import experiment_results

            report["experiments"] = {
                name: {
                    "injected_effect": effect,
                    "results": experiment_results(
                        Experiment.objects.for_tenant(tenant).get(name=name)
                    ),
                }
                for name, effect in effects.items()
            }
        seconds = time.perf_counter() - started
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        self._print(tenant, run, report, opts, seconds)

    def _progress(self, day: int, run: Run) -> None:
        a, before = run.activity, self._before
        self._before = dict(a)
        self.stdout.write(
            f"  day {day:>3}: "
            + "  ".join(
                f"{a[what] - before.get(what, 0):>4,} {what}"
                for what in ("orders", "delivery updates", "carts abandoned", "tracked events")
            )
        )

    def _print(self, tenant, run: Run, report: dict, opts: dict, seconds: float) -> None:
        self.stdout.write(
            f"\nSimulated {opts['days']} days of {tenant.slug} from {run.start:%Y-%m-%d %H:%M} "
            f"to {run.end:%Y-%m-%d %H:%M} UTC (seed {opts['seed']}) in {seconds:.1f} s"
        )
        self.stdout.write(
            "Activity: " + ", ".join(f"{n:,} {what}" for what, n in sorted(run.activity.items()))
        )
        outbox = defaultdict(int)
        for channel, status, reason in (
            Message.objects.for_tenant(tenant)
            .filter(source="journey", created_at__gte=run.start, created_at__lt=run.end)
            .values_list("channel", "status", "reason")
        ):
            outbox[channel, status + (f" ({reason})" if reason else "")] += 1
        self.stdout.write(
            "Journey messages in the outbox: "
            + (", ".join(f"{c} {s}: {n:,}" for (c, s), n in sorted(outbox.items())) or "none")
        )
        for journey in report["journeys"]:
            self.stdout.write(f"\n{journey['name']}")
            if not journey["steps"]:
                self.stdout.write("  (no steps taken)")
            totals: dict[str, dict] = {}
            for row in journey["steps"]:
                total = totals.setdefault(
                    row["name"], {"sent": 0, "suppressed": 0, "held_out": 0, "days": []}
                )
                for key in ("sent", "suppressed", "held_out"):
                    total[key] += row[key]
                total["days"].append(f"{row['day']}:{row['sent']}")
            for name, t in totals.items():
                self.stdout.write(
                    f"  {name:<42} sent {t['sent']:>5,}  suppressed {t['suppressed']:>4,}  "
                    f"held out {t['held_out']:>4,}   sent by day {' '.join(t['days'])}"
                )
        for name, item in report.get("experiments", {}).items():
            from experiments.report_text import report_lines

            self.stdout.write(
                f"\nExperiment {name!r}, injected effect {item['injected_effect']:+.0%} on the "
                "treated customers' repeat orders:"
            )
            self.stdout.write("\n".join(report_lines(item["results"])))
