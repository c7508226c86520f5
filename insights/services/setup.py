"""A tenant's insights settings and KPI targets, made with their defaults the
first time they are asked for."""

from __future__ import annotations

from insights.models import InsightsSettings, Kpi, KpiTarget
from retention.models import Tenant

# (tier, kpi): (low, high). The tier ranges are the defaults; the
# all-customer ones apply where a tier has none (delivery, response,
# unsubscribes) and to messages whose recipient has no tier yet.
DEFAULT_TARGETS: dict[tuple[str, str], tuple[float, float]] = {
    ("high_value_repeat", Kpi.OPEN): (0.25, 0.40),
    ("high_value_repeat", Kpi.CLICK): (0.04, 0.09),
    ("high_value_repeat", Kpi.CONVERSION): (0.03, 0.07),
    ("mid_value_repeat", Kpi.OPEN): (0.18, 0.28),
    ("mid_value_repeat", Kpi.CLICK): (0.02, 0.06),
    ("mid_value_repeat", Kpi.CONVERSION): (0.01, 0.04),
    ("one_time", Kpi.OPEN): (0.10, 0.20),
    ("one_time", Kpi.CLICK): (0.01, 0.03),
    ("one_time", Kpi.CONVERSION): (0.005, 0.02),
    ("", Kpi.OPEN): (0.15, 0.30),
    ("", Kpi.CLICK): (0.02, 0.06),
    ("", Kpi.CONVERSION): (0.01, 0.04),
    ("", Kpi.DELIVERY): (0.95, 1.0),
    ("", Kpi.RESPONSE): (0.02, 0.08),
    ("", Kpi.UNSUBSCRIBE): (0.0, 0.005),
}


def insights_settings(tenant: Tenant | int) -> InsightsSettings:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    found, _ = InsightsSettings.objects.get_or_create(tenant_id=tenant_id)
    return found


def kpi_targets(tenant: Tenant | int) -> dict[tuple[str, str], tuple[float, float]]:
    """(tier, kpi) → (low, high): the tenant's own rows, the defaults for the
    rest (written on first use so the marketer can edit them in the admin)."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    rows = KpiTarget.objects.for_tenant(tenant_id)
    have = {(t.tier, t.kpi): (t.low, t.high) for t in rows}
    missing = [key for key in DEFAULT_TARGETS if key not in have]
    if missing:
        KpiTarget.objects.bulk_create(
            [
                KpiTarget(tenant_id=tenant_id, tier=tier, kpi=kpi, low=low, high=high)
                for (tier, kpi) in missing
                for low, high in [DEFAULT_TARGETS[(tier, kpi)]]
            ],
            ignore_conflicts=True,
        )
        have.update({key: DEFAULT_TARGETS[key] for key in missing})
    return have


def target_for(
    targets: dict[tuple[str, str], tuple[float, float]], tier: str, kpi: str
) -> tuple[float, float] | None:
    return targets.get((tier, kpi)) or targets.get(("", kpi))


def rag(value: float | None, target: tuple[float, float] | None, kpi: str) -> str:
    """green / amber / red against a target range ("" when there is no value
    or no target). Amber is within a fifth of the range's width outside it."""
    if value is None or target is None:
        return ""
    low, high = target
    margin = max((high - low) / 5, 1e-9)
    if kpi == Kpi.UNSUBSCRIBE:  # lower is better
        if value <= high:
            return "green"
        return "amber" if value <= high + margin else "red"
    if low <= value <= high or value > high:
        return "green"
    return "amber" if value >= low - margin else "red"
