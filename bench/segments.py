"""Segment recompute at scale: the full RFM/tier recompute of one tenant next to
the bare SQL aggregate over the same orders (the ceiling), in the same run, and
the latency of the per-customer refresh that follows a new order.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_seedbench \\
        .venv/bin/python bench/segments.py [--customers 1000000] [--tenant big] [--samples 200]

Creates and migrates the database if missing and seeds the tenant with
``seed_demo`` (about 3.5 orders and 10 order lines per customer) unless it
already has customers; the seed takes about 6 minutes for 1,000,000 customers.
Prints, each as the median of ``--rounds`` runs:

- the bare aggregate (recency, frequency and monetary per customer, no writes);
- the full recompute the first time (every row written) and again (steady state:
  only changed rows are written, as on a normal night);
- rebuilding category flags from every order line (a nightly repair step);
- single-order refresh latency p50/p99: an order is added to a random customer and
  ``customer_refresh`` timed, inside a transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, manage  # noqa: E402 (after the path)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/retention_seedbench"

# Every output column is consumed: PostgreSQL drops aggregates nobody reads.
BARE_SQL = """
SELECT count(*), min(first_at), max(last_at), sum(orders), sum(frequency), sum(monetary)
FROM (
    SELECT customer_id, min(placed_at) AS first_at, max(placed_at) AS last_at,
           count(*) AS orders,
           count(*) FILTER (WHERE placed_at >= %(start)s) AS frequency,
           sum(total) FILTER (WHERE placed_at >= %(start)s) AS monetary
    FROM commerce_order
    WHERE tenant_id = %(tenant)s AND status NOT IN ('cancelled', 'refunded')
    GROUP BY customer_id
) per_customer
"""


class Rollback(Exception):
    pass


def median_time(fn, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--tenant", default="big")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args()

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.pop("REDIS_URL", None)  # tasks in-process: nothing queued behind our back
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention.settings")
    ensure_database(url)
    manage("migrate", "--noinput", "-v0")

    import django

    django.setup()
    from django.db import connection, transaction

    from commerce.models import Customer, Order
    from retention import clock
    from retention.models import Tenant
    from segments.models import CustomerRFM
    from segments.services.families import families_rebuild
    from segments.services.rfm import (
        customer_refresh,
        rfm_recompute,
        tier_counts,
        window_start,
    )
    from segments.services.setup import segment_settings

    if not Tenant.objects.filter(slug=opts.tenant).exists():
        manage("create_tenant", opts.tenant)
    tenant = Tenant.objects.get(slug=opts.tenant)
    if not Customer.objects.for_tenant(tenant).exists():
        print(f"Seeding {opts.customers:,} customers (about 6 min per million) ...", flush=True)
        manage(
            "seed_demo", "--tenant", opts.tenant, "--customers", str(opts.customers),
            "--seed", str(opts.seed),
        )  # fmt: skip
    with connection.cursor() as cur:
        cur.execute("ANALYZE commerce_order")
    customers = Customer.objects.for_tenant(tenant).count()
    orders = Order.objects.for_tenant(tenant).count()
    print(f"Tenant {tenant.slug}: {customers:,} customers, {orders:,} orders")

    settings = segment_settings(tenant)
    params = {"tenant": tenant.pk, "start": window_start(settings, clock.now())}

    def bare(jit: bool):
        def run():
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(f"SET LOCAL jit = {'on' if jit else 'off'}")
                cur.execute(BARE_SQL, params)
                return cur.fetchone()[0]

        return run

    bare(True)()  # warm the cache the same way for both
    bare_jit_s, buyers = median_time(bare(True), opts.rounds)
    bare_nojit_s, _ = median_time(bare(False), opts.rounds)
    bare_s = min(bare_jit_s, bare_nojit_s)
    print(
        f"bare SQL aggregate ({buyers:,} buyers): {bare_jit_s:.2f} s as configured, "
        f"{bare_nojit_s:.2f} s with jit off; the ceiling is the faster, {bare_s:.2f} s"
    )

    first_s = None
    if not CustomerRFM.objects.for_tenant(tenant).exists():
        first_s, first = median_time(lambda: rfm_recompute(tenant), 1)
        print(f"full recompute, first run ({first.changed:,} rows written): {first_s:.2f} s")
    # A normal night finds the table vacuumed (autovacuum follows a large write).
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE segments_customerrfm")
    steady_s, result = median_time(lambda: rfm_recompute(tenant), opts.rounds)
    print(
        f"full recompute, steady state ({result.changed:,} rows changed): {steady_s:.2f} s "
        f"= {steady_s / bare_s:.2f}x the bare aggregate (goal <= 2x)"
    )
    for tier, n in tier_counts(tenant).items():
        print(f"  {tier:<20} {n:>10,}")
    families_s, rows = median_time(lambda: families_rebuild(tenant), 1)
    print(f"category flags rebuilt from every order line ({rows:,} rows): {families_s:.2f} s")

    ids = list(
        CustomerRFM.objects.for_tenant(tenant).values_list("customer_id", flat=True)[:200_000]
    )
    rng = random.Random(opts.seed)
    latencies = []
    for i in range(opts.samples):
        customer_id = rng.choice(ids)
        try:
            with transaction.atomic():
                Order.objects.create(
                    tenant=tenant, customer_id=customer_id, source="bench",
                    external_id=f"bench-{i}", currency="EUR", subtotal=Decimal("42.00"),
                    total=Decimal("42.00"), placed_at=clock.now() - timedelta(minutes=1),
                )  # fmt: skip
                started = time.perf_counter()
                customer_refresh(tenant, customer_id)
                latencies.append(time.perf_counter() - started)
                raise Rollback
        except Rollback:
            pass
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"single-order refresh ({opts.samples} samples): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        "\nReproduce: DATABASE_URL=" + url + " .venv/bin/python bench/segments.py "
        f"--customers {opts.customers} --tenant {opts.tenant} --rounds {opts.rounds} "
        f"--samples {opts.samples}"
    )
    if first_s is not None:
        print(f"(first-run figure above: {first_s:.2f} s = {first_s / bare_s:.2f}x)")


if __name__ == "__main__":
    main()
