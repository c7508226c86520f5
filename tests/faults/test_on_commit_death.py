"""The process dies inside ``on_commit``, right after its transaction commits
(``os._exit`` in the first callback, before any other runs). The inbox row is
the source of truth: a webhook whose processing kick died with the process is
found by the sweeper and applied once; an order whose after-commit hooks died
with the process is applied once and never again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

from django.db import connection

from commerce.models import InboxEntry, InboxStatus, Order, OrderLine
from commerce.services.inbox import Outcome, inbox_process
from commerce.tasks import SWEEP_AFTER, sweep_inbox
from retention import clock
from retention.celery import app as celery_app
from tests.commerce.test_webhooks import ORDER, post
from tests.faults.conftest import wait_until, worker_log, worker_process
from tests.workers import ROOT

EXIT_IN_ON_COMMIT = 17

# Posts the webhook in a transaction whose first on_commit callback ends the
# process: the row is committed, the kick the view queued after it never runs.
DIE_AFTER_WEBHOOK = """
    from django.db import transaction
    from django.test import Client
    from tests.commerce.test_webhooks import signed_headers

    body = json.dumps(ARGS["payload"]).encode()
    with transaction.atomic():
        transaction.on_commit(lambda: os._exit(EXIT))
        response = Client().post(
            f"/hooks/{ARGS['slug']}/", body, content_type="application/json",
            headers=signed_headers(ARGS["secret"], body, msg_id="m-die-1"),
        )
        assert response.status_code == 202, response.content
"""

# Processes the stored row; the first after-commit hook of the order ends the
# process (the segment refresh queued by the next hook never goes out).
DIE_AFTER_ORDER = """
    from commerce.models import InboxEntry
    from commerce.services.inbox import inbox_process
    from commerce.services.orders import ORDER_INGESTED_HOOKS

    ORDER_INGESTED_HOOKS.insert(0, lambda order, created: os._exit(EXIT))
    entry = InboxEntry.objects.for_tenant(ARGS["tenant_id"]).get(pk=ARGS["entry_id"])
    inbox_process(entry=entry)
"""


def _run_and_die(body: str, args: dict) -> subprocess.CompletedProcess:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "retention.settings",
    }
    script = (
        "import json, os, sys\nimport django\ndjango.setup()\n"
        f"ARGS = json.loads(sys.argv[1])\nEXIT = {EXIT_IN_ON_COMMIT}\n"
        + textwrap.dedent(body)
        + "\nsys.exit(0)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=40,
    )


def test_webhook_whose_kick_died_in_on_commit_is_applied_once_by_the_sweeper(
    transactional_db, tenant, broker
):
    # given a process that stores a webhook and dies in on_commit, before its kick
    payload = {"type": "order.created", "data": ORDER}
    args = {"payload": payload, "slug": tenant.slug, "secret": tenant.webhook_secret}
    died = _run_and_die(DIE_AFTER_WEBHOOK, args)
    assert died.returncode == EXIT_IN_ON_COMMIT, died.stderr[-3000:]
    entry = InboxEntry.objects.for_tenant(tenant).get()
    assert (entry.status, entry.attempts) == (InboxStatus.PENDING, 0)
    assert broker.llen("ingest") == 0  # no drain was queued
    assert not Order.objects.for_tenant(tenant).exists()

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with worker_process("ingest") as worker:
            # when the sweeper runs once the row has been due for SWEEP_AFTER
            clock.set_now(clock.now() + SWEEP_AFTER + timedelta(seconds=1))
            assert sweep_inbox() == 1
            entries = InboxEntry.objects.for_tenant(tenant)
            wait_until(
                lambda: entries.filter(status=InboxStatus.PROCESSED).count() == 1,
                seconds=30,
                what=lambda: (list(entries.values()), worker.poll(), worker_log(worker)),
            )
            # and again, with nothing left to do
            clock.set_now(clock.now() + SWEEP_AFTER)
            assert sweep_inbox() == 0
            # a replay of the same webhook is a duplicate
            assert post(tenant, payload, msg_id="m-die-1").json()["status"] == "duplicate"
            wait_until(lambda: broker.llen("ingest") == 0, seconds=10)
    finally:
        celery_app.conf.task_always_eager = before

    # then the order is there once, applied by one attempt
    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.error) == (InboxStatus.PROCESSED, 1, "")
    assert InboxEntry.objects.for_tenant(tenant).count() == 1
    assert Order.objects.for_tenant(tenant).count() == 1
    assert OrderLine.objects.for_tenant(tenant).count() == len(ORDER["lines"])


def test_order_whose_hooks_died_in_on_commit_stays_applied_once(transactional_db, tenant, broker):
    # given a stored webhook nobody has processed (its kick lost)
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        response = post(tenant, {"type": "order.created", "data": ORDER}, msg_id="m-die-2")
        assert response.status_code == 202
    finally:
        celery_app.conf.task_always_eager = before
    broker.delete("ingest")
    entry = InboxEntry.objects.for_tenant(tenant).get()

    # when a process applies it and dies in the order's first after-commit hook
    died = _run_and_die(DIE_AFTER_ORDER, {"tenant_id": tenant.pk, "entry_id": entry.pk})
    assert died.returncode == EXIT_IN_ON_COMMIT, died.stderr[-3000:]

    # then the order and the row's outcome were committed together
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == (InboxStatus.PROCESSED, 1)
    assert Order.objects.for_tenant(tenant).count() == 1
    # and neither the sweeper nor a re-run applies it again
    clock.set_now(clock.now() + SWEEP_AFTER + timedelta(seconds=1))
    assert sweep_inbox() == 0
    assert broker.llen("ingest") == 0
    assert inbox_process(entry=entry) == Outcome.SKIPPED
    entry.refresh_from_db()
    assert entry.attempts == 1
    assert Order.objects.for_tenant(tenant).count() == 1
    assert OrderLine.objects.for_tenant(tenant).count() == len(ORDER["lines"])
