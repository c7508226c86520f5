"""Celery tasks of scoring (routed to the ``scoring`` queue): thin wrappers.

- ``scoring.schedule_nightly`` (beat, every 15 minutes): queue the nightly run
  of every tenant whose local night hour has come and that has not run since.
- ``scoring.nightly``: claimed once per tenant night; retrains on the tenant's
  training weekday (or when no model fits), then starts the run and fans its
  chunks out, one task each, once the run is committed.
- ``scoring.score_chunk``: one chunk (idempotent: a done chunk is skipped).
- ``scoring.sweep`` (beat, every 5 minutes): re-queue chunks of unfinished
  runs that have waited too long (a lost message, a killed worker).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.db import OperationalError, transaction
from django.db.models import Q

from retention import clock
from scoring.models import RunStatus, ScoringChunk, ScoringSettings

logger = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}
STALE_CHUNK = timedelta(minutes=10)


@shared_task(name="scoring.schedule_nightly")
def schedule_nightly() -> list[int]:
    now = clock.now()
    queued = []
    # Platform-wide on purpose: the beat looks at every tenant's settings row.
    for settings in ScoringSettings.objects.unscoped().select_related("tenant"):
        if not settings.tenant.is_active:
            continue
        due = clock.hour_start(settings.tenant.timezone, settings.nightly_hour, now)
        if settings.last_nightly_at is None or settings.last_nightly_at < due:
            nightly.delay(settings.tenant_id, due.isoformat())
            queued.append(settings.tenant_id)
    return queued


@shared_task(name="scoring.nightly", **RETRY)
def nightly(tenant_id: int, due: str) -> dict:
    from scoring.services.runs import run_start
    from scoring.services.train import churn_train, version_for

    due_at = datetime.fromisoformat(due)
    previous = (
        ScoringSettings.objects.for_tenant(tenant_id)
        .values_list("last_nightly_at", flat=True)
        .first()
    )
    claimed = (
        ScoringSettings.objects.for_tenant(tenant_id)
        .filter(Q(last_nightly_at__isnull=True) | Q(last_nightly_at__lt=due_at))
        .update(last_nightly_at=clock.now())
    )
    if not claimed:
        return {"skipped": "already ran tonight"}
    settings = ScoringSettings.objects.for_tenant(tenant_id).get()
    trained = None
    try:
        if due_at.isoweekday() == settings.train_weekday or version_for(tenant_id, due_at) is None:
            trained = churn_train(tenant_id, as_of=due_at).version
        run = run_start(tenant_id, as_of=due_at)
    except Exception:
        # Give the night back, so the retry (or the next beat) runs it.
        ScoringSettings.objects.for_tenant(tenant_id).update(last_nightly_at=previous)
        raise
    chunk_ids = list(run.chunk_rows.filter(done=False).values_list("pk", flat=True))
    transaction.on_commit(lambda: [score_chunk.delay(pk) for pk in chunk_ids])
    return {"run": run.pk, "chunks": len(chunk_ids), "trained": trained}


@shared_task(name="scoring.score_chunk", **RETRY)
def score_chunk(chunk_id: int) -> dict:
    from scoring.services.runs import chunk_score

    return chunk_score(chunk_id)


@shared_task(name="scoring.sweep")
def sweep() -> int:
    """Re-queue chunks of running runs queued more than STALE_CHUNK ago."""
    stale = clock.now() - STALE_CHUNK
    chunks = list(
        ScoringChunk.objects.unscoped()  # platform sweeper: every tenant's runs
        .filter(done=False, run__status=RunStatus.RUNNING, queued_at__lt=stale)
        .values_list("pk", flat=True)[:1000]
    )
    if chunks:
        ScoringChunk.objects.unscoped().filter(pk__in=chunks).update(queued_at=clock.now())
        for pk in chunks:
            score_chunk.delay(pk)
    return len(chunks)
