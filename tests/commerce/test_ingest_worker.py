"""Webhooks through the real broker and a real Celery worker process: a burst
is coalesced into a few drain tasks and every event is applied exactly once."""

from __future__ import annotations

import time

import pytest

from commerce.models import InboxEntry, Order, OrderLine
from retention.celery import app as celery_app
from tests.commerce.test_webhooks import ORDER, post
from tests.workers import celery_worker

BURST = 120
DEADLINE_SECONDS = 90


@pytest.fixture
def worker(transactional_db):
    """A `celery worker -Q ingest -c 2` on the test database and the suite's Redis."""
    with celery_worker("ingest") as proc:
        yield proc


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


def test_a_webhook_whose_kick_skipped_redis_is_applied_by_the_trailing_drain(
    tenant, worker, settings
):
    # given a process that has just seen a drain queued (a long memo, so the
    # drain surely starts and ends inside it)
    import redis as redis_lib

    from commerce import tasks

    settings.INBOX_KICK_MEMO_SECONDS = 4.0
    tasks._SEEN_QUEUED.clear()
    kicks = redis_lib.Redis.from_url(settings.REDIS_URL)
    key = tasks._kick_key(tenant.pk)
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    entries = InboxEntry.objects.for_tenant(tenant)
    try:
        order = {**ORDER, "id": "memo-1", "customer": {"id": "c-memo"}}
        assert (
            post(tenant, {"type": "order.created", "data": order}, msg_id="memo-1").status_code
            == 202
        )
        deadline = time.monotonic() + 3
        while entries.filter(status="processed").count() < 1:
            assert time.monotonic() < deadline, "the kicked drain did not run"
            time.sleep(0.05)
        assert not kicks.exists(key)  # the drain started: its key is gone

        # when a second webhook arrives within the memo, after that drain ended
        order = {**ORDER, "id": "memo-2", "customer": {"id": "c-memo"}}
        assert (
            post(tenant, {"type": "order.created", "data": order}, msg_id="memo-2").status_code
            == 202
        )
    finally:
        celery_app.conf.task_always_eager = before

    # then its kick asked nothing (no drain was queued for it) ...
    assert not kicks.exists(key)
    # ... and the drain's trailing check, 4 s after it ended, applies it (no sweeper runs here)
    deadline = time.monotonic() + 20
    while entries.filter(status="processed").count() < 2:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, list(entries.values_list("status", "error"))
        time.sleep(0.2)
    assert Order.objects.for_tenant(tenant).filter(external_id="memo-2").count() == 1
