"""The send path at volume: N queued messages through 2 worker processes to the
fake provider, counting what the provider saw.

1. Creates (and migrates) the bench database if missing, a fresh tenant with a
   sender identity, N customers (opted in) and N queued messages: 70% email,
   30% SMS, half marketing, half transactional (every one goes through the
   consent, suppression, quiet-hours and cap checks).
2. Starts the fake SendGrid/Twilio (``python -m tests.fake_provider``) and
   ``celery -A retention worker -Q dispatch -c 2`` pointed at it.
3. Hands every due message to send tasks (``messages_dispatch_due``, batches of
   100, as the sweeper does) and waits until none is queued or sending.
4. Prints messages/s, and from the fake's own counts: messages the provider saw
   exactly once, more than once (duplicates) and never (lost); then the CPU
   seconds each component used while sending, and per message. Wall-clock
   figures move with whatever else the machine runs; CPU per message of the
   send path (workers + fake provider + the bench database's PostgreSQL
   backends) does much less, so compare changes by it. "postgres (other)" is
   PostgreSQL's shared processes and any other database on the machine.

Workers run as deployed: DEBUG off, LOG_LEVEL=WARNING.

    .venv/bin/python bench/send.py --n 100000

Goal (issue 5): at least 1,000 messages/s with 2 worker processes; zero
duplicates, zero lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/retention_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
CHILDREN: list[subprocess.Popen] = []
_SEND_PATH = ("workers", "fake provider", "postgres (bench db)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="messages")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--pool",
        choices=["threads", "prefork"],
        default="threads",
        help="threads: each worker process runs --threads send batches at once; "
        "prefork: one worker with --workers child processes",
    )
    parser.add_argument("--threads", type=int, default=4, help="batches at once per process")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--deadline", type=int, default=1800, help="seconds for the whole run")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(args.deadline)

    port = _free_port()
    fake_url = f"http://127.0.0.1:{port}"
    env = _env(args, fake_url)
    os.environ.update(env)
    try:
        _prepare_database(args.database_url, env)
        _spawn([PY, "-m", "tests.fake_provider", "--port", str(port)], env)
        _wait_http(f"{fake_url}/_fake/calls")

        import django

        django.setup()
        tenant_id, ids = _seed(args.n)
        _flush_redis(args.redis_url)
        print(
            f"{len(ids)} queued messages (70% email, 30% SMS; half marketing); "
            f"{_describe(args)}; fake provider {fake_url}",
            flush=True,
        )
        for command in _worker_commands(args):
            _spawn(command, env)
        time.sleep(3)  # worker boot

        from messaging.services.sweep import messages_dispatch_due

        database = args.database_url.rsplit("/", 1)[1]
        cpu_before = _cpu_seconds(database)
        started = time.perf_counter()
        # No limit: the dispatcher is platform-wide, and messages an earlier
        # interrupted run left pending in this database sort first.
        handed = messages_dispatch_due(grace=_zero(), limit=10**9)
        elapsed = _wait_done(tenant_id, started)
        cpu = _cpu_used(cpu_before, _cpu_seconds(database))
        _report(tenant_id, ids, handed, elapsed, fake_url)
        print(
            "CPU seconds while sending: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
            + f" (of {2 * elapsed:.1f} on 2 cores; {os.cpu_count()} here)"
        )
        n = len(ids)
        print(
            "CPU ms per message: "
            + ", ".join(f"{k} {1000 * v / n:.3f}" for k, v in cpu.items() if k != "bench")
            + "; the send path (workers + fake provider + bench db backends) "
            + f"{1000 * sum(cpu.get(k, 0.0) for k in _SEND_PATH) / n:.3f}"
        )
    finally:
        for proc in CHILDREN:
            _stop(proc)
    own = "".join(
        f" --{name.replace('_', '-')} {value}"
        for name, value, default in (
            ("database_url", args.database_url, DEFAULT_DB),
            ("redis_url", args.redis_url, DEFAULT_REDIS),
        )
        if value != default
    )
    print(
        f"reproduce: {PY} bench/send.py --n {args.n} --workers {args.workers} "
        f"--pool {args.pool} --threads {args.threads}{own}"
    )
    return 0


def _worker_commands(args) -> list[list[str]]:
    base = [PY, "-m", "celery", "-A", "retention", "worker", "-Q", "dispatch"]
    base += ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    if args.pool == "prefork":
        return [[*base, "--pool", "prefork", "-c", str(args.workers)]]
    return [
        [*base, "--pool", "threads", "-c", str(args.threads), "-n", f"send{i}@%h"]
        for i in range(args.workers)
    ]


def _describe(args) -> str:
    if args.pool == "prefork":
        return f"celery worker -Q dispatch --pool prefork -c {args.workers}"
    return f"{args.workers} x celery worker -Q dispatch --pool threads -c {args.threads}"


def _cpu_seconds(database: str) -> dict[tuple[str, int], float]:
    """CPU time used so far, by (component, pid): the workers (with their
    children), the fake provider, this process, and each PostgreSQL process,
    as "postgres (bench db)" when it is a backend of the bench's database, else
    "postgres (other)": the shared background processes and, on a shared
    machine, other people's databases."""
    tick = os.sysconf("SC_CLK_TCK")

    def tree(pid: int) -> float:
        try:
            own = _own(Path(f"/proc/{pid}"), tick)
        except OSError:
            return 0.0
        children = Path(f"/proc/{pid}/task/{pid}/children")
        kids = children.read_text().split() if children.exists() else []
        return own + sum(tree(int(k)) for k in kids)

    cpu = {("bench", os.getpid()): time.process_time()}
    for p in CHILDREN:
        args = " ".join(p.args)
        name = "workers" if "celery" in args else "fake provider" if "fake_provider" in args else ""
        if name:
            cpu[(name, p.pid)] = tree(p.pid)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if proc.joinpath("comm").read_text().strip() == "postgres":
                    # "postgres: 15/main: <user> <database> <client> <state>"
                    words = proc.joinpath("cmdline").read_text().replace("\0", " ").split()
                    name = "postgres (bench db)" if database in words else "postgres (other)"
                    cpu[(name, int(proc.name))] = _own(proc, tick)
    return cpu


