"""The dashboard at a million customers: how long the rollups take to build and
how fast ``/dashboard/`` answers from them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_seedbench \\
        .venv/bin/python bench/dashboard.py [--customers 1000000] [--tenant big]

Creates and migrates the database if missing and seeds the tenant with
``seed_demo`` unless it has customers (about 6 minutes per million). The seed
has orders but no messages, so this script adds ``--messages-per-customer``
(default 3) journey messages per customer over the last 120 days with a
realistic funnel (95% delivered, 25% opened, 4% clicked, 0.3% unsubscribe),
set-based, once. Then it times:

1. the first full build of every rollup (``rollups_backfill``, 400 days);
2. the nightly refresh of the days that can still change
   (``rollups_refresh_recent``);
3. ``dashboard_data`` (the selector behind the page), cold and then the median
   of 10 warm calls, and the whole ``GET /dashboard/`` through Django's test
   client (median of 10), for the default 28 days and for 180 days with a
   channel filter.

Goal (issue 10): the dashboard answers in under 1 second for a tenant with
1,000,000 customers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, manage  # noqa: E402 (after the path)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/retention_seedbench"

MESSAGES_SQL = """
INSERT INTO messaging_message
    (tenant_id, customer_id, channel, category, idempotency_key, source, context,
     to_address, subject, body_text, body_html, status, reason, detail, provider_id,
     attempts, due_at, created_at, updated_at, sent_at, delivered_at, opened_at,
     clicked_at)
SELECT %(tenant)s, r.id, CASE WHEN r.u < 0.8 THEN 'email' ELSE 'sms' END, 'marketing',
       'bench:' || r.id || ':' || r.n, 'journey',
       jsonb_build_object('journey_id', j.id, 'step_id', s.id),
       r.email, 'Bench', 'Bench', '',
       CASE WHEN r.u2 < 0.04 THEN 'clicked' WHEN r.u2 < 0.25 THEN 'opened'
            WHEN r.u2 < 0.95 THEN 'delivered' ELSE 'bounced' END,
       '', '', '', 1, r.at, r.at, r.at, r.at,
       CASE WHEN r.u2 < 0.95 THEN r.at + interval '1 minute' END,
       CASE WHEN r.u2 < 0.25 THEN r.at + interval '2 hours' END,
       CASE WHEN r.u2 < 0.04 THEN r.at + interval '3 hours' END
-- random() in a select list runs once per row (in a bare LATERAL, once in all).
FROM (SELECT c.id, coalesce(c.email, '') AS email, g.n, random() AS u, random() AS u2,
             %(now)s::timestamptz - random() * interval '120 days' AS at
      FROM commerce_customer c CROSS JOIN generate_series(1, %(per)s) AS g(n)
      WHERE c.tenant_id = %(tenant)s) r
JOIN LATERAL (
    SELECT id FROM journeys_journey
    WHERE tenant_id = %(tenant)s ORDER BY id OFFSET (r.id + r.n) %% %(journeys)s LIMIT 1) j
    ON true
JOIN LATERAL (
    SELECT st.id FROM journeys_journeystep st
    JOIN journeys_journey jj ON jj.current_version_id = st.version_id
    WHERE st.tenant_id = %(tenant)s AND jj.id = j.id ORDER BY st.position LIMIT 1) s ON true
"""

UNSUBSCRIBES_SQL = """
INSERT INTO commerce_touchpoint
    (tenant_id, customer_id, source, category, kind, occurred_at, properties, external_id,
     created_at)
SELECT m.tenant_id, m.customer_id, 'messaging', 'marketing', 'message.unsubscribed',
       m.sent_at + interval '1 day', '{}'::jsonb, 'bench-unsub-' || m.id, m.sent_at
FROM messaging_message m
WHERE m.tenant_id = %(tenant)s AND m.idempotency_key LIKE 'bench:%%' AND m.id %% 300 = 0
"""


def _median_ms(fn, runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="big")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--messages-per-customer", type=int, default=3)
    opts = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    manage("migrate", "--noinput", "-v", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from commerce.models import Customer
    from insights.selectors import dashboard_data
    from insights.services.rollups import rollups_backfill, rollups_refresh_recent
    from journeys.models import Journey
    from messaging.models import Message
    from retention import clock
    from retention.models import Membership, Role, Tenant, User

    if not Tenant.objects.filter(slug=opts.tenant).exists():
        manage("create_tenant", opts.tenant)
    tenant = Tenant.objects.get(slug=opts.tenant)
    if not Customer.objects.for_tenant(tenant).exists():
        print(f"Seeding {opts.customers:,} customers (about 6 min per million) ...", flush=True)
        manage(
            "seed_demo", "--tenant", opts.tenant, "--customers", str(opts.customers),
            "--seed", str(opts.seed),
        )  # fmt: skip
    now = clock.now()
    if not Message.objects.for_tenant(tenant).filter(idempotency_key__startswith="bench:").exists():
        started = time.perf_counter()
        params = {
            "tenant": tenant.pk,
            "per": opts.messages_per_customer,
            "now": now,
            "journeys": Journey.objects.for_tenant(tenant).count(),
        }
        with connection.cursor() as cur:
            cur.execute(MESSAGES_SQL, params)
            cur.execute(UNSUBSCRIBES_SQL, params)
        print(f"seeded messages in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # index-only scans need the visibility map
    customers = Customer.objects.for_tenant(tenant).count()
    messages = Message.objects.for_tenant(tenant).count()
    print(f"Tenant {tenant.slug}: {customers:,} customers, {messages:,} messages")

    started = time.perf_counter()
    built = rollups_backfill(tenant_id=tenant.pk, days=400)
    print(f"rollups_backfill (400 days): {time.perf_counter() - started:.1f} s  rows {built}")
    started = time.perf_counter()
    rollups_refresh_recent(tenant_id=tenant.pk)
    print(f"rollups_refresh_recent (nightly): {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cur:
        cur.execute("ANALYZE")

    user, _ = User.objects.get_or_create(email=f"bench@{tenant.slug}.example")
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.VIEWER})
    client = Client()
    client.force_login(user)
    today = now.date()
    cases = [
        ("28 days", today - timedelta(days=27), today, None, ""),
        ("180 days, email", today - timedelta(days=179), today, "email", "&channel=email"),
    ]
    for label, start, end, channel, query in cases:
        started = time.perf_counter()
        dashboard_data(tenant=tenant, start=start, end=end, segment_id=None, channel=channel)
        cold = (time.perf_counter() - started) * 1000
        warm = _median_ms(
            lambda s=start, e=end, c=channel: dashboard_data(
                tenant=tenant, start=s, end=e, segment_id=None, channel=c
            )
        )
        path = f"/dashboard/?start={start}&end={end}{query}"
        status = client.get(path).status_code
        page = _median_ms(lambda p=path: client.get(p))
        print(
            f"dashboard {label}: selector cold {cold:.0f} ms, warm median {warm:.0f} ms; "
            f"GET /dashboard/ median {page:.0f} ms (status {status})"
        )
    print(
        "reproduce: DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_seedbench "
        ".venv/bin/python bench/dashboard.py"
    )


if __name__ == "__main__":
    main()
