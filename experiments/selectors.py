"""Reads other apps make of experiments: the running experiments on a journey
(for the trigger scan and the dispatcher) and who of a batch is eligible."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from experiments.assignment import variant_for
from experiments.models import Experiment, ExperimentKind, ExperimentStatus, Exposure, Variant
from segments.models import Segment
from segments.selectors import segment_member_rows

# Kinds whose control is kept out of the whole journey.
JOURNEY_KINDS = (ExperimentKind.HOLDOUT, ExperimentKind.CHECKIN)


@dataclass(eq=False)
class Running:
    """A running experiment as the journey engine needs it."""

    id: int
    tenant_id: int
    kind: str
    journey_id: int
    step_position: int | None
    arms: tuple[tuple[str, int], ...]  # (key, weight) by key
    variant_ids: dict[str, int] = field(default_factory=dict)
    control_key: str = ""
    segment: Segment | None = None
    started_at: datetime | None = None

    def variant_of(self, customer_id: int) -> str:
        return variant_for(self.tenant_id, self.id, customer_id, self.arms)

    def eligible(self, customer_ids: set[int]) -> set[int]:
        """Who of these takes part: those in the eligibility segment now, and
        anyone exposed before (a customer stays in their arm for good)."""
        if self.segment is None or not customer_ids:
            return set(customer_ids)
        exposed = set(
            Exposure.objects.for_tenant(self.tenant_id)
            .filter(experiment_id=self.id, customer_id__in=list(customer_ids))
            .values_list("customer_id", flat=True)
        )
        return exposed | segment_members(self.tenant_id, self.segment, customer_ids - exposed)


def segment_members(tenant_id: int, segment: Segment | None, customer_ids: set[int]) -> set[int]:
    """Those of ``customer_ids`` in the segment (or tier) now; all of them when
    there is no segment."""
    if segment is None or not customer_ids:
        return set(customer_ids)
    rows = segment_member_rows(segment).filter(customer_id__in=list(customer_ids))
    return set(rows.values_list("customer_id", flat=True))


def running_for_journey(*, tenant_id: int, journey_id: int) -> list[Running]:
    experiments = list(
        Experiment.objects.for_tenant(tenant_id)
        .filter(journey_id=journey_id, status=ExperimentStatus.RUNNING)
        .select_related("eligibility_segment")
    )
    if not experiments:
        return []
    variants: dict[int, list[Variant]] = {}
    for v in Variant.objects.for_tenant(tenant_id).filter(experiment__in=experiments):
        variants.setdefault(v.experiment_id, []).append(v)
    out = []
    for e in experiments:
        arms = sorted(variants.get(e.pk, []), key=lambda v: v.key)
        if not arms:
            continue
        out.append(
            Running(
                id=e.pk,
                tenant_id=tenant_id,
                kind=e.kind,
                journey_id=journey_id,
                step_position=e.step_position,
                arms=tuple((v.key, v.weight) for v in arms),
                variant_ids={v.key: v.pk for v in arms},
                control_key=next((v.key for v in arms if v.is_control), ""),
                segment=e.eligibility_segment,
                started_at=e.started_at,
            )
        )
    return out


def journey_experiment(*, tenant_id: int, journey_id: int) -> Running | None:
    """The running holdout or check-in experiment on a journey, if any (launch
    allows one at a time)."""
    return next(
        (
            r
            for r in running_for_journey(tenant_id=tenant_id, journey_id=journey_id)
            if r.kind in JOURNEY_KINDS
        ),
        None,
    )


def step_experiments(*, tenant_id: int, journey_id: int) -> dict[int, Running]:
    """The running step experiments on a journey, by step number."""
    return {
        r.step_position: r
        for r in running_for_journey(tenant_id=tenant_id, journey_id=journey_id)
        if r.kind == ExperimentKind.STEP and r.step_position
    }
