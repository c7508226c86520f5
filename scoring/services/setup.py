"""Per-tenant setup: the scoring settings row and the default action policy."""

from __future__ import annotations

from retention.models import Tenant
from scoring.models import ActionPolicy, NextAction, PolicyTier, RiskBand, ScoringSettings

_A = NextAction
# (band, tier) -> (action when not recently contacted, action when recently contacted).
# Healthy customers are left alone; a valuable customer slipping away gets a
# person, others a win-back with an incentive; a recent contact waits its turn
# rather than stacking messages.
DEFAULT_POLICY: dict[tuple[str, str], tuple[str, str]] = {
    (RiskBand.HIGH, PolicyTier.HIGH_VALUE_REPEAT): (_A.CALL, _A.CALL),
    (RiskBand.HIGH, PolicyTier.MID_VALUE_REPEAT): (_A.WINBACK, _A.NONE),
    (RiskBand.HIGH, PolicyTier.ONE_TIME): (_A.WINBACK, _A.NONE),
    (RiskBand.HIGH, PolicyTier.NONE): (_A.NUDGE, _A.NONE),
    (RiskBand.MEDIUM, PolicyTier.HIGH_VALUE_REPEAT): (_A.CALL, _A.NONE),
    (RiskBand.MEDIUM, PolicyTier.MID_VALUE_REPEAT): (_A.NUDGE, _A.NONE),
    (RiskBand.MEDIUM, PolicyTier.ONE_TIME): (_A.NUDGE, _A.NONE),
    (RiskBand.MEDIUM, PolicyTier.NONE): (_A.NUDGE, _A.NONE),
    (RiskBand.LOW, PolicyTier.HIGH_VALUE_REPEAT): (_A.NONE, _A.NONE),
    (RiskBand.LOW, PolicyTier.MID_VALUE_REPEAT): (_A.NONE, _A.NONE),
    (RiskBand.LOW, PolicyTier.ONE_TIME): (_A.NONE, _A.NONE),
    (RiskBand.LOW, PolicyTier.NONE): (_A.NONE, _A.NONE),
}


def scoring_settings(tenant: Tenant | int) -> ScoringSettings:
    tenant_id = getattr(tenant, "pk", tenant)
    settings, _ = ScoringSettings.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)
    return settings


def policy_install_defaults(tenant: Tenant | int) -> int:
    """Add the default rule for every cell the tenant has not set; returns how
    many were added. A marketer's edits are kept."""
    tenant_id = getattr(tenant, "pk", tenant)
    have = set(
        ActionPolicy.objects.for_tenant(tenant_id).values_list("band", "tier", "recently_contacted")
    )
    rows = [
        ActionPolicy(
            tenant_id=tenant_id, band=band, tier=tier, recently_contacted=contacted, action=action
        )
        for (band, tier), actions in DEFAULT_POLICY.items()
        for contacted, action in zip((False, True), actions, strict=True)
        if (band, tier, contacted) not in have
    ]
    ActionPolicy.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def policy_table(tenant: Tenant | int) -> dict[tuple[str, str, bool], str]:
    """(band, tier, recently_contacted) -> action, complete: a cell missing from
    the tenant's table (deleted by hand) falls back to the default."""
    tenant_id = getattr(tenant, "pk", tenant)
    table = {
        (band, tier, contacted): action
        for (band, tier), actions in DEFAULT_POLICY.items()
        for contacted, action in zip((False, True), actions, strict=True)
    }
    for band, tier, contacted, action in ActionPolicy.objects.for_tenant(tenant_id).values_list(
        "band", "tier", "recently_contacted", "action"
    ):
        table[(band, tier, contacted)] = action
    return table


def scoring_setup(tenant: Tenant) -> None:
    """TENANT_CREATED_HOOKS: every tenant starts with settings and the default policy."""
    scoring_settings(tenant)
    policy_install_defaults(tenant)
