"""Webhooks through the real broker and a real Celery worker process: a burst
is coalesced into a few drain tasks and every event is applied exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from commerce.models import InboxEntry, Order, OrderLine
from retention.celery import app as celery_app
from tests.commerce.test_webhooks import ORDER, post

ROOT = Path(__file__).resolve().parents[2]
BURST = 120
DEADLINE_SECONDS = 90


@pytest.fixture
def worker(transactional_db):
    """A `celery worker -Q ingest -c 2` on the test database and the suite's Redis."""
    if not settings.REDIS_URL:
        pytest.fail("This test needs Redis: set REDIS_URL (make test does).")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("ingest")  # nothing left over from other runs
    for key in client.scan_iter("retention:inbox-kick:*"):
        client.delete(key)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "retention",
            "worker",
            "-Q",
            "ingest",
            "-c",
            "2",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_burst_of_webhooks_is_applied_exactly_once_by_real_workers(tenant, worker):
    # given the suite's broker, with tasks really queued
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        # when a storefront sends a burst of orders, one of them twice
        for i in range(BURST):
            order = {**ORDER, "id": f"burst-{i}", "customer": {"id": f"c-{i % 40}"}}
            assert (
                post(tenant, {"type": "order.created", "data": order}, msg_id=f"m-{i}").status_code
                == 202
            )
        assert (
            post(tenant, {"type": "order.created", "data": ORDER}, msg_id="m-0").json()["status"]
            == "duplicate"
        )
    finally:
        celery_app.conf.task_always_eager = before

    # then the worker applies every stored event, each once
    entries = InboxEntry.objects.for_tenant(tenant)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while entries.filter(status="processed").count() < BURST:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, list(entries.values_list("status", "error")[:5])
        time.sleep(0.5)
    assert entries.count() == BURST
    assert set(entries.values_list("attempts", flat=True)) == {1}
    assert Order.objects.for_tenant(tenant).count() == BURST
    assert OrderLine.objects.for_tenant(tenant).count() == BURST * len(ORDER["lines"])
