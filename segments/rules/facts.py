"""The same tests in Python, for one customer."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from commerce.models import ChannelConsent, ConsentStatus, Customer, Touchpoint
from segments.models import CustomerFamily, CustomerRFM, Match
from segments.rules.registry import REGISTRY, Evaluator
from segments.rules.validate import _each, _normalise_one, validate_match

# --- the same tests in Python, for one customer ------------------------------------------


class CustomerFacts:
    """One customer's data the rules read, each kind loaded on first use with
    one indexed query, so the per-customer refresh after an order tests every
    segment in a few queries instead of compiling one large one. Each field's
    evaluator must agree with its compiler (a property test holds them to it)."""

    def __init__(self, tenant_id: int, customer_id: int, now: datetime):
        self.tenant_id, self.customer_id, self.now = tenant_id, customer_id, now
        self._touch_counts: dict[tuple[str, int], int] = {}

    @cached_property
    def is_live(self) -> bool:
        """The customer exists in the tenant and is not a merged tombstone."""
        return (
            Customer.objects.for_tenant(self.tenant_id)
            .filter(pk=self.customer_id, merged_into__isnull=True)
            .exists()
        )

    @cached_property
    def rfm(self) -> CustomerRFM | None:
        return (
            CustomerRFM.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .first()
        )

    @cached_property
    def families(self) -> dict[int | str, datetime]:
        """When each family was last bought, by family id and by slug."""
        rows = (
            CustomerFamily.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .values_list("family_id", "family__slug", "last_at")
        )
        found: dict[int | str, datetime] = {}
        for family_id, slug, last_at in rows:
            found[family_id] = found[slug] = last_at
        return found

    @cached_property
    def consents(self) -> dict[str, str]:
        return dict(
            ChannelConsent.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .values_list("channel", "status")
        )

    def touchpoints(self, kind: str, within_days: int) -> int:
        key = (kind, within_days)
        if key not in self._touch_counts:
            self._touch_counts[key] = (
                Touchpoint.objects.for_tenant(self.tenant_id)
                .filter(
                    customer_id=self.customer_id,
                    kind=kind,
                    occurred_at__gt=self.now - timedelta(days=within_days),
                    occurred_at__lte=self.now,
                )
                .count()
            )
        return self._touch_counts[key]


def _compare(op: str, actual: Any, value: Any) -> bool:
    if op == "eq":
        return actual == value
    if op == "gte":
        return actual >= value
    if op == "lte":
        return actual <= value
    low, high = value
    return low <= actual <= high


def rfm_value(column: str, *, zero_without_orders: bool = False, money: bool = False) -> Evaluator:
    """The evaluator that matches :func:`rfm_column`."""

    def evaluate(cond: dict, facts: CustomerFacts) -> bool:
        value = cond["value"]
        if money:
            value = [Decimal(v) for v in value] if isinstance(value, list) else Decimal(value)
        if facts.rfm is None:
            return zero_without_orders and _compare(cond["op"], 0, value)
        return _compare(cond["op"], getattr(facts.rfm, column), value)

    return evaluate


def _days_since_last_order_value(cond: dict, facts: CustomerFacts) -> bool:
    if facts.rfm is None:
        return False
    op, value, last = cond["op"], cond["value"], facts.rfm.last_order_at
    low = value[0] if op == "between" else value if op == "gte" else None
    high = value[1] if op == "between" else value if op == "lte" else None
    return (low is None or last <= facts.now - timedelta(days=low)) and (
        high is None or last > facts.now - timedelta(days=high + 1)
    )


def _tier_value(cond: dict, facts: CustomerFacts) -> bool:
    return facts.rfm is not None and facts.rfm.tier in cond["value"]


def _price_tier_value(cond: dict, facts: CustomerFacts) -> bool:
    return facts.rfm is not None and facts.rfm.price_tier == cond["value"]


def _family_bought_value(cond: dict, facts: CustomerFacts) -> bool:
    refs = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
    days = cond.get("within_days")
    since = facts.now - timedelta(days=days) if days else None
    for ref in refs:
        last_at = facts.families.get(ref)
        if last_at is not None and (since is None or since < last_at <= facts.now):
            return True
    return False


def _family_not_bought_value(cond: dict, facts: CustomerFacts) -> bool:
    return not _family_bought_value(cond, facts)


def _consent_value(cond: dict, facts: CustomerFacts) -> bool:
    status = facts.consents.get(cond["value"]["channel"])
    if cond["value"]["status"] == ConsentStatus.UNKNOWN:
        return status not in (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT)
    return status == cond["value"]["status"]


def _touchpoint_value(cond: dict, facts: CustomerFacts) -> bool:
    value = cond["value"]
    enough = facts.touchpoints(value["kind"], value["within_days"]) >= value["min_count"]
    return enough if cond["op"] == "has" else not enough


def evaluate_rule(facts: CustomerFacts, match: str, conditions: Any) -> bool | None:
    """Whether one customer meets a stored rule, tested in Python; None when a
    condition's field has no evaluator (ask the database instead). Stops at the
    first condition that decides, so data the rest would need is not loaded."""
    validate_match(match)
    normalised = _each(conditions, lambda index, raw: _normalise_one(raw))
    if any(REGISTRY[c["field"]].evaluate is None for c in normalised):
        return None
    if not normalised or not facts.is_live:
        return False
    tests = (REGISTRY[c["field"]].evaluate(c, facts) for c in normalised)
    return all(tests) if match == Match.ALL else any(tests)