def _cpu_used(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]
) -> dict[str, float]:
    """CPU seconds per component between two readings (a process counts from
    its first reading; one that exited in between is not seen)."""
    used = {"workers": 0.0, "fake provider": 0.0}
    for (name, pid), value in after.items():
        used[name] = used.get(name, 0.0) + value - before.get((name, pid), 0.0)
    return used


def _own(proc: Path, tick: int) -> float:
    """User + system CPU seconds of one process (fields 14 and 15 of its stat)."""
    fields = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def _zero():
    from datetime import timedelta

    return timedelta(0)


def _env(args, fake_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "retention.settings",
        # As deployed (and as bench/ingest.py runs): DEBUG off. With DEBUG on,
        # every query of the workers is also formatted and kept.
        "DJANGO_SECRET_KEY": "bench-only-" + "x" * 50,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "SENDGRID_API_KEY": "SG.bench",
        "SENDGRID_API_HOST": fake_url,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench-token",
        "TWILIO_API_BASE_URL": fake_url,
        "PROVIDER_TIMEOUT": "10",
    }


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


def _seed(n: int) -> tuple[int, list[int]]:
    """A fresh tenant, n opted-in customers and one queued message each."""
    from datetime import timedelta

    from commerce.models import ChannelConsent, Customer
    from messaging.models import Category, Message
    from messaging.services.outbox import messaging_settings
    from retention import clock
    from retention.services import tenant_create

    tenant = tenant_create(slug=f"send-{uuid.uuid4().hex[:8]}", name="Send bench").tenant
    ms = messaging_settings(tenant)
    ms.from_email, ms.sms_from = "shop@bench.example", f"+1555{uuid.uuid4().int % 10**7:07d}"
    ms.quiet_hours_enabled = False  # the run must not depend on the hour it starts
    ms.save()
    past = clock.now() - timedelta(minutes=5)
    customers = Customer.objects.bulk_create(
        [
            Customer(
                tenant=tenant,
                email=f"c{i}@bench.example",
                phone=f"+1202555{i % 10**4:04d}",
                created_at=past,
                updated_at=past,
            )
            for i in range(n)
        ],
        batch_size=5000,
    )
    ChannelConsent.objects.bulk_create(
        [
            ChannelConsent(tenant=tenant, customer=c, channel=ch, status="opted_in", source="bench")
            for c in customers
            for ch in ("email", "sms")
        ],
        batch_size=10000,
    )
    messages = Message.objects.bulk_create(
        [
            Message(
                tenant=tenant,
                customer=c,
                channel="sms" if i % 10 < 3 else "email",
                category=Category.MARKETING if i % 2 else Category.TRANSACTIONAL,
                idempotency_key=f"bench:{i}",
                to_address=c.phone if i % 10 < 3 else c.email,
                subject="Your order is on its way",
                body_text=f"Hello {i}, your parcel left our warehouse today.",
                body_html=f"<p>Hello {i}, your parcel left our warehouse today.</p>",
                due_at=past,
                created_at=past,
                updated_at=past,
            )
            for i, c in enumerate(customers)
        ],
        batch_size=5000,
    )
    # As autovacuum would have by the time a store sends at this volume; a
    # tenant newer than the statistics gets poor plans for its first batches.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message, commerce_channelconsent, commerce_customer")
    return tenant.pk, [m.pk for m in messages]


def _wait_done(tenant_id: int, started: float, limit: float = 1500) -> float:
    from messaging.models import Message, Status

    pending = Message.objects.for_tenant(tenant_id).filter(
        status__in=[Status.QUEUED, Status.DEFERRED, Status.SENDING]
    )
    last = -1
    while time.perf_counter() - started < limit:
        left = pending.count()
        if left == 0:
            return time.perf_counter() - started
        if left != last:
            print(f"  {left} left after {time.perf_counter() - started:.1f} s", flush=True)
            last = left
        time.sleep(1)
    raise TimeoutError(f"{pending.count()} messages still pending after {limit} s")


def _report(tenant_id: int, ids: list[int], handed: int, elapsed: float, fake_url: str) -> None:
    from django.db.models import Count

    from messaging.models import Message

    by_status = dict(
        Message.objects.for_tenant(tenant_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    with urllib.request.urlopen(f"{fake_url}/_fake/calls", timeout=30) as resp:  # noqa: S310
        summary = json.load(resp)
    accepted = summary["accepted"]
    counts = summary["counts"]
    once = sum(1 for pk in ids if accepted.get(str(pk), 0) == 1)
    duplicates = sum(1 for pk in ids if accepted.get(str(pk), 0) > 1)
    lost = sum(1 for pk in ids if counts.get(str(pk), 0) == 0)
    n = len(ids)
    print(f"handed to tasks: {handed}; statuses: {by_status}")
    print(f"sent {n} messages in {elapsed:.1f} s: {n / elapsed:,.0f} messages/s")
    print(f"provider saw exactly once: {once}; duplicates: {duplicates}; never: {lost}")


def _spawn(cmd: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    CHILDREN.append(proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_http(url: str, limit: float = 20) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    sys.exit(main())
