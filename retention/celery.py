"""The Celery app. Settings come from Django settings under the CELERY_ prefix.

Queues: ingest, dispatch, segments, scoring, default (see ARCHITECTURE.md).
Every task is acks_late with reject_on_worker_lost; future work is a database
row with a due time picked up by a beat sweeper, never a long countdown.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention.settings")

app = Celery("retention")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name) for name in ("ingest", "dispatch", "segments", "scoring", "default")
]
app.autodiscover_tasks()
