"""The journey dispatcher at volume: N active enrollments, a share of them due,
advanced by Celery worker processes; counts double actions.

1. Creates (and migrates) the bench database if missing; a fresh tenant with
   one active journey (step 1: an email now; step 2: an email in 30 days;
   each email with its signed unsubscribe link, as marketing email has),
   N customers and N active enrollments written with COPY, ``--due`` of them
   due now, the rest due over the next weeks.
2. Starts ``celery -A retention worker -Q bench_journeys --pool prefork -c 2``
   and hands it ``journeys.dispatch`` tasks (each claims batches of 500 with
   ``FOR UPDATE SKIP LOCKED`` until nothing is due). The send tasks the
   dispatcher queues after commit go to the ``dispatch`` queue, which this
   bench does not consume: it measures the journey side, up to the outbox.
3. Waits until nothing is due and prints enrollments advanced per second, and
   double actions: enrollments with more than one step run or message for a step;
   and the CPU each part used per due enrollment (steadier than the rate on a
   shared machine).

    .venv/bin/python bench/dispatch.py --n 1000000 --due 0.1

Goal (issue 6): at least 5,000 enrollments advanced per second with 2 worker
processes; zero double actions.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send import (
    CHILDREN,
    _cpu_seconds,
    _cpu_used,
    _flush_redis,
    _prepare_database,
    _spawn,
    _stop,
)

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/retention_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
QUEUE = "bench_journeys"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="active enrollments")
    parser.add_argument("--due", type=float, default=0.1, help="share due now")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--tasks", type=int, default=4, help="dispatch tasks handed out")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--deadline", type=int, default=1800, help="seconds for the whole run")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(args.deadline)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "retention.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    try:
        _prepare_database(args.database_url, env)
        import django

        django.setup()
        tenant_id, due = _seed(args.n, args.due)
        _flush_redis(args.redis_url)
        print(f"{args.n} active enrollments, {due} due now; {args.workers} worker processes")
        worker = [PY, "-m", "celery", "-A", "retention", "worker", "-Q", QUEUE]
        worker += ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
        worker += ["--pool", "prefork", "-c", str(args.workers)]
        _spawn(worker, env)
        time.sleep(4)  # worker boot

        from journeys.tasks import dispatch

        database = args.database_url.rsplit("/", 1)[1]
        cpu_before = _cpu_seconds(database)
        started = time.perf_counter()
        for _ in range(args.tasks):
            dispatch.apply_async((tenant_id,), queue=QUEUE)
        elapsed = _wait_done(tenant_id, started)
        cpu = _cpu_used(cpu_before, _cpu_seconds(database))
        _report(tenant_id, due, elapsed)
        print(
            "CPU seconds while dispatching: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
            + f" (of {2 * elapsed:.1f} on 2 cores)"
        )
        # Wall-clock rates move with whatever else runs on the machine; CPU per
        # enrollment does not (much).
        print(
            "CPU ms per due enrollment: "
            + ", ".join(f"{k} {1000 * v / max(due, 1):.3f}" for k, v in cpu.items() if k != "bench")
        )
    finally:
        for proc in CHILDREN:
            _stop(proc)
        _flush_redis(args.redis_url)
    print(
        f"reproduce: {PY} bench/dispatch.py --n {args.n} --due {args.due} "
        f"--workers {args.workers} --tasks {args.tasks}"
    )
    return 0


def _seed(n: int, share: float) -> tuple[int, int]:
    from django.db import connection

    from journeys.services.definitions import journey_create
    from messaging.models import Template
    from retention.models import Tenant
    from retention.services import tenant_create

    slug = f"bench-journeys-{uuid.uuid4().hex[:8]}"
    tenant = tenant_create(slug=slug, name="Bench journeys", timezone="Europe/Berlin").tenant
    tenant = Tenant.objects.get(pk=tenant.pk)
    templates = [
        Template.objects.create(
            tenant=tenant,
            name=f"bench-{i}",
            channel="email",
            subject="Hello {{ customer.first_name|default:'there' }}",
            text="Thanks for your order, {{ customer.first_name|default:'friend' }}.",
            # A marketing email carries its unsubscribe link: each message signs one.
            html="<p>Thanks for your order, {{ customer.first_name|default:'friend' }}.</p>"
            '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p>',
        )
        for i in (1, 2)
    ]
    journey = journey_create(
        tenant=tenant,
        name="Bench",
        status="active",
        version={"trigger": "touchpoint", "value": "bench.started"},
        steps=[
            {"name": "Now", "delay": 0, "email_template": templates[0]},
            {"name": "Later", "delay": 30, "email_template": templates[1]},
        ],
    )
    now = datetime.now(UTC)
    due = int(n * share)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM commerce_customer")
        base = cur.fetchone()[0]
        buf = io.StringIO()
        for i in range(n):
            stamp = now.isoformat()
            buf.write(f"{tenant.pk}\tb{i}@bench.example\tBuyer{i % 97}\t{stamp}\t{stamp}\n")
        with cur.copy(
            "COPY commerce_customer (tenant_id, email, first_name, created_at, updated_at, "
            "phone, last_name, timezone, locale, preferred_channel) FROM STDIN"
        ) as copy:
            copy.write(buf.getvalue().replace("\n", "\t\t\t\t\t\n"))
        del buf
        cur.execute(
            "SELECT id FROM commerce_customer WHERE tenant_id = %s ORDER BY id", [tenant.pk]
        )
        ids = [r[0] for r in cur.fetchall()]
        buf = io.StringIO()
        version = journey.current_version_id
        for i, customer_id in enumerate(ids):
            at = now - timedelta(minutes=1) if i < due else now + timedelta(days=1 + i % 30)
            buf.write(
                f"{tenant.pk}\t{journey.pk}\t{version}\t{customer_id}\tb:{customer_id}\t"
                f"{at.isoformat()}\t{{}}\tactive\t1\t{at.isoformat()}\t{now.isoformat()}\t0\t\t\t"
                "f\n"
            )
        with cur.copy(
            "COPY journeys_enrollment (tenant_id, journey_id, version_id, customer_id, "
            "trigger_key, trigger_at, context, status, position, next_run_at, entered_at, "
            "attempts, exit_reason, last_error, is_test) FROM STDIN"
        ) as copy:
            copy.write(buf.getvalue())
        cur.execute("ANALYZE commerce_customer")
        cur.execute("ANALYZE journeys_enrollment")
    del base
    print(f"seeded in {time.perf_counter() - t0:.1f} s", flush=True)
    return tenant.pk, due


def _remaining(tenant_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM journeys_enrollment WHERE tenant_id = %s "
            "AND status IN ('active', 'held_out') AND next_run_at <= now()",
            [tenant_id],
        )
        return cur.fetchone()[0]


def _wait_done(tenant_id: int, started: float, limit: float = 1500) -> float:
    while time.perf_counter() - started < limit:
        if _remaining(tenant_id) == 0:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise TimeoutError("due enrollments left after the time limit")


def _report(tenant_id: int, due: int, elapsed: float) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM journeys_steprun WHERE tenant_id = %s", [tenant_id])
        runs = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM messaging_message WHERE tenant_id = %s AND source = 'journey'",
            [tenant_id],
        )
        messages = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM (SELECT customer_id FROM messaging_message "
            "WHERE tenant_id = %s AND source = 'journey' GROUP BY customer_id "
            "HAVING count(*) > 1) d",
            [tenant_id],
        )
        doubles = cur.fetchone()[0]
    print(
        f"advanced {runs} of {due} due enrollments in {elapsed:.1f} s: "
        f"{runs / elapsed:,.0f} enrollments/s; {messages} messages queued; "
        f"double actions {doubles}; due left {_remaining(tenant_id)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
