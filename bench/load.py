"""Everything at once: webhooks, API reads and the journey dispatcher under load
for a few minutes against gunicorn, two Celery worker processes and beat, then
proof that nothing was lost or sent twice.

    .venv/bin/python bench/load.py [--seconds 300] [--webhook-threads 4] [--api-threads 2]

1. Creates (and migrates) the bench database if missing, a fresh tenant (its
   shipped journeys active: every first order starts the welcome series, whose
   day-0 email the dispatcher sends) and its email sender.
2. Starts the fake SendGrid/Twilio (``tests.fake_provider``) on 127.0.0.1,
   gunicorn (``retention.wsgi``), ``celery worker`` with two processes on every
   queue, and ``celery beat`` (the sweepers, the journeys tick).
3. For ``--seconds``: threads post signed ``order.created`` webhooks, each the
   first order of a new customer who accepts email, while other threads read
   the API (customers, segments, messages) with the tenant's key.
4. Prints throughput and p50/p99 latency per kind and every status seen
   (wanted: no 5xx), then waits for the work to drain and prints the counts
   that prove nothing was lost or duplicated: accepted webhooks = inbox rows =
   orders; every welcome email queued once, sent once (calls counted at the
   fake provider, per message id); nothing left queued, pending or sending.

Every child process is killed on exit; the whole run is bounded by --deadline.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402 (after the path)
    CHILDREN,
    PY,
    _free_port,
    _gunicorn,
    _prepare_database,
    _sign,
    _spawn,
    _stop,
)
from bench.send import _env, _flush_redis, _wait_http  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/retention_loadbench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
API_PATHS = ("/api/v1/customers/?limit=20", "/api/v1/segments/", "/api/v1/orders/?limit=20")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, dict[int, int]] = {}

    def add(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            seen = self.statuses.setdefault(kind, {})
            seen[status] = seen.get(status, 0) + 1


def _request(conn_box: list, port: int, method: str, path: str, body=None, headers=None):
    if conn_box[0] is None:
        conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn = conn_box[0]
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        resp.read()
        if resp.will_close:
            conn.close()
            conn_box[0] = None
        return resp.status
    except (OSError, http.client.HTTPException):
        conn.close()
        conn_box[0] = None
        return 0


def _webhooks(port, slug, secret, run_id, thread, stop_at, stats, accepted: list) -> None:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    box: list = [None]
    i = 0
    while time.monotonic() < stop_at:
        i += 1
        ref = f"{run_id}-{thread}-{i}"
        body = json.dumps(
            {
                "type": "order.created",
                "data": {
                    "id": f"L-{ref}",
                    "placed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "currency": "EUR",
                    "customer": {
                        "id": f"lc-{ref}",
                        "email": f"lc-{ref}@load.example",
                        "first_name": "Load",
                        "accepts_email": True,
                    },
                    "lines": [{"sku": f"SKU-{i % 20}", "quantity": 1, "unit_price": "19.90"}],
                },
            }
        ).encode()
        msg_id = f"msg_{ref}"
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": _sign(key, msg_id, ts, body),
        }
        started = time.perf_counter()
        status = _request(box, port, "POST", f"/hooks/{slug}/", body, headers)
        stats.add("webhook", time.perf_counter() - started, status)
        if status == 202:
            accepted.append(msg_id)


def _reads(port, api_key, thread, stop_at, stats) -> None:
    box: list = [None]
    headers = {"Authorization": f"Bearer {api_key}"}
    i = thread
    while time.monotonic() < stop_at:
        path = API_PATHS[i % len(API_PATHS)]
        i += 1
        started = time.perf_counter()
        status = _request(box, port, "GET", path, None, headers)
        stats.add("api", time.perf_counter() - started, status)


def _tenant(env: dict) -> tuple[int, str, str, str]:
    slug = f"load-{uuid.uuid4().hex[:8]}"
    code = (
        "import django, json; django.setup(); "
        "from retention.services import tenant_create; "
        "from messaging.services.outbox import messaging_settings; "
        f"t = tenant_create(slug={slug!r}, name='Load Store'); "
        "ms = messaging_settings(t.tenant); ms.from_email = 'shop@load.example'; "
        "ms.quiet_hours_enabled = False; ms.save(); "
        "print(json.dumps([t.tenant.pk, t.tenant.slug, t.webhook_secret, t.api_key]))"
    )
    out = subprocess.run(
        [PY, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def _counts(url: str, tenant_id: int) -> dict:
    import psycopg

    one = {
        "inbox": "SELECT count(*) FROM commerce_inboxentry WHERE tenant_id = %s",
        "inbox_pending": "SELECT count(*) FROM commerce_inboxentry WHERE tenant_id = %s "
        "AND status <> 'processed'",
        "orders": "SELECT count(*) FROM commerce_order WHERE tenant_id = %s",
        "customers": "SELECT count(*) FROM commerce_customer WHERE tenant_id = %s",
        "welcome_enrollments": "SELECT count(*) FROM journeys_enrollment e "
        "JOIN journeys_journey j ON j.id = e.journey_id "
        "WHERE e.tenant_id = %s AND j.key = 'welcome-series'",
        "messages": "SELECT count(*) FROM messaging_message WHERE tenant_id = %s",
        "messages_sent": "SELECT count(*) FROM messaging_message WHERE tenant_id = %s "
        "AND sent_at IS NOT NULL",
        "messages_unfinished": "SELECT count(*) FROM messaging_message WHERE tenant_id = %s "
        "AND status IN ('queued', 'sending', 'unknown') AND due_at <= now()",
        "welcome_day0_keys": "SELECT count(DISTINCT m.idempotency_key) FROM messaging_message m "
        "JOIN journeys_steprun r ON r.message_id = m.id JOIN journeys_journeystep s "
        "ON s.id = r.step_id WHERE m.tenant_id = %s AND s.position = 1 "
        "AND m.context->>'journey_id' IN (SELECT id::text FROM journeys_journey "
        "WHERE key = 'welcome-series' AND tenant_id = %s)",
    }
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name: conn.execute(sql, [tenant_id] * sql.count("%s")).fetchone()[0]
            for name, sql in one.items()
        }


def _fake_calls(fake_url: str) -> dict:
    with urllib.request.urlopen(f"{fake_url}/_fake/calls", timeout=10) as resp:  # noqa: S310
        return json.load(resp)


def _report(stats: Stats, seconds: float) -> None:
    for kind, lat in sorted(stats.latencies.items()):
        lat = sorted(lat)
        ok = sum(n for s, n in stats.statuses[kind].items() if 200 <= s < 300)
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)] * 1000
        print(
            f"{kind}: {len(lat):,} requests = {len(lat) / seconds:.0f}/s ({ok / seconds:.0f}/s "
            f"answered 2xx), p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99:.1f} ms, "
            f"statuses {dict(sorted(stats.statuses[kind].items()))}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--webhook-threads", type=int, default=4)
    parser.add_argument("--api-threads", type=int, default=2)
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--drain", type=int, default=300, help="seconds to wait for the work")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--deadline", type=int, default=1800)
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(args.deadline)

    fake_port = _free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    # As bench/ingest.py runs it: plain HTTP on loopback, no HTTPS redirect.
    env = {**_env(args, fake_url), "DJANGO_SECURE_SSL_REDIRECT": "false"}
    env["DJANGO_SECURE_COOKIES"] = "false"
    try:
        _prepare_database(args.database_url, env)
        _flush_redis(args.redis_url)
        _spawn([PY, "-m", "tests.fake_provider", "--port", str(fake_port)], env)
        _wait_http(f"{fake_url}/_fake/calls")
        tenant_id, slug, secret, api_key = _tenant(env)
        port = _free_port()
        _gunicorn(env, port, args.gunicorn_workers, "retention.settings")
        queues = "ingest,dispatch,segments,default"
        _spawn([PY, "-m", "celery", "-A", "retention", "worker", "-Q", queues, "-c", "2",
                "--loglevel", "WARNING", "-n", f"load-{uuid.uuid4().hex[:6]}@%h"], env)  # fmt: skip
        _spawn([PY, "-m", "celery", "-A", "retention", "beat", "--loglevel", "WARNING"],
               env)  # fmt: skip
        print(
            f"Load on {slug} for {args.seconds} s: {args.webhook_threads} webhook threads, "
            f"{args.api_threads} API threads; gunicorn x{args.gunicorn_workers}, celery worker "
            "x2 processes, beat",
            flush=True,
        )
        stats, accepted = Stats(), []
        stop_at = time.monotonic() + args.seconds
        run_id = uuid.uuid4().hex[:6]
        threads = [
            threading.Thread(
                target=_webhooks, args=(port, slug, secret, run_id, t, stop_at, stats, accepted)
            )
            for t in range(args.webhook_threads)
        ] + [
            threading.Thread(target=_reads, args=(port, api_key, t, stop_at, stats))
            for t in range(args.api_threads)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _report(stats, time.monotonic() - started)

        drain_started = time.monotonic()
        while True:
            counts = _counts(args.database_url, tenant_id)
            done = (
                counts["inbox_pending"] == 0
                and counts["welcome_enrollments"] >= len(accepted)
                and counts["messages_unfinished"] == 0
                and counts["messages_sent"] >= counts["welcome_day0_keys"] >= len(accepted)
            )
            if done or time.monotonic() - drain_started > args.drain:
                break
            time.sleep(2)
        calls = _fake_calls(fake_url)
        # Calls the provider accepted, per message id: more than one is a duplicate send.
        twice = sum(1 for n in calls["accepted"].values() if n > 1)
        print(f"drained in {time.monotonic() - drain_started:.0f} s", flush=True)
        print(
            f"webhooks accepted {len(accepted):,} (unique {len(set(accepted)):,}); inbox rows "
            f"{counts['inbox']:,}, still pending {counts['inbox_pending']}; orders "
            f"{counts['orders']:,}; customers {counts['customers']:,}; welcome enrollments "
            f"{counts['welcome_enrollments']:,}; welcome day-0 emails "
            f"{counts['welcome_day0_keys']:,}"
        )
        print(
            f"messages {counts['messages']:,}, sent {counts['messages_sent']:,}, left queued/"
            f"sending/unknown {counts['messages_unfinished']}; provider calls "
            f"{calls.get('total', '?')}, messages called more than once {twice}"
        )
        lost = len(set(accepted)) - counts["orders"]
        print(f"lost orders {lost}; duplicated sends {twice}")
        print(
            "reproduce: .venv/bin/python bench/load.py "
            f"--seconds {args.seconds} --webhook-threads {args.webhook_threads} "
            f"--api-threads {args.api_threads}"
        )
        errors = sum(
            n for seen in stats.statuses.values() for status, n in seen.items() if status >= 500
        )
        print(f"5xx answers {errors}")
        return 0 if accepted and lost == 0 and twice == 0 and errors == 0 else 1
    finally:
        for proc in reversed(CHILDREN):
            _stop(proc)


if __name__ == "__main__":
    sys.exit(main())
