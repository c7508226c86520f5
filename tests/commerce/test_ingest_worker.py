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
