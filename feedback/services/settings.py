"""The tenant's feedback settings."""

from __future__ import annotations

from feedback.models import FeedbackSettings
from retention.models import Tenant


def feedback_settings(tenant: Tenant | int) -> FeedbackSettings:
    """The tenant's settings, created with the defaults on first use."""
    tenant_id = getattr(tenant, "pk", tenant)
    found, _ = FeedbackSettings.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)
    return found
