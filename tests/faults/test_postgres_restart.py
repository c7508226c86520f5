"""PostgreSQL restarted in the middle of a large send, as the worker sees it:
its sessions terminated, its connections cut, new connections refused for a
few seconds, then accepted again. The worker keeps running (tasks that hit
the dead connection retry on a new one), the sweeper run once the lease has
run out settles the batches that were in flight (asking the provider about
the calls in doubt), and every message reaches the provider exactly once; none
is left queued, sending or unknown (ARCHITECTURE.md rule 3).

The machine's PostgreSQL serves other suites at the same time, so it is not
restarted: the worker's database connections go through a proxy
(``tests/faults/pgproxy.py``) that does to them what a restart does, and only
the proxied sessions are terminated (found by their client port)."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

from django.db import connection, transaction

from messaging.models import Status
from messaging.services.outbox import messages_enqueue_many
from messaging.services.reconcile import messages_reconcile, reconcile_after
from messaging.services.send import LEASE
from messaging.services.sweep import DISPATCH_GRACE, messages_dispatch_due, messages_recover
from retention import clock
from retention.celery import app as celery_app
from tests.faults.conftest import wait_quiet, wait_until, worker_log, worker_process
from tests.faults.pgproxy import PgProxy
from tests.faults.sends import shipped_emails, statuses
from tests.workers import worker_env

MESSAGES = int(os.environ.get("FAULT_SENDS", "2000"))
CUSTOMERS = 200
CONCURRENCY = 2
DOWN_SECONDS = 3.0
RETRIED = re.compile(r"Task messaging\.send_batch\[[0-9a-f-]+\] retry: Retry in")


def _terminate(ports: list[int]) -> list[int]:
    """pg_terminate_backend for the proxy's sessions (never this test's own)."""
    if not ports:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'
               AND client_addr IN ('127.0.0.1', '::1') AND client_port = ANY(%s)
            """,
            [ports],
        )
        return [pid for pid, done in cursor.fetchall() if done]


def _idle(broker) -> bool:
    return broker.llen("dispatch") == 0 and not broker.hlen("unacked")


def test_postgres_restarted_mid_send_sends_every_message_at_most_once(
    transactional_db, tenant, fake_provider, broker
):
    # given a store with MESSAGES transactional emails queued, their tasks in Redis
    items = shipped_emails(tenant, MESSAGES, CUSTOMERS)
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    db = connection.settings_dict
    try:
        with transaction.atomic():
            ids = sorted(messages_enqueue_many(tenant=tenant, items=items).ids.values())
        assert len(ids) == MESSAGES

        with PgProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy:
            env = {
                **worker_env(),
                "LOG_LEVEL": "INFO",  # the assertions read the worker's retry lines
                "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
                "DB_CONNECT_TIMEOUT": "2",
            }
            with worker_process(
                "dispatch", concurrency=CONCURRENCY, env=env, loglevel="INFO"
            ) as worker:
                # when PostgreSQL "restarts" while the worker is part way through
                wait_until(
                    lambda: fake_provider.total >= MESSAGES // 5,
                    seconds=30,
                    what=lambda: (fake_provider.total, worker.poll(), worker_log(worker)),
                )
                sessions = proxy.connections()
                killed = proxy.restart(terminate=_terminate, down=DOWN_SECONDS)
                at_restart = fake_provider.total
                assert killed, "no worker session was terminated"
                assert at_restart < MESSAGES, "the worker finished first; raise MESSAGES"
                stranded = statuses(tenant)

                # then it goes on with the queue on new connections
                wait_until(
                    lambda: proxy.accepted > sessions and fake_provider.total > at_restart,
                    seconds=20,
                    what=lambda: (proxy.accepted, fake_provider.total, worker_log(worker)),
                )
                wait_until(
                    lambda: _idle(broker),
                    seconds=30,
                    what=lambda: (statuses(tenant), worker.poll(), worker_log(worker)),
                )
                wait_quiet(lambda: (fake_provider.total, statuses(tenant)), seconds=20)
                # and the sweeper, run after the cut batches' leases are over,
                # settles them; rows it puts back are sent by its next run (they
                # count as fresh for DISPATCH_GRACE), as beat would every 30 s
                later = clock.now() + LEASE + DISPATCH_GRACE + timedelta(seconds=1)
                recovered = messages_recover(now=later)
                later += reconcile_after()
                reconciled = messages_reconcile(now=later)
                dispatched = [messages_dispatch_due(now=later)]
                for tick in range(1, 4):
                    wait_until(lambda: _idle(broker), seconds=20, what=lambda: worker_log(worker))
                    wait_quiet(lambda: (fake_provider.total, statuses(tenant)), quiet=1.0)
                    if set(statuses(tenant)) == {Status.SENT}:
                        break
                    dispatched.append(messages_dispatch_due(now=later + tick * DISPATCH_GRACE))
                assert set(statuses(tenant)) == {Status.SENT}, (
                    statuses(tenant),
                    worker_log(worker),
                )
                time.sleep(1)  # a straggling duplicate task would have called by now
                assert worker.poll() is None, worker_log(worker)
                log = worker_log(worker)
                with open(worker.log_path) as f:
                    full_log = f.read()
    finally:
        celery_app.conf.task_always_eager = before

    # The tasks that met the dead connection or the closed port were retried
    # (on new connections), none failed for good.
    retries = RETRIED.findall(full_log)
    assert retries, log
    assert "raised unexpected" not in full_log, full_log[-5000:]

    counts = fake_provider.counts
    # Every message reached the provider exactly once and is recorded sent.
    assert fake_provider.total == sum(counts.values()) == MESSAGES
    assert [pk for pk in ids if fake_provider.accepted[str(pk)] != 1] == []
    assert statuses(tenant) == {Status.SENT: MESSAGES}
    # Only a call in flight in each pool process when its session died was in
    # doubt, and the provider settled it.
    assert recovered["unknown"] <= CONCURRENCY, (stranded, recovered, log)
    assert sum(reconciled.values()) == recovered["unknown"], reconciled
    print(
        f"restarted at {at_restart} calls ({len(killed)} sessions terminated); "
        f"stranded {stranded}; recovered {recovered}; reconciled {reconciled}; "
        f"dispatched {dispatched}; "
        f"proxy connections {proxy.accepted}; task retries {len(retries)}"
    )
