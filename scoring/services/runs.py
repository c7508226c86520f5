"""A scoring run: the tenant split into chunks of customer ids, each scored once.

``run_start`` picks the model version (training one first if none fits the
as-of date), creates the :class:`ScoringRun` and its chunks: disjoint id
ranges that together cover every customer, about ``CHUNK_SIZE`` each.
``chunk_score`` scores one chunk and marks it done *in the same transaction*,
so a chunk is either wholly written and done, or not at all and run again; a
second worker finding it locked or done steps aside. The last chunk to finish
closes the run: it judges the outcomes of chosen actions whose horizon has
passed, refreshes the rule segments that read churn scores and prunes the
score history (``services.history``).

``churn_score`` does all of it in-process (the ``score_churn`` command); the
nightly task fans the chunks out to the ``scoring`` queue (``scoring.tasks``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Sum

from commerce.models import Order
from retention import clock
from scoring.data import read_frame
from scoring.models import ChosenAction, ModelVersion, RunStatus, ScoringChunk, ScoringRun
from scoring.services.history import history_prune
from scoring.services.score import churn_score_range
from scoring.services.setup import scoring_settings
from scoring.services.train import churn_train, version_for
from segments.services.rfm import UNCOUNTED_STATUSES

logger = logging.getLogger(__name__)

# Each chunk joins its customers' orders to the tenant's order lines in one pass
# over the lines table (the planner's best plan even for a chunk), so chunks are
# large: 1,000,000 customers in 8 chunks took 56-63 s over 2 workers, in 20
# chunks of 50,000 74.2 s (bench/scoring.py).
CHUNK_SIZE = 125_000
# Band entries of a score this recent start journeys and calls; older as-of
# dates (a re-score of the past) only record.
ANNOUNCE_WITHIN = timedelta(days=1)


def version_ensure(tenant_id: int, as_of: datetime, horizon_days: int) -> ModelVersion:
    """A version that uses nothing after ``as_of`` and has this horizon; trains
    one if there is none (made active when the tenant has no active version or
    the as-of date is current)."""
    version = version_for(tenant_id, as_of)
    if version is not None and version.horizon_days == horizon_days:
        return version
    has_active = ModelVersion.objects.for_tenant(tenant_id).filter(is_active=True).exists()
    current = as_of >= clock.now() - ANNOUNCE_WITHIN
    return churn_train(
        tenant_id, as_of=as_of, horizon_days=horizon_days, activate=current or not has_active
    )


def _chunk_bounds(tenant_id: int, chunk_size: int) -> list[tuple[int, int]]:
    ids = read_frame(
        """SELECT id FROM commerce_customer WHERE tenant_id = %(tenant)s ORDER BY id""",
        {"tenant": tenant_id},
        {"id": "int64"},
    )["id"].to_numpy()
    if len(ids) == 0:
        return []
    starts = ids[:: max(1, chunk_size)]
    his = np.r_[starts[1:] - 1, ids[-1]]
    return [(int(lo), int(hi)) for lo, hi in zip(starts, his, strict=True)]


def run_start(
    tenant_id: int,
    *,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    chunk_size: int | None = None,
) -> ScoringRun:
    """The run for (tenant, as_of), created with its chunks if new; an existing
    run is returned as it stands (its unfinished chunks can be run again)."""
    settings = scoring_settings(tenant_id)
    as_of = as_of or clock.now()
    horizon = horizon_days or settings.horizon_days
    existing = ScoringRun.objects.for_tenant(tenant_id).filter(as_of=as_of).first()
    if existing is not None:
        return existing
    version = version_ensure(tenant_id, as_of, horizon)
    announce = settings.last_scored_at is not None and as_of >= clock.now() - ANNOUNCE_WITHIN
    bounds = _chunk_bounds(tenant_id, chunk_size or CHUNK_SIZE)
    try:
        with transaction.atomic():
            run = ScoringRun.objects.create(
                tenant_id=tenant_id,
                as_of=as_of,
                model_version=version,
                announce=announce,
                chunks=len(bounds),
            )
            ScoringChunk.objects.bulk_create(
                ScoringChunk(tenant_id=tenant_id, run=run, lo=lo, hi=hi) for lo, hi in bounds
            )
    except IntegrityError:  # another starter won the race
        return ScoringRun.objects.for_tenant(tenant_id).get(as_of=as_of)
    if not bounds:
        run_finish(run.pk)
    return run


def chunk_score(chunk_id: int) -> dict:
    """Score one chunk once; a done or locked chunk is skipped."""
    with transaction.atomic():
        chunk = (
            ScoringChunk.objects.unscoped()  # a task knows the chunk by id; its tenant is on it
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("run", "run__model_version")
            .filter(pk=chunk_id, done=False)
            .first()
        )
        if chunk is None:
            return {"chunk": chunk_id, "skipped": True}
        run = chunk.run
        version = run.model_version or version_ensure(
            run.tenant_id, run.as_of, scoring_settings(run.tenant_id).horizon_days
        )
        written = churn_score_range(
            run.tenant_id, version, run.as_of, lo=chunk.lo, hi=chunk.hi, announce=run.announce
        )
        chunk.done = True
        chunk.attempts += 1
        chunk.scored = written.scored
        chunk.entered = written.entered
        chunk.finished_at = clock.now()
        chunk.seconds = {k: round(v, 3) for k, v in written.seconds.items()}
        chunk.save()
    run_finish(run.pk)
    return {"chunk": chunk_id, "scored": written.scored, "entered": written.entered}


def run_finish(run_id: int) -> bool:
    """Close the run once every chunk is done (exactly one caller wins)."""
    with transaction.atomic():
        run = ScoringRun.objects.unscoped().select_for_update().filter(pk=run_id).first()
        if run is None or run.status == RunStatus.DONE:
            return False
        if run.chunk_rows.filter(done=False).exists():
            return False
        totals = run.chunk_rows.aggregate(scored=Sum("scored"), entered=Sum("entered"))
        run.status = RunStatus.DONE
        run.scored = totals["scored"] or 0
        run.entered = totals["entered"] or 0
        run.finished_at = clock.now()
        run.seconds = {"wall": round((run.finished_at - run.started_at).total_seconds(), 2)}
        run.save()
        settings = scoring_settings(run.tenant_id)
        if settings.last_scored_at is None or settings.last_scored_at < run.as_of:
            settings.last_scored_at = run.as_of
            settings.save(update_fields=["last_scored_at"])
        actions_judge(run.tenant_id)
    _refresh_segments(run.tenant_id, announce=run.announce)
    logger.info(
        "scoring.run_done tenant_id=%s as_of=%s scored=%s entered=%s",
        run.tenant_id, run.as_of.isoformat(), run.scored, run.entered,
    )  # fmt: skip
    history_prune(run.tenant_id)
    return True


def actions_judge(tenant_id: int, now: datetime | None = None) -> int:
    """Record, for every chosen action whose horizon has passed, whether the
    customer ordered within it (one statement)."""
    now = now or clock.now()
    ordered = Order.objects.for_tenant(tenant_id).filter(
        customer_id=OuterRef("customer_id"),
        placed_at__gte=OuterRef("as_of"),
        placed_at__lt=OuterRef("horizon_end"),
    )
    return (
        ChosenAction.objects.for_tenant(tenant_id)
        .filter(ordered__isnull=True, horizon_end__lte=now)
        .update(ordered=Exists(ordered.exclude(status__in=UNCOUNTED_STATUSES)), judged_at=now)
    )


def _refresh_segments(tenant_id: int, *, announce: bool) -> None:
    """Rule segments that read churn scores follow the new scores; on a
    store's first run their entries are history (cause ``import``), not news."""
    from scoring.rules import churn_segments_refresh
    from segments.hooks import IMPORT_CAUSE

    churn_segments_refresh(tenant_id=tenant_id, cause="scoring" if announce else IMPORT_CAUSE)


def churn_score(
    tenant_id: int,
    *,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    chunk_size: int | None = None,
) -> ScoringRun:
    """Score the whole tenant in this process (chunk by chunk)."""
    run = run_start(tenant_id, as_of=as_of, horizon_days=horizon_days, chunk_size=chunk_size)
    for chunk_id in run.chunk_rows.filter(done=False).values_list("pk", flat=True):
        chunk_score(chunk_id)
    run.refresh_from_db()
    return run
