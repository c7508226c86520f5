"""Recording exposures: the first time a customer in a running experiment
reaches the point of treatment.

The journey engine calls these inside its own transactions (the trigger
scan's enrollment, the dispatcher's batch), so an exposure is written if and
only if the enrollment or the step it stands for is. The unique (experiment,
customer) key keeps the first exposure; a re-read trigger or a replayed batch
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from experiments.models import Exposure
from experiments.selectors import Running, journey_experiment


@dataclass(frozen=True)
class Seen:
    customer_id: int
    key: str  # the variant
    at: datetime
    source: str = ""


def exposures_record(*, experiment: Running, seen: Iterable[Seen]) -> int:
    rows = [
        Exposure(
            tenant_id=experiment.tenant_id,
            experiment_id=experiment.id,
            variant_id=experiment.variant_ids[s.key],
            customer_id=s.customer_id,
            exposed_at=s.at,
            source=s.source[:100],
        )
        for s in seen
    ]
    if rows:
        Exposure.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def journey_split(
    *, tenant_id: int, journey_id: int, entries: list[tuple[int, datetime, str]]
) -> dict[int, bool] | None:
    """For a journey under a running holdout or check-in experiment: record the
    exposure of each eligible entering customer (customer id, trigger time,
    trigger key) and return, for each of them, whether they are in the control
    (held out). Customers not in the experiment are not in the answer. None
    when no such experiment runs (the journey's own holdout percentage applies
    to everyone)."""
    experiment = journey_experiment(tenant_id=tenant_id, journey_id=journey_id)
    if experiment is None:
        return None
    started = experiment.started_at
    entries = [e for e in entries if started is None or e[1] >= started]
    eligible = experiment.eligible({customer for customer, _, _ in entries})
    seen = [
        Seen(customer, experiment.variant_of(customer), at, key)
        for customer, at, key in sorted(entries, key=lambda e: e[1])
        if customer in eligible
    ]
    exposures_record(experiment=experiment, seen=seen)
    return {s.customer_id: s.key == experiment.control_key for s in seen}
