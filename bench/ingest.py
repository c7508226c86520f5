"""Webhook acceptance against gunicorn, compared with a bare one-insert Django view.

1. Creates (and migrates) the bench database if missing, and a fresh tenant.
2. Starts gunicorn (sync workers, ``retention.wsgi``) with Celery on Redis and
   eager mode off, so only acceptance is measured (store + enqueue).
3. From separate processes, posts N signed ``order.created`` webhooks and prints
   accepted/s, p50 and p99 latency.
4. Starts ``celery -A retention worker -Q ingest -c 2`` and prints the time until
   every inbox entry is processed.
5. Runs the same load against a bare view that inserts one row
   (``bench/bare_urls.py``) and prints the ratio (goal >= 0.7).

    .venv/bin/python bench/ingest.py --n 20000

Every child process is killed on exit; the whole run is bounded by --deadline.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/retention_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
CHILDREN: list[subprocess.Popen] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="webhooks per run")
    parser.add_argument("--workers", type=int, default=5, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--deadline", type=int, default=1200, help="seconds for the whole run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating load rounds")
    parser.add_argument("--skip-processing", action="store_true")
    args = parser.parse_args()

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(args.deadline)
    env = _env(args)
    try:
        _prepare_database(args.database_url, env)
        slug, secret = _fresh_tenant(env)
        _flush_redis(args.redis_url)
        print(
            f"tenant {slug}; {args.n} webhooks; gunicorn sync x {args.workers}; "
            f"{args.clients} x {args.threads} client threads",
            flush=True,
        )

        # Both servers up at once and their loads alternating, best of --rounds
        # each, so a neighbour's burst on this shared machine does not decide it.
        port = _free_port()
        _gunicorn(env, port, args.workers, "retention.settings")
        bare_port = _free_port()
        _gunicorn(env, bare_port, args.workers, "bench.bare_urls")
        ours_runs, bare_runs = [], []
        for _ in range(args.rounds):
            ours_runs.append(_load(port, slug, secret, args))
            _report("webhook endpoint", ours_runs[-1])
            bare_runs.append(_load(bare_port, slug, secret, args))
            _report("bare one-insert view", bare_runs[-1])
        ours = max(ours_runs, key=lambda r: r["rate"])
        bare = max(bare_runs, key=lambda r: r["rate"])
        accepted = sum(r["accepted"] for r in ours_runs)

        if not args.skip_processing:
            print("processing with celery -A retention worker -Q ingest -c 2 ...", flush=True)
            started = time.perf_counter()
            worker = _spawn(
                [
                    str(BIN / "celery"),
                    "-A",
                    "retention",
                    "worker",
                    "-Q",
                    "ingest",
                    "-c",
                    "2",
                    "--loglevel",
                    "WARNING",
                    "--without-mingle",
                    "--without-gossip",
                ],
                env,
            )
            left = _wait_processed(args.database_url, slug, started)
            _stop(worker)
            elapsed = time.perf_counter() - started
            rate = (accepted - left) / elapsed if elapsed else 0
            print(
                f"processed: {accepted - left} entries in {elapsed:.1f} s "
                f"({rate:.0f}/s), {left} left",
                flush=True,
            )

        print("best of each:")
        _report("  webhook endpoint", ours)
        _report("  bare one-insert view", bare)
        ratio = ours["rate"] / bare["rate"] if bare["rate"] else 0
        print(f"ratio webhook/bare: {ratio:.2f} (goal >= 0.70)")
        print(
            f"reproduce: cd {ROOT} && {PY} bench/ingest.py --n {args.n} "
            f"--workers {args.workers} --clients {args.clients} --threads {args.threads} "
            f"--rounds {args.rounds}"
        )
        return 0
    finally:
        signal.alarm(0)
        for child in CHILDREN:
            _stop(child)


# --- set-up -------------------------------------------------------------------------


def _env(args) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        DJANGO_SECRET_KEY="bench-only-" + "x" * 50,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_COOKIES="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def _prepare_database(url: str, env: dict) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, body text NOT NULL)"
        )
        conn.execute("TRUNCATE bench_bare")


def _fresh_tenant(env: dict) -> tuple[str, str]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    code = (
        "import django, json; django.setup(); "
        "from retention.services import tenant_create; "
        f"t = tenant_create(slug={slug!r}, name='Bench'); "
        "print(json.dumps([t.tenant.slug, t.webhook_secret]))"
    )
    out = subprocess.run(
        [PY, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "retention.settings"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    slug, secret = json.loads(out.strip().splitlines()[-1])
    return slug, secret


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(cmd: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    CHILDREN.append(proc)
    return proc


def _gunicorn(env: dict, port: int, workers: int, settings_module: str) -> subprocess.Popen:
    proc = _spawn(
        [
            str(BIN / "gunicorn"),
            "retention.wsgi",
            "-k",
            "sync",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
        ],
        {**env, "DJANGO_SETTINGS_MODULE": settings_module},
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    # Warm every worker (imports, first DB connection) before measuring.
    for _ in range(workers * 4):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        conn.close()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- load ---------------------------------------------------------------------------


def _sign(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _client(job: tuple) -> tuple[list[float], dict[int, int]]:
    port, slug, secret, start, count, threads, run_id = job
    key = base64.b64decode(secret.removeprefix("whsec_"))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_thread = [range(start + t, start + count, threads) for t in range(threads)]

    def work(indexes: range) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        seen: dict[int, int] = {}
        for i in indexes:
            body = json.dumps(
                {
                    "type": "order.created",
                    "data": {
                        "id": f"{run_id}-{i}",
                        "placed_at": "2026-11-20T10:00:00Z",
                        "currency": "EUR",
                        "customer": {"id": f"c-{i % 5000}", "email": f"c{i % 5000}@example.com"},
                        "lines": [{"sku": f"SKU-{i % 50}", "quantity": 1, "unit_price": "19.90"}],
                    },
                }
            ).encode()
            msg_id = f"msg_{run_id}_{i}"
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": _sign(key, msg_id, ts, body),
            }
            t0 = time.perf_counter()
            try:
                conn.request("POST", f"/hooks/{slug}/", body, headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            mine.append(time.perf_counter() - t0)
            seen[status] = seen.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for k, v in seen.items():
                statuses[k] = statuses.get(k, 0) + v

    pool = [threading.Thread(target=work, args=(r,)) for r in per_thread]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies, statuses


def _load(port: int, slug: str, secret: str, args) -> dict:
    run_id = uuid.uuid4().hex[:6]
    share = -(-args.n // args.clients)
    jobs = [
        (port, slug, secret, c * share, min(share, args.n - c * share), args.threads, run_id)
        for c in range(args.clients)
        if c * share < args.n
    ]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        results = pool.map(_client, jobs)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for lat, _ in results for x in lat)
    statuses: dict[int, int] = {}
    for _, seen in results:
        for k, v in seen.items():
            statuses[k] = statuses.get(k, 0) + v
    accepted = statuses.get(202, 0)
    return {
        "accepted": accepted,
        "statuses": statuses,
        "elapsed": elapsed,
        "rate": accepted / elapsed if elapsed else 0.0,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
    }


def _report(label: str, r: dict) -> None:
    print(
        f"{label}: {r['accepted']} accepted in {r['elapsed']:.1f} s = {r['rate']:.0f}/s, "
        f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, statuses {r['statuses']}",
        flush=True,
    )


def _wait_processed(url: str, slug: str, started: float, limit: float = 900) -> int:
    import psycopg

    sql = (
        "SELECT count(*) FROM commerce_inboxentry e JOIN retention_tenant t "
        "ON t.id = e.tenant_id WHERE t.slug = %s AND e.status = 'pending'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            left = conn.execute(sql, [slug]).fetchone()[0]
            if left == 0 or time.perf_counter() - started > limit:
                return left
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
