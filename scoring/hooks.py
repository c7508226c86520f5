"""Where scoring listens to the rest of the platform (wired in ``apps.ready``)."""

from __future__ import annotations


def register() -> None:
    from commerce.services.customers import CUSTOMER_MERGE_HOOKS
    from retention.services import TENANT_CREATED_HOOKS
    from scoring.services.setup import scoring_setup

    for hooks, hook in (
        (TENANT_CREATED_HOOKS, scoring_setup),
        (CUSTOMER_MERGE_HOOKS, on_customer_merged),
    ):
        if hook not in hooks:
            hooks.append(hook)


def on_customer_merged(survivor, merged) -> dict[str, int]:
    """The merged-away customer's current score goes (the survivor is rescored
    with the combined history tonight); its history and chosen actions move to
    the survivor, so the policy's record stays whole."""
    from scoring.models import ChosenAction, ChurnScore, ChurnScoreHistory

    tenant_id = survivor.tenant_id
    ChurnScore.objects.for_tenant(tenant_id).filter(customer_id=merged.pk).delete()
    moved = {}
    for model, name in ((ChurnScoreHistory, "churn_history"), (ChosenAction, "chosen_actions")):
        rows = model.objects.for_tenant(tenant_id).filter(customer_id=merged.pk)
        # The survivor's own row for the same as-of date wins.
        taken = model.objects.for_tenant(tenant_id).filter(customer_id=survivor.pk)
        rows.filter(as_of__in=taken.values("as_of")).delete()
        moved[name] = rows.update(customer_id=survivor.pk)
    return moved
