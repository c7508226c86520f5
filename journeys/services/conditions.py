"""Step conditions, answered for a whole batch with one query per kind of fact."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from commerce.models import ChannelConsent, ConsentStatus, Order
from journeys.models import Condition, Enrollment, JourneyStep, StepRun
from segments.models import CustomerRFM, Segment, SegmentKind, SegmentMembership

if TYPE_CHECKING:
    from journeys.services.dispatch import Cache


class Facts:
    """Lazily loads, for the batch's customers, only the facts its conditions ask."""

    def __init__(self, tenant_id: int, rows: list[Enrollment], cache: Cache) -> None:
        self.tenant_id = tenant_id
        self.rows = rows
        self.cache = cache
        self._loaded: dict[str, object] = {}

    @property
    def customer_ids(self) -> list[int]:
        return sorted({r.customer_id for r in self.rows})

    def _once(self, name: str, load):
        if name not in self._loaded:
            self._loaded[name] = load()
        return self._loaded[name]

    def holds(self, row: Enrollment, step: JourneyStep) -> bool:
        kind, value = step.condition, step.condition_value
        if kind == Condition.TIER:
            return self._tiers().get(row.customer_id) == value
        if kind == Condition.IN_SEGMENT:
            return row.customer_id in self._segment_members(int(value))
        if kind in (Condition.OPENED_PREVIOUS, Condition.CLICKED_PREVIOUS):
            opened, clicked = self._previous_engagement().get(row.pk, (False, False))
            return opened if kind == Condition.OPENED_PREVIOUS else clicked
        if kind == Condition.PURCHASED_SINCE_ENTRY:
            return self._ordered_since(row)
        if kind == Condition.HAS_CONSENT:
            return (row.customer_id, value) in self._consents()
        if kind == Condition.PREFERRED_CHANNEL:
            customer = self._customers().get(row.customer_id)
            return customer is not None and customer.preferred_channel == value
        return True

    def _tiers(self) -> dict[int, str]:
        return self._once(
            "tiers",
            lambda: dict(
                CustomerRFM.objects.for_tenant(self.tenant_id)
                .filter(customer_id__in=self.customer_ids)
                .values_list("customer_id", "tier")
            ),
        )

    def _segment_members(self, segment_id: int) -> set[int]:
        def load() -> set[int]:
            segment = Segment.objects.for_tenant(self.tenant_id).filter(pk=segment_id).first()
            if segment is None:
                return set()
            if segment.kind == SegmentKind.TIER:
                rows = CustomerRFM.objects.for_tenant(self.tenant_id).filter(tier=segment.tier)
            else:
                rows = SegmentMembership.objects.for_tenant(self.tenant_id).filter(segment=segment)
            return set(
                rows.filter(customer_id__in=self.customer_ids).values_list("customer_id", flat=True)
            )

        return self._once(f"segment:{segment_id}", load)

    def _previous_engagement(self) -> dict[int, tuple[bool, bool]]:
        """Per enrollment: did the last message it sent get opened / clicked."""

        def load() -> dict[int, tuple[bool, bool]]:
            runs = (
                StepRun.objects.for_tenant(self.tenant_id)
                .filter(enrollment_id__in=[r.pk for r in self.rows], message__isnull=False)
                .order_by("enrollment_id", "at", "id")
                .values_list("enrollment_id", "message__opened_at", "message__clicked_at")
            )
            last: dict[int, tuple[bool, bool]] = {}
            for enrollment_id, opened_at, clicked_at in runs:
                last[enrollment_id] = (opened_at is not None, clicked_at is not None)
            return last

        return self._once("engagement", load)

    def _ordered_since(self, row: Enrollment) -> bool:
        def load() -> dict[int, list[tuple[int, object]]]:
            since = min(r.trigger_at for r in self.rows)
            found: dict[int, list] = defaultdict(list)
            for customer_id, order_id, placed_at in (
                Order.objects.for_tenant(self.tenant_id)
                .filter(customer_id__in=self.customer_ids, placed_at__gt=since)
                .exclude(status="cancelled")
                .values_list("customer_id", "id", "placed_at")
            ):
                found[customer_id].append((order_id, placed_at))
            return found

        trigger_order = (row.context or {}).get("order_id")
        return any(
            order_id != trigger_order and placed_at > row.trigger_at
            for order_id, placed_at in self._once("orders", load).get(row.customer_id, [])
        )

    def _consents(self) -> set[tuple[int, str]]:
        return self._once(
            "consents",
            lambda: set(
                ChannelConsent.objects.for_tenant(self.tenant_id)
                .filter(customer_id__in=self.customer_ids, status=ConsentStatus.OPTED_IN)
                .values_list("customer_id", "channel")
            ),
        )

    def _customers(self):
        from commerce.models import Customer

        return self._once(
            "customers",
            lambda: Customer.objects.for_tenant(self.tenant_id).in_bulk(self.customer_ids),
        )
