"""The Celery app. Settings come from Django settings under the CELERY_ prefix.

Queues: ingest, dispatch, segments, scoring, default (see ARCHITECTURE.md).
Every task is acks_late with reject_on_worker_lost; future work is a database
row with a due time picked up by a beat sweeper, never a long countdown.

A worker keeps its database connection from task to task (``CELERY_DB_REUSE_MAX``),
so a connection the server dropped (a restart, a failover, an idle timeout) is
closed after the task that ran into it (``_drop_broken_connections``): the next
task, or the retry, connects afresh instead of failing on the dead one.
"""

import contextlib
import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention.settings")

app = Celery("retention")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name) for name in ("ingest", "dispatch", "segments", "scoring", "default")
]
app.autodiscover_tasks()


def _is_broken(conn) -> bool:
    """Whether this Django connection ran into a database error (through Django's
    wrappers, or straight on the driver, as the send path's hot statement does)."""
    raw = conn.connection
    if raw is None:
        return False
    return bool(
        conn.errors_occurred or getattr(raw, "broken", False) or getattr(raw, "closed", False)
    )


@signals.task_postrun.connect
def _drop_broken_connections(**kwargs) -> None:
    """After every task (succeeded, failed or retried): close a database
    connection that had an error and no longer answers.

    Celery's Django fixup only looks at connections every ``CELERY_DB_REUSE_MAX``
    tasks, and Django's health check (``CONN_HEALTH_CHECKS``) runs once per
    request, which a worker never starts: without this, a pool process whose
    connection the server terminated fails every task it takes until then. A
    connection without errors costs nothing here (no query)."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block or not _is_broken(conn):
            continue
        conn.errors_occurred = True  # so the check below asks the server
        with contextlib.suppress(Exception):
            conn.close_if_unusable_or_obsolete()
