"""Per-tenant setup: the settings row and the three tier segments."""

from __future__ import annotations

from retention.models import Tenant
from segments.models import Segment, SegmentKind, SegmentSettings, Tier

TIER_SEGMENTS = {
    Tier.HIGH_VALUE_REPEAT: (
        "high-value-repeat",
        "Repeat buyers (orders in the window at or above the repeat threshold) "
        "whose monetary score is at or above the high-value threshold.",
    ),
    Tier.MID_VALUE_REPEAT: (
        "mid-value-repeat",
        "Repeat buyers below the high-value monetary score.",
    ),
    Tier.ONE_TIME: (
        "one-time",
        "Buyers with fewer counted orders in the window than the repeat threshold.",
    ),
}


def segment_settings(tenant: Tenant | int) -> SegmentSettings:
    tenant_id = getattr(tenant, "pk", tenant)
    settings, _ = SegmentSettings.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)
    return settings


def tier_segments(tenant: Tenant | int) -> dict[str, Segment]:
    """The tenant's three tier segments by tier, created if missing."""
    tenant_id = getattr(tenant, "pk", tenant)
    found = {s.tier: s for s in Segment.objects.for_tenant(tenant_id).filter(kind=SegmentKind.TIER)}
    for tier, (slug, description) in TIER_SEGMENTS.items():
        if tier not in found:
            found[tier], _ = Segment.objects.for_tenant(tenant_id).get_or_create(
                tenant_id=tenant_id,
                kind=SegmentKind.TIER,
                tier=tier,
                defaults={"name": Tier(tier).label, "slug": slug, "description": description},
            )
    return found


def segments_setup(tenant: Tenant) -> None:
    """TENANT_CREATED_HOOKS: every tenant starts with settings and tier segments."""
    segment_settings(tenant)
    tier_segments(tenant)
