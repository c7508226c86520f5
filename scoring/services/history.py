"""Retention of the nightly score history.

Every run adds one ``ChurnScoreHistory`` row per customer: a million rows a
night for a store of a million customers. After each run, rows older than the
store's ``history_days`` are deleted, one night at a time (an indexed range,
a statement each), except each customer's latest row, which the next run
reads for band changes and the customer page shows, however old it is.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef

from retention import clock
from scoring.models import ChurnScoreHistory
from scoring.services.setup import scoring_settings

logger = logging.getLogger(__name__)


def history_prune(tenant_id: int, *, now: datetime | None = None) -> int:
    """Delete the tenant's expired history rows; returns how many."""
    days = scoring_settings(tenant_id).history_days
    cutoff = (now or clock.now()) - timedelta(days=days)
    rows = ChurnScoreHistory.objects.for_tenant(tenant_id)
    nights = list(
        rows.filter(as_of__lt=cutoff).order_by("as_of").values_list("as_of", flat=True).distinct()
    )
    newer = rows.filter(customer_id=OuterRef("customer_id"), as_of__gt=OuterRef("as_of"))
    deleted = 0
    for night in nights:
        count, _ = rows.filter(as_of=night).filter(Exists(newer)).delete()
        deleted += count
    if deleted:
        logger.info(
            "scoring.history_pruned tenant_id=%s before=%s nights=%s rows=%s",
            tenant_id, cutoff.isoformat(), len(nights), deleted,
        )  # fmt: skip
    return deleted
