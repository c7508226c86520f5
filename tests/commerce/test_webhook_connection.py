"""A webhook's insert is its connection's health check: a web process whose
kept database connection died since its last request (PostgreSQL restarted,
an idle session killed) still stores the webhook, once, and answers 202."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from commerce.models import InboxEntry
from tests.commerce.test_webhooks import ORDER, post

pytestmark = pytest.mark.usefixtures("eager_tasks")


def _kill(pid: int) -> None:
    """pg_terminate_backend from a session of its own, and wait until it is gone."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    ) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the session outlived pg_terminate_backend"
            time.sleep(0.02)


def test_a_webhook_on_a_connection_that_died_is_stored_once_on_a_new_one(transactional_db, tenant):
    if connection.vendor != "postgresql":
        pytest.skip("the prepared insert is PostgreSQL's")
    # given a web process that answered a webhook and kept its connection
    first = post(tenant, {"type": "order.created", "data": ORDER}, msg_id="alive-1")
    assert first.status_code == 202
    assert connection.connection is not None, "the connection was not kept between requests"
    dead_pid = connection.connection.info.backend_pid
    # and whose session was then killed, as a PostgreSQL restart does
    _kill(dead_pid)

    # when the next webhook arrives, with nothing else asking the database first
    order = {**ORDER, "id": "1002", "number": "#1002"}
    second = post(tenant, {"type": "order.created", "data": order}, msg_id="after-kill")

    # then it is stored once, on a new connection, and accepted
    assert second.status_code == 202, second.content
    entries = InboxEntry.objects.for_tenant(tenant).filter(webhook_id="after-kill")
    assert entries.count() == 1
    assert second.json() == {"id": entries.get().pk, "status": "accepted"}
    assert connection.connection.info.backend_pid != dead_pid
